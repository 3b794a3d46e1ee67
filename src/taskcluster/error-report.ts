/** Forwarding the worker's error reports to worker-manager's reportWorkerError. */
import { errorMessage } from '../errors.js';
import type { JsonObject } from '../json.js';
import type { Logger } from '../logging/logger.js';
import type { ErrorReport } from '../protocol/messages.js';
import type { RunState } from '../state.js';
import { SHARED_SERVICE_BACKOFF, withRetries } from '../util/backoff.js';
import { isTransient, reportWorkerErrorCall, type CallSettings } from './client.js';

const KIND_MAX = 128;
const TITLE_MAX = 128;
const DESCRIPTION_MAX = 10240;
/** Reports on their way at once; a worker sending more is reporting in a loop. */
const MAX_IN_FLIGHT = 10;

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 3)}...`;
}

/**
 * Fit a report to the service's limits rather than lose it: `kind` is
 * `[-a-z0-9]+` of at most 128 characters, `title` at most 128 and
 * `description` at most 10240.
 */
export function normalizeErrorReport(report: ErrorReport): ErrorReport {
  const kind = report.kind
    .toLowerCase()
    .replace(/[^-a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, KIND_MAX);
  return {
    kind: kind || 'worker-error',
    title: truncate(report.title, TITLE_MAX),
    description: truncate(report.description, DESCRIPTION_MAX),
    extra: report.extra,
  };
}

/**
 * Sends error reports to worker-manager. Failures are logged and never stop
 * the worker; `flush` waits (boundedly) for reports still on their way. A
 * worker that reports faster than worker-manager answers has its extra
 * reports logged but not sent, so neither memory nor the queue grows.
 */
export class ErrorReporter {
  private readonly pending = new Set<Promise<void>>();

  constructor(
    private readonly state: RunState,
    private readonly settings: CallSettings,
    private readonly log: Logger,
  ) {}

  /** `from`: the worker's own report, or start-worker's (its startup failed), which is already logged. */
  report(report: ErrorReport, from: 'worker' | 'start-worker' = 'worker'): void {
    const normalized = normalizeErrorReport(report);
    if (from === 'worker') this.log.warn(`worker reported an error: ${normalized.kind}: ${normalized.title}`);
    else this.log.info(`reporting the failure to worker-manager: ${normalized.kind}: ${normalized.title}`);
    if (this.pending.size >= MAX_IN_FLIGHT) {
      this.log.warn(
        `not forwarding this error report to worker-manager: ${MAX_IN_FLIGHT} reports are still on their way`,
      );
      return;
    }
    const sending = this.send(normalized).finally(() => this.pending.delete(sending));
    this.pending.add(sending);
  }

  /** Wait for reports in flight, at most `timeoutMs` (by default 30 s: the worker has exited, the machine is going). */
  async flush(timeoutMs = 30_000): Promise<void> {
    if (this.pending.size === 0) return;
    await Promise.race([Promise.all(this.pending), new Promise((resolve) => setTimeout(resolve, timeoutMs).unref())]);
  }

  private async send(report: ErrorReport): Promise<void> {
    const { state } = this;
    const payload: JsonObject = { workerGroup: state.workerGroup, workerId: state.workerId, ...report };
    try {
      await withRetries(
        () =>
          reportWorkerErrorCall(
            { ...this.settings, rootUrl: state.rootUrl, credentials: state.credentials },
            state.workerPoolId,
            payload,
          ),
        { ...SHARED_SERVICE_BACKOFF, maxAttempts: 4, isTransient },
      );
      this.log.info(`reported the error to worker-manager: ${report.title}`);
    } catch (err) {
      this.log.warn(`could not report the error to worker-manager: ${errorMessage(err)}`);
    }
  }
}
