/**
 * With --verbose, one debug line per HTTP request any part of start-worker
 * makes (Taskcluster calls through taskcluster-client and the cloud metadata
 * services through node:http, anything using fetch through undici): method, URL without credentials
 * (there are none in ours; known secrets are redacted anyway), status and
 * duration. Read from Node's diagnostics channels, so
 * every client is covered without wrapping it.
 */
import { subscribe } from 'node:diagnostics_channel';
import type { Logger } from './logger.js';

interface NodeRequest {
  method: string;
  protocol?: string;
  host?: string;
  path: string;
  getHeader(name: string): unknown;
}

interface UndiciRequest {
  method: string;
  origin: string;
  path: string;
}

export function logHttpRequests(log: Logger): void {
  const started = new WeakMap<object, number>();
  const line = (request: object, method: string, url: string, outcome: string): void => {
    const ms = Date.now() - (started.get(request) ?? Date.now());
    log.debug(`HTTP ${method} ${url}: ${outcome} in ${ms} ms`);
  };
  // Our URLs carry no credentials (the logger redacts any known secret anyway).
  // The Host header has the port, ClientRequest.host does not.
  const nodeUrl = (request: NodeRequest): string =>
    `${request.protocol ?? 'http:'}//${String(request.getHeader('host') ?? request.host)}${request.path}`;
  const undiciUrl = (request: UndiciRequest): string => `${request.origin}${request.path}`;

  subscribe('http.client.request.start', (message) =>
    started.set((message as { request: object }).request, Date.now()),
  );
  subscribe('http.client.response.finish', (message) => {
    const { request, response } = message as { request: NodeRequest; response: { statusCode?: number } };
    line(request, request.method, nodeUrl(request), `HTTP ${response.statusCode}`);
  });
  subscribe('http.client.request.error', (message) => {
    const { request, error } = message as { request: NodeRequest; error: Error };
    line(request, request.method, nodeUrl(request), `failed (${(error as { code?: string }).code ?? error.message})`);
  });
  subscribe('undici:request:create', (message) => started.set((message as { request: object }).request, Date.now()));
  subscribe('undici:request:headers', (message) => {
    const { request, response } = message as { request: UndiciRequest; response: { statusCode: number } };
    line(request, request.method, undiciUrl(request), `HTTP ${response.statusCode}`);
  });
  subscribe('undici:request:error', (message) => {
    const { request, error } = message as { request: UndiciRequest; error: Error };
    line(request, request.method, undiciUrl(request), `failed (${(error as { code?: string }).code ?? error.message})`);
  });
}
