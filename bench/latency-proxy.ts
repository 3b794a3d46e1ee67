/**
 * A TCP proxy on 127.0.0.1 that adds network latency in front of a loopback
 * fake: every byte takes half the round-trip time each way, and a new
 * connection pays a whole round trip (the TCP handshake) before its first
 * bytes go out. It counts connections, and the requests it sees (a burst
 * from the client after the server last spoke), with their times.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';

export interface ProxiedRequest {
  /** ms since the epoch: the request's first byte reached the proxy, and the answer's last byte left it. */
  start: number;
  end: number;
}

export class LatencyProxy {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  connections = 0;
  readonly requests: ProxiedRequest[] = [];
  url = '';

  constructor(
    private readonly upstreamPort: number,
    private readonly rttMs: number,
  ) {}

  async start(): Promise<this> {
    this.server = createServer((client) => this.relay(client));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    const address = this.server.address();
    this.url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
    return this;
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise((resolve) => this.server?.close(resolve));
  }

  private relay(client: Socket): void {
    this.connections += 1;
    const upstream = createConnection(this.upstreamPort, '127.0.0.1');
    this.sockets.add(client).add(upstream);
    const oneWay = this.rttMs / 2;
    // the handshake: nothing the client sends goes out before a round trip
    const establishedAt = Date.now() + this.rttMs;
    let current: ProxiedRequest | undefined;
    client.on('data', (chunk) => {
      if (current === undefined) {
        current = { start: Date.now(), end: Date.now() };
        this.requests.push(current);
      }
      const delay = Math.max(oneWay, establishedAt - Date.now() + oneWay);
      setTimeout(() => upstream.write(chunk), delay);
    });
    upstream.on('data', (chunk) => {
      const request = current;
      setTimeout(() => {
        client.write(chunk);
        if (request) request.end = Date.now();
      }, oneWay);
      current = undefined;
    });
    const close = (): void => {
      setTimeout(() => {
        client.destroy();
        upstream.destroy();
      }, oneWay);
    };
    client.on('close', close).on('error', close);
    upstream.on('close', close).on('error', close);
  }
}

/**
 * The number of dependent phases among requests: a phase starts with a
 * request that began only after every request before it had been answered.
 */
export function dependentPhases(requests: ProxiedRequest[]): number {
  const sorted = [...requests].sort((a, b) => a.start - b.start);
  let phases = 0;
  let answeredBy = -Infinity;
  for (const request of sorted) {
    if (request.start >= answeredBy) phases += 1;
    answeredBy = Math.max(answeredBy, request.end);
  }
  return phases;
}

/** The most requests in flight at once: HTTP/1.1 needs a connection for each. */
export function mostInFlight(requests: ProxiedRequest[]): number {
  const edges = requests.flatMap((r) => [
    { at: r.start, change: 1 },
    { at: r.end, change: -1 },
  ]);
  // an answer that ends as another request starts frees its connection first
  edges.sort((a, b) => a.at - b.at || a.change - b.change);
  let inFlight = 0;
  let most = 0;
  for (const edge of edges) {
    inFlight += edge.change;
    most = Math.max(most, inFlight);
  }
  return most;
}
