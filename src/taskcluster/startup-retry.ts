import type { Logger } from '../logging/logger.js';
import { SHARED_SERVICE_BACKOFF } from '../util/backoff.js';
import { withinRetryWindow } from '../util/retry-window.js';
import { isTransient, type CallSettings } from './client.js';

/**
 * Call a startup operation (registration, secrets), retrying transient
 * failures within startupRetryWindow, with the policy for a service the
 * whole fleet shares: full jitter, and a service's Retry-After honoured.
 */
export function withStartupRetries<T>(
  what: string,
  settings: CallSettings,
  log: Logger,
  operation: () => Promise<T>,
): Promise<T> {
  return withinRetryWindow(
    operation,
    { ...SHARED_SERVICE_BACKOFF, isTransient },
    {
      deadline: Date.now() + settings.startupRetryWindowMs,
      windowSeconds: settings.startupRetryWindowMs / 1000,
      log,
      what,
    },
  );
}
