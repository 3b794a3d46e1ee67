/**
 * A small IMDSv2 client for the EC2 instance metadata service.
 *
 * Not `@aws-sdk/ec2-metadata-service`: it PUTs a new session token before
 * every request, has no default timeout and silently falls back to IMDSv1,
 * so it cannot serve a once-a-second spot poll. This client keeps one token
 * until shortly before it expires, gets a fresh one once when a request is
 * refused with 401, never falls back to IMDSv1, and gives every request a
 * short timeout.
 */
import { StartWorkerError, errorMessage } from '../src/errors.js';
import { HttpRequestError, httpRequest } from '../src/util/http.js';

export const DEFAULT_METADATA_ENDPOINT = 'http://169.254.169.254';
/** The AWS SDKs' variable for the same override. */
export const METADATA_ENDPOINT_VARIABLE = 'AWS_EC2_METADATA_SERVICE_ENDPOINT';

export const TOKEN_PATH = '/latest/api/token';
/** The longest session token lifetime IMDSv2 grants (6 hours). */
export const TOKEN_TTL_SECONDS = 21600;
/** Get a new token this long before the old one expires, so none expires in flight. */
const TOKEN_REFRESH_MARGIN_MS = 5 * 60_000;
/** The metadata service is on the instance's own network link: answers take milliseconds. */
export const METADATA_TIMEOUT_MS = 2000;

/** A metadata request answered with an HTTP status other than 200 or 404. */
export class MetadataStatusError extends StartWorkerError {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = 'MetadataStatusError';
  }
}

/** Worth retrying: no answer at all, throttling, or a server-side error. */
export function isTransientMetadataError(err: unknown): boolean {
  if (err instanceof HttpRequestError) return true;
  if (err instanceof MetadataStatusError) return err.status === 429 || err.status >= 500;
  return false;
}

export interface MetadataRequestOptions {
  /** Aborts the request (a watcher being stopped). */
  signal?: AbortSignal;
}

interface SessionToken {
  value: string;
  /** Wall-clock time (ms) after which a new token is fetched. */
  refreshAt: number;
}

export class Ec2MetadataClient {
  private token: SessionToken | undefined;
  /** The token request in flight, shared by concurrent callers. */
  private tokenRequest: Promise<string> | undefined;

  /** `endpoint`: scheme, host and port (no trailing slash), e.g. http://169.254.169.254. */
  constructor(readonly endpoint: string) {}

  url(path: string): string {
    return `${this.endpoint}${path}`;
  }

  /** GET a metadata path: its text, or undefined when the path does not exist (404). */
  async get(path: string, options: MetadataRequestOptions = {}): Promise<string | undefined> {
    let token = await this.sessionToken(options.signal);
    let result = await this.getWithToken(path, token, options.signal);
    if (result.status === 401) {
      // The token was refused before its time (the service restarted, the
      // clock jumped): one fresh token, one more try.
      this.forgetToken(token);
      token = await this.sessionToken(options.signal);
      result = await this.getWithToken(path, token, options.signal);
    }
    if (result.status === 200) return result.body;
    if (result.status === 404) return undefined;
    throw new MetadataStatusError(`GET ${this.url(path)}: HTTP ${result.status}${describeBody(result.body)}`, result.status);
  }

  private getWithToken(path: string, token: string, signal: AbortSignal | undefined) {
    return httpRequest(this.url(path), {
      headers: { 'X-aws-ec2-metadata-token': token },
      timeoutMs: METADATA_TIMEOUT_MS,
      ...(signal ? { signal } : {}),
    });
  }

  private forgetToken(value: string): void {
    if (this.token?.value === value) this.token = undefined;
  }

  private async sessionToken(signal: AbortSignal | undefined): Promise<string> {
    if (this.token !== undefined && Date.now() < this.token.refreshAt) return this.token.value;
    this.tokenRequest ??= this.requestToken(signal).finally(() => {
      this.tokenRequest = undefined;
    });
    return this.tokenRequest;
  }

  private async requestToken(signal: AbortSignal | undefined): Promise<string> {
    const url = this.url(TOKEN_PATH);
    const requestedAt = Date.now();
    let result;
    try {
      result = await httpRequest(url, {
        method: 'PUT',
        headers: { 'X-aws-ec2-metadata-token-ttl-seconds': String(TOKEN_TTL_SECONDS) },
        timeoutMs: METADATA_TIMEOUT_MS,
        ...(signal ? { signal } : {}),
      });
    } catch (err) {
      // A PUT that never gets an answer from inside a container is the
      // classic symptom of the response hop limit.
      throw new HttpRequestError(
        `${errorMessage(err)}; cannot get an IMDSv2 session token: is this an EC2 instance? (In a container, the instance's HttpPutResponseHopLimit may be too low.)`,
      );
    }
    if (result.status !== 200 || result.body.trim() === '') {
      const hint =
        result.status === 403
          ? '; the instance metadata service is disabled for this instance (enable HttpEndpoint)'
          : result.status === 404 || result.status === 405
            ? '; this metadata service does not support IMDSv2 session tokens'
            : '';
      throw new MetadataStatusError(`PUT ${url}: HTTP ${result.status}${describeBody(result.body)}${hint}`, result.status);
    }
    const value = result.body.trim();
    this.token = { value, refreshAt: requestedAt + TOKEN_TTL_SECONDS * 1000 - TOKEN_REFRESH_MARGIN_MS };
    return value;
  }
}

/** The start of an error body, when it is short text worth showing. */
function describeBody(body: string): string {
  const text = body.trim();
  if (text === '' || text.startsWith('<')) return '';
  return `: ${text.length > 200 ? `${text.slice(0, 200)}...` : text}`;
}

/**
 * The endpoint to use: the provider's `metadataEndpoint`, else the
 * environment variable, else the real one. Only scheme, host, port (and a
 * path prefix, if given) are kept, without a trailing slash.
 */
export function resolveMetadataEndpoint(configured: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env[METADATA_ENDPOINT_VARIABLE];
  if (configured !== undefined) return normalizeEndpoint(configured, 'provider.metadataEndpoint');
  if (fromEnv !== undefined && fromEnv !== '') return normalizeEndpoint(fromEnv, `the environment variable ${METADATA_ENDPOINT_VARIABLE}`);
  return DEFAULT_METADATA_ENDPOINT;
}

/** Check an endpoint URL; the problem, if any, names where it came from. */
export function endpointProblem(value: string, source: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return `${source}: '${value}' is not a URL; use one such as ${DEFAULT_METADATA_ENDPOINT}`;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return `${source}: '${value}' must be an http:// or https:// URL such as ${DEFAULT_METADATA_ENDPOINT}`;
  }
  if (url.search !== '' || url.hash !== '') return `${source}: '${value}' must not have a query or fragment`;
  return undefined;
}

function normalizeEndpoint(value: string, source: string): string {
  const problem = endpointProblem(value, source);
  if (problem !== undefined) throw new StartWorkerError(problem);
  const url = new URL(value);
  return `${url.origin}${url.pathname}`.replace(/\/+$/, '');
}
