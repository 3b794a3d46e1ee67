/** Reading a child's output to its end, without waiting forever for an end that may not come. */
import type { Readable } from 'node:stream';
import type { Logger } from '../logging/logger.js';

/** Whether `promise` settles within `ms` (its own outcome is left to whoever awaits it). */
export async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const settled = await Promise.race([
    promise.then(
      () => true,
      () => true,
    ),
    new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms))),
  ]);
  clearTimeout(timer);
  return settled;
}

/**
 * Wait at most `ms` for the output to end (`ended`); past that, stop reading
 * `streams`, which ends it. A process that outlives the one we started (a
 * daemon) may hold the output open for ever. Whether it ended by itself.
 */
export async function endedOrStopReading(ended: Promise<unknown>, streams: Readable[], ms: number): Promise<boolean> {
  if (await settlesWithin(ended, ms)) return true;
  for (const stream of streams) stream.destroy();
  return false;
}

/**
 * Stop reading `streams` while the log is behind (a slow reader of
 * start-worker's stderr), and read on once it has caught up: the child then
 * waits on its own full pipe, as if it wrote to the log itself, instead of
 * start-worker holding its output in memory without bound. The returned
 * function stops pacing and reads on: once the child has exited, what is left
 * is what its pipes hold, and that is read in full.
 */
export function pacedByLog(streams: Readable[], log: Logger): () => void {
  let paced = true;
  const holdBack = (): void => {
    const caughtUp = log.behind();
    if (caughtUp === undefined) return;
    for (const stream of streams) stream.pause();
    void caughtUp.then(() => {
      if (paced) for (const stream of streams) stream.resume();
    });
  };
  // after the listeners that handle each chunk, which were added first
  for (const stream of streams) stream.on('data', holdBack);
  return () => {
    paced = false;
    for (const stream of streams) {
      stream.off('data', holdBack);
      stream.resume();
    }
  };
}
