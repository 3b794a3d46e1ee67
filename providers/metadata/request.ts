/**
 * Requests to a cloud's instance metadata service: every one with a short
 * timeout and the headers the service requires, and every error status
 * sorted into not found, transient or permanent (see errors.ts).
 */
import { httpRequest, preconnect, type HttpResult } from '../../src/util/http.js';
import { MetadataNotFoundError, MetadataPermanentError, MetadataTransientError, summarizeBody } from './errors.js';

/** The service is on the instance's own network link: answers take milliseconds. */
export const METADATA_TIMEOUT_MS = 2000;

export interface MetadataRequest {
  method?: 'GET' | 'PUT' | 'POST';
  /** Below the endpoint, e.g. `/latest/user-data`. */
  path: string;
  query?: Record<string, string>;
  /** Added to the service's own headers. */
  headers?: Record<string, string>;
  body?: string;
  /** Default METADATA_TIMEOUT_MS. */
  timeoutMs?: number;
  /** Aborts the request (a watcher being stopped). */
  signal?: AbortSignal;
}

/** A request answered with an error status, for the message that says so. */
export interface StatusFailure {
  method: string;
  path: string;
  url: string;
  status: number;
  /** What the body says (summarizeBody), '' when nothing. */
  summary: string;
  transient: boolean;
}

export interface MetadataServiceOptions {
  /** Headers the service refuses requests without. */
  headers?: Record<string, string>;
  /** Statuses that another attempt may cure, besides 429 and 5xx. */
  transientStatuses?: readonly number[];
  /** This cloud's words for a failure (default describeFailure). */
  describe?: (failure: StatusFailure) => string;
}

/** `GET http://…/path: HTTP 500: what the body says`. */
export function describeFailure(failure: StatusFailure): string {
  return `${failure.method} ${failure.url}: HTTP ${failure.status}${failure.summary === '' ? '' : `: ${failure.summary}`}`;
}

export class MetadataService {
  /** `endpoint`: what paths are appended to (scheme, host, port and any prefix). */
  constructor(
    readonly endpoint: string,
    private readonly options: MetadataServiceOptions = {},
  ) {}

  url(path: string, query: Record<string, string> = {}): string {
    const search = new URLSearchParams(query).toString();
    return `${this.endpoint}${path}${search === '' ? '' : `?${search}`}`;
  }

  /** Open connections for `count` requests about to be made at once (see preconnect). */
  preconnect(count: number): Promise<void> {
    return preconnect(this.endpoint, count);
  }

  /** The answer when its status is 2xx; otherwise a MetadataNotFoundError, MetadataTransientError or MetadataPermanentError. */
  async request(request: MetadataRequest): Promise<HttpResult> {
    const url = this.url(request.path, request.query);
    return this.checked(request, url, await this.send(request, url));
  }

  /**
   * As request(), but a 404 (the service has no such value) is undefined,
   * with no error built for it: a watcher's every poll of a notice that is
   * not there is one.
   */
  async find(request: MetadataRequest): Promise<HttpResult | undefined> {
    const url = this.url(request.path, request.query);
    const result = await this.send(request, url);
    return result.status === 404 ? undefined : this.checked(request, url, result);
  }

  private send(request: MetadataRequest, url: string): Promise<HttpResult> {
    return httpRequest(url, {
      method: request.method ?? 'GET',
      headers: { ...this.options.headers, ...request.headers },
      timeoutMs: request.timeoutMs ?? METADATA_TIMEOUT_MS,
      body: request.body,
      signal: request.signal,
    });
  }

  private checked(request: MetadataRequest, url: string, result: HttpResult): HttpResult {
    const { status } = result;
    if (status >= 200 && status <= 299) return result;
    const transient = status === 429 || status >= 500 || (this.options.transientStatuses ?? []).includes(status);
    const failure: StatusFailure = {
      method: request.method ?? 'GET',
      path: request.path,
      url,
      status,
      summary: summarizeBody(result.body),
      transient,
    };
    const message = (this.options.describe ?? describeFailure)(failure);
    if (status === 404) throw new MetadataNotFoundError(message);
    throw transient ? new MetadataTransientError(message, status) : new MetadataPermanentError(message, status);
  }
}
