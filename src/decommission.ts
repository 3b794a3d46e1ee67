/**
 * What happens to a worker's registration when it is finished: a worker
 * that worker-manager created is removed (and the machine powered off if
 * removal fails); a static or standalone worker just exits.
 */
import { errorMessage } from './errors.js';
import type { Logger } from './logging/logger.js';
import type { RunState } from './state.js';
import { SHARED_SERVICE_BACKOFF, withRetries } from './util/backoff.js';
import { isTransient, removeWorkerCall, type CallSettings } from './taskcluster/client.js';
import type { ErrorReporter } from './taskcluster/error-report.js';

export interface DecommissionOptions {
  state: RunState;
  /** True for providers whose machines worker-manager created (aws, azure, google, dynamic plugins). */
  dynamic: boolean;
  /** argv of the command that powers the machine off. */
  shutdownCommand: string[];
  settings: CallSettings;
  log: Logger;
}

export class Decommissioner {
  private removal: Promise<void> | undefined;

  constructor(private readonly options: DecommissionOptions) {}

  /**
   * The worker sent `shutdown`: the machine is not needed any more. True when
   * the machine goes away (the worker is removed, and worker-manager ends
   * the instance); false when this worker's machine is not ours to stop.
   */
  shutdownRequested(): boolean {
    if (!this.options.dynamic) {
      this.options.log.info(
        'the worker asked for the machine to shut down; this worker is not dynamically provisioned, so the machine stays up',
      );
      return false;
    }
    this.options.log.info('the worker asked for the machine to shut down');
    void this.finish();
    return true;
  }

  /** The worker exited; unless it asked for a reboot, it is finished. */
  async workerExited(rebootRequested: boolean): Promise<void> {
    if (rebootRequested || !this.options.dynamic) return;
    await this.finish();
  }

  /**
   * Startup failed after the provider step: report the failure (when there
   * are credentials to do it with), then remove the worker or power off, so
   * a broken image does not leave machines idling.
   */
  async startupFailed(err: unknown, reporter: ErrorReporter | undefined): Promise<void> {
    if (reporter) {
      reporter.report(
        {
          kind: 'worker-error',
          title: 'start-worker could not start the worker',
          description: errorMessage(err),
          extra: {},
        },
        'start-worker',
      );
      await reporter.flush();
    }
    await this.finish();
  }

  /** Remove the worker (once); if that fails, power off. */
  finish(): Promise<void> {
    this.removal ??= this.removeOrShutdown();
    return this.removal;
  }

  private async removeOrShutdown(): Promise<void> {
    const { state, settings, log } = this.options;
    if (state.credentials.clientId !== '') {
      try {
        await withRetries(
          () =>
            removeWorkerCall(
              { ...settings, rootUrl: state.rootUrl, credentials: state.credentials },
              state.workerPoolId,
              state.workerGroup,
              state.workerId,
            ),
          { ...SHARED_SERVICE_BACKOFF, maxAttempts: 5, isTransient },
        );
        log.info(`removed worker ${state.workerGroup}/${state.workerId} from worker-manager`);
        return;
      } catch (err) {
        log.error(`could not remove the worker from worker-manager: ${errorMessage(err)}`);
      }
    } else {
      log.error('the worker has no credentials to remove itself from worker-manager');
    }
    await this.runShutdownCommand();
  }

  private async runShutdownCommand(): Promise<void> {
    const { shutdownCommand, log } = this.options;
    const [file, ...args] = shutdownCommand;
    log.warn(`falling back to powering the machine off: ${shutdownCommand.join(' ')}`);
    try {
      const { execa } = await import('execa');
      const result = await execa(file!, args, { reject: false, timeout: 60_000, all: true, stdin: 'ignore' });
      if (result.all) log.info(`shutdown command output: ${result.all}`);
      if (result.failed) log.error(`the shutdown command failed: ${result.shortMessage ?? result.message}`);
    } catch (err) {
      log.error(`cannot run the shutdown command: ${errorMessage(err)}`);
    }
  }
}
