/**
 * Bounded retries with exponential backoff and jitter, honouring a service's
 * Retry-After.
 *
 * The policy for calls to a service that a whole fleet shares (Taskcluster,
 * AWS Secrets Manager), where every machine of a pool may fail at the same
 * moment (a pool booting at once, a brown-out):
 *
 * - Without Retry-After, "full jitter": the delay before retry n is uniform
 *   in [0, min(cap, base * 2^(n-1))], so runners that failed together
 *   spread over the whole interval instead of returning in waves.
 * - With Retry-After S (429 or 503): never sooner than S, plus a spread
 *   uniform in [0, min(cap, max(base * 2^(n-1), S * 2^(n+1)))]. Runners told
 *   the same S at the same moment would otherwise all come back at S: the
 *   spread is in units of the service's own S (it knows its recovery time
 *   better than we do), four times S at the first refusal so the returning
 *   wave is at most a quarter as dense as the one refused (twice S, tried
 *   first, still left 200 runners refused at 20/s making 3 requests each),
 *   doubling with each further refusal as backoff does, and never shorter
 *   than the backoff without a Retry-After (a Retry-After of 0 must not
 *   mean a hot loop).
 * - The deadline bounds everything: no attempt starts after it, and a
 *   Retry-After that reaches past it gives up at once, saying so, rather than
 *   retrying sooner than told or sleeping past the window.
 */
import { StartWorkerError, errorMessage } from '../errors.js';

export interface RetryPolicy {
  /** Give up once the next attempt would start after this wall-clock time (ms since the epoch). */
  deadline?: number;
  /** Give up after this many attempts in all. */
  maxAttempts?: number;
  /** The base of the backoff: the ceiling of the first delay, doubling with each retry (default 1 s). */
  initialDelayMs?: number;
  /** The cap of the backoff, and of the spread added to a Retry-After (default 30 s). */
  maxDelayMs?: number;
  /**
   * `full` (the delay uniform in [0, ceiling]) for services a fleet shares;
   * `equal` (between half and all of the ceiling) for a machine's own
   * metadata service. Default `equal`.
   */
  jitter?: 'full' | 'equal';
  /** Without a deadline, the longest Retry-After worth waiting for; a longer one gives up at once (default 5 minutes). */
  maxRetryAfterMs?: number;
  /** Whether a failure is worth another attempt (default: every failure). */
  isTransient?: (err: unknown) => boolean;
  /** Ends the retries: no attempt starts once it aborts (the last failure is thrown). */
  signal?: AbortSignal;
  /** Told about each failure that will be retried, with the delay before the next attempt. */
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
  /** For tests: the random source (in [0, 1)) and the clock. */
  random?: () => number;
  clock?: RetryClock;
}

