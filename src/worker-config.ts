/** Helpers shared by worker implementations that write a Taskcluster worker's config file. */
import { StartWorkerError, errorMessage } from './errors.js';
import { isJsonObject, type JsonObject } from './json.js';
import { setPath } from './merge.js';
import type { Credentials, RunState } from './state.js';
import { writeFileAtomic } from './util/atomic-write.js';

/** Split `provisionerId/workerType` at the first slash. */
export function splitWorkerPoolId(workerPoolId: string): { provisionerId: string; workerType: string } {
  const slash = workerPoolId.indexOf('/');
  if (slash === -1) {
    throw new StartWorkerError(
      `workerPoolId '${workerPoolId}' does not contain a '/'; it must be <provisionerId>/<workerType>`,
    );
  }
  return { provisionerId: workerPoolId.slice(0, slash), workerType: workerPoolId.slice(slash + 1) };
}

/** Copy provider metadata values into worker config keys, where the provider supplied them. */
export function copyProviderMetadata(state: RunState, mapping: Record<string, string>): void {
  for (const [configKey, metadataKey] of Object.entries(mapping)) {
    const value = state.providerMetadata[metadataKey];
    if (value !== undefined) state.workerConfig = setPath(state.workerConfig, configKey, value);
  }
}

/** Set several dotted keys of the worker config. */
export function setConfigValues(state: RunState, values: Record<string, string | undefined>): void {
  for (const [key, value] of Object.entries(values)) {
    if (value !== undefined) state.workerConfig = setPath(state.workerConfig, key, value);
  }
}

/** Write a worker config file, owner-only and atomically. */
export async function writeWorkerConfigFile(path: string, content: string): Promise<void> {
  try {
    await writeFileAtomic(path, content, 0o600);
  } catch (err) {
    throw new StartWorkerError(
      `cannot write the worker config file ${path}: ${errorMessage(err)}; check worker.configPath`,
    );
  }
}

export function toJsonText(config: JsonObject): string {
  return `${JSON.stringify(config, null, 2)}\n`;
}

/** The worker's identity as environment variables (never credentials). */
export function identityEnvironment(state: RunState): Record<string, string> {
  return {
    TASKCLUSTER_ROOT_URL: state.rootUrl,
    TASKCLUSTER_WORKER_POOL_ID: state.workerPoolId,
    TASKCLUSTER_WORKER_GROUP: state.workerGroup,
    TASKCLUSTER_WORKER_ID: state.workerId,
    TASKCLUSTER_PROVIDER_ID: state.providerId,
    TASKCLUSTER_WORKER_LOCATION: JSON.stringify(state.workerLocation),
  };
}

/**
 * The worker config with the current credentials as `clientId`,
 * `accessToken` and `certificate` (under `base` when given). They may have
 * been renewed since configureRun, when a run is restarted from the cache.
 */
export function withCurrentCredentials(config: JsonObject, credentials: Credentials, base?: string): JsonObject {
  const holder = base === undefined ? config : isJsonObject(config[base]) ? config[base] : {};
  const { certificate: _stale, ...rest } = holder;
  const { clientId, accessToken, certificate } = credentials;
  const updated = { ...rest, clientId, accessToken, ...(certificate !== undefined ? { certificate } : {}) };
  return base === undefined ? updated : { ...config, [base]: updated };
}
