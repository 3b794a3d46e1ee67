/**
 * A Taskcluster deployment on 127.0.0.1, as strict as the real services for
 * the calls start-worker makes: Hawk signatures are verified with the `hawk`
 * package (temporary credentials with their certificate included), every
 * request and response body is validated against our schema fixtures for
 * those calls (test/fixtures/taskcluster-schemas.ts, checked against the
 * official reference by scripts/check-schema-fixtures.ts), registerWorker
 * must be unauthenticated and every other call authenticated with
 * credentials this fake issued and that are still current. Errors have
 * Taskcluster's JSON shape.
 */
import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Ajv, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import hawk from 'hawk';
import { taskclusterCalls, taskclusterSchemas, type TaskclusterCall } from '../fixtures/taskcluster-schemas.js';
import { FaultQueue, LoopbackServer, readBody, sendJson, type Fault } from './http.js';

type Json = Record<string, unknown>;

export interface RecordedCall {
  route: string;
  method: string;
  path: string;
  clientId?: string;
  body?: Json;
  /** When the request arrived and when its answer was sent (ms since the epoch). */
  arrived: number;
  answered?: number;
  /** The status answered, and the Retry-After header sent with it, if any. */
  status?: number;
  retryAfter?: string;
}

/**
 * A worker-manager that cannot take a whole fleet at once: at most
 * `registrationsPerSecond` registerWorker calls are admitted in any rolling
 * second (a sliding window, so never more), the rest are refused with 503,
 * 429, or the two alternately (`mixed`), with a Retry-After.
 */
export interface AdmissionLimit {
  registrationsPerSecond: number;
  reject: 503 | 429 | 'mixed';
  /** The Retry-After sent with a refusal, in seconds (default 1). */
  retryAfterSeconds?: number;
  /** Send the Retry-After as an HTTP date instead of seconds (rounded up to the next whole second). */
  retryAfterAsDate?: boolean;
  /**
   * A brown-out: every registerWorker is answered 503 (without Retry-After,
   * as a failing service does) for this many seconds from the first
   * registerWorker call, before admission starts.
   */
  outageSeconds?: number;
}

interface IssuedCredentials {
  clientId: string;
  accessToken: string;
  certificate?: string;
  current: boolean;
  workerKey?: string;
}

interface WorkerRecord {
  workerPoolId: string;
  workerGroup: string;
  workerId: string;
  providerId: string;
  secret: string;
  removed: boolean;
  clientId: string;
}

export interface FakeTaskclusterOptions {
  /** Lifetime of issued credentials (default 1 hour). */
  credentialLifetimeSeconds?: number;
  /** Issue temporary credentials with a certificate (default true). */
  temporaryCredentials?: boolean;
  /** Serve HTTPS with this key and certificate (and require client certificates signed by `ca` when given). */
  tls?: { key: string; cert: string; ca?: string; requestCert?: boolean };
  /** Limit how fast registerWorker admits a booting fleet. */
  admission?: AdmissionLimit;
}

/** How far a client's clock may be from this fake's, as Taskcluster allows. */
export const CLOCK_SKEW_SECONDS = 15 * 60;

let validators: Map<string, ValidateFunction> | undefined;

/** Validators for our schema fixtures, by short name such as `worker-manager/v1/register-worker-request.json`. */
function schemas(): Map<string, ValidateFunction> {
  if (validators) return validators;
  const ajv = new Ajv({ allErrors: true });
  (addFormatsModule as unknown as { default: (ajv: Ajv) => void }).default(ajv);
  validators = new Map(Object.entries(taskclusterSchemas).map(([name, schema]) => [name, ajv.compile(schema)]));
  return validators;
}

/** A slugid (a v4 UUID, base64url): what Taskcluster uses for ids. */
function slugid(): string {
  return Buffer.from(randomUUID().replace(/-/g, ''), 'hex').toString('base64url');
}

