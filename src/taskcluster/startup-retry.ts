import { StartWorkerError, errorMessage } from '../errors.js';
import type { Logger } from '../logging/logger.js';
import { RetryAfterTooLateError, SHARED_SERVICE_BACKOFF, withRetries } from '../util/backoff.js';
import { isTransient, type CallSettings } from './client.js';

/**
 * Call a startup operation (registration, secrets), retrying transient
 * failures within startupRetryWindow, with the policy for a service the
 * whole fleet shares: full jitter, and a service's Retry-After honoured.
 */
export async function withStartupRetries<T>(
  what: string,
  settings: CallSettings,
  log: Logger,
  operation: () => Promise<T>,
): Promise<T> {
  try {
    return await withRetries(operation, {
      ...SHARED_SERVICE_BACKOFF,
      deadline: Date.now() + settings.startupRetryWindowMs,
      isTransient,
      onRetry: (err, attempt, delayMs) =>
        log.warn(`${what}: ${errorMessage(err)}; retrying in ${(delayMs / 1000).toFixed(1)}s (attempt ${attempt + 1})`),
    });
  } catch (err) {
    if (err instanceof RetryAfterTooLateError) throw err;
    if (!isTransient(err)) throw err;
    throw new StartWorkerError(
      `${errorMessage(err)}; gave up after startupRetryWindow (${settings.startupRetryWindowMs / 1000}s)`,
      { cause: err },
    );
  }
}
