/**
 * Plain HTTP for instance metadata services (loopback-only in tests, a
 * link-local address in the clouds), over `node:http` with one keep-alive
 * agent: a watcher polls once a second for weeks, and a poll on a warm
 * connection costs far less CPU than fetch. Every request has a timeout;
 * errors name the endpoint; nothing is left behind on the caller's
 * long-lived signal.
 */
import type { Agent, ClientRequest, ClientRequestArgs, IncomingMessage, RequestOptions } from 'node:http';
import type { Duplex } from 'node:stream';
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
  /** The agent's own way to open a connection. */
  connect(options: ClientRequestArgs): Duplex | null | undefined;
  /** Connections opened ahead of the requests that will take them, by `host:port`. */
  opened: Map<string, OpenedConnection[]>;
};
interface OpenedConnection {
  /** Hands the connection to the agent: it is no longer ours to close. */
  take(): Duplex;
}
const transports = new Map<string, Promise<Transport>>();

/**
 * node:https is loaded only for an https endpoint (the clouds' services are
 * plain HTTP). An idle connection is closed after a few seconds, before a
 * server would close it under a request that reuses it. The agent takes a
 * connection that preconnect() opened before it opens one of its own.
 */
function transport(protocol: string): Promise<Transport> {
  let loading = transports.get(protocol);
  if (loading === undefined) {
    loading = (protocol === 'https:' ? import('node:https') : import('node:http')).then((module) => {
      const agent = new module.Agent({ keepAlive: true, timeout: IDLE_CONNECTION_MS });
      const opened = new Map<string, OpenedConnection[]>();
      const connect = agent.createConnection.bind(agent);
      // createConnection is the agent's documented hook for supplying the sockets it uses
      agent.createConnection = (options, callback) => {
        const key = hostKey(options.host ?? 'localhost', Number(options.port ?? defaultPort(protocol)));
        const waiting = opened.get(key);
        const connection = waiting?.shift();
        if (waiting?.length === 0) opened.delete(key);
        return connection?.take() ?? connect(options, callback);
      };
      return { request: module.request, agent, connect, opened };
    });
    transports.set(protocol, loading);
  }
  return loading;
}

function defaultPort(protocol: string): number {
  return protocol === 'https:' ? 443 : 80;
}

function hostKey(host: string, port: number): string {
  return `${host}:${port}`;
}

/**
 * Open `count` connections to the host of `url` now, for requests about to
 * be made at once: their handshakes then overlap whatever the caller waits
 * for first (the EC2 metadata session token), instead of each request
 * paying its own after it. A connection no request takes is closed after a
 * few seconds; one that fails is dropped, and the request that would have
 * used it opens its own (and reports that failure).
 */
export async function preconnect(url: string, count: number): Promise<void> {
  const target = new URL(url);
  if (target.protocol !== 'http:' && target.protocol !== 'https:') return;
  const [{ agent, connect, opened }, { isIP }] = await Promise.all([transport(target.protocol), import('node:net')]);
  const host = target.hostname.replace(/^\[|\]$/g, '');
  const port = target.port === '' ? defaultPort(target.protocol) : Number(target.port);
  // as the agent itself opens one: its options (TLS settings among them), the host's name for SNI (not an address)
  const options = {
    ...agentOptions(agent),
    host,
    port,
    ...(target.protocol === 'https:' && isIP(host) === 0 ? { servername: host } : {}),
  };
  for (let i = 0; i < count; i++) {
    const socket = connect(options);
    if (socket !== null && socket !== undefined) holdForAgent(opened, hostKey(host, port), socket);
  }
}

/** Keep an opened connection until a request takes it; close it if none does, or when it fails. */
function holdForAgent(opened: Map<string, OpenedConnection[]>, key: string, socket: Duplex): void {
  const waiting = opened.get(key) ?? [];
  opened.set(key, waiting);
  const drop = (): void => {
    const index = waiting.indexOf(connection);
    if (index !== -1) waiting.splice(index, 1);
    if (waiting.length === 0 && opened.get(key) === waiting) opened.delete(key);
    socket.destroy();
  };
  const idle = setTimeout(drop, IDLE_CONNECTION_MS).unref();
  socket.on('error', drop);
  const connection: OpenedConnection = {
    take() {
      clearTimeout(idle);
      socket.off('error', drop);
      return socket;
    },
  };
  waiting.push(connection);
}

/** The agent's own options, as it passes them to createConnection. */
function agentOptions(agent: Agent): object {
  return (agent as Agent & { options?: object }).options ?? {};
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
