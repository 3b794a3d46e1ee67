/** Worker configuration and files from the Taskcluster secrets service. */
import { StartWorkerError } from '../errors.js';
import { isJsonObject, type JsonObject, type JsonValue } from '../json.js';
import type { Logger } from '../logging/logger.js';
import { contributedPaths, mergeConfig } from '../merge.js';
import { addSecretValues, type FileDescriptor, type RunState } from '../state.js';
import { getSecretCall, TaskclusterCallError } from './client.js';
import { withStartupRetries, type StartupCallSettings } from './registration.js';

/**
 * A secret's content: `{config, files}` (no other top-level keys), or a
 * legacy flat configuration object.
 */
export function parseSecretValue(value: JsonValue, source: string): { config: JsonObject; files: FileDescriptor[] } {
  if (!isJsonObject(value)) throw new StartWorkerError(`${source}: the secret must be an object`);
  const keys = Object.keys(value);
  if (keys.length === 0 || !keys.every((key) => key === 'config' || key === 'files')) return { config: value, files: [] };
  const { config = {}, files = [] } = value;
  if (!isJsonObject(config)) throw new StartWorkerError(`${source}: config must be an object`);
  if (!Array.isArray(files) || !files.every(isJsonObject)) throw new StartWorkerError(`${source}: files must be a list of file descriptions`);
  return { config, files: files as unknown as FileDescriptor[] };
}

/**
 * Merge a secret into the run state: its config over the worker config
 * (remembering which values came from it, for redaction) and its files.
 */
export function applySecret(state: RunState, secret: { config: JsonObject; files: FileDescriptor[] }): void {
  state.secretConfigPaths.push(...contributedPaths(state.workerConfig, secret.config));
  state.workerConfig = mergeConfig(state.workerConfig, secret.config);
  state.files.push(...secret.files);
  addSecretValues(state, secret.config, secret.files);
}

/**
 * Read `worker-type:<pool>` (legacy; 404 and 403 are fine) and then
 * `worker-pool:<pool>` (404 and 410 are fine, with a warning); the later one
 * wins on merge.
 */
export async function readTaskclusterSecrets(state: RunState, settings: StartupCallSettings, log: Logger): Promise<void> {
  const target = { ...settings, rootUrl: state.rootUrl, credentials: state.credentials };
  const sources = [
    { name: `worker-type:${state.workerPoolId}`, absent: [404, 403] },
    { name: `worker-pool:${state.workerPoolId}`, absent: [404, 410] },
  ];
  let found = 0;
  for (const { name, absent } of sources) {
    let value: JsonValue;
    try {
      value = await withStartupRetries(`reading secret ${name}`, settings, log, () => getSecretCall(target, name));
    } catch (err) {
      if (err instanceof TaskclusterCallError && err.statusCode !== undefined && absent.includes(err.statusCode)) {
        if (err.statusCode === 410) log.warn(`secret ${name} has expired; ignoring it`);
        else log.debug(`no secret ${name} (HTTP ${err.statusCode})`);
        continue;
      }
      throw new StartWorkerError(`cannot read worker secrets: ${(err as Error).message}`);
    }
    applySecret(state, parseSecretValue(value, `secret ${name}`));
    found += 1;
    log.info(`read worker configuration from secret ${name}`);
  }
  if (found === 0) log.warn(`no worker secrets for worker pool ${state.workerPoolId}`);
}
