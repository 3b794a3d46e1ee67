/**
 * Worker configuration from AWS Secrets Manager, read with the official SDK
 * (credentials from its standard chain: environment, instance profile...).
 * The secret string holds what a Taskcluster secret holds: `{config, files}`
 * or a flat configuration object, as JSON or YAML.
 */
import type { AgentOptions } from 'node:https';
import { parse } from 'yaml';
import { StartWorkerError } from '../errors.js';
import { parseRetryAfter } from '../util/backoff.js';
import { importCommonJs } from '../util/import-cjs.js';
import type { JsonValue } from '../json.js';
import type { SecretSourceConfig } from './schema.js';

/** A failure reading the secret, and whether it is worth retrying. */
export class SecretSourceError extends StartWorkerError {
  constructor(
    message: string,
    readonly transient: boolean,
    /** How long the service asked to wait before retrying (its Retry-After on a 429 or 503), in ms. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'SecretSourceError';
  }
}

interface AwsError {
  name?: string;
  $metadata?: { httpStatusCode?: number };
  /** The raw response, which the SDK keeps on its errors. */
  $response?: { headers?: Record<string, string | undefined> };
  message?: string;
}

function describeFailure(err: unknown, secretId: string): SecretSourceError {
  const { name = 'Error', $metadata, $response, message = '' } = err as AwsError;
  const status = $metadata?.httpStatusCode;
  const what = `AWS Secrets Manager secret '${secretId}'`;
  if (name === 'ResourceNotFoundException') return new SecretSourceError(`${what} does not exist`, false);
  if (name === 'AccessDeniedException' || status === 403) {
    return new SecretSourceError(
      `${what}: access denied; grant secretsmanager:GetSecretValue on it to the instance's role`,
      false,
    );
  }
  if (name === 'CredentialsProviderError')
    return new SecretSourceError(`${what}: no AWS credentials found (${message})`, false);
  const transient = status === undefined || status >= 500 || name === 'TimeoutError' || name === 'ThrottlingException';
  const retryAfterMs =
    status === 503 || status === 429 ? parseRetryAfter($response?.headers?.['retry-after']) : undefined;
  return new SecretSourceError(
    `${what}: ${name}${status ? ` (HTTP ${status})` : ''}: ${message}`,
    transient,
    retryAfterMs,
  );
}

/**
 * The secret's value, parsed. `undefined` when it does not exist and the
 * source is optional. Nothing of the secret's content ever goes into an
 * error message.
 */
export async function readAwsSecret(
  source: SecretSourceConfig,
  options: { region: string | undefined; requestTimeoutMs: number; tls: AgentOptions | undefined },
): Promise<JsonValue | undefined> {
  const { SecretsManagerClient, GetSecretValueCommand } = await importCommonJs(
    () => import('@aws-sdk/client-secrets-manager'),
  );
  const region = source.region ?? options.region;
  const client = new SecretsManagerClient({
    ...(region !== undefined ? { region } : {}),
    ...(source.endpoint !== undefined ? { endpoint: source.endpoint } : {}),
    // our own retry policy (the startup window) applies, as for Taskcluster calls
    maxAttempts: 1,
    requestHandler: {
      requestTimeout: options.requestTimeoutMs,
      connectionTimeout: Math.min(options.requestTimeoutMs, 5000),
      ...(options.tls ? { httpsAgent: new (await import('node:https')).Agent(options.tls) } : {}),
    },
  });
  let secretString: string | undefined;
  try {
    const response = await client.send(new GetSecretValueCommand({ SecretId: source.secretId }));
    secretString = response.SecretString;
  } catch (err) {
    const failure = describeFailure(err, source.secretId);
    if ((err as AwsError).name === 'ResourceNotFoundException' && source.optional) return undefined;
    if (/region is missing/i.test((err as AwsError).message ?? '')) {
      throw new SecretSourceError(
        `AWS Secrets Manager secret '${source.secretId}': no region; set secrets[].region or AWS_REGION`,
        false,
      );
    }
    throw failure;
  } finally {
    client.destroy();
  }
  if (secretString === undefined) {
    throw new SecretSourceError(
      `AWS Secrets Manager secret '${source.secretId}' has no SecretString (binary secrets are not supported)`,
      false,
    );
  }
  try {
    // YAML is a superset of JSON, so this reads both.
    return parse(secretString) as JsonValue;
  } catch {
    throw new SecretSourceError(
      `AWS Secrets Manager secret '${source.secretId}': its content is neither JSON nor YAML`,
      false,
    );
  }
}
