import { StartWorkerError } from './errors.js';
import { defineOwn, isJsonObject, type JsonObject, type JsonValue } from './json.js';
import { REDACTED, type Redactor } from './logging/redact.js';

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

/** Secret config values shorter than this are not redacted from logs: they cannot be told from ordinary text. */
const MIN_REDACTED_VALUE_LENGTH = 8;

const redactors = new WeakMap<RunState, Redactor>();

/**
 * This run's state, owning its secrets: credentials and the registration
 * secret are registered with `redactor` whenever they are set (the state's
 * own properties do it), and so are the values a restored state got from
 * secrets, its file contents, and later secrets merged in with
 * `addSecretValues`. No code that fills the state can forget to.
 */
export function secretKeepingRunState(initial: RunState, redactor: Redactor): RunState {
  const state = { ...initial };
  redactors.set(state, redactor);
  let credentials = initial.credentials;
  let registrationSecret = initial.registrationSecret;
  Object.defineProperty(state, 'credentials', {
    enumerable: true,
    get: () => credentials,
    set(value: Credentials) {
      // the credentials replaced stay valid (and secret) until they expire
      const until = Date.parse(state.credentialsExpire ?? '');
      if (value.accessToken !== credentials.accessToken)
        redactor.retire(credentials.accessToken, Number.isNaN(until) ? Infinity : until);
      if (value.certificate !== credentials.certificate)
        redactor.retire(credentials.certificate, Number.isNaN(until) ? Infinity : until);
      redactor.add(value.accessToken);
      redactor.add(value.certificate);
      credentials = Object.freeze({ ...value });
    },
  });
  Object.defineProperty(state, 'registrationSecret', {
    enumerable: true,
    get: () => registrationSecret,
    set(value: string | undefined) {
      // worker-manager accepts only the latest secret: the one replaced is worthless
      if (value !== registrationSecret) redactor.retire(registrationSecret, Date.now());
      redactor.add(value);
      registrationSecret = value;
    },
  });
  state.credentials = credentials;
  state.registrationSecret = registrationSecret;
  for (const path of state.secretConfigPaths) addSecretValues(state, valueAt(state.workerConfig, path));
  for (const file of state.files) redactor.add(typeof file.content === 'string' ? file.content : undefined);
  return state;
}

/** Values (and file contents) that came from a secret: redacted from every log line from now on. */
export function addSecretValues(state: RunState, value: JsonValue | undefined, files: FileDescriptor[] = []): void {
  const redactor = redactors.get(state);
  if (redactor === undefined) return; // a bare state (tests, plugins' own): nothing logs from it
  const visit = (item: JsonValue | undefined): void => {
    if (typeof item === 'string') redactor.add(item, MIN_REDACTED_VALUE_LENGTH);
    else if (Array.isArray(item)) item.forEach(visit);
    else if (isJsonObject(item)) Object.values(item).forEach(visit);
  };
  visit(value);
  for (const file of files) redactor.add(typeof file.content === 'string' ? file.content : undefined);
}

function valueAt(value: JsonValue, path: string[]): JsonValue | undefined {
  let current: JsonValue | undefined = value;
  for (const key of path)
    current = isJsonObject(current) || Array.isArray(current) ? (current as Record<string, JsonValue>)[key] : undefined;
  return current;
}

/** Check that the provider step produced a usable identity, as Taskcluster does. */
export function checkProviderResults(state: RunState, providerType: string): void {
  const missing = (what: string) =>
    new StartWorkerError(
      `provider '${providerType}' did not set ${what}; check the provider section of the runner config`,
    );
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
