/** What a secret holds (from the Taskcluster secrets service or another secret store), and merging it into the run. */
import { StartWorkerError } from './errors.js';
import { isJsonObject, type JsonObject, type JsonValue } from './json.js';
import { contributedPaths, mergeConfig } from './merge.js';
import type { Logger } from './logging/logger.js';
import { addSecretValues, type FileDescriptor, type RunState } from './state.js';

/** A secret read from a store: where it came from and its content. */
export interface SecretRead {
  source: string;
  value: JsonValue;
}

/** Merge secrets into the run state in the order given (a later one wins). */
export function applySecrets(state: RunState, reads: SecretRead[], log: Logger): void {
  for (const { source, value } of reads) {
    applySecret(state, parseSecretValue(value, source));
    log.info(`read worker configuration from ${source}`);
  }
}

/**
 * A secret's content: `{config, files}` (no other top-level keys), or a
 * legacy flat configuration object.
 */
function parseSecretValue(value: JsonValue, source: string): { config: JsonObject; files: FileDescriptor[] } {
  if (!isJsonObject(value)) throw new StartWorkerError(`${source}: the secret must be an object`);
  const keys = Object.keys(value);
  if (keys.length === 0 || !keys.every((key) => key === 'config' || key === 'files'))
    return { config: value, files: [] };
  const { config = {}, files = [] } = value;
  if (!isJsonObject(config)) throw new StartWorkerError(`${source}: config must be an object`);
  if (!Array.isArray(files) || !files.every(isJsonObject))
    throw new StartWorkerError(`${source}: files must be a list of file descriptions`);
  return { config, files: files as unknown as FileDescriptor[] };
}

/**
 * Merge a secret into the run state: its config over the worker config
 * (remembering which values came from it, for redaction) and its files.
 */
function applySecret(state: RunState, secret: { config: JsonObject; files: FileDescriptor[] }): void {
  state.secretConfigPaths.push(...contributedPaths(state.workerConfig, secret.config));
  state.workerConfig = mergeConfig(state.workerConfig, secret.config);
  state.files.push(...secret.files);
  addSecretValues(state, secret.config, secret.files);
}
