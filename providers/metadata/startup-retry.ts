/**
 * The one retry policy of every cloud provider's startup metadata requests:
 * transient failures are retried, with backoff, until `startupRetryWindow`
 * (counted from the start of the provider's startup) has passed. The
 * service is on the host's own link and normally answers in milliseconds,
 * so the first retries come quickly.
 */
import type { Logger } from '../../src/logging/logger.js';
import { withinRetryWindow } from '../../src/util/retry-window.js';
import { isTransientMetadataError } from './errors.js';

const FIRST_DELAY_MS = 250;
const MAX_DELAY_MS = 5000;

export interface StartupRetrySettings {
  /** `startupRetryWindow`, in seconds. */
  windowSeconds: number;
  log: Logger;
  /** What to check when the window runs out (appended to the error). */
  hint: string;
}

/** The requests of one startup (or restart from the cache); the window counts from its creation. */
export class StartupRetries {
  /** Wall-clock time (ms) after which no new attempt starts. */
  private readonly deadline: number;

  constructor(private readonly settings: StartupRetrySettings) {
    this.deadline = Date.now() + settings.windowSeconds * 1000;
  }

  /** `what` prefixes the warning of each retry (the request's own error may not say which service it was). */
  run<T>(operation: () => Promise<T>, what?: string): Promise<T> {
    return withinRetryWindow(
      operation,
      { initialDelayMs: FIRST_DELAY_MS, maxDelayMs: MAX_DELAY_MS, isTransient: isTransientMetadataError },
      { ...this.settings, deadline: this.deadline, what },
    );
  }
}
