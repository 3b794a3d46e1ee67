/** Registering with worker-manager, and parsing the worker configuration it hands back. */
import { uptime } from 'node:os';
import { StartWorkerError } from '../errors.js';
import { isJsonObject, type JsonObject } from '../json.js';
import type { Logger } from '../logging/logger.js';
import { mergeConfig } from '../merge.js';
import type { IdentityProof } from '../plugin.js';
import { addSecretValues, type FileDescriptor, type RunState } from '../state.js';
import { registerWorkerCall, type CallSettings } from './client.js';
import { withStartupRetries } from './startup-retry.js';

/** `generic-worker` → `genericWorker`, the key worker-manager nests a worker's config under. */
export function camelCaseImplementation(implementation: string): string {
  return implementation.replace(/-([a-z])/g, (_, letter: string) => letter.toUpperCase());
}

/**
 * The worker configuration and files in worker-manager's `workerConfig`:
 * `{<camelCasedImplementation>: {config, files}}`, or else the legacy form
 * where the whole object is configuration.
 */
export function parseProviderWorkerConfig(
  workerConfig: JsonObject | undefined,
  implementation: string,
): { config: JsonObject; files: FileDescriptor[] } {
  if (workerConfig === undefined) return { config: {}, files: [] };
  const keys = Object.keys(workerConfig);
  const key = camelCaseImplementation(implementation);
  const nested = workerConfig[key];
  if (keys.length === 1 && keys[0] === key && isJsonObject(nested)) {
    const { config = {}, files = [] } = nested;
    if (!isJsonObject(config))
      throw new StartWorkerError(`worker-manager's workerConfig.${key}.config must be an object`);
    if (!Array.isArray(files) || !files.every(isJsonObject)) {
      throw new StartWorkerError(`worker-manager's workerConfig.${key}.files must be a list of file descriptions`);
    }
    return { config, files: files as unknown as FileDescriptor[] };
  }
  return { config: workerConfig, files: [] };
}

/** When this system booted, from the OS uptime. */
export function systemBootTime(): string {
  return new Date(Date.now() - uptime() * 1000).toISOString();
}

/**
 * Register with worker-manager (unauthenticated; the identity proof is the
 * authentication) and store the credentials, their expiry, the
 * reregistration secret, and the configuration and files it returns.
 */
export async function registerWorker(
  state: RunState,
  proof: IdentityProof,
  implementation: string,
  settings: CallSettings,
  log: Logger,
): Promise<void> {
  // the proof (an identity token, a static secret) is as secret as the credentials it buys
  addSecretValues(state, proof);
  log.info(`registering with worker-manager at ${state.rootUrl}`);
  const response = await withStartupRetries('registerWorker', settings, log, () =>
    registerWorkerCall(
      { ...settings, rootUrl: state.rootUrl },
      {
        workerPoolId: state.workerPoolId,
        providerId: state.providerId,
        workerGroup: state.workerGroup,
        workerId: state.workerId,
        workerIdentityProof: proof,
        systemBootTime: systemBootTime(),
      },
    ),
  );
  state.credentials = response.credentials;
  state.credentialsExpire = response.expires;
  state.registrationSecret = response.secret;
  const { config, files } = parseProviderWorkerConfig(response.workerConfig, implementation);
  state.workerConfig = mergeConfig(state.workerConfig, config);
  state.files.push(...files);
  log.info(`registered; credentials for ${response.credentials.clientId} expire at ${response.expires}`);
}
