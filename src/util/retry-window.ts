/**
 * Retries bounded by a window (`startupRetryWindow`): the one shape of every
 * startup call, whatever the service and its backoff.
 */
import { StartWorkerError, errorMessage } from '../errors.js';
import type { Logger } from '../logging/logger.js';
import { withRetries, type RetryPolicy } from './backoff.js';

export interface RetryWindow {
  /** Wall-clock time (ms) after which no attempt starts. */
  deadline: number;
  /** The window's length, for the message when it runs out. */
  windowSeconds: number;
  log: Logger;
  /** Prefixes the warning of each retry, when the failure does not say which service it was. */
  what?: string;
  /** What to check, appended to the error when the window runs out. */
  hint?: string;
}

/** `what: the failure; retrying in 0.35s (attempt 2)`. */
export function retryWarning(what: string | undefined, err: unknown, attempt: number, delayMs: number): string {
  return `${what ? `${what}: ` : ''}${errorMessage(err)}; retrying in ${delayInSeconds(delayMs)} (attempt ${attempt + 1})`;
}

/** Two decimals below a second: full-jitter delays can be a few milliseconds. */
export function delayInSeconds(ms: number): string {
  return `${(ms / 1000).toFixed(ms < 1000 ? 2 : 1)}s`;
}

/**
 * Call `operation`, retrying transient failures with `policy` until the
 * window's deadline; a transient failure still there at its end says the
 * window ran out.
 */
export async function withinRetryWindow<T>(
  operation: () => Promise<T>,
  policy: RetryPolicy & { isTransient: (err: unknown) => boolean },
  window: RetryWindow,
): Promise<T> {
  try {
    return await withRetries(operation, {
      ...policy,
      deadline: window.deadline,
      onRetry: (err, attempt, delayMs) => window.log.warn(retryWarning(window.what, err, attempt, delayMs)),
    });
  } catch (err) {
    if (!policy.isTransient(err)) throw err;
    throw new StartWorkerError(
      `${errorMessage(err)}; gave up after startupRetryWindow (${window.windowSeconds}s)${window.hint ? `: ${window.hint}` : ''}`,
      { cause: err },
    );
  }
}
