/**
 * The EC2 instance metadata service on 127.0.0.1, as strict as the real one
 * with IMDSv2 required: a session token comes from `PUT /latest/api/token`
 * with a TTL header (400 without one), and every GET without a valid,
 * unexpired token is refused with 401. It serves user data, the instance
 * identity document and signature, meta-data paths, and the spot and
 * rebalance notices once a test announces them; it injects faults and
 * counts requests by path.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { connectionTime, type Fault, FaultQueue, LoopbackServer, readBody } from './http.js';

export const TOKEN_PATH = '/latest/api/token';
export const SPOT_INSTANCE_ACTION = '/latest/meta-data/spot/instance-action';
export const SPOT_TERMINATION_TIME = '/latest/meta-data/spot/termination-time';
export const REBALANCE = '/latest/meta-data/events/recommendations/rebalance';

export interface RecordedRequest {
  method: string;
  path: string;
  /** Wall-clock time (ms) the request arrived. */
  time: number;
  /** The status answered (undefined for a dropped connection or while in flight). */
  status?: number;
  /** Wall-clock times (ms) its connection was accepted and its answer sent. */
  connectedAt?: number;
  answeredAt?: number;
}

export interface InstanceIdentity {
  instanceId: string;
  imageId: string;
  instanceType: string;
  region: string;
  availabilityZone: string;
  privateIp: string;
}

export const DEFAULT_IDENTITY: InstanceIdentity = {
  instanceId: 'i-0123456789abcdef0',
  imageId: 'ami-0abcdef1234567890',
  instanceType: 'm5.large',
  region: 'us-west-2',
  availabilityZone: 'us-west-2b',
  privateIp: '10.0.1.23',
};

/** An identity document laid out as EC2 writes it (pretty-printed, `" : "`). */
export function identityDocumentText(identity: Record<string, unknown>): string {
  const document = {
    accountId: '123456789012',
    architecture: 'x86_64',
    billingProducts: null,
    devpayProductCodes: null,
    marketplaceProductCodes: null,
    kernelId: null,
    pendingTime: '2024-05-01T12:00:00Z',
    ramdiskId: null,
    version: '2017-09-30',
    ...identity,
  };
  return JSON.stringify(document, null, 2).replaceAll('": ', '" : ');
}

const NOT_FOUND_HTML = `<?xml version="1.0" encoding="iso-8859-1"?>
<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"
 "http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">
<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">
 <head>
  <title>404 - Not Found</title>
 </head>
 <body>
  <h1>404 - Not Found</h1>
 </body>
</html>
`;

export class FakeEc2Metadata {
  endpoint = '';
  readonly faults = new FaultQueue();
  readonly requests: RecordedRequest[] = [];
  tokenPuts = 0;
  /** Raw user data, or undefined for none (404). */
  userData: string | undefined;
  /** Raw identity document text and its signature; undefined answers 404. */
  identityDocument: string | undefined = identityDocumentText({ ...DEFAULT_IDENTITY });
  identitySignature: string | undefined = 'dGhpcyBpcyBub3QgYSByZWFsIHNpZ25hdHVyZQo=\nAAAAbase64signaturelines==';
  /** Values under /latest/meta-data/ (a public instance's by default). */
  readonly metaData = new Map<string, string>([
    ['ami-id', DEFAULT_IDENTITY.imageId],
    ['instance-id', DEFAULT_IDENTITY.instanceId],
    ['instance-type', DEFAULT_IDENTITY.instanceType],
    ['local-ipv4', DEFAULT_IDENTITY.privateIp],
    ['placement/availability-zone', DEFAULT_IDENTITY.availabilityZone],
    ['placement/region', DEFAULT_IDENTITY.region],
    ['public-hostname', 'ec2-203-0-113-25.us-west-2.compute.amazonaws.com'],
    ['public-ipv4', '203.0.113.25'],
  ]);
  /** Wall-clock time (ms) of the last announcement of a spot interruption. */
  spotAnnouncedAt: number | undefined;
  private readonly tokens = new Map<string, number>();
  private http: LoopbackServer | undefined;

  /** User data as worker-manager's aws provider writes it. */
  setUserData(fields: {
    rootUrl: string;
    workerPoolId: string;
    providerId: string;
    workerGroup: string;
    [key: string]: unknown;
  }): void {
    this.userData = JSON.stringify({ workerConfig: { ignored: 'in favour of registerWorker' }, ...fields });
  }

