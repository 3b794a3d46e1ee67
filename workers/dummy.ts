import { stringify } from 'yaml';
import type { WorkerPlugin } from '../src/plugin.js';
import { redactedRunState } from '../src/state.js';
import { finishedWorker } from '../src/supervisor/finished.js';

const plugin: WorkerPlugin = {
  name: 'dummy',
  spawnsProcess: false,
  schema: { type: 'object', properties: {} },
  usage: `Does not run a worker: prints the run state as YAML on stdout and exits 0.
Secrets (the access token, certificate, registration secret, every value that
came from a secret, file contents) are redacted. Useful for checking what a
provider and worker-manager hand to a worker.

\`\`\`yaml
worker:
  implementation: dummy
\`\`\``,
  create(_config, { log }) {
    return {
      async configureRun() {},
      async useCachedRun() {},
      async startWorker(state) {
        process.stdout.write(stringify(redactedRunState(state), { lineWidth: 0 }));
        return finishedWorker({ code: 0, signal: null }, log);
      },
    };
  },
};

export default plugin;
