import type { WorkerProtocol } from '../protocol/protocol.js';

/** How the worker process ended. */
export interface WorkerExit {
  /** The exit code, or null when the process died of a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** What a worker implementation asks the supervisor to run. */
export interface WorkerLaunch {
  file: string;
  args: string[];
  /** Added to the runner's environment. */
  env?: Record<string, string>;
  /** Variables of the runner's environment the worker must not inherit. */
  removeEnv?: string[];
  cwd?: string;
  /** Whether the worker speaks the protocol on stdin/stdout (default true). */
  protocol?: boolean;
  /** Sent to the worker when it must stop and cannot be told by a message (default SIGTERM). */
  terminationSignal?: NodeJS.Signals;
  /** Seconds a stopping worker gets before its process group is killed; undefined for no limit. */
  gracePeriodSeconds?: number;
  /**
   * The worker acts on its first graceful-termination only (generic-worker):
   * a later "stop now" after "finish your tasks" is sent, but has no effect.
   */
  honoursOnlyFirstTermination?: boolean;
}

/** A started worker, as the run sequence supervises it. */
export interface WorkerProcess {
  readonly protocol: WorkerProtocol;
  /** Resolves when the worker has exited and its output has been read to the end. */
  readonly exited: Promise<WorkerExit>;
  readonly terminationSignal: NodeJS.Signals;
  readonly gracePeriodSeconds: number | undefined;
  readonly honoursOnlyFirstTermination: boolean;
  /** Send a signal to the worker process. */
  signal(signal: NodeJS.Signals): void;
  /** Kill the worker's whole process group with SIGKILL. */
  kill(): void;
}

export type WorkerSpawner = (launch: WorkerLaunch) => Promise<WorkerProcess>;
