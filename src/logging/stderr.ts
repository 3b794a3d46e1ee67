import { fstatSync, writeSync } from 'node:fs';
import { isatty } from 'node:tty';

/**
 * Buffered writes to the runner's stderr. Worker output can arrive at
 * hundreds of thousands of lines a second, so lines are gathered and written
 * in batches once the current burst of input has been handled; runner
 * messages are rare and written at once, after anything already buffered.
 */
export class StderrWriter {
  private pending = '';
  private scheduled = false;
  /** Set when the stream is a file (see fileDescriptor). */
  private fd: number | undefined;

  constructor(private readonly stream: NodeJS.WritableStream = process.stderr) {
    this.fd = stream === process.stderr ? fileDescriptor(2) : undefined;
  }

  /** Queue text for the next batch. */
  queue(text: string): void {
    this.pending += text;
    if (this.pending.length >= 65536) {
      this.flush();
    } else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Write text now, after anything already queued. */
  writeNow(text: string): void {
    this.pending += text;
    this.flush();
  }

  flush(): void {
    this.scheduled = false;
    if (this.pending === '') return;
    const text = this.pending;
    this.pending = '';
    if (this.fd !== undefined) {
      try {
        writeSync(this.fd, text);
        return;
      } catch {
        // the stream reports the failure as it would have
        this.fd = undefined;
      }
    }
    this.stream.write(text);
  }
}

/**
 * The descriptor when it is a file or a device other than a terminal, which
 * Node writes synchronously anyway (its stream turns each string into a
 * Buffer first; writing the string itself costs a third less at a million
 * lines). A pipe, a socket or a terminal goes through the stream.
 */
function fileDescriptor(fd: number): number | undefined {
  try {
    const stat = fstatSync(fd);
    return stat.isFile() || (stat.isCharacterDevice() && !isatty(fd)) ? fd : undefined;
  } catch {
    return undefined;
  }
}
