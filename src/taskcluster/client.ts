/**
 * Taskcluster calls, made with the official taskcluster-client (Hawk
 * signing, temporary credentials, URLs). The client's own retries are off:
 * every call goes through withRetries with a policy that fits it (a long
 * window at boot, a deadline before the credentials expire).
 */
import type { AgentOptions } from 'node:https';
import { StartWorkerError, errorMessage } from '../errors.js';
import { isJsonObject, type JsonObject, type JsonValue } from '../json.js';
import type { CallSettings } from '../call-settings.js';
import type { Credentials } from '../state.js';
import { parseRetryAfter } from '../util/backoff.js';
import { recordingResponse, type CallResponse } from './response-headers.js';

export type { CallSettings } from '../call-settings.js';

export interface ClientTarget extends CallSettings {
  rootUrl: string;
  /** Without credentials, calls are unauthenticated (registerWorker). */
  credentials?: Credentials;
}

/** A failed Taskcluster call: what failed, the service's message, and whether it is worth retrying. */
export class TaskclusterCallError extends StartWorkerError {
  constructor(
    message: string,
    readonly statusCode: number | undefined,
    readonly transient: boolean,
    /** How long the service asked to wait before retrying (its Retry-After on a 429 or 503), in ms. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'TaskclusterCallError';
  }
}

/** Transient: no response (connection error, timeout), a 5xx, or 429. A 4xx is permanent. */
export function isTransient(err: unknown): boolean {
  return err instanceof TaskclusterCallError ? err.transient : false;
}

/** Just the service's message: Taskcluster appends request details after a `---` line. */
function serviceMessage(err: unknown): string {
  const text = errorMessage(err)
    .split(/\n-{3,}/)[0]!
    .replace(/\s+/g, ' ')
    .trim();
  return text.length > 500 ? `${text.slice(0, 500)}...` : text;
}

/** Call a client method and turn any failure into a TaskclusterCallError. */
export async function call<T>(description: string, operation: () => Promise<T>): Promise<T> {
  const response: CallResponse = {};
  try {
    return await recordingResponse(response, operation);
  } catch (err) {
    const statusCode = (err as { statusCode?: unknown }).statusCode;
    const status = typeof statusCode === 'number' ? statusCode : undefined;
    const code = (err as { code?: unknown }).code;
    const transient = status === undefined || status >= 500 || status === 429;
    const what = status !== undefined ? `HTTP ${status}` : typeof code === 'string' ? code : 'no response';
    // RFC 9110 gives Retry-After its meaning on 503 and 429
    const retryAfterMs =
      status === 503 || status === 429 ? parseRetryAfter(response.retryAfter, response.receivedAt) : undefined;
    const asked = retryAfterMs !== undefined ? `; Retry-After ${response.retryAfter!.trim()}` : '';
    throw new TaskclusterCallError(
      `${description} failed (${what}${asked}): ${serviceMessage(err)}`,
      status,
      transient,
      retryAfterMs,
    );
  }
}

function clientOptions(target: ClientTarget) {
  return {
    rootUrl: target.rootUrl,
    credentials: target.credentials
      ? {
          clientId: target.credentials.clientId,
          accessToken: target.credentials.accessToken,
          ...(target.credentials.certificate !== undefined ? { certificate: target.credentials.certificate } : {}),
        }
      : {},
    retries: 0,
    timeout: target.requestTimeoutMs,
  };
}

let loading: ReturnType<typeof loadLibrary> | undefined;

/**
 * Loaded on first use (a standalone run without secrets never needs it),
 * or earlier by preloadTaskclusterClient. Every client shares one
 * keep-alive agent per protocol, so a run opens one connection to the
 * deployment and pays one TLS handshake. TLS settings are the same for
 * every call of a run.
 */
function library(tls: AgentOptions | undefined) {
  loading ??= loadLibrary(tls);
  return loading;
}

async function loadLibrary(tls: AgentOptions | undefined) {
  const [{ default: taskcluster }, http, https] = await Promise.all([
    import('taskcluster-client'),
    import('node:http'),
    import('node:https'),
  ]);
  // One socket per host during startup: a second request waits for the warm
  // connection (one round trip) rather than opening another (a TCP and a TLS
  // handshake). allowConcurrentTaskclusterCalls lifts the limit later.
  taskcluster.agents.http = new http.Agent({ keepAlive: true, maxSockets: socketsPerHost });
  taskcluster.agents.https = new https.Agent({ ...tls, keepAlive: true, maxSockets: socketsPerHost });
  return taskcluster;
}

/** Sockets per host once the worker runs. */
const RUNNING_SOCKETS_PER_HOST = 4;
let socketsPerHost = 1;

/**
 * Once the worker runs, calls overlap for no reason of ours (a renewal while
 * error reports are on their way), and a call's timeout counts its time in
 * the agent's queue: give them sockets of their own so one slow call cannot
 * time out the others.
 */
export function allowConcurrentTaskclusterCalls(): void {
  socketsPerHost = RUNNING_SOCKETS_PER_HOST;
  void loading?.then(
    ({ agents }) => {
      agents.http.maxSockets = socketsPerHost;
      agents.https.maxSockets = socketsPerHost;
    },
    () => undefined,
  );
}

/**
 * Start loading the client while other work (cloud metadata requests) is in
 * flight. Loading it is compiling it, on this thread: it waits until the
 * caller has sent its requests (the next turn of the event loop), so that it
 * runs while they wait for their answers rather than before they go out.
 */
export function preloadTaskclusterClient(tls: AgentOptions | undefined): void {
  setImmediate(() => void library(tls).catch(() => undefined)); // a failure surfaces at the first call
}

export interface IssuedCredentials {
  credentials: Credentials;
  expires: string;
  secret: string;
}

export interface RegisterWorkerResponse extends IssuedCredentials {
  workerConfig: JsonObject | undefined;
}

function parseIssuedCredentials(response: unknown, endpoint: string): IssuedCredentials {
  const body = isJsonObject(response as JsonValue) ? (response as JsonObject) : {};
  const credentials = body['credentials'];
  if (
    !isJsonObject(credentials) ||
    typeof credentials['clientId'] !== 'string' ||
    typeof credentials['accessToken'] !== 'string' ||
    typeof body['expires'] !== 'string' ||
    typeof body['secret'] !== 'string'
  ) {
    throw new TaskclusterCallError(
      `${endpoint} returned a response without credentials, expires and secret`,
      undefined,
      false,
    );
  }
  if (Number.isNaN(Date.parse(body['expires']))) {
    throw new TaskclusterCallError(
      `${endpoint} returned an expires that is not a time: '${body['expires'].slice(0, 40)}'`,
      undefined,
      false,
    );
  }
  const certificate = credentials['certificate'];
  return {
    credentials: {
      clientId: credentials['clientId'],
      accessToken: credentials['accessToken'],
      ...(typeof certificate === 'string' && certificate !== '' ? { certificate } : {}),
    },
    expires: body['expires'],
    secret: body['secret'],
  };
}

export async function registerWorkerCall(target: ClientTarget, payload: JsonObject): Promise<RegisterWorkerResponse> {
  const { WorkerManager } = await library(target.tls);
  const client = new WorkerManager(clientOptions({ ...target, credentials: undefined }));
  const response = await call('worker-manager registerWorker', () => client.registerWorker(payload));
  const workerConfig = (response as JsonObject)['workerConfig'];
  if (workerConfig !== undefined && workerConfig !== null && !isJsonObject(workerConfig)) {
    const kind = Array.isArray(workerConfig) ? 'an array' : `a ${typeof workerConfig}`;
    throw new TaskclusterCallError(
      `registerWorker returned a workerConfig that is ${kind}, not an object: the definition of worker pool ${String(payload['workerPoolId'])} is broken; fix its workerConfig in worker-manager`,
      undefined,
      false,
    );
  }
  return { ...parseIssuedCredentials(response, 'registerWorker'), workerConfig: workerConfig ?? undefined };
}

export async function reregisterWorkerCall(target: ClientTarget, payload: JsonObject): Promise<IssuedCredentials> {
  const { WorkerManager } = await library(target.tls);
  const client = new WorkerManager(clientOptions(target));
  const response = await call('worker-manager reregisterWorker', () => client.reregisterWorker(payload));
  return parseIssuedCredentials(response, 'reregisterWorker');
}

export async function removeWorkerCall(
  target: ClientTarget,
  workerPoolId: string,
  workerGroup: string,
  workerId: string,
): Promise<void> {
  const { WorkerManager } = await library(target.tls);
  const client = new WorkerManager(clientOptions(target));
  await call('worker-manager removeWorker', () => client.removeWorker(workerPoolId, workerGroup, workerId));
}

export async function reportWorkerErrorCall(
  target: ClientTarget,
  workerPoolId: string,
  payload: JsonObject,
): Promise<void> {
  const { WorkerManager } = await library(target.tls);
  const client = new WorkerManager(clientOptions(target));
  await call('worker-manager reportWorkerError', () => client.reportWorkerError(workerPoolId, payload));
}

/** The value of a secret (the `secret` property of the service's answer). */
export async function getSecretCall(target: ClientTarget, name: string): Promise<JsonValue> {
  const { Secrets } = await library(target.tls);
  const client = new Secrets(clientOptions(target));
  const response = await call(`secrets get ${name}`, () => client.get(name));
  if (!isJsonObject(response as JsonValue) || !('secret' in (response as JsonObject))) {
    throw new TaskclusterCallError(`secrets get ${name} returned a response without a secret`, undefined, false);
  }
  return (response as JsonObject)['secret']!;
}
