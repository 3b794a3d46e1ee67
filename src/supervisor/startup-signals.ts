/**
 * Signals before the worker runs. SIGTERM/SIGINT end startup: the step in
 * progress is abandoned (files are written atomically; there is no worker
 * to stop yet) and the run ends with 128 + the signal's number. A drain is
 * remembered for the worker, which gets it as soon as it runs.
 */
import { StartWorkerError } from '../errors.js';
import type { Logger } from '../logging/logger.js';
import { DRAIN_SIGNAL } from './termination.js';

export class StartupInterrupted extends StartWorkerError {
  constructor(
    readonly signal: NodeJS.Signals,
    readonly exitCode: number,
  ) {
    super(`startup interrupted by ${signal}`);
    this.name = 'StartupInterrupted';
  }
}

export class StartupSignals {
  private readonly abort = new AbortController();
  private drainRequested = false;
  private readonly removeHandlers: () => void;

  constructor(log: Logger) {
    const interrupt = (signal: NodeJS.Signals): void => {
      log.warn(`received ${signal} during startup; exiting`);
      this.abort.abort(new StartupInterrupted(signal, 128 + (signal === 'SIGINT' ? 2 : 15)));
    };
    const drain = (signal: NodeJS.Signals): void => {
      log.info(`received ${signal} during startup; the worker will be asked to finish and exit once it runs`);
      this.drainRequested = true;
    };
    process.on('SIGTERM', interrupt);
    process.on('SIGINT', interrupt);
    process.on(DRAIN_SIGNAL, drain);
    this.removeHandlers = () => {
      process.removeListener('SIGTERM', interrupt);
      process.removeListener('SIGINT', interrupt);
      process.removeListener(DRAIN_SIGNAL, drain);
    };
  }

  /** `work`, unless a signal ends startup first (then a StartupInterrupted). */
  async unlessInterrupted<T>(work: Promise<T>): Promise<T> {
    const { signal } = this.abort;
    if (signal.aborted) throw signal.reason;
    let onAbort!: () => void;
    const interrupted = new Promise<never>((_, reject) => {
      onAbort = () => reject(signal.reason as Error);
      signal.addEventListener('abort', onAbort, { once: true });
    });
    try {
      return await Promise.race([work, interrupted]);
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }

  /** The worker runs (or startup is over): stop handling signals; whether a drain was asked for. */
  handOver(): { drainRequested: boolean } {
    this.removeHandlers();
    return { drainRequested: this.drainRequested };
  }
}
