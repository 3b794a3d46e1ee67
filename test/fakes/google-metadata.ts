/**
 * The Compute Engine metadata server on 127.0.0.1, as strict as the real
 * one for what start-worker uses: requests without `Metadata-Flavor: Google`
 * (or with `X-Forwarded-For`) are refused with 403, values are served under
 * /computeMetadata/v1 with their `ETag` and `Metadata-Flavor: Google`,
 * `wait_for_change=true` holds a request until the value changes (answering
 * at once when `last_etag` is not the current ETag) or `timeout_sec`
 * passes, and the identity endpoint issues a token for the requested
 * audience. Values can be changed mid-run (preemption, maintenance events),
 * faults injected per path, and requests are recorded.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type Fault, FaultQueue, LoopbackServer } from './http.js';

const PREFIX = '/computeMetadata/v1/';
export const IDENTITY_PATH = 'instance/service-accounts/default/identity';
export const PREEMPTED_PATH = 'instance/preempted';
export const MAINTENANCE_PATH = 'instance/maintenance-event';
export const EXTERNAL_IP_PATH = 'instance/network-interfaces/0/access-configs/0/external-ip';
/** What the real server holds a wait_for_change request for when no timeout_sec is given (effectively forever). */
const DEFAULT_HOLD_SECONDS = 3600;

export interface RecordedMetadataRequest {
  path: string;
  query: Record<string, string>;
  time: number;
}

export interface GoogleMetadataOptions {
  /** The root URL written into the `taskcluster` attribute. */
  rootUrl?: string;
  workerPoolId?: string;
  providerId?: string;
  workerGroup?: string;
  instanceId?: string;
}

interface Waiter {
  res: ServerResponse;
  timer: NodeJS.Timeout;
}

export const FAKE_INSTANCE_ID = '7213445820392040261'; // above 2^53: must survive as text

export class FakeGoogleMetadata {
  readonly requests: RecordedMetadataRequest[] = [];
  readonly faults = new FaultQueue();
  /** Identity tokens issued, newest last. */
  readonly issuedTokens: string[] = [];
  private readonly values = new Map<string, string>();
  private readonly waiters = new Map<string, Set<Waiter>>();
  private http: LoopbackServer | undefined;
  /** Misbehave like a server (or proxy) that ignores wait_for_change and answers at once. */
  answerLongPollsAtOnce = false;
  /** `http://127.0.0.1:<port>`, for the provider's metadataEndpoint. */
  url = '';
  /** `127.0.0.1:<port>`, for GCE_METADATA_HOST. */
  host = '';

  constructor(options: GoogleMetadataOptions = {}) {
    const instanceId = options.instanceId ?? FAKE_INSTANCE_ID;
    this.values.set('instance/id', instanceId);
    this.values.set(
      'instance/attributes/taskcluster',
      JSON.stringify({
        workerPoolId: options.workerPoolId ?? 'proj/google-pool',
        providerId: options.providerId ?? 'gcp',
        workerGroup: options.workerGroup ?? 'us-central1',
        rootUrl: options.rootUrl ?? 'https://tc.example.com',
        workerConfig: { ignored: 'worker-manager hands the config out with registerWorker' },
      }),
    );
    this.values.set('project/project-id', 'tc-workers-1');
    this.values.set('project/numeric-project-id', '123456789012');
    this.values.set('instance/image', 'projects/debian-cloud/global/images/debian-12-bookworm-v20240709');
    this.values.set('instance/machine-type', 'projects/123456789012/machineTypes/n2-standard-4');
    this.values.set('instance/zone', 'projects/123456789012/zones/us-central1-a');
    this.values.set('instance/hostname', `worker-${instanceId}.us-central1-a.c.tc-workers-1.internal`);
    this.values.set('instance/name', `worker-${instanceId}`);
    this.values.set(EXTERNAL_IP_PATH, '203.0.113.42');
    this.values.set('instance/network-interfaces/0/ip', '10.128.0.42');
    this.values.set(PREEMPTED_PATH, 'FALSE');
    this.values.set(MAINTENANCE_PATH, 'NONE');
  }

