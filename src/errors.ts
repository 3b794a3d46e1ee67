/**
 * An error an operator can act on: what failed, where, and what to try.
 * The CLI prints its message as one line (the stack only with --verbose).
 */
export class StartWorkerError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StartWorkerError';
  }
}

/** The message of anything thrown, without assuming it is an Error. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
