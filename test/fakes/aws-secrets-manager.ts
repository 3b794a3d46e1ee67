/**
 * AWS Secrets Manager on 127.0.0.1, speaking the AWS JSON 1.1 protocol
 * (`X-Amz-Target: secretsmanager.GetSecretValue`). Like the real service it
 * verifies the SigV4 signature of every request (credential scope, signed
 * headers, signature) against the credentials it knows.
 */
import { createHash, createHmac } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type Fault, FaultQueue, LoopbackServer, readBody, sendJson } from './http.js';

export interface SecretsManagerCall {
  target: string;
  secretId?: string;
  region: string;
  accessKeyId: string;
}

const hmac = (key: string | Buffer, data: string) => createHmac('sha256', key).update(data).digest();
const sha256 = (data: string) => createHash('sha256').update(data).digest('hex');

/** Credentials a test gives both the fake and the SDK. */
export const FAKE_AWS_CREDENTIALS = {
  accessKeyId: 'AKIAFAKEFAKEFAKE',
  secretAccessKey: 'fake-secret-access-key-0123456789',
};

/** The SDK must use these credentials and never look for others (the instance metadata service above all). */
export const FAKE_AWS_ENV: Record<string, string | undefined> = {
  AWS_ACCESS_KEY_ID: FAKE_AWS_CREDENTIALS.accessKeyId,
  AWS_SECRET_ACCESS_KEY: FAKE_AWS_CREDENTIALS.secretAccessKey,
  AWS_EC2_METADATA_DISABLED: 'true',
  AWS_REGION: undefined,
  AWS_DEFAULT_REGION: undefined,
  AWS_PROFILE: undefined,
  AWS_CONFIG_FILE: '/nonexistent',
  AWS_SHARED_CREDENTIALS_FILE: '/nonexistent',
  AWS_ENDPOINT_URL_SECRETS_MANAGER: undefined,
};

export class FakeAwsSecretsManager {
  readonly calls: SecretsManagerCall[] = [];
  readonly faults = new FaultQueue();
  /** secretId → SecretString, or an error type to answer with. */
  readonly secrets = new Map<string, string | { error: string }>();
  private http: LoopbackServer | undefined;
  endpoint = '';

  constructor(
    private readonly credentials: { accessKeyId: string; secretAccessKey: string },
    /** Serve HTTPS with this key and certificate. */
    private readonly tls?: { key: string; cert: string },
  ) {}

  async start(): Promise<this> {
    this.http = await LoopbackServer.start((req, res) => void this.handle(req, res), this.tls);
    this.endpoint = this.http.url;
    return this;
  }

  async stop(): Promise<void> {
    await this.http?.stop();
  }

  inject(fault: Fault, count = 1): void {
    this.faults.inject('GetSecretValue', fault, count);
  }

  private error(res: ServerResponse, status: number, type: string, message: string): void {
    sendJson(
      res,
      status,
      { __type: type, message },
      { 'x-amzn-errortype': type, 'content-type': 'application/x-amz-json-1.1' },
    );
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readBody(req);
    const target = String(req.headers['x-amz-target'] ?? '');
    const problem = this.verifySignature(req, body);
    const scope = /Credential=([^/]+)\/\d{8}\/([^/]+)\/secretsmanager\/aws4_request/.exec(
      String(req.headers.authorization ?? ''),
    );
    this.calls.push({
      target,
      region: scope?.[2] ?? '',
      accessKeyId: scope?.[1] ?? '',
      secretId: (JSON.parse(body || '{}') as { SecretId?: string }).SecretId,
    });
    if (problem !== undefined) return this.error(res, 400, problem.type, problem.message);
    if (target !== 'secretsmanager.GetSecretValue')
      return this.error(res, 400, 'UnknownOperationException', `unknown operation ${target}`);
    if (!String(req.headers['content-type']).startsWith('application/x-amz-json-1.1')) {
      return this.error(res, 400, 'SerializationException', 'expected application/x-amz-json-1.1');
    }
    if (
      await this.faults.apply('GetSecretValue', res, () => ({
        __type: 'InternalServiceError',
        message: 'injected fault',
      }))
    )
      return;
    const { SecretId } = JSON.parse(body) as { SecretId?: unknown };
    if (typeof SecretId !== 'string') return this.error(res, 400, 'InvalidParameterException', 'SecretId is required');
    const value = this.secrets.get(SecretId);
    if (value === undefined)
      return this.error(res, 400, 'ResourceNotFoundException', "Secrets Manager can't find the specified secret.");
    if (typeof value !== 'string') return this.error(res, 400, value.error, `${value.error} for ${SecretId}`);
    sendJson(
      res,
      200,
      {
        ARN: `arn:aws:secretsmanager:${scope?.[2]}:123456789012:secret:${SecretId}-AbCdEf`,
        Name: SecretId,
        VersionId: 'a1b2c3d4-5678-90ab-cdef-EXAMPLE11111',
        SecretString: value,
        VersionStages: ['AWSCURRENT'],
        CreatedDate: Date.now() / 1000,
      },
      { 'content-type': 'application/x-amz-json-1.1' },
    );
  }

  /** Recompute the SigV4 signature from the request and compare. */
  private verifySignature(req: IncomingMessage, body: string): { type: string; message: string } | undefined {
    const match =
      /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$/.exec(
        String(req.headers.authorization ?? ''),
      );
    if (!match)
      return {
        type: 'MissingAuthenticationTokenException',
        message: 'missing or malformed SigV4 Authorization header',
      };
    const [, accessKeyId, date, region, service, signedHeaders, signature] = match as unknown as string[];
    if (accessKeyId !== this.credentials.accessKeyId)
      return { type: 'UnrecognizedClientException', message: 'The security token included in the request is invalid.' };
    if (service !== 'secretsmanager')
      return { type: 'InvalidSignatureException', message: `credential scope names service ${service}` };
    const amzDate = String(req.headers['x-amz-date'] ?? '');
    if (!amzDate.startsWith(date!))
      return { type: 'InvalidSignatureException', message: 'x-amz-date does not match the credential scope' };
    const headerNames = signedHeaders!.split(';');
    if (!headerNames.includes('host') || !headerNames.includes('x-amz-date'))
      return { type: 'InvalidSignatureException', message: 'host and x-amz-date must be signed' };
    const url = new URL(req.url ?? '/', 'http://fake');
    const canonicalHeaders = headerNames
      .map(
        (name) =>
          `${name}:${String(req.headers[name] ?? '')
            .trim()
            .replace(/\s+/g, ' ')}\n`,
      )
      .join('');
    const canonicalRequest = [
      req.method,
      url.pathname,
      url.searchParams.toString(),
      canonicalHeaders,
      signedHeaders,
      sha256(body),
    ].join('\n');
    const scope = `${date}/${region}/${service}/aws4_request`;
    const stringToSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256(canonicalRequest)].join('\n');
    const key = hmac(
      hmac(hmac(hmac(`AWS4${this.credentials.secretAccessKey}`, date!), region!), service!),
      'aws4_request',
    );
    if (hmac(key, stringToSign).toString('hex') !== signature) {
      return {
        type: 'InvalidSignatureException',
        message: 'The request signature we calculated does not match the signature you provided.',
      };
    }
    return undefined;
  }
}
