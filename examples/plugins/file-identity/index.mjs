// An example start-worker plugin: a provider that reads the worker's
// identity from a local JSON file (written, say, by a provisioning system)
// and registers with a worker-manager provider of type `static`.
//
// Use it from a runner config:
//
//   plugins: [./plugins/file-identity/index.mjs]
//   provider:
//     providerType: file-identity
//     identityFile: /etc/taskcluster/identity.json
//
// The identity file holds {rootUrl, providerId, workerPoolId, workerGroup,
// workerId, staticSecret} and must be readable by its owner only.

import { readFile, stat } from 'node:fs/promises';

/** An error start-worker reports as one line (it recognises the name). */
class StartWorkerError extends Error {
  name = 'StartWorkerError';
}

const REQUIRED = ['rootUrl', 'providerId', 'workerPoolId', 'workerGroup', 'workerId', 'staticSecret'];

async function readIdentity(path) {
  const info = await stat(path).catch(() => undefined);
  if (!info) throw new StartWorkerError(`identity file ${path} does not exist`);
  if ((info.mode & 0o077) !== 0)
    throw new StartWorkerError(`identity file ${path} is readable by group or others; chmod 600 it`);
  let identity;
  try {
    identity = JSON.parse(await readFile(path, 'utf8'));
  } catch (err) {
    throw new StartWorkerError(`identity file ${path} is not valid JSON: ${err.message}`);
  }
  for (const key of REQUIRED) {
    if (typeof identity[key] !== 'string' || identity[key] === '')
      throw new StartWorkerError(`identity file ${path}: ${key} is missing`);
  }
  return identity;
}

/** @type {import('start-worker').ProviderPlugin<{identityFile: string}>} */
const fileIdentity = {
  name: 'file-identity',
  dynamic: false,
  // The static secret can be presented again at any time.
  canRegisterAgain: true,
  schema: {
    type: 'object',
    required: ['identityFile'],
    properties: {
      identityFile: { type: 'string', minLength: 1, description: 'The JSON file holding the worker identity.' },
    },
  },
  usage:
    'Reads the worker identity from a local JSON file and registers with a worker-manager provider of type `static`.',
  create(config, { log }) {
    return {
      async configureRun(state) {
        const identity = await readIdentity(config.identityFile);
        log.redactor.add(identity.staticSecret);
        state.rootUrl = identity.rootUrl.replace(/\/+$/, '');
        state.providerId = identity.providerId;
        state.workerPoolId = identity.workerPoolId;
        state.workerGroup = identity.workerGroup;
        state.workerId = identity.workerId;
        state.workerLocation = { cloud: 'file-identity' };
        state.providerMetadata = { 'identity-file': config.identityFile };
        return { staticSecret: identity.staticSecret };
      },
      async useCachedRun() {},
      workerStarted() {},
      async workerFinished() {},
    };
  },
};

export default { providers: [fileIdentity] };
