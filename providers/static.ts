import type { JsonObject } from '../src/json.js';
import type { ProviderPlugin } from '../src/plugin.js';
import { staticSecretProblem } from '../src/taskcluster/identifiers.js';
import { normalizeRootUrl } from '../src/state.js';
import { identityProblems, providerMetadataSchema, requiredString, workerLocationSchema } from './identity-schema.js';

interface StaticConfig {
  rootURL: string;
  providerID: string;
  workerPoolID: string;
  workerGroup: string;
  workerID: string;
  staticSecret: string;
  providerMetadata?: JsonObject;
  workerLocation?: Record<string, string>;
}

const plugin: ProviderPlugin<StaticConfig> = {
  name: 'static',
  dynamic: false,
  secretKeys: ['staticSecret'],
  schema: {
    type: 'object',
    required: ['rootURL', 'providerID', 'workerPoolID', 'workerGroup', 'workerID', 'staticSecret'],
    properties: {
      rootURL: requiredString('Root URL of the Taskcluster deployment.'),
      providerID: requiredString('The worker-manager provider (of type static) the worker belongs to.'),
      workerPoolID: requiredString('Worker pool ID, `<provisionerId>/<workerType>`.'),
      workerGroup: requiredString('Worker group.'),
      workerID: requiredString('Worker ID.'),
      staticSecret: requiredString('The secret configured for this worker in worker-manager (secret).'),
      providerMetadata: providerMetadataSchema,
      workerLocation: workerLocationSchema,
    },
  },
  usage: `The provider for workers on machines that worker-manager does not create
(hardware in a datacenter, long-lived VMs), registered in worker-manager with
a provider of type \`static\`. The worker proves its identity with the static
secret configured for it in worker-manager, and gets credentials in return.

\`\`\`yaml
provider:
  providerType: static
  rootURL: https://tc.example.com
  providerID: datacenter
  workerPoolID: proj/hardware
  workerGroup: rack-4
  workerID: host-17
  staticSecret: ...                  # 44 characters
  providerMetadata: {rack: r4}       # optional
  workerLocation: {datacenter: dc1}  # optional, string values
\`\`\`

The worker location is \`{cloud: static}\` plus the configured entries. Do not
use \`cacheOverRestarts\` with this provider: a static worker registers from
scratch on every boot. When the worker exits, start-worker exits; nothing is
removed from worker-manager.`,
  check(config, runnerConfig) {
    return [
      runnerConfig['cacheOverRestarts'] !== undefined
        ? 'cacheOverRestarts: not used with the static provider, which registers from scratch on every boot; remove it'
        : undefined,
      ...identityProblems(config),
      staticSecretProblem(config.staticSecret, 'provider.staticSecret'),
    ].filter((problem): problem is string => problem !== undefined);
  },
  create(config) {
    return {
      async configureRun(state) {
        state.rootUrl = normalizeRootUrl(config.rootURL);
        state.providerId = config.providerID;
        state.workerPoolId = config.workerPoolID;
        state.workerGroup = config.workerGroup;
        state.workerId = config.workerID;
        state.workerLocation = { cloud: 'static', ...config.workerLocation };
        state.providerMetadata = { ...config.providerMetadata };
        return { staticSecret: config.staticSecret };
      },
      async useCachedRun() {
        throw new Error('the static provider does not use cacheOverRestarts');
      },
      workerStarted() {},
      async workerFinished() {},
    };
  },
};

export default plugin;
