/**
 * The one retry policy of every cloud provider's startup metadata requests:
 * transient failures are retried, with backoff, until `startupRetryWindow`
 * (counted from the start of the provider's startup) has passed. The
 * service is on the host's own link and normally answers in milliseconds,
 * so the first retries come quickly.
 */
import { StartWorkerError, errorMessage } from '../../src/errors.js';
import type { Logger } from '../../src/logging/logger.js';
import { withRetries } from '../../src/util/backoff.js';

const FIRST_DELAY_MS = 250;
const MAX_DELAY_MS = 5000;

export interface StartupRetry {
  /** Wall-clock time (ms) after which no new attempt starts. */
  deadline: number;
  /** The window in seconds, for the message when it runs out. */
  windowSeconds: number;
  isTransient: (err: unknown) => boolean;
  log: Logger;
  /** What to check when the window runs out (appended to the error). */
  hint: string;
}

export function startupDeadline(windowSeconds: number): number {
  return Date.now() + windowSeconds * 1000;
}

/** `what` prefixes the warning of each retry (the request's own error may not say which service it was). */
export async function withStartupRetries<T>(operation: () => Promise<T>, retry: StartupRetry, what?: string): Promise<T> {
  try {
    return await withRetries(operation, {
      deadline: retry.deadline,
      initialDelayMs: FIRST_DELAY_MS,
      maxDelayMs: MAX_DELAY_MS,
      isTransient: retry.isTransient,
      onRetry: (err, attempt, delayMs) => retry.log.warn(`${what ? `${what}: ` : ''}${errorMessage(err)}; retrying in ${(delayMs / 1000).toFixed(1)}s (attempt ${attempt + 1})`),
    });
  } catch (err) {
    if (!retry.isTransient(err)) throw err;
    throw new StartWorkerError(`${errorMessage(err)}; gave up after startupRetryWindow (${retry.windowSeconds}s): ${retry.hint}`, { cause: err });
  }
}
