/**
 * Plain HTTP for instance metadata services (loopback-only in tests, a
 * link-local address in the clouds): Node's fetch with a timeout on every
 * request, and errors that name the endpoint.
 */
import { StartWorkerError, errorMessage } from '../errors.js';

export interface HttpResult {
  status: number;
  headers: Headers;
  body: string;
}

export interface HttpRequest {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  timeoutMs: number;
  /** Aborts the request (a watcher being stopped). */
  signal?: AbortSignal;
}

/** A request that got no answer (timeout, connection refused or reset). */
export class HttpRequestError extends StartWorkerError {
  constructor(message: string) {
    super(message);
    this.name = 'HttpRequestError';
  }
}

export async function httpRequest(url: string, request: HttpRequest): Promise<HttpResult> {
  const method = request.method ?? 'GET';
  const timeout = AbortSignal.timeout(request.timeoutMs);
  const signal = request.signal ? AbortSignal.any([timeout, request.signal]) : timeout;
  try {
    const response = await fetch(url, { method, headers: request.headers, body: request.body, signal, redirect: 'manual' });
    return { status: response.status, headers: response.headers, body: await response.text() };
  } catch (err) {
    if (timeout.aborted) throw new HttpRequestError(`${method} ${url}: no answer within ${request.timeoutMs / 1000}s`);
    if (request.signal?.aborted) throw new HttpRequestError(`${method} ${url}: aborted`);
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    throw new HttpRequestError(`${method} ${url}: ${cause?.code ?? cause?.message ?? errorMessage(err)}`);
  }
}
