/** The longest single timer used while waiting for a wall-clock time. */
const MAX_STEP_MS = 60_000;

/**
 * Wait until the wall clock reaches `when` (ms since the epoch), in steps of
 * at most a minute. Node's timers run on a monotonic clock that stops while
 * a host hibernates; re-reading the wall clock every step means a host that
 * slept through the due time wakes up and acts at once. Resolves false when
 * aborted.
 */
export function sleepUntil(when: number, signal?: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    let timer: NodeJS.Timeout | undefined;
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve(false);
    };
    const step = (): void => {
      const remaining = when - Date.now();
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
