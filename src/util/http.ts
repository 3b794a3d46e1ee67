/**
 * Plain HTTP for instance metadata services (loopback-only in tests, a
 * link-local address in the clouds), over `node:http` with one keep-alive
 * agent: a watcher polls once a second for weeks, and a poll on a warm
 * connection costs far less CPU than fetch. Every request has a timeout;
 * errors name the endpoint; nothing is left behind on the caller's
 * long-lived signal.
 */
import type { Agent, ClientRequest, IncomingMessage, RequestOptions } from 'node:http';
import { StartWorkerError } from '../errors.js';

export interface HttpHeaders {
  /** A header's value (the first, when repeated), or null. */
  get(name: string): string | null;
}

export interface HttpResult {
  status: number;
  headers: HttpHeaders;
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

const IDLE_CONNECTION_MS = 4000;

type Transport = {
  request(url: URL, options: RequestOptions, callback: (response: IncomingMessage) => void): ClientRequest;
  agent: Agent;
};
const transports = new Map<string, Promise<Transport>>();

/**
 * node:https is loaded only for an https endpoint (the clouds' services are
 * plain HTTP). An idle connection is closed after a few seconds, before a
 * server would close it under a request that reuses it.
 */
function transport(protocol: string): Promise<Transport> {
  let loading = transports.get(protocol);
  if (loading === undefined) {
    loading = (protocol === 'https:' ? import('node:https') : import('node:http')).then((module) => ({
      request: module.request,
      agent: new module.Agent({ keepAlive: true, timeout: IDLE_CONNECTION_MS }),
    }));
    transports.set(protocol, loading);
  }
  return loading;
}

export async function httpRequest(url: string, request: HttpRequest): Promise<HttpResult> {
  const method = request.method ?? 'GET';
  const target = new URL(url);
  if (target.protocol !== 'http:' && target.protocol !== 'https:')
    throw new HttpRequestError(`${method} ${url}: not an http(s) URL`);
  if (request.signal?.aborted) throw new HttpRequestError(`${method} ${url}: aborted`);
  return send(target, url, method, request, await transport(target.protocol));
}

function send(
  target: URL,
  url: string,
  method: string,
  request: HttpRequest,
  { request: start, agent }: Transport,
): Promise<HttpResult> {
  return new Promise<HttpResult>((resolve, reject) => {
    if (request.signal?.aborted) {
      reject(new HttpRequestError(`${method} ${url}: aborted`));
      return;
    }
    let settled = false;
    const finish = (outcome: () => void): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      request.signal?.removeEventListener('abort', onAbort);
      outcome();
    };
    const fail = (why: string): void => finish(() => reject(new HttpRequestError(`${method} ${url}: ${why}`)));
    const headers = {
      ...request.headers,
      ...(request.body !== undefined ? { 'content-length': String(Buffer.byteLength(request.body)) } : {}),
    };
    const outgoing = start(target, { method, headers, agent }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () =>
        finish(() =>
          resolve({
            status: response.statusCode ?? 0,
            headers: { get: (name) => firstValue(response.headers[name.toLowerCase()]) },
            body: Buffer.concat(chunks).toString('utf8'),
          }),
        ),
      );
      response.on('error', (err: NodeJS.ErrnoException) => fail(err.code ?? err.message));
    });
    const timer = setTimeout(() => {
      fail(`no answer within ${request.timeoutMs / 1000}s`);
      outgoing.destroy();
    }, request.timeoutMs);
    const onAbort = (): void => {
      fail('aborted');
      outgoing.destroy();
    };
    request.signal?.addEventListener('abort', onAbort, { once: true });
    outgoing.on('error', (err: NodeJS.ErrnoException) => fail(err.code ?? err.message));
    outgoing.end(request.body);
  });
}

function firstValue(value: string | string[] | undefined): string | null {
  if (value === undefined) return null;
  return Array.isArray(value) ? (value[0] ?? null) : value;
}
