/** Secret sources beyond the Taskcluster secrets service, read after it in order (runner config `secrets`). */
import type { CallSettings } from '../call-settings.js';
import type { Logger } from '../logging/logger.js';
import type { SecretRead } from '../secret-value.js';
import { SHARED_SERVICE_BACKOFF } from '../util/backoff.js';
import { withinRetryWindow } from '../util/retry-window.js';
import { settledInOrder } from '../util/in-order.js';
import { SecretSourceError, readAwsSecret } from './aws-secrets-manager.js';
import type { SecretSourceConfig } from './schema.js';

export interface SecretSourceSettings extends CallSettings {
  /** The region of the aws provider, when that is the provider. */
  awsRegion: string | undefined;
}

/** Read every source at once; the secrets found, in their configured order. */
export async function readSecretSources(
  sources: SecretSourceConfig[],
  settings: SecretSourceSettings,
  log: Logger,
): Promise<SecretRead[]> {
  const deadline = Date.now() + settings.startupRetryWindowMs;
  const reads = await settledInOrder(
    sources.map(async (source): Promise<SecretRead | undefined> => {
      const value = await withinRetryWindow(
        () =>
          readAwsSecret(source, {
            region: settings.awsRegion,
            requestTimeoutMs: settings.requestTimeoutMs,
            tls: settings.tls,
          }),
        { ...SHARED_SERVICE_BACKOFF, isTransient: (err) => err instanceof SecretSourceError && err.transient },
        { deadline, windowSeconds: settings.startupRetryWindowMs / 1000, log },
      );
      if (value !== undefined) return { source: `AWS Secrets Manager secret '${source.secretId}'`, value };
      log.warn(`AWS Secrets Manager secret '${source.secretId}' does not exist; it is optional, continuing without it`);
      return undefined;
    }),
  );
  return reads.filter((read): read is SecretRead => read !== undefined);
}
