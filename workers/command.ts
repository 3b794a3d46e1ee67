import { constants } from 'node:os';
import { stringify } from 'yaml';
import type { JsonObject } from '../src/json.js';
import type { WorkerPlugin } from '../src/plugin.js';
import type { RunState } from '../src/state.js';
import { identityEnvironment, toJsonText, writeWorkerConfigFile } from '../src/worker-config.js';

interface CommandConfig {
  command: string[];
  cwd?: string;
  env?: Record<string, string>;
  configPath?: string;
  configFormat: 'json' | 'yaml';
  protocol: boolean;
  terminationSignal: NodeJS.Signals;
  /** Default: `config` with a configPath, else `env`. */
  passCredentials?: 'config' | 'env' | 'none';
}

const CREDENTIAL_VARIABLES = ['TASKCLUSTER_CLIENT_ID', 'TASKCLUSTER_ACCESS_TOKEN', 'TASKCLUSTER_CERTIFICATE'];
const DEFAULT_GRACE_PERIOD_SECONDS = 30;

/** The `taskcluster` object added to the config file. */
function taskclusterSection(state: RunState, withCredentials: boolean): JsonObject {
  const { clientId, accessToken, certificate } = state.credentials;
  return {
    rootUrl: state.rootUrl,
    ...(withCredentials ? { clientId, accessToken, ...(certificate !== undefined ? { certificate } : {}) } : {}),
    workerPoolId: state.workerPoolId,
    workerGroup: state.workerGroup,
    workerId: state.workerId,
    providerId: state.providerId,
    workerLocation: state.workerLocation,
  };
}

function credentialEnvironment(state: RunState): Record<string, string> {
  const { clientId, accessToken, certificate } = state.credentials;
  return {
    TASKCLUSTER_CLIENT_ID: clientId,
    TASKCLUSTER_ACCESS_TOKEN: accessToken,
    ...(certificate !== undefined ? { TASKCLUSTER_CERTIFICATE: certificate } : {}),
  };
}

const plugin: WorkerPlugin<CommandConfig> = {
  name: 'command',
  schema: {
    type: 'object',
    required: ['command'],
    properties: {
      command: {
        type: 'array',
        minItems: 1,
        items: { type: 'string' },
        description: 'The worker program and its arguments (no shell).',
      },
      cwd: { type: 'string', minLength: 1, description: 'Working directory of the worker.' },
      env: {
        type: 'object',
        additionalProperties: { type: 'string' },
        description: "Variables added to the worker's environment.",
      },
      configPath: {
        type: 'string',
        minLength: 1,
        description: 'Where to write the merged worker config (mode 0600), with a `taskcluster` object added.',
      },
      configFormat: { enum: ['json', 'yaml'], default: 'json', description: 'Format of the file at `configPath`.' },
      protocol: {
        type: 'boolean',
        default: true,
        description:
          'Whether the worker speaks the protocol on stdin/stdout. When false, its stdout is logged and a stop request is delivered as `terminationSignal`.',
      },
      terminationSignal: {
        enum: Object.keys(constants.signals)
          .filter((name) => name !== 'SIGKILL' && name !== 'SIGSTOP')
          .sort(),
        default: 'SIGTERM',
        description: 'The signal that asks the worker to stop when it does not accept graceful-termination.',
      },
      passCredentials: {
        enum: ['config', 'env', 'none'],
        description:
          "Where the worker gets its Taskcluster credentials: `config` (the `taskcluster` object of the config file), `env` (`TASKCLUSTER_CLIENT_ID`, `TASKCLUSTER_ACCESS_TOKEN`, `TASKCLUSTER_CERTIFICATE`, beside `TASKCLUSTER_ROOT_URL`, as the Taskcluster clients' `fromEnvVars()` read them), or `none`. Default: `config` when `configPath` is set, else `env`.",
      },
    },
  },
  usage: `Runs any worker daemon: \`command\` is the program and its arguments. The
worker's environment always has \`TASKCLUSTER_ROOT_URL\`,
\`TASKCLUSTER_WORKER_POOL_ID\`, \`TASKCLUSTER_WORKER_GROUP\`,
\`TASKCLUSTER_WORKER_ID\`, \`TASKCLUSTER_PROVIDER_ID\` and
\`TASKCLUSTER_WORKER_LOCATION\` (JSON). With \`configPath\`, the merged worker
configuration is written there (JSON or YAML, mode 0600) with a \`taskcluster\`
object added: \`rootUrl\`, \`workerPoolId\`, \`workerGroup\`, \`workerId\`,
\`providerId\`, \`workerLocation\`, and with \`passCredentials: config\` also
\`clientId\`, \`accessToken\` and \`certificate\`. Credentials go only where
\`passCredentials\` says; inherited \`TASKCLUSTER_*\` credential variables are
removed otherwise. Without \`configPath\`, credentials are passed in the
environment (\`TASKCLUSTER_CLIENT_ID\`, \`TASKCLUSTER_ACCESS_TOKEN\`,
\`TASKCLUSTER_CERTIFICATE\`), as the Taskcluster clients' \`fromEnvVars()\`
read them, so the smallest config is just the command:

\`\`\`yaml
worker:
  implementation: command
  command: [/usr/local/bin/my-daemon]
\`\`\`

With a config file:

\`\`\`yaml
worker:
  implementation: command
  command: [/usr/local/bin/my-worker, --verbose]
  configPath: /etc/my-worker/config.json   # passCredentials defaults to config
  gracePeriod: 120
\`\`\`

A worker that does not speak the protocol (\`protocol: false\`) is asked to
stop with \`terminationSignal\`; after \`gracePeriod\` seconds (default 30) its
process group is killed.`,
  check(config) {
    if (config.command[0] === '') return ['worker.command[0]: the program must not be empty'];
    if (config.passCredentials === 'config' && config.configPath === undefined) {
      return [
        'worker.configPath: required when worker.passCredentials is "config"; set a configPath, or passCredentials: env or none',
      ];
    }
    return [];
  },
  create(config) {
    const passCredentials = config.passCredentials ?? (config.configPath !== undefined ? 'config' : 'env');
    return {
      async configureRun() {},
      async useCachedRun() {},
      async startWorker(state, spawn) {
        if (config.configPath !== undefined) {
          const content = {
            ...state.workerConfig,
            taskcluster: taskclusterSection(state, passCredentials === 'config'),
          };
          const text = config.configFormat === 'yaml' ? stringify(content) : toJsonText(content);
          await writeWorkerConfigFile(config.configPath, text);
        }
        const [file, ...args] = config.command;
        return spawn({
          file: file!,
          args,
          cwd: config.cwd,
          env: {
            ...config.env,
            ...identityEnvironment(state),
            ...(passCredentials === 'env' ? credentialEnvironment(state) : {}),
          },
          removeEnv: passCredentials === 'env' ? [] : CREDENTIAL_VARIABLES,
          protocol: config.protocol,
          terminationSignal: config.terminationSignal,
          gracePeriodSeconds: DEFAULT_GRACE_PERIOD_SECONDS,
        });
      },
    };
  },
};

export default plugin;
