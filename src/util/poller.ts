import { errorMessage } from '../errors.js';
import type { Logger } from '../logging/logger.js';
import { backoffDelay, sleep } from './backoff.js';
import { delayInSeconds } from './retry-window.js';

export interface PollerOptions {
  /** What is being watched, for log messages. */
  name: string;
  /** Pause between successful polls (0 for long-polls, which wait on their own). */
  intervalMs: number;
  /** The first pause after a failure (default: intervalMs, at least 500 ms); it doubles with each further one. */
  errorDelayMs?: number;
  /** The longest pause after repeated failures. */
  maxBackoffMs: number;
  log: Logger;
}

/**
 * Calls `poll` over and over until it returns true or the poller is stopped:
 * one call at a time, never overlapping; a failure is logged (not every one,
 * once they repeat) and followed by an exponentially growing pause, so an
 * erroring metadata service is neither hammered nor able to crash the
 * runner.
 */
export class Poller {
  private readonly abort = new AbortController();
  private running: Promise<void> | undefined;

  constructor(
    private readonly poll: (signal: AbortSignal) => Promise<boolean>,
    private readonly options: PollerOptions,
  ) {}

  start(): void {
    this.running ??= this.loop();
  }

  /** Stop polling; resolves once the current poll (if any) has returned. */
  async stop(): Promise<void> {
    this.abort.abort();
    await this.running;
  }

  private async loop(): Promise<void> {
    const { name, intervalMs, maxBackoffMs, log } = this.options;
    const errorDelayMs = this.options.errorDelayMs ?? Math.max(intervalMs, 500);
    const { signal } = this.abort;
    let failures = 0;
    while (!signal.aborted) {
      let pause = intervalMs;
      try {
        if (await this.poll(signal)) return;
        if (failures > 0) log.info(`${name}: working again after ${failures} failed attempt(s)`);
        failures = 0;
      } catch (err) {
        if (signal.aborted) return;
        failures += 1;
        pause = backoffDelay(failures, errorDelayMs, maxBackoffMs);
        // the first failures, then every tenth: a long outage must not flood the log
        if (failures <= 3 || failures % 10 === 0)
          log.warn(`${name} failed (${failures} in a row): ${errorMessage(err)}; retrying in ${delayInSeconds(pause)}`);
      }
      await sleep(pause, signal);
    }
  }
}