  async start(): Promise<this> {
    this.http = await LoopbackServer.start((req, res) => void this.handle(req, res));
    this.endpoint = this.http.url;
    return this;
  }

  async stop(): Promise<void> {
    await this.http?.stop();
  }

  /** Connections accepted so far. */
  get connections(): number {
    return this.http?.connections ?? 0;
  }

  /** Announce a spot interruption as EC2 does: instance-action and termination-time at once. */
  announceSpotInterruption(action: 'terminate' | 'stop' | 'hibernate', time: Date): void {
    const stamp = time.toISOString().replace(/\.\d{3}Z$/, 'Z');
    this.metaData.set('spot/instance-action', JSON.stringify({ action, time: stamp }));
    this.metaData.set('spot/termination-time', stamp);
    this.spotAnnouncedAt = Date.now();
  }

  recommendRebalance(noticeTime: Date): void {
    this.metaData.set(
      'events/recommendations/rebalance',
      JSON.stringify({ noticeTime: noticeTime.toISOString().replace(/\.\d{3}Z$/, 'Z') }),
    );
  }

  /** Make every token issued so far invalid (as if it expired), to exercise the refresh. */
  expireTokens(): void {
    for (const token of this.tokens.keys()) this.tokens.set(token, 0);
  }

  /** Inject a fault into the next `count` requests for `path` (the token PUT's path is TOKEN_PATH). */
  inject(path: string, fault: Fault, count = 1): void {
    this.faults.inject(path, fault, count);
  }

  count(path: string, since = 0): number {
    return this.requests.filter((r) => r.path === path && r.time >= since).length;
  }

  requestsSince(since: number): RecordedRequest[] {
    return this.requests.filter((r) => r.time >= since);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    const path = new URL(req.url ?? '/', 'http://fake').pathname;
    const request: RecordedRequest = { method, path, time: Date.now(), connectedAt: connectionTime(req) };
    this.requests.push(request);
    res.on('finish', () => {
      request.status = res.statusCode;
      request.answeredAt = Date.now();
    });
    await readBody(req);
    if (await this.faults.apply(path, res, () => 'injected fault')) return;
    if (path === TOKEN_PATH) return this.issueToken(req, res);
    if (method !== 'GET') return sendText(res, 405, 'Method Not Allowed');
    const token = req.headers['x-aws-ec2-metadata-token'];
    const expires = typeof token === 'string' ? this.tokens.get(token) : undefined;
    if (expires === undefined || expires <= Date.now()) return sendText(res, 401, 'Unauthorized');
    const value = this.lookup(path);
    if (value === undefined) return sendText(res, 404, NOT_FOUND_HTML, 'text/html');
    sendText(res, 200, value);
  }

  private issueToken(req: IncomingMessage, res: ServerResponse): void {
    if (req.method !== 'PUT') return sendText(res, 405, 'Method Not Allowed');
    // IMDS refuses token requests that went through a proxy.
    if (req.headers['x-forwarded-for'] !== undefined) return sendText(res, 403, 'Forbidden');
    const ttlHeader = req.headers['x-aws-ec2-metadata-token-ttl-seconds'];
    const ttl = typeof ttlHeader === 'string' && /^\d+$/.test(ttlHeader) ? Number(ttlHeader) : NaN;
    if (!(ttl >= 1 && ttl <= 21600)) return sendText(res, 400, 'Bad Request');
    const token = randomBytes(42).toString('base64');
    this.tokens.set(token, Date.now() + ttl * 1000);
    this.tokenPuts += 1;
    sendText(res, 200, token, 'text/plain', { 'x-aws-ec2-metadata-token-ttl-seconds': String(ttl) });
  }

  private lookup(path: string): string | undefined {
    if (path === '/latest/user-data') return this.userData;
    if (path === '/latest/dynamic/instance-identity/document') return this.identityDocument;
    if (path === '/latest/dynamic/instance-identity/signature') return this.identitySignature;
    const prefix = '/latest/meta-data/';
    if (path.startsWith(prefix)) return this.metaData.get(path.slice(prefix.length));
    return undefined;
  }
}

function sendText(
  res: ServerResponse,
  status: number,
  body: string,
  type = 'text/plain',
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), ...headers });
  res.end(body);
}