function secret44(): string {
  return randomBytes(33).toString('base64url');
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export class FakeTaskcluster {
  readonly calls: RecordedCall[] = [];
  readonly faults = new FaultQueue();
  readonly reportedErrors: Json[] = [];
  /** workerPoolId → worker config returned by registerWorker, and the provider that owns the pool. */
  readonly workerPools = new Map<string, { providerId: string; workerConfig: Json }>();
  /** `pool/group/id` → static secret, for workers of static providers. */
  readonly staticSecrets = new Map<string, string>();
  /** secret name → value, or an HTTP status to answer with. */
  readonly secrets = new Map<string, Json | { status: number }>();
  readonly credentials = new Map<string, IssuedCredentials>();
  readonly workers = new Map<string, WorkerRecord>();
  /** Provider IDs whose identity proofs this fake accepts without checking (the clouds'). */
  readonly acceptProofsFrom = new Set<string>();
  private http: LoopbackServer | undefined;
  /** Admission times of the registerWorker calls in the last second, and the count of refusals. */
  private readonly admitted: number[] = [];
  private refusals = 0;
  private firstRegistration: number | undefined;
  rootUrl = '';

  constructor(private readonly options: FakeTaskclusterOptions = {}) {}

  async start(): Promise<this> {
    const { tls } = this.options;
    this.http = await LoopbackServer.start(
      (req, res) => void this.handle(req, res),
      tls ? { ...tls, requestCert: tls.requestCert ?? false, rejectUnauthorized: tls.requestCert ?? false } : undefined,
    );
    this.rootUrl = this.http.url;
    return this;
  }

  async stop(): Promise<void> {
    await this.http?.stop();
  }

  /** A worker pool that registers workers of `providerId`. */
  addWorkerPool(workerPoolId: string, providerId: string, workerConfig: Json = {}): void {
    this.workerPools.set(workerPoolId, { providerId, workerConfig });
  }

  addStaticWorker(workerPoolId: string, workerGroup: string, workerId: string, staticSecret: string): void {
    this.staticSecrets.set(`${workerPoolId}/${workerGroup}/${workerId}`, staticSecret);
  }

  inject(route: string, fault: Fault, count = 1): void {
    this.faults.inject(route, fault, count);
  }

  callsTo(route: string): RecordedCall[] {
    return this.calls.filter((c) => c.route === route);
  }

  /** When each request to `route` arrived (ms since the epoch), in order. */
  arrivals(route: string): number[] {
    return this.callsTo(route).map((c) => c.arrived);
  }

  /** Every access token and certificate this fake has issued (for leak checks). */
  issuedSecrets(): string[] {
    const values: string[] = [];
    for (const c of this.credentials.values()) {
      values.push(c.accessToken);
      if (c.certificate) values.push(c.certificate);
    }
    for (const w of this.workers.values()) values.push(w.secret);
    return values;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://fake');
    const route = this.route(req.method ?? 'GET', url.pathname);
    const call: RecordedCall = {
      route: route?.name ?? 'unknown',
      method: req.method ?? '',
      path: url.pathname,
      arrived: Date.now(),
    };
    this.calls.push(call);
    res.on('finish', () => {
      call.answered = Date.now();
      call.status = res.statusCode;
    });
    try {
      const text = await readBody(req);
      if (route === undefined)
        throw new HttpError(404, 'ResourceNotFound', `no such endpoint: ${req.method} ${url.pathname}`);
      if (
        await this.faults.apply(route.name, res, (status) =>
          this.errorBody(status, 'InternalServerError', 'injected fault', req),
        )
      )
        return;
      let body: Json | undefined;
      if (text !== '') {
        try {
          body = JSON.parse(text) as Json;
        } catch {
          throw new HttpError(400, 'MalformedPayload', 'request body is not valid JSON');
        }
        call.body = body;
      }
      if (route.name === 'registerWorker' && this.refuseAdmission(call, res, req)) return;
      const authenticated = await this.authenticate(req);
      call.clientId = authenticated?.clientId;
      const [status, response] = await route.handle({ params: route.params, body, authenticated });
      sendJson(res, status, response);
    } catch (err) {
      if (err instanceof HttpError) sendJson(res, err.status, this.errorBody(err.status, err.code, err.message, req));
      else sendJson(res, 500, this.errorBody(500, 'InternalServerError', String(err), req));
    }
  }

  /** Under an admission limit, answer a registerWorker that is not admitted (true), or admit it (false). */
  private refuseAdmission(call: RecordedCall, res: ServerResponse, req: IncomingMessage): boolean {
    const limit = this.options.admission;
    if (limit === undefined) return false;
    const now = Date.now();
    this.firstRegistration ??= now;
    if (now < this.firstRegistration + (limit.outageSeconds ?? 0) * 1000) {
      sendJson(res, 503, this.errorBody(503, 'ServiceUnavailable', 'worker-manager is unavailable', req));
      return true;
    }
    while (this.admitted.length > 0 && this.admitted[0]! <= now - 1000) this.admitted.shift();
    if (this.admitted.length < limit.registrationsPerSecond) {
      this.admitted.push(now);
      return false;
    }
    const status = limit.reject === 'mixed' ? (this.refusals % 2 === 0 ? 503 : 429) : limit.reject;
    this.refusals += 1;
    const seconds = limit.retryAfterSeconds ?? 1;
    const retryAfter = limit.retryAfterAsDate
      ? new Date(Math.ceil((now + seconds * 1000) / 1000) * 1000).toUTCString()
      : String(seconds);
    const [code, message] =
      status === 429
        ? ['TooManyRequests', 'too many registrations; retry later']
        : ['ServiceUnavailable', 'worker-manager is busy; retry later'];
    call.retryAfter = retryAfter;
    sendJson(res, status, this.errorBody(status, code, message, req), { 'retry-after': retryAfter });
    return true;
  }

  private errorBody(status: number, code: string, message: string, req: IncomingMessage): Json {
    return {
      code,
      message: `${message}\n\n---\n\n* method: ${req.method}\n* errorCode: ${code}\n* statusCode: ${status}\n* time: ${new Date().toISOString()}`,
      requestInfo: { method: req.method, params: {}, payload: {}, time: new Date().toISOString() },
    };
  }

  /** Verify the Hawk header, if any; undefined for an unauthenticated request. */
  private async authenticate(req: IncomingMessage): Promise<IssuedCredentials | undefined> {
    if (req.headers.authorization === undefined) return undefined;
    let result: { credentials: { id: string }; artifacts: { ext?: string } };
    try {
      result = (await hawk.server.authenticate(
        req,
        (id: string) => {
          const issued = this.credentials.get(id);
          return issued === undefined ? undefined : { id, key: issued.accessToken, algorithm: 'sha256' };
        },
        // Taskcluster's auth service allows 15 minutes of clock skew (hawk's default is 60 s).
        { timestampSkewSec: CLOCK_SKEW_SECONDS },
      )) as typeof result;
    } catch (err) {
      throw new HttpError(401, 'AuthenticationFailed', `Hawk authentication failed: ${(err as Error).message}`);
    }
    const issued = this.credentials.get(result.credentials.id)!;
    if (!issued.current)
      throw new HttpError(
        401,
        'AuthenticationFailed',
        `credentials for ${issued.clientId} have been superseded by a renewal`,
      );
    if (issued.certificate !== undefined) {
      let ext: { certificate?: unknown } = {};
      try {
        ext = JSON.parse(Buffer.from(result.artifacts.ext ?? '', 'base64').toString('utf8')) as typeof ext;
      } catch {
        throw new HttpError(401, 'AuthenticationFailed', 'ext is not base64-encoded JSON');
      }
      if (JSON.stringify(ext.certificate) !== JSON.stringify(JSON.parse(issued.certificate))) {
        throw new HttpError(401, 'AuthenticationFailed', 'temporary credentials presented without their certificate');
      }
    }
    return issued;
  }

  private issue(workerKey: string, providerId: string): { credentials: Json; expires: string } {
    const lifetime = (this.options.credentialLifetimeSeconds ?? 3600) * 1000;
    const expires = new Date(Date.now() + lifetime).toISOString();
    const clientId = `worker/${providerId}/${workerKey}/${randomBytes(3).toString('hex')}`;
    let accessToken = secret44();
    let certificate: string | undefined;
    if (this.options.temporaryCredentials ?? true) {
      const seed = secret44() + secret44();
      accessToken = createHmac('sha256', 'fake-issuer-token').update(seed).digest('base64url');
      certificate = JSON.stringify({
        version: 1,
        scopes: [`assume:worker-id:${workerKey}`],
        start: Date.now(),
        expiry: Date.now() + lifetime,
        seed,
        signature: createHmac('sha256', 'fake-issuer-token').update(`${clientId}\n${seed}`).digest('base64'),
        issuer: 'static/taskcluster/worker-manager',
      });
    }
    this.credentials.set(clientId, {
      clientId,
      accessToken,
      ...(certificate ? { certificate } : {}),
      current: true,
      workerKey,
    });
    return { credentials: { clientId, accessToken, ...(certificate ? { certificate } : {}) }, expires };
  }

  /** Check a body against the schema the reference gives for this call's input (request) or output (response). */
  private validate(call: keyof typeof taskclusterCalls, body: unknown, what: 'request' | 'response'): void {
    const spec: TaskclusterCall = taskclusterCalls[call];
    const schema = what === 'request' ? spec.input : spec.output;
    const validate = schema === undefined ? undefined : schemas().get(schema);
    if (validate === undefined) throw new Error(`the fixtures have no ${what} schema for ${call}`);
    if (!validate(body)) {
      throw new HttpError(
        what === 'request' ? 400 : 500,
        what === 'request' ? 'InputValidationError' : 'OutputValidationError',
        `${what} body does not match ${schema}: ${JSON.stringify(validate.errors)}`,
      );
    }
  }

  private requireAuth(authenticated: IssuedCredentials | undefined): IssuedCredentials {
    if (authenticated === undefined)
      throw new HttpError(403, 'InsufficientScopes', 'this endpoint requires credentials');
    return authenticated;
  }

  private requireWorker(
    authenticated: IssuedCredentials,
    workerPoolId: string,
    workerGroup: string,
    workerId: string,
  ): WorkerRecord {
    const key = `${workerPoolId}/${workerGroup}/${workerId}`;
    const worker = this.workers.get(key);
    if (worker === undefined) throw new HttpError(404, 'ResourceNotFound', `no worker ${key}`);
    if (authenticated.workerKey !== key)
      throw new HttpError(403, 'InsufficientScopes', `${authenticated.clientId} may not act for worker ${key}`);
    return worker;
  }

  private route(method: string, path: string) {
    const routes: {
      method: string;
      pattern: RegExp;
      name: string;
      handle: (input: {
        params: string[];
        body: Json | undefined;
        authenticated: IssuedCredentials | undefined;
      }) => Promise<[number, Json]>;
    }[] = [
      {
        method: 'GET',
        pattern: /^\/api\/worker-manager\/v1\/ping$/,
        name: 'ping',
        handle: async () => [200, { alive: true }],
      },
      {
        method: 'POST',
        pattern: /^\/api\/worker-manager\/v1\/worker\/register$/,
        name: 'registerWorker',
        handle: (input) => this.registerWorker(input.body, input.authenticated),
      },
      {
        method: 'POST',
        pattern: /^\/api\/worker-manager\/v1\/worker\/reregister$/,
        name: 'reregisterWorker',
        handle: (input) => this.reregisterWorker(input.body, input.authenticated),
      },
      {
        method: 'DELETE',
        pattern: /^\/api\/worker-manager\/v1\/workers\/([^/]+)\/([^/]+)\/([^/]+)$/,
        name: 'removeWorker',
        handle: (input) => this.removeWorker(input.params, input.authenticated),
      },
      {
        method: 'POST',
        pattern: /^\/api\/worker-manager\/v1\/worker-pool-errors\/([^/]+)$/,
        name: 'reportWorkerError',
        handle: (input) => this.reportWorkerError(input.params, input.body, input.authenticated),
      },
      {
        method: 'GET',
        pattern: /^\/api\/secrets\/v1\/secret\/([^/]+)$/,
        name: 'getSecret',
        handle: (input) => this.getSecret(input.params, input.authenticated),
      },
    ];
    for (const route of routes) {
      const match = route.method === method ? route.pattern.exec(path) : null;
      if (match) return { ...route, params: match.slice(1).map(decodeURIComponent) };
    }
    return undefined;
  }

  private async registerWorker(
    body: Json | undefined,
    authenticated: IssuedCredentials | undefined,
  ): Promise<[number, Json]> {
    if (authenticated !== undefined)
      throw new HttpError(400, 'InputError', 'registerWorker must be called without credentials');
    this.validate('registerWorker', body, 'request');
    const { workerPoolId, providerId, workerGroup, workerId, workerIdentityProof } = body as {
      workerPoolId: string;
      providerId: string;
      workerGroup: string;
      workerId: string;
      workerIdentityProof: Json;
    };
    const pool = this.workerPools.get(workerPoolId);
    if (pool === undefined) throw new HttpError(404, 'ResourceNotFound', `worker pool ${workerPoolId} does not exist`);
    if (pool.providerId !== providerId)
      throw new HttpError(400, 'InputError', `worker pool ${workerPoolId} does not belong to provider ${providerId}`);
    const key = `${workerPoolId}/${workerGroup}/${workerId}`;
    if (!this.acceptProofsFrom.has(providerId)) {
      const expected = this.staticSecrets.get(key);
      if (expected === undefined || workerIdentityProof['staticSecret'] !== expected) {
        throw new HttpError(400, 'InputError', 'bad worker identity proof');
      }
    }
    const issued = this.issue(key, providerId);
    const secret = secret44();
    this.workers.set(key, {
      workerPoolId,
      workerGroup,
      workerId,
      providerId,
      secret,
      removed: false,
      clientId: issued.credentials['clientId'] as string,
    });
    const response = { ...issued, workerConfig: pool.workerConfig, secret };
    this.validate('registerWorker', response, 'response');
    return [200, response];
  }

  private async reregisterWorker(
    body: Json | undefined,
    authenticated: IssuedCredentials | undefined,
  ): Promise<[number, Json]> {
    const caller = this.requireAuth(authenticated);
    this.validate('reregisterWorker', body, 'request');
    const { workerPoolId, workerGroup, workerId, secret } = body as Record<string, string>;
    const worker = this.requireWorker(caller, workerPoolId!, workerGroup!, workerId!);
    if (worker.secret !== secret) throw new HttpError(400, 'InputError', 'secret does not match');
    const issued = this.issue(`${workerPoolId}/${workerGroup}/${workerId}`, worker.providerId);
    for (const credentials of this.credentials.values()) {
      if (
        credentials.workerKey === `${workerPoolId}/${workerGroup}/${workerId}` &&
        credentials.clientId !== issued.credentials['clientId']
      )
        credentials.current = false;
    }
    worker.secret = secret44();
    worker.clientId = issued.credentials['clientId'] as string;
    const response = { ...issued, secret: worker.secret };
    this.validate('reregisterWorker', response, 'response');
    return [200, response];
  }

  private async removeWorker(params: string[], authenticated: IssuedCredentials | undefined): Promise<[number, Json]> {
    const caller = this.requireAuth(authenticated);
    const [workerPoolId, workerGroup, workerId] = params as [string, string, string];
    const worker = this.requireWorker(caller, workerPoolId, workerGroup, workerId);
    worker.removed = true;
    return [200, {}];
  }

  private async reportWorkerError(
    params: string[],
    body: Json | undefined,
    authenticated: IssuedCredentials | undefined,
  ): Promise<[number, Json]> {
    const caller = this.requireAuth(authenticated);
    this.validate('reportWorkerError', body, 'request');
    const { workerGroup, workerId } = body as Record<string, string>;
    if (caller.workerKey !== undefined) this.requireWorker(caller, params[0]!, workerGroup!, workerId!);
    this.reportedErrors.push(body!);
    const response = {
      workerPoolId: params[0],
      errorId: slugid(),
      reported: new Date().toISOString(),
      kind: body!['kind'],
      title: body!['title'],
      description: body!['description'],
      extra: { ...(body!['extra'] as Json), workerGroup, workerId },
    };
    this.validate('reportWorkerError', response, 'response');
    return [200, response];
  }

  private async getSecret(params: string[], authenticated: IssuedCredentials | undefined): Promise<[number, Json]> {
    this.requireAuth(authenticated);
    const value = this.secrets.get(params[0]!);
    if (value === undefined) throw new HttpError(404, 'ResourceNotFound', `secret ${params[0]} not found`);
    if (typeof value['status'] === 'number' && Object.keys(value).length === 1) {
      const status = value['status'];
      throw new HttpError(
        status,
        status === 403 ? 'InsufficientScopes' : status === 410 ? 'ResourceExpired' : 'Error',
        `secret ${params[0]}: ${status}`,
      );
    }
    const response = { secret: value, expires: new Date(Date.now() + 86_400_000).toISOString() };
    this.validate('getSecret', response, 'response');
    return [200, response];
  }

  /** Add credentials that are not tied to a worker (standalone workers use such). */
  addPermanentCredentials(clientId: string, accessToken: string): void {
    this.credentials.set(clientId, { clientId, accessToken, current: true });
  }
}
