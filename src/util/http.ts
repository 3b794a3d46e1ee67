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
  // One controller per request, and nothing left behind on the caller's
  // long-lived signal: AbortSignal.any() and AbortSignal.timeout() would
  // keep every request's signals alive for as long as the watcher runs.
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, request.timeoutMs);
  const callerAborted = (): void => controller.abort();
  if (request.signal?.aborted) controller.abort();
  else request.signal?.addEventListener('abort', callerAborted, { once: true });
  try {
    const response = await fetch(url, { method, headers: request.headers, body: request.body, signal: controller.signal, redirect: 'manual' });
    return { status: response.status, headers: response.headers, body: await response.text() };
  } catch (err) {
    if (timedOut) throw new HttpRequestError(`${method} ${url}: no answer within ${request.timeoutMs / 1000}s`);
    if (request.signal?.aborted) throw new HttpRequestError(`${method} ${url}: aborted`);
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    throw new HttpRequestError(`${method} ${url}: ${cause?.code ?? cause?.message ?? errorMessage(err)}`);
  } finally {
    clearTimeout(timer);
    request.signal?.removeEventListener('abort', callerAborted);
  }
}
