/** Renewing the worker's credentials with reregisterWorker before they expire. */
import { errorMessage } from '../errors.js';
import type { Logger } from '../logging/logger.js';
import type { TerminationRequester } from '../plugin.js';
import type { WorkerProtocol } from '../protocol/protocol.js';
import type { RunState } from '../state.js';
import { SHARED_SERVICE_BACKOFF, withRetries } from '../util/backoff.js';
import { retryWarning } from '../util/retry-window.js';
import { sleepUntil } from '../util/wall-clock.js';
import { isTransient, reregisterWorkerCall, type CallSettings } from './client.js';

const MINUTE = 60_000;

/**
 * How long to wait before renewing credentials that expire in `untilExpiry`
 * ms, as Taskcluster does: 30 minutes before expiry for long lifetimes, but
 * no sooner than 5 minutes from now, and never later than 30 seconds before
 * expiry (the last rule wins).
 */
export function renewalDelayMs(untilExpiry: number): number {
  let delay = untilExpiry - 30 * MINUTE;
  if (delay < 5 * MINUTE) delay = 5 * MINUTE;
  if (delay > untilExpiry - 30_000) delay = untilExpiry - 30_000;
  return Math.max(0, delay);
}

/**
 * While retrying a renewal, stop once the credentials have less than this
 * left: 2 minutes, or a quarter of what was left when renewal began,
 * whichever is smaller.
 */
export function renewalSafetyMarginMs(remainingAtStart: number): number {
  return Math.min(2 * MINUTE, remainingAtStart / 4);
}

export interface RenewalOptions {
  state: RunState;
  protocol: WorkerProtocol;
  termination: TerminationRequester;
  settings: CallSettings;
  log: Logger;
  /** Called after each renewal (to rewrite the state cache); a failure stops the worker. */
  onRenewed?: (state: RunState) => Promise<void>;
}

/**
 * Keeps the worker's credentials fresh while it runs. When renewal is not
 * possible (the worker does not accept new-credentials, worker-manager
 * refuses, or time runs out), the worker is asked to stop before the
 * credentials expire.
 */
export class CredentialRenewal {
  private readonly abort = new AbortController();
  /** The state being saved after a renewal, if any. */
  private saving: Promise<void> | undefined;

  constructor(private readonly options: RenewalOptions) {}

  start(): void {
    if (this.options.state.credentialsExpire === undefined) return;
    void this.run().catch((err: unknown) => this.options.log.error(`credential renewal failed: ${errorMessage(err)}`));
  }

  /** Stop renewing; resolves once a renewed state being saved is on disk. */
  async stop(): Promise<void> {
    this.abort.abort();
    await this.saving?.catch(() => undefined);
  }

  private async run(): Promise<void> {
    const { state, log } = this.options;
    for (;;) {
      const expires = Date.parse(state.credentialsExpire!);
      const renewAt = Date.now() + renewalDelayMs(expires - Date.now());
      log.info(
        `credentials expire at ${new Date(expires).toISOString()}; renewing at ${new Date(renewAt).toISOString()}`,
      );
      if (!(await sleepUntil(renewAt, this.abort.signal))) return;
      if (!(await this.renew(expires))) return;
    }
  }

  /** Whether the worker has said hello by `deadline` (a wall-clock time); false at once for one that never will. */
  private async helloBy(deadline: number): Promise<boolean> {
    const { protocol } = this.options;
    if (protocol.saidHello || !protocol.speaksProtocol) return protocol.saidHello;
    const waiting = new AbortController();
    const stopWaiting = (): void => waiting.abort();
    this.abort.signal.addEventListener('abort', stopWaiting, { once: true });
    try {
      await Promise.race([protocol.initialized, sleepUntil(deadline, waiting.signal)]);
    } finally {
      stopWaiting();
      this.abort.signal.removeEventListener('abort', stopWaiting);
    }
    return protocol.saidHello;
  }

  /** One renewal; false when the worker has been asked to stop instead. */
  private async renew(expires: number): Promise<boolean> {
    const { state, protocol, termination, settings, log } = this.options;
    const stopWorker = (why: string): false => {
      log.warn(`${why}; asking the worker to stop before its credentials expire`);
      termination.requestTermination({
        finishTasks: false,
        reason: 'credentials-expiring',
        deadline: new Date(expires),
      });
      return false;
    };
    const deadline = expires - renewalSafetyMarginMs(expires - Date.now());
    // A worker still starting up may accept new credentials once it says hello.
    if (!(await this.helloBy(deadline))) {
      if (this.abort.signal.aborted) return false;
      return stopWorker('the worker has not said hello');
    }
    if (!protocol.capable('new-credentials')) return stopWorker('the worker does not accept new-credentials');

    let issued;
    try {
      issued = await withRetries(
        () =>
          reregisterWorkerCall(
            // never let one attempt run past the deadline
            {
              ...settings,
              requestTimeoutMs: Math.max(1000, Math.min(settings.requestTimeoutMs, deadline - Date.now())),
              rootUrl: state.rootUrl,
              credentials: state.credentials,
            },
            {
              workerPoolId: state.workerPoolId,
              workerGroup: state.workerGroup,
              workerId: state.workerId,
              secret: state.registrationSecret ?? '',
            },
          ),
        {
          ...SHARED_SERVICE_BACKOFF,
          deadline,
          isTransient,
          signal: this.abort.signal,
          onRetry: (err, attempt, delayMs) => log.warn(retryWarning('renewing credentials', err, attempt, delayMs)),
        },
      );
    } catch (err) {
      if (this.abort.signal.aborted) return false;
      return stopWorker(`cannot renew credentials: ${errorMessage(err)}`);
    }
    if (this.abort.signal.aborted) return false;

    state.credentials = issued.credentials;
    state.credentialsExpire = issued.expires;
    state.registrationSecret = issued.secret;
    // Saved before the worker hears of them: a restart then never finds older credentials than the worker had.
    try {
      this.saving = this.options.onRenewed?.(state);
      await this.saving;
    } catch (err) {
      return stopWorker(`cannot save the renewed state: ${errorMessage(err)}`);
    } finally {
      this.saving = undefined;
    }
    const { clientId, accessToken, certificate } = issued.credentials;
    protocol.send({
      type: 'new-credentials',
      'client-id': clientId,
      'access-token': accessToken,
      ...(certificate !== undefined ? { certificate } : {}),
    });
    log.info(`renewed credentials; sent them to the worker (they expire at ${issued.expires})`);
    return true;
  }
}