export interface RetryClock {
  now(): number;
  /** Wait `ms`, or less when `signal` aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

const DEFAULT_BASE_MS = 1000;
const DEFAULT_CAP_MS = 30_000;
const DEFAULT_MAX_RETRY_AFTER_MS = 5 * 60_000;

/** The settings for calls to a service the whole fleet shares (Taskcluster, AWS Secrets Manager). */
export const SHARED_SERVICE_BACKOFF = {
  jitter: 'full',
  initialDelayMs: DEFAULT_BASE_MS,
  maxDelayMs: DEFAULT_CAP_MS,
} as const satisfies RetryPolicy;

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

const realClock: RetryClock = { now: () => Date.now(), sleep };

/** The ceiling of the delay before retry number `attempt` (1-based): base * 2^(attempt-1), capped. */
export function backoffCeiling(attempt: number, initialDelayMs: number, maxDelayMs: number): number {
  return Math.min(maxDelayMs, initialDelayMs * 2 ** (attempt - 1));
}

/**
 * The delay before retry number `attempt` (1-based): exponential, capped,
 * with "equal jitter" (between half and all of it). For a machine's own
 * services (metadata, polling), where no fleet competes.
 */
export function backoffDelay(
  attempt: number,
  initialDelayMs: number,
  maxDelayMs: number,
  random = Math.random,
): number {
  const exponential = backoffCeiling(attempt, initialDelayMs, maxDelayMs);
  return Math.round(exponential / 2 + random() * (exponential / 2));
}

/** "Full jitter": the delay before retry `attempt` uniform in [0, ceiling]. */
export function fullJitterDelay(
  attempt: number,
  initialDelayMs: number,
  maxDelayMs: number,
  random = Math.random,
): number {
  return Math.round(random() * backoffCeiling(attempt, initialDelayMs, maxDelayMs));
}

/**
 * The delay before retry `attempt` after the service said Retry-After
 * `retryAfterMs`: that, plus a spread uniform in
 * [0, min(cap, max(base * 2^(attempt-1), retryAfter * 2^(attempt+1)))].
 */
export function retryAfterDelay(
  retryAfterMs: number,
  attempt: number,
  initialDelayMs: number,
  maxDelayMs: number,
  random = Math.random,
): number {
  const spread = Math.min(
    maxDelayMs,
    Math.max(backoffCeiling(attempt, initialDelayMs, maxDelayMs), retryAfterMs * 2 ** (attempt + 1)),
  );
  return Math.ceil(retryAfterMs + random() * spread);
}

/** How long a failure says to wait before the next attempt: its `retryAfterMs`, when it has one. */
function retryAfterOf(err: unknown): number | undefined {
  const value = typeof err === 'object' && err !== null ? (err as { retryAfterMs?: unknown }).retryAfterMs : undefined;
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : undefined;
}

/**
 * A Retry-After header (RFC 9110: delay-seconds or an HTTP date) as ms from
 * `now`; undefined when it is neither. A date in the past is 0.
 */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  // only dates: Date.parse would take "3.5" or "-1" for a year
  if (!/[a-z]/i.test(text)) return undefined;
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** The service asked to wait longer than the retry window (or start-worker) allows: given up at once. */
export class RetryAfterTooLateError extends StartWorkerError {
  constructor(
    message: string,
    readonly retryAfterMs: number,
    cause: unknown,
  ) {
    super(message, { cause });
    this.name = 'RetryAfterTooLateError';
  }
}

function inSeconds(ms: number): string {
  return `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)}s`;
}

/** Call `operation` until it succeeds, a failure is permanent, or the policy's bounds are reached. */
export async function withRetries<T>(operation: (attempt: number) => Promise<T>, policy: RetryPolicy): Promise<T> {
  const initialDelayMs = policy.initialDelayMs ?? DEFAULT_BASE_MS;
  const maxDelayMs = policy.maxDelayMs ?? DEFAULT_CAP_MS;
  const random = policy.random ?? Math.random;
  const clock = policy.clock ?? realClock;
  for (let attempt = 1; ; attempt++) {
    try {
      return await operation(attempt);
    } catch (err) {
      if (policy.isTransient && !policy.isTransient(err)) throw err;
      if (policy.maxAttempts !== undefined && attempt >= policy.maxAttempts) throw err;
      const remaining = policy.deadline === undefined ? Infinity : policy.deadline - clock.now();
      if (remaining <= 0) throw err;
      const retryAfterMs = retryAfterOf(err);
      let delayMs: number;
      if (retryAfterMs !== undefined) {
        if (retryAfterMs > remaining) {
          throw new RetryAfterTooLateError(
            `${errorMessage(err)}; the service asked to retry after ${inSeconds(retryAfterMs)}, past the end of the retry window (${inSeconds(remaining)} left): giving up now`,
            retryAfterMs,
            err,
          );
        }
        const longest = policy.maxRetryAfterMs ?? DEFAULT_MAX_RETRY_AFTER_MS;
        if (policy.deadline === undefined && retryAfterMs > longest) {
          throw new RetryAfterTooLateError(
            `${errorMessage(err)}; the service asked to retry after ${inSeconds(retryAfterMs)}, longer than start-worker waits (${inSeconds(longest)}): giving up now`,
            retryAfterMs,
            err,
          );
        }
        delayMs = retryAfterDelay(retryAfterMs, attempt, initialDelayMs, maxDelayMs, random);
      } else {
        delayMs = (policy.jitter === 'full' ? fullJitterDelay : backoffDelay)(
          attempt,
          initialDelayMs,
          maxDelayMs,
          random,
        );
      }
      // the last attempt at the deadline itself, never after it (and never before a Retry-After: it fits, checked above)
      delayMs = Math.min(delayMs, remaining);
      if (policy.signal?.aborted) throw err;
      policy.onRetry?.(err, attempt, delayMs);
      await clock.sleep(delayMs, policy.signal);
      if (policy.signal?.aborted) throw err;
    }
  }
}
