import type { Logger } from '../logging/logger.js';
import { WorkerProtocol } from '../protocol/protocol.js';
import type { WorkerProcess, WorkerExit } from './types.js';

/** A worker that ran inside the runner and has already finished (the dummy worker). */
export function finishedWorker(exit: WorkerExit, log: Logger): WorkerProcess {
  const protocol = new WorkerProtocol({ log, toWorker: null, speaksProtocol: false });
  protocol.end();
  return {
    protocol,
    exited: Promise.resolve(exit),
    terminationSignal: 'SIGTERM',
    gracePeriodSeconds: undefined,
    honoursOnlyFirstTermination: false,
    signal() {},
    kill() {},
  };
}
