import type { JsonObject } from '../src/json.js';
import { mergeConfig } from '../src/merge.js';
import type { WorkerPlugin } from '../src/plugin.js';
import {
  copyProviderMetadata,
  setConfigValues,
  splitWorkerPoolId,
  toJsonText,
  withCurrentCredentials,
  writeWorkerConfigFile,
} from '../src/worker-config.js';

interface GenericWorkerConfig {
  configPath: string;
  path?: string;
  service?: string;
  protocolPipe?: string;
}

/** generic-worker's exit code for "reboot this machine". */
const REBOOT_EXIT_CODE = 67;

const plugin: WorkerPlugin<GenericWorkerConfig> = {
  name: 'generic-worker',
  schema: {
    type: 'object',
    required: ['configPath'],
    properties: {
      path: {
        type: 'string',
        minLength: 1,
        description: 'The generic-worker executable (or a wrapper script that passes its arguments on).',
      },
      configPath: {
        type: 'string',
        minLength: 1,
        description: 'Where to write the generated generic-worker config (JSON, mode 0600).',
      },
      service: {
        type: 'string',
        minLength: 1,
        description:
          "Taskcluster's runner starts this Windows service instead of `path`; start-worker does not support Windows, so it is refused.",
      },
      protocolPipe: {
        type: 'string',
        minLength: 1,
        description: "Taskcluster's runner speaks the protocol on this Windows named pipe; refused, like `service`.",
      },
    },
  },
  usage: `Runs [generic-worker](https://github.com/taskcluster/taskcluster/tree/main/workers/generic-worker)
as \`<path> run --config <configPath> --with-worker-runner\`, speaking the
protocol on its stdin/stdout.

\`\`\`yaml
worker:
  implementation: generic-worker
  path: /usr/local/bin/generic-worker
  configPath: /etc/generic-worker/config.json
\`\`\`

The generated config is the merged worker configuration plus: \`publicIP\`,
\`privateIP\`, \`instanceType\`, \`instanceID\`, \`region\`, \`availabilityZone\`
from the provider metadata when present; \`workerLocation\` (JSON text); the
provider metadata under \`workerTypeMetadata\`; \`rootURL\`, \`clientId\`,
\`accessToken\`, \`certificate\` (when the credentials have one),
\`provisionerId\` and \`workerType\` (the worker pool ID split at its first
\`/\`), \`workerGroup\` and \`workerId\`. It is written again on every start,
so a restart from the cache gets the current credentials.

Exit code 67 means generic-worker asked for a reboot: start-worker logs it,
leaves the worker registered and exits 67. generic-worker manages its own
graceful shutdown, so by default there is no \`gracePeriod\`.

generic-worker acts on the first graceful-termination it gets and ignores
later ones: after a drain (SIGUSR2) or an aws rebalance recommendation
(\`rebalance: graceful\`), a spot notice or SIGTERM cannot make it stop
sooner; start-worker sends it anyway and logs a warning. A second SIGTERM,
or \`gracePeriod\`, still kills it.

start-worker does not support Windows: \`service\` and \`protocolPipe\`
(generic-worker as a Windows service) are refused.`,
  check(config) {
    const problems: string[] = [];
    // a `service` is refused below, with the reason
    if (config.path === undefined && config.service === undefined) {
      problems.push('worker.path: required: the generic-worker executable, such as /usr/local/bin/generic-worker');
    }
    for (const key of ['service', 'protocolPipe'] as const) {
      if (config[key] !== undefined) {
        problems.push(
          `worker.${key}: generic-worker as a Windows service is not supported: start-worker does not support Windows; use worker.path on Linux`,
        );
      }
    }
    return problems;
  },
  create(config) {
    return {
      async configureRun(state) {
        const { provisionerId, workerType } = splitWorkerPoolId(state.workerPoolId);
        copyProviderMetadata(state, {
          publicIP: 'public-ipv4',
          privateIP: 'local-ipv4',
          instanceType: 'instance-type',
          instanceID: 'instance-id',
          region: 'region',
          availabilityZone: 'availability-zone',
        });
        setConfigValues(state, { workerLocation: JSON.stringify(state.workerLocation) });
        state.workerConfig = mergeConfig(state.workerConfig, { workerTypeMetadata: state.providerMetadata });
        setConfigValues(state, {
          rootURL: state.rootUrl,
          clientId: state.credentials.clientId,
          accessToken: state.credentials.accessToken,
          provisionerId,
          workerType,
          workerGroup: state.workerGroup,
          workerId: state.workerId,
          certificate: state.credentials.certificate,
        });
      },
      async useCachedRun() {},
      async startWorker(state, spawn) {
        const content = withCurrentCredentials(state.workerConfig, state.credentials);
        await writeWorkerConfigFile(config.configPath, toJsonText(content));
        return spawn({
          file: config.path!,
          args: ['run', '--config', config.configPath, '--with-worker-runner'],
          honoursOnlyFirstTermination: true,
        });
      },
      rebootRequested: (exitCode) => exitCode === REBOOT_EXIT_CODE,
    };
  },
};

export default plugin;
