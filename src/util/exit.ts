/** How long to wait for a reader of stdout or stderr that has stopped reading. */
const OUTPUT_WAIT_MS = 10_000;

/**
 * End the process once what it wrote to stdout and stderr has gone out. To
 * a pipe or a socket (journald, a parent reading the output) Node writes
 * asynchronously, and process.exit() drops whatever the reader has not taken
 * yet: the last lines, the ones that say why the worker stopped.
 */
export function exitWhenWritten(code: number, waitMs = OUTPUT_WAIT_MS): void {
  let unwritten = 2;
  const written = (): void => {
    unwritten -= 1;
    if (unwritten === 0) process.exit(code);
  };
  setTimeout(() => process.exit(code), waitMs);
  process.stdout.write('', written);
  process.stderr.write('', written);
}
