import { performance } from 'node:perf_hooks';

/** The longest single timer used while waiting for a wall-clock time. */
const MAX_STEP_MS = 10_000;

/**
 * Wait until the wall clock reaches `when` (ms since the epoch), in steps of
 * at most 10 s. Node's timers run on a monotonic clock that stops while a
 * host hibernates; re-reading the wall clock every step means a host that
 * slept through the due time acts within a step of waking. The wait also
 * ends once the time it was to last has passed on the monotonic clock, so a
 * wall clock set back does not delay it either. Resolves false when
 * aborted.
 */
export function sleepUntil(when: number, signal?: AbortSignal): Promise<boolean> {
  if (!Number.isFinite(when)) return Promise.reject(new TypeError(`sleepUntil: not a time: ${when}`));
  const monotonicEnd = performance.now() + (when - Date.now());
  return new Promise((resolve) => {
    let timer: NodeJS.Timeout | undefined;
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve(false);
    };
    const step = (): void => {
      const remaining = Math.min(when - Date.now(), monotonicEnd - performance.now());
      if (remaining <= 0) {
        signal?.removeEventListener('abort', onAbort);
        resolve(true);
        return;
      }
      timer = setTimeout(step, Math.min(remaining, MAX_STEP_MS));
    };
    if (signal?.aborted) {
      resolve(false);
      return;
    }
    signal?.addEventListener('abort', onAbort, { once: true });
    step();
  });
}
