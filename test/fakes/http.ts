/** Small pieces shared by the loopback fakes. */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type ServerOptions as HttpsServerOptions } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';

export function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => resolve(body));
    req.on('error', reject);
  });
}

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

/** A fault to inject into the next matching requests. */
export type Fault =
  | { kind: 'status'; status: number; body?: unknown; headers?: Record<string, string> }
  | { kind: 'drop' }
  | { kind: 'delay'; ms: number };

/** Queues of faults per route name; each injected fault applies to one request. */
export class FaultQueue {
  private readonly queues = new Map<string, Fault[]>();

  inject(route: string, fault: Fault, count = 1): void {
    const queue = this.queues.get(route) ?? [];
    for (let i = 0; i < count; i++) queue.push(fault);
    this.queues.set(route, queue);
  }

  /** Apply the next fault for `route`, if any. Returns true when the request has been answered (or dropped). */
  async apply(route: string, res: ServerResponse, errorBody: (status: number) => unknown): Promise<boolean> {
    const fault = this.queues.get(route)?.shift();
    if (fault === undefined) return false;
    switch (fault.kind) {
      case 'drop':
        res.socket?.destroy();
        return true;
      case 'delay':
        await new Promise((resolve) => setTimeout(resolve, fault.ms));
        return false;
      case 'status':
        sendJson(res, fault.status, fault.body ?? errorBody(fault.status), fault.headers);
        return true;
    }
  }

  clear(): void {
    this.queues.clear();
  }
}

const connectedAt = new WeakMap<Socket, number>();

/** Wall-clock time (ms) a request's connection to a LoopbackServer was accepted. */
export function connectionTime(req: IncomingMessage): number | undefined {
  return connectedAt.get(req.socket);
}

/** An HTTP (or HTTPS) server on 127.0.0.1 at an ephemeral port. */
export class LoopbackServer {
  /** Connections accepted so far. */
  connections = 0;

  private constructor(
    private readonly server: Server,
    /** `http://127.0.0.1:<port>` (https with TLS options). */
    readonly url: string,
  ) {}

  static async start(
    handler: (req: IncomingMessage, res: ServerResponse) => void,
    tls?: HttpsServerOptions,
  ): Promise<LoopbackServer> {
    const server = tls ? createHttpsServer(tls, handler) : createHttpServer(handler);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const loopback = new LoopbackServer(
      server,
      `${tls ? 'https' : 'http'}://127.0.0.1:${(server.address() as AddressInfo).port}`,
    );
    server.on('connection', (socket: Socket) => {
      connectedAt.set(socket, Date.now());
      loopback.connections += 1;
    });
    return loopback;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }
}
