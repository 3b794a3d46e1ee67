import type { Logger } from '../logging/logger.js';
import type { TerminationRequest } from '../protocol/messages.js';
import type { WorkerProcess } from './types.js';

/**
 * How long a termination request waits for a worker that has not said hello
 * yet, so a worker that is still starting is told by message rather than
 * signalled. It never takes more than half the grace period, nor a quarter
 * of the time left before the machine's deadline: once it runs out, the
 * worker gets its termination signal.
 */
const HELLO_WAIT_MS = 5000;

/** The operator's "finish your tasks, then exit" (SIGUSR1 would start Node's inspector). */
export const DRAIN_SIGNAL = 'SIGUSR2';

/**
 * How long a worker that asked for shutdown while stopping, on a machine
 * nobody will power off, gets after its termination signal before SIGKILL.
 */
const SHUTDOWN_STOP_WAIT_MS = 10_000;

export function helloWaitMs(
  gracePeriodSeconds: number | undefined,
  deadline: Date | undefined,
  now = Date.now(),
): number {
  let wait = HELLO_WAIT_MS;
  if (gracePeriodSeconds !== undefined) wait = Math.min(wait, (gracePeriodSeconds * 1000) / 2);
  if (deadline !== undefined) wait = Math.min(wait, (deadline.getTime() - now) / 4);
  return Math.max(0, wait);
}

/**
 * Decides how to stop the worker. Every reason to stop (interruption notice,
 * expiring credentials, a signal to the runner) ends here: a
 * graceful-termination message when the worker agreed to that capability,
 * else its termination signal; after the grace period, or on a second signal,
 * SIGKILL for its whole process group.
 */
export class TerminationController {
  /** finish-tasks of the last graceful-termination sent, if any. */
  private sentFinishTasks: boolean | undefined;
  private signalled = false;
  /** Whether the worker has been asked to stop, for any reason. */
  private requested = false;
  private graceTimer: NodeJS.Timeout | undefined;
  private shutdownTimer: NodeJS.Timeout | undefined;
  private killed = false;
  private finished = false;
  private removeSignalHandlers: (() => void) | undefined;

  constructor(
    private readonly worker: WorkerProcess,
    private readonly log: Logger,
    /** Told about each request that reaches the worker (the first, and an escalation). */
    private readonly onNotice: (request: TerminationRequest) => void = () => undefined,
  ) {
    void worker.exited.then(() => this.dispose());
  }

  requestTermination(request: TerminationRequest): void {
    if (this.finished) return;
    this.requested = true;
    void this.deliver(request);
  }

  /**
   * The worker asked for shutdown and the machine will not be powered off
   * (a static or standalone host). A worker asked to stop does that when it
   * is done and then waits to be powered off (docker-worker does), so stop
   * it: its termination signal, then SIGKILL after a short wait.
   */
  shutdownNotPossible(): void {
    if (!this.requested || this.finished || this.shutdownTimer !== undefined) return;
    const seconds = SHUTDOWN_STOP_WAIT_MS / 1000;
    this.log.info(
      `the worker is stopping and asked for shutdown, which this provider does not do; sending it ${this.worker.terminationSignal}, and SIGKILL if it has not exited within ${seconds}s`,
    );
    this.worker.signal(this.worker.terminationSignal);
    this.shutdownTimer = setTimeout(
      () => this.forceKill(`the worker did not exit within ${seconds}s of its shutdown request`),
      SHUTDOWN_STOP_WAIT_MS,
    );
  }

  /**
   * Signals to the runner mean what the host means. SIGTERM/SIGINT (systemd
   * stopping the unit, the machine shutting down): stop now, so running
   * tasks are resolved and rerun elsewhere; a second one kills the worker's
   * process group. DRAIN_SIGNAL (an operator): finish the running tasks,
   * then exit; a SIGTERM after it still escalates.
   */
  handleSignals(): void {
    let stopSignals = 0;
    const stop = (signal: NodeJS.Signals): void => {
      stopSignals += 1;
      if (stopSignals === 1) {
        this.log.info(`received ${signal}; asking the worker to stop now`);
        this.requestTermination({ finishTasks: false, reason: 'signal' });
      } else {
        this.forceKill(`received ${signal} again`);
      }
    };
    const drain = (signal: NodeJS.Signals): void => {
      this.log.info(`received ${signal}; asking the worker to finish its running tasks and exit`);
      this.requestTermination({ finishTasks: true, reason: 'drain' });
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
    process.on(DRAIN_SIGNAL, drain);
    this.removeSignalHandlers = () => {
      process.removeListener('SIGTERM', stop);
      process.removeListener('SIGINT', stop);
      process.removeListener(DRAIN_SIGNAL, drain);
    };
  }

  forceKill(why: string): void {
    if (this.killed || this.finished) return;
    this.killed = true;
    this.log.warn(`${why}: killing the worker's process group`);
    this.worker.kill();
  }

  private async deliver(request: TerminationRequest): Promise<void> {
    const { protocol } = this.worker;
    if (protocol.speaksProtocol && !protocol.saidHello) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        protocol.initialized,
        this.worker.exited,
        new Promise(
          (resolve) => (timer = setTimeout(resolve, helloWaitMs(this.worker.gracePeriodSeconds, request.deadline))),
        ),
      ]);
      clearTimeout(timer);
    }
    if (this.finished) return;
    // The grace period counts from the moment the worker is told, not from
    // the request: a wait for hello must not eat into it.
    if (protocol.capable('graceful-termination')) {
      // Only a first request, or an escalation from finishing tasks to
      // stopping now, is worth sending; generic-worker honours only the first.
      if (this.sentFinishTasks === false || (this.sentFinishTasks === true && request.finishTasks)) return;
      if (this.sentFinishTasks === true && this.worker.honoursOnlyFirstTermination) {
        this.log.warn(
          `the worker acts only on its first termination request: it keeps finishing its tasks, although it should stop now (reason: ${request.reason}); a second SIGTERM to start-worker, or the grace period, kills it`,
        );
      }
      this.sentFinishTasks = request.finishTasks;
      this.onNotice(request);
      this.startGracePeriod();
      protocol.send({
        type: 'graceful-termination',
        'finish-tasks': request.finishTasks,
        reason: request.reason,
        ...(request.deadline ? { deadline: request.deadline.toISOString() } : {}),
      });
      this.log.info(`sent graceful-termination (finish-tasks: ${request.finishTasks}, reason: ${request.reason})`);
    } else if (!this.signalled) {
      this.signalled = true;
      this.onNotice(request);
      this.log.info(
        `worker does not accept graceful-termination; sending it ${this.worker.terminationSignal} (reason: ${request.reason})`,
      );
      this.worker.signal(this.worker.terminationSignal);
      this.startGracePeriod();
    }
  }

  private startGracePeriod(): void {
    const seconds = this.worker.gracePeriodSeconds;
    if (this.graceTimer !== undefined || seconds === undefined) return;
    this.graceTimer = setTimeout(
      () => this.forceKill(`the worker did not stop within its grace period of ${seconds}s`),
      seconds * 1000,
    );
    this.graceTimer.unref();
  }

  private dispose(): void {
    this.finished = true;
    clearTimeout(this.graceTimer);
    clearTimeout(this.shutdownTimer);
    this.removeSignalHandlers?.();
  }
}
