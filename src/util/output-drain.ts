/** Reading a child's output to its end, without waiting forever for an end that may not come. */
import type { Readable } from 'node:stream';

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
