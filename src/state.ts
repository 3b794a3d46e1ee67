import { StartWorkerError } from './errors.js';
import { defineOwn, isJsonObject, type JsonObject, type JsonValue } from './json.js';
import { REDACTED } from './logging/redact.js';

export interface Credentials {
  clientId: string;
  accessToken: string;
  certificate?: string;
}

/** A file to write before the worker starts (from worker-manager or secrets). */
export interface FileDescriptor {
  description?: string;
  path: string;
  content: string;
  encoding: string;
  format: string;
  /** Octal permission string such as "0600" (our addition). */
  mode?: string;
}

/**
 * Everything known about this run, filled in step by step: the provider
 * sets identity and location, registration the credentials, secrets and
 * worker-manager the worker configuration and files. It is JSON-serializable
 * so it can be cached over restarts.
 */
export interface RunState {
  rootUrl: string;
  credentials: Credentials;
  /** ISO-8601 expiry of the credentials, when they expire. */
  credentialsExpire?: string;
  /** The secret worker-manager hands out for reregisterWorker. */
  registrationSecret?: string;
  workerPoolId: string;
  workerGroup: string;
  workerId: string;
  providerId: string;
  providerMetadata: JsonObject;
  workerLocation: Record<string, string>;
  workerConfig: JsonObject;
  files: FileDescriptor[];
  /** Paths in workerConfig whose values came from secrets (redacted in dumps). */
  secretConfigPaths: string[][];
}

export function emptyRunState(workerConfig: JsonObject): RunState {
  return {
    rootUrl: '',
    credentials: { clientId: '', accessToken: '' },
    workerPoolId: '',
    workerGroup: '',
    workerId: '',
    providerId: '',
    providerMetadata: {},
    workerLocation: {},
    workerConfig,
    files: [],
    secretConfigPaths: [],
  };
}

/** Check that the provider step produced a usable identity, as Taskcluster does. */
export function checkProviderResults(state: RunState, providerType: string): void {
  const missing = (what: string) =>
    new StartWorkerError(`provider '${providerType}' did not set ${what}; check the provider section of the runner config`);
  if (!state.rootUrl) throw missing('the root URL');
  if (state.rootUrl.endsWith('/')) {
    throw new StartWorkerError(`root URL '${state.rootUrl}' must not end with '/'`);
  }
  if (!state.credentials.clientId) throw missing('a clientId');
  if (!state.workerPoolId) throw missing('workerPoolId');
  if (!state.workerGroup) throw missing('workerGroup');
  if (!state.workerId) throw missing('workerId');
  if (!state.providerId) throw missing('providerId');
  if (!state.workerLocation['cloud']) throw missing('workerLocation.cloud');
}

/** Normalize a Taskcluster root URL as taskcluster-lib-urls does: no trailing slashes. */
export function normalizeRootUrl(rootUrl: string): string {
  return rootUrl.replace(/\/+$/, '');
}

/**
 * The run state with every secret replaced by REDACTED: the access token,
 * certificate and registration secret, every worker-config value that came
 * from a secret, and file contents. Safe to print.
 */
export function redactedRunState(state: RunState): JsonObject {
  let workerConfig = structuredClone(state.workerConfig);
  for (const path of state.secretConfigPaths) workerConfig = redactAt(workerConfig, path) as JsonObject;
  const { certificate } = state.credentials;
  return {
    rootUrl: state.rootUrl,
    credentials: {
      clientId: state.credentials.clientId,
      accessToken: REDACTED,
      ...(certificate !== undefined ? { certificate: REDACTED } : {}),
    },
    ...(state.credentialsExpire !== undefined ? { credentialsExpire: state.credentialsExpire } : {}),
    ...(state.registrationSecret !== undefined ? { registrationSecret: REDACTED } : {}),
    workerPoolId: state.workerPoolId,
    workerGroup: state.workerGroup,
    workerId: state.workerId,
    providerId: state.providerId,
    providerMetadata: state.providerMetadata,
    workerLocation: state.workerLocation,
    workerConfig,
    files: state.files.map((file) => ({ ...file, content: REDACTED })),
  };
}

function redactAt(value: JsonValue, path: string[]): JsonValue {
  if (path.length === 0) return REDACTED;
  const [key, ...rest] = path as [string, ...string[]];
  if (Array.isArray(value)) {
    const index = Number(key);
    if (!(index in value)) return value;
    return value.map((item, i) => (i === index ? redactAt(item, rest) : item));
  }
  if (isJsonObject(value) && Object.hasOwn(value, key)) {
    const copy = { ...value };
    defineOwn(copy, key, redactAt(value[key]!, rest));
    return copy;
  }
  return value;
}
