/**
 * A small client for the Compute Engine metadata server.
 *
 * Not the official gcp-metadata package: it hides the ETag of an answer
 * (and with it the `last_etag` a wait_for_change long-poll must pass so a
 * change between two polls is not missed), gives up on long-polls after 3 s
 * when it thinks it is not on GCP, and turns large numbers in JSON answers
 * into BigNumber objects, while instance ids (above 2^53) must stay the
 * exact text the server sent.
 */
import { StartWorkerError } from '../src/errors.js';
import { HttpRequestError, httpRequest, type HttpResult } from '../src/util/http.js';

export const DEFAULT_METADATA_ENDPOINT = 'http://metadata.google.internal';
/** gcp-metadata's variable: `host[:port]` of the metadata server. */
export const METADATA_HOST_VARIABLE = 'GCE_METADATA_HOST';

const API_PREFIX = '/computeMetadata/v1/';
/** The metadata server is on the host: a value that takes longer is not coming. */
const REQUEST_TIMEOUT_MS = 2000;
/** How much longer than its `timeout_sec` a long-poll may take before we give up on it. */
const LONG_POLL_GRACE_MS = 5000;

/** A metadata value and the ETag it came with (absent only from a non-conforming server). */
export interface MetadataAnswer {
  value: string;
  etag: string | undefined;
}

/** The metadata server has no such value (HTTP 404). */
export class MetadataNotFoundError extends StartWorkerError {
  constructor(
    message: string,
    readonly path: string,
  ) {
    super(message);
    this.name = 'MetadataNotFoundError';
  }
}

/** The metadata server answered with a status worth retrying (5xx, 429). */
export class MetadataUnavailableError extends StartWorkerError {
  constructor(message: string) {
    super(message);
    this.name = 'MetadataUnavailableError';
  }
}

/** True for failures that another attempt may cure: no answer, or a 5xx/429. */
export function isTransientMetadataError(err: unknown): boolean {
  return err instanceof HttpRequestError || err instanceof MetadataUnavailableError;
}

/**
 * The metadata server's base URL (without /computeMetadata/v1): the
 * configured `metadataEndpoint`, else GCE_METADATA_HOST, else the real one.
 */
export function metadataBaseUrl(configured: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  if (configured !== undefined) return parseBase(configured, 'provider.metadataEndpoint', 'a URL such as http://169.254.169.254');
  const host = env[METADATA_HOST_VARIABLE];
  if (host !== undefined && host !== '') {
    // gcp-metadata takes a bare host[:port]; a URL is accepted too.
    return parseBase(host, METADATA_HOST_VARIABLE, 'host[:port], such as 169.254.169.254:80', host.includes('://') ? host : `http://${host}`);
  }
  return DEFAULT_METADATA_ENDPOINT;
}

function parseBase(text: string, source: string, expected: string, address = text): string {
  let url: URL;
  try {
    url = new URL(address);
  } catch {
    throw new StartWorkerError(`${source} '${text}' is not a valid metadata server address; expected ${expected}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new StartWorkerError(`${source} '${text}' must be an http:// address; expected ${expected}`);
  }
  // The address of the server, with or without the API prefix.
  const path = url.pathname.replace(/\/+$/, '').replace(/\/computeMetadata\/v1$/, '');
  return `${url.origin}${path}`;
}

export interface LongPollOptions {
  /** The ETag of the value we already know; the server answers at once when it differs. */
  lastEtag: string | undefined;
  /** How long the server may hold the request before answering with the unchanged value. */
  timeoutSec: number;
  signal?: AbortSignal;
}

export class GoogleMetadataClient {
  /** `base` is the server's address without /computeMetadata/v1, as metadataBaseUrl returns it. */
  constructor(readonly base: string) {}

  /** The full URL of a metadata path such as `instance/id` (for messages). */
  urlOf(path: string, query: Record<string, string> = {}): string {
    const url = new URL(`${this.base}${API_PREFIX}${path}`);
    for (const [name, value] of Object.entries(query)) url.searchParams.set(name, value);
    return url.toString();
  }

  /** A value; a 404 is a MetadataNotFoundError naming the path. */
  get(path: string, options: { query?: Record<string, string>; signal?: AbortSignal } = {}): Promise<MetadataAnswer> {
    return this.request(path, options.query ?? {}, REQUEST_TIMEOUT_MS, options.signal);
  }

  /** A value, or undefined when the server has none (404). */
  async getOptional(path: string): Promise<MetadataAnswer | undefined> {
    try {
      return await this.get(path);
    } catch (err) {
      if (err instanceof MetadataNotFoundError) return undefined;
      throw err;
    }
  }

  /**
   * Long-poll a value: the server answers when it differs from the one with
   * `lastEtag` (at once if it already does), or after `timeoutSec` with the
   * unchanged value.
   */
  waitForChange(path: string, options: LongPollOptions): Promise<MetadataAnswer> {
    const query: Record<string, string> = { wait_for_change: 'true', timeout_sec: String(options.timeoutSec) };
    if (options.lastEtag !== undefined) query['last_etag'] = options.lastEtag;
    return this.request(path, query, options.timeoutSec * 1000 + LONG_POLL_GRACE_MS, options.signal);
  }

  private async request(path: string, query: Record<string, string>, timeoutMs: number, signal: AbortSignal | undefined): Promise<MetadataAnswer> {
    const url = this.urlOf(path, query);
    let response: HttpResult;
    try {
      response = await httpRequest(url, { headers: { 'Metadata-Flavor': 'Google' }, timeoutMs, ...(signal ? { signal } : {}) });
    } catch (err) {
      if (err instanceof HttpRequestError) throw new HttpRequestError(`Google metadata ${path}: ${err.message}`);
      throw err;
    }
    const { status } = response;
    if (status === 404) {
      throw new MetadataNotFoundError(`Google metadata ${path} is missing (HTTP 404 from ${url})`, path);
    }
    if (status >= 500 || status === 429) {
      throw new MetadataUnavailableError(`Google metadata ${path}: HTTP ${status} from ${url}`);
    }
    if (status !== 200) {
      throw new StartWorkerError(`Google metadata ${path}: HTTP ${status} from ${url}: ${summarize(response.body)}`);
    }
    // What gcp-metadata checks too: a proxy or captive portal answering for
    // metadata.google.internal is not the metadata server.
    if (response.headers.get('metadata-flavor') !== 'Google') {
      throw new StartWorkerError(
        `Google metadata ${path}: the answer from ${url} lacks the header Metadata-Flavor: Google, so it is not from a metadata server; check metadataEndpoint / ${METADATA_HOST_VARIABLE}`,
      );
    }
    return { value: response.body, etag: response.headers.get('etag') ?? undefined };
  }
}

function summarize(body: string): string {
  const text = body.replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ').trim();
  return text.length > 200 ? `${text.slice(0, 200)}...` : text || '(empty body)';
}
