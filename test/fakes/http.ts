/** Small pieces shared by the loopback fakes. */
import type { IncomingMessage, ServerResponse } from 'node:http';

export function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => resolve(body));
    req.on('error', reject);
  });
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** A fault to inject into the next matching requests. */
export type Fault =
  | { kind: 'status'; status: number; body?: unknown }
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
        sendJson(res, fault.status, fault.body ?? errorBody(fault.status));
        return true;
    }
  }

  clear(): void {
    this.queues.clear();
  }
}
