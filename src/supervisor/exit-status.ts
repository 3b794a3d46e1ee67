import { constants } from 'node:os';
import type { WorkerExit } from './types.js';

/** The exit status the runner reports for a worker exit: its code, or 128+N for signal N. */
export function exitStatusCode(exit: WorkerExit): number {
  if (exit.code !== null) return exit.code;
  const number = exit.signal === null ? undefined : constants.signals[exit.signal];
  return 128 + (number ?? 0);
}
