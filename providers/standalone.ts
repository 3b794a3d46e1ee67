import type { JsonObject } from '../src/json.js';
import type { ProviderPlugin } from '../src/plugin.js';
import { normalizeRootUrl } from '../src/state.js';
import { identityProblems, providerMetadataSchema, requiredString, workerLocationSchema } from './identity-schema.js';

interface StandaloneConfig {
  rootURL: string;
  clientID: string;
  accessToken: string;
  workerPoolID: string;
  workerGroup: string;
  workerID: string;
  providerMetadata?: JsonObject;
  workerLocation?: Record<string, string>;
}

const plugin: ProviderPlugin<StandaloneConfig> = {
  name: 'standalone',
  dynamic: false,
  registers: false,
  secretKeys: ['accessToken'],
  schema: {
    type: 'object',
    required: ['rootURL', 'clientID', 'accessToken', 'workerPoolID', 'workerGroup', 'workerID'],
    properties: {
      rootURL: requiredString('Root URL of the Taskcluster deployment.'),
      clientID: requiredString('Client ID of the credentials the worker uses.'),
      accessToken: requiredString('Access token of those credentials (secret).'),
      workerPoolID: requiredString('Worker pool ID, `<provisionerId>/<workerType>`.'),
      workerGroup: requiredString('Worker group.'),
      workerID: requiredString('Worker ID.'),
      providerMetadata: providerMetadataSchema,
      workerLocation: workerLocationSchema,
    },
  },
  usage: `The provider for a worker whose whole identity and credentials are in the
runner config. It does not talk to worker-manager: nothing is registered and
nothing is removed when the worker exits. Prefer \`static\` where
worker-manager is available.

\`\`\`yaml
provider:
  providerType: standalone
  rootURL: https://tc.example.com
  clientID: project/my-worker
  accessToken: ...
  workerPoolID: proj/workers
  workerGroup: datacenter-1
  workerID: host-17
  providerMetadata: {rack: r4}        # optional
  workerLocation: {datacenter: dc1}   # optional, string values
\`\`\`

The worker location is \`{cloud: standalone}\` plus the configured entries.`,
  check: identityProblems,
  create(config) {
    return {
      async configureRun(state) {
        state.rootUrl = normalizeRootUrl(config.rootURL);
        state.providerId = 'standalone';
        state.credentials = { clientId: config.clientID, accessToken: config.accessToken };
        state.workerPoolId = config.workerPoolID;
        state.workerGroup = config.workerGroup;
        state.workerId = config.workerID;
        state.workerLocation = { cloud: 'standalone', ...config.workerLocation };
        state.providerMetadata = { ...config.providerMetadata };
        return undefined;
      },
      async useCachedRun() {},
      workerStarted() {},
      async workerFinished() {},
    };
  },
};

export default plugin;
