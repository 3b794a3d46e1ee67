import type { Logger } from '../logging/logger.js';
import { withRetries } from '../util/backoff.js';
import { isTransient, type CallSettings } from './client.js';

/** Call a startup operation (registration, secrets), retrying transient failures within startupRetryWindow. */
export function withStartupRetries<T>(what: string, settings: CallSettings, log: Logger, operation: () => Promise<T>): Promise<T> {
  return withRetries(operation, {
    deadline: Date.now() + settings.startupRetryWindowMs,
    isTransient,
    onRetry: (err, attempt, delayMs) =>
      log.warn(`${what}: ${(err as Error).message}; retrying in ${(delayMs / 1000).toFixed(1)}s (attempt ${attempt + 1})`),
  });
}
