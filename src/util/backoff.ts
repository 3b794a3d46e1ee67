/** Bounded retries with exponential backoff and jitter. */

export interface RetryPolicy {
  /** Give up once the next attempt would start after this wall-clock time (ms since the epoch). */
  deadline?: number;
  /** Give up after this many attempts in all. */
  maxAttempts?: number;
  /** The first delay; each later one doubles (default 1 s). */
  initialDelayMs?: number;
  /** The longest delay (default 30 s). */
  maxDelayMs?: number;
  /** Whether a failure is worth another attempt (default: every failure). */
  isTransient?: (err: unknown) => boolean;
  /** Told about each failure that will be retried, with the delay before the next attempt. */
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
}

/**
 * Wait `ms`, or less when `signal` aborts. The abort listener is removed
 * when the timer fires: a loop that sleeps on one long-lived signal must
 * not leave a listener behind at every turn.
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * The delay before retry number `attempt` (1-based): exponential, capped,
 * with "equal jitter" (between half and all of it) so a fleet of machines
 * that failed together does not retry together.
 */
export function backoffDelay(attempt: number, initialDelayMs: number, maxDelayMs: number, random = Math.random): number {
  const exponential = Math.min(maxDelayMs, initialDelayMs * 2 ** (attempt - 1));
  return Math.round(exponential / 2 + random() * (exponential / 2));
}

/** Call `operation` until it succeeds, a failure is permanent, or the policy's bounds are reached. */
export async function withRetries<T>(operation: (attempt: number) => Promise<T>, policy: RetryPolicy): Promise<T> {
  const initialDelayMs = policy.initialDelayMs ?? 1000;
  const maxDelayMs = policy.maxDelayMs ?? 30_000;
  for (let attempt = 1; ; attempt++) {
    try {
      return await operation(attempt);
    } catch (err) {
      if (policy.isTransient && !policy.isTransient(err)) throw err;
      if (policy.maxAttempts !== undefined && attempt >= policy.maxAttempts) throw err;
      let delayMs = backoffDelay(attempt, initialDelayMs, maxDelayMs);
      if (policy.deadline !== undefined) {
        const remaining = policy.deadline - Date.now();
        if (remaining <= 0) throw err;
        delayMs = Math.min(delayMs, remaining);
      }
      policy.onRetry?.(err, attempt, delayMs);
      await sleep(delayMs);
    }
  }
}