  async start(): Promise<this> {
    this.http = await LoopbackServer.start((req, res) => void this.handle(req, res));
    this.url = this.http.url;
    this.host = this.url.replace('http://', '');
    return this;
  }

  async stop(): Promise<void> {
    for (const set of this.waiters.values()) for (const waiter of set) clearTimeout(waiter.timer);
    this.waiters.clear();
    await this.http?.stop();
  }

  /** Set a value (waking long-polls on it when it changes). */
  set(path: string, value: string): void {
    const before = this.values.get(path);
    this.values.set(path, value);
    if (before !== value) this.wake(path);
  }

  /** Remove a value: requests for it get 404. */
  remove(path: string): void {
    this.values.delete(path);
    this.wake(path);
  }

  get(path: string): string | undefined {
    return this.values.get(path);
  }

  /** The ETag the server gives the current value of `path`. */
  etagOf(path: string): string {
    return etag(this.values.get(path) ?? '');
  }

  /** Merge fields into the `taskcluster` attribute (undefined removes a field). */
  setUserData(fields: Record<string, unknown>): void {
    const current = JSON.parse(this.values.get('instance/attributes/taskcluster') ?? '{}') as Record<string, unknown>;
    this.set('instance/attributes/taskcluster', JSON.stringify({ ...current, ...fields }));
  }

  preempt(): void {
    this.set(PREEMPTED_PATH, 'TRUE');
  }

  setMaintenanceEvent(value: 'NONE' | 'MIGRATE_ON_HOST_MAINTENANCE' | 'TERMINATE_ON_HOST_MAINTENANCE'): void {
    this.set(MAINTENANCE_PATH, value);
  }

  inject(path: string, fault: Fault, count = 1): void {
    this.faults.inject(path, fault, count);
  }

  /** Requests for a path (any query), optionally only those after a time. */
  requestsTo(path: string, since = 0): RecordedMetadataRequest[] {
    return this.requests.filter((r) => r.path === path && r.time >= since);
  }

  count(path: string, since = 0): number {
    return this.requestsTo(path, since).length;
  }

  /** wait_for_change requests being held, on one path or all. */
  pendingLongPolls(path?: string): number {
    if (path !== undefined) return this.waiters.get(path)?.size ?? 0;
    let total = 0;
    for (const set of this.waiters.values()) total += set.size;
    return total;
  }

  /** Cut the connections of every held long-poll (the server restarting). */
  dropLongPolls(): void {
    for (const [path, set] of this.waiters) {
      for (const waiter of set) {
        clearTimeout(waiter.timer);
        waiter.res.socket?.destroy();
      }
      this.waiters.delete(path);
    }
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://metadata.google.internal');
    const path = url.pathname.startsWith(PREFIX) ? url.pathname.slice(PREFIX.length) : url.pathname;
    const query = Object.fromEntries(url.searchParams);
    this.requests.push({ path, query, time: Date.now() });

    // What the real server refuses, and how.
    if (req.headers['x-forwarded-for'] !== undefined) {
      return sendText(
        res,
        403,
        errorPage(403, `Your client does not have permission to get URL ${url.pathname} from this server.`),
      );
    }
    if (req.headers['metadata-flavor'] !== 'Google') {
      return sendText(
        res,
        403,
        errorPage(
          403,
          `Your client does not have permission to get URL ${url.pathname} from this server. Missing Metadata-Flavor:Google header.`,
        ),
      );
    }
    if (req.method !== 'GET') return sendText(res, 405, errorPage(405, 'Method not allowed.'));
    if (!url.pathname.startsWith(PREFIX))
      return sendText(res, 404, errorPage(404, `The requested URL ${url.pathname} was not found on this server.`));

    if (await this.faults.apply(path, res, (status) => ({ error: `injected fault (HTTP ${status})` }))) return;
    if (res.destroyed) return;

    if (path === IDENTITY_PATH) return this.identity(res, query);
    const value = this.values.get(path);
    if (value === undefined)
      return sendText(res, 404, errorPage(404, `The requested URL ${url.pathname} was not found on this server.`));

    if (query['wait_for_change'] === 'true' && !this.answerLongPollsAtOnce) {
      const lastEtag = query['last_etag'];
      if (lastEtag !== undefined && lastEtag !== etag(value)) return sendValue(res, value);
      const seconds = query['timeout_sec'] === undefined ? DEFAULT_HOLD_SECONDS : Number(query['timeout_sec']);
      if (!Number.isFinite(seconds) || seconds <= 0) return sendText(res, 400, errorPage(400, 'Invalid timeout_sec.'));
      this.hold(path, res, seconds);
      return;
    }
    sendValue(res, value);
  }

