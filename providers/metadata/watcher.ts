/**
 * Watching a metadata service for the cloud taking the machine away. A
 * cloud supplies its checks; the watcher runs each on a Poller and passes
 * on what they find: the first request, then only an escalation from
 * "finish your tasks" to "stop now" (aws: a rebalance recommendation, then
 * a spot notice). A failed check is never a reason to stop the worker.
 */
import type { Logger } from '../../src/logging/logger.js';
import type { TerminationRequester, TerminationRequest } from '../../src/plugin.js';
import type { JsonSchema } from '../../src/schema.js';
import { Poller } from '../../src/util/poller.js';

/**
 * The first pause after a failed check is the interval, but at least this;
 * it doubles with each further failure.
 */
export const WATCH_FIRST_ERROR_DELAY_MS = 500;
/**
 * The longest pause after repeated failures (or the interval, if longer):
 * notices come minutes or seconds ahead (Azure's Preempt: 30 s), so a
 * watcher that recovers must notice soon.
 */
export const WATCH_MAX_BACKOFF_MS = 10_000;

/**
 * `terminationPollInterval`, which means the same on every cloud; `checks`
 * says what is checked, `minimum` keeps a cloud from being asked too often.
 */
export function terminationPollIntervalSchema(checks: string, minimum?: number): JsonSchema {
  return {
    type: 'number',
    ...(minimum === undefined ? { exclusiveMinimum: 0 } : { minimum }),
    default: 1,
    description: `Seconds between two checks of the metadata service while the worker runs: ${checks}. Fractions are allowed${minimum === undefined ? '' : `, down to ${minimum}`}.`,
  };
}

export interface TerminationCheck {
  /** What is watched, for log messages. */
  name: string;
  /** One look at the metadata service: a request to stop the worker, or undefined. */
  check(signal: AbortSignal): Promise<TerminationRequest | undefined>;
}

export interface WatcherOptions {
  /** The pause between two checks (`terminationPollInterval`). */
  intervalMs: number;
  /**
   * After a request to stop now: `stop` checking, or `keep-checking`
   * (azure acknowledges the latest events when the worker has exited).
   */
  afterStopNow: 'stop' | 'keep-checking';
  log: Logger;
}

export class TerminationWatcher {
  private readonly pollers: Poller[];
  private control: TerminationRequester | undefined;
  private requested: TerminationRequest | undefined;

  constructor(
    checks: readonly TerminationCheck[],
    private readonly options: WatcherOptions,
  ) {
    const { intervalMs, log } = options;
    this.pollers = checks.map(
      ({ name, check }) =>
        new Poller(
          async (signal) => {
            if (this.done()) return true;
            const request = await check(signal);
            if (request !== undefined) this.pass(request);
            return this.done();
          },
          {
            name,
            intervalMs,
            errorDelayMs: Math.max(intervalMs, WATCH_FIRST_ERROR_DELAY_MS),
            maxBackoffMs: Math.max(intervalMs, WATCH_MAX_BACKOFF_MS),
            log,
          },
        ),
    );
  }

  /** The worker runs: watch, and tell `control` (once started, again only to escalate). */
  start(control: TerminationRequester): void {
    if (this.control !== undefined) return;
    this.control = control;
    for (const poller of this.pollers) poller.start();
  }

  /** Resolves once every check in flight has returned. */
  async stop(): Promise<void> {
    await Promise.all(this.pollers.map((poller) => poller.stop()));
  }

  private pass(request: TerminationRequest): void {
    const escalation = this.requested?.finishTasks === true && !request.finishTasks;
    if (this.requested !== undefined && !escalation) return;
    this.requested = request;
    this.control?.requestTermination(request);
    // The other checks' requests in flight (google's long-polls) are not needed any more.
    if (this.done()) void this.stop();
  }

  private done(): boolean {
    return this.options.afterStopNow === 'stop' && this.requested?.finishTasks === false;
  }
}
