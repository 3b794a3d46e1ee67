import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { StartWorkerError } from '../src/errors.js';
import type { WorkerPlugin } from '../src/plugin.js';
import {
  copyProviderMetadata,
  setConfigValues,
  splitWorkerPoolId,
  toJsonText,
  withCurrentCredentials,
  writeWorkerConfigFile,
} from '../src/worker-config.js';

interface DockerWorkerConfig {
  path: string;
  configPath: string;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** The release tarball's launcher, else the entry point of a checkout (src/main.js since 2020). */
async function dockerWorkerCommand(path: string): Promise<{ file: string; args: string[] }> {
  const args = ['--host', 'worker-runner', 'production'];
  const launcher = join(path, 'bin', 'docker-worker');
  if (await exists(launcher)) return { file: launcher, args };
  const main = join(path, 'src', 'main.js');
  if (await exists(main)) return { file: 'node', args: [main, ...args] };
  throw new StartWorkerError(
    `worker.path: neither ${launcher} (a docker-worker release) nor ${main} (a docker-worker checkout) exists; point worker.path at the docker-worker directory`,
  );
}

const plugin: WorkerPlugin<DockerWorkerConfig> = {
  name: 'docker-worker',
  schema: {
    type: 'object',
    required: ['path', 'configPath'],
    properties: {
      path: {
        type: 'string',
        minLength: 1,
        description: 'The docker-worker directory (from the release tarball, or a checkout).',
      },
      configPath: {
        type: 'string',
        minLength: 1,
        description: 'Where to write the generated docker-worker config (JSON, mode 0600).',
      },
    },
  },
  usage: `Runs [docker-worker](https://github.com/taskcluster/taskcluster/tree/v99.0.0/workers/docker-worker)
(legacy: Taskcluster removed docker-worker in v100; start-worker keeps
running existing images): \`<path>/bin/docker-worker --host worker-runner
production\` when that file exists (the release tarball), else \`node
<path>/src/main.js --host worker-runner production\` (a checkout), with
\`DOCKER_WORKER_CONFIG=<configPath>\` in its environment; neither is an
error naming both.

\`\`\`yaml
worker:
  implementation: docker-worker
  path: /home/ubuntu/docker-worker
  configPath: /home/ubuntu/worker.cfg
\`\`\`

The generated config is the merged worker configuration plus: \`host\`,
\`publicIp\`, \`privateIp\`, \`workerNodeType\`, \`instanceType\`, \`instanceId\`,
\`region\` from the provider metadata when present; \`rootUrl\`;
\`taskcluster.clientId\`, \`taskcluster.accessToken\`, \`taskcluster.certificate\`
(when present); \`workerId\`, \`workerGroup\`, \`provisionerId\`, \`workerType\`;
and \`workerLocation\` (JSON text). docker-worker manages its own graceful
shutdown, so by default there is no \`gracePeriod\`.`,
  create(config) {
    return {
      async configureRun(state) {
        const { provisionerId, workerType } = splitWorkerPoolId(state.workerPoolId);
        copyProviderMetadata(state, {
          host: 'public-hostname',
          publicIp: 'public-ipv4',
          privateIp: 'local-ipv4',
          workerNodeType: 'instance-type',
          instanceType: 'instance-type',
          instanceId: 'instance-id',
          region: 'region',
        });
        setConfigValues(state, {
          workerLocation: JSON.stringify(state.workerLocation),
          rootUrl: state.rootUrl,
          'taskcluster.clientId': state.credentials.clientId,
          'taskcluster.accessToken': state.credentials.accessToken,
          'taskcluster.certificate': state.credentials.certificate,
          workerId: state.workerId,
          workerGroup: state.workerGroup,
          provisionerId,
          workerType,
        });
      },
      async useCachedRun() {},
      async startWorker(state, spawn) {
        const content = withCurrentCredentials(state.workerConfig, state.credentials, 'taskcluster');
        await writeWorkerConfigFile(config.configPath, toJsonText(content));
        return spawn({ ...(await dockerWorkerCommand(config.path)), env: { DOCKER_WORKER_CONFIG: config.configPath } });
      },
    };
  },
};

export default plugin;