  private hold(path: string, res: ServerResponse, seconds: number): void {
    const set = this.waiters.get(path) ?? new Set<Waiter>();
    this.waiters.set(path, set);
    const waiter: Waiter = {
      res,
      timer: setTimeout(() => {
        set.delete(waiter);
        const value = this.values.get(path);
        if (value === undefined) sendText(res, 404, errorPage(404, 'Not found.'));
        else sendValue(res, value);
      }, seconds * 1000),
    };
    set.add(waiter);
    res.on('close', () => {
      clearTimeout(waiter.timer);
      set.delete(waiter);
    });
  }

  private wake(path: string): void {
    const set = this.waiters.get(path);
    if (set === undefined) return;
    this.waiters.delete(path);
    const value = this.values.get(path);
    for (const waiter of set) {
      clearTimeout(waiter.timer);
      if (value === undefined) sendText(waiter.res, 404, errorPage(404, 'Not found.'));
      else sendValue(waiter.res, value);
    }
  }

  /** A JWT-shaped token for the audience (the signature is not real; worker-manager is faked too). */
  private identity(res: ServerResponse, query: Record<string, string>): void {
    const audience = query['audience'];
    if (!audience) return sendText(res, 400, errorPage(400, 'non-empty audience parameter required'));
    const now = Math.floor(Date.now() / 1000);
    const payload: Record<string, unknown> = {
      aud: audience,
      azp: '112233445566778899001',
      exp: now + 3600,
      iat: now,
      iss: 'https://accounts.google.com',
      sub: '112233445566778899001',
    };
    if (query['format'] === 'full') {
      payload['google'] = {
        compute_engine: {
          instance_creation_timestamp: now - 60,
          instance_id: this.values.get('instance/id'),
          instance_name: this.values.get('instance/name'),
          project_id: this.values.get('project/project-id'),
          project_number: Number(this.values.get('project/numeric-project-id')),
          zone: 'us-central1-a',
        },
      };
    }
    const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    const token = `${encode({ alg: 'RS256', kid: 'fake', typ: 'JWT' })}.${encode(payload)}.${Buffer.from(`fake-signature-${this.issuedTokens.length}`).toString('base64url')}`;
    this.issuedTokens.push(token);
    sendValue(res, token);
  }
}

/** The payload of a JWT-shaped token. */
export function tokenPayload(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
}

function etag(value: string): string {
  return createHash('sha256').update(value).digest('hex').slice(0, 16);
}

function sendValue(res: ServerResponse, value: string): void {
  if (res.destroyed || res.headersSent) return;
  res.writeHead(200, {
    'Metadata-Flavor': 'Google',
    ETag: etag(value),
    'Content-Type': 'application/text',
    'Content-Length': Buffer.byteLength(value),
    Server: 'Metadata Server for VM',
  });
  res.end(value);
}

function sendText(res: ServerResponse, status: number, body: string): void {
  if (res.destroyed || res.headersSent) return;
  res.writeHead(status, {
    'Content-Type': 'text/html; charset=UTF-8',
    'Content-Length': Buffer.byteLength(body),
    Server: 'Metadata Server for VM',
  });
  res.end(body);
}

function errorPage(status: number, message: string): string {
  return `<!DOCTYPE html>\n<html lang=en>\n<title>Error ${status}</title>\n<p><b>${status}.</b> ${message}</p>\n`;
}
