import { fstatSync, writeSync } from 'node:fs';
import type { Writable } from 'node:stream';
import { isatty } from 'node:tty';

/**
 * Buffered writes to the runner's stderr. Worker output can arrive at
 * hundreds of thousands of lines a second, so lines are gathered and written
 * in batches once the current burst of input has been handled; runner
 * messages are rare and written at once, after anything already buffered.
 * A reader that falls behind is reported by behind(), so that the worker's
 * output can wait in its own pipe rather than here.
 */
export class StderrWriter {
  private pending = '';
  private scheduled = false;
  /** Set when the stream is a file (see fileDescriptor). */
  private fd: number | undefined;
  /** While the stream is behind: its catching up, shared by everyone who asks. */
  private caughtUp: Promise<void> | undefined;

  constructor(private readonly stream: Writable = process.stderr) {
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

  /**
   * When the stream holds more than its buffer because its reader is slow
   * (a pipe), a promise of its draining, or of its closing if the reader is
   * gone; otherwise undefined. A file or device is written synchronously
   * (writeSync, not through the stream), so it is never behind.
   */
  behind(): Promise<void> | undefined {
    if (!this.stream.writableNeedDrain) return undefined;
    return (this.caughtUp ??= new Promise((resolve) => {
      const done = (): void => {
        this.stream.off('drain', done);
        this.stream.off('close', done);
        this.caughtUp = undefined;
        resolve();
      };
      this.stream.on('drain', done);
      this.stream.on('close', done);
    }));
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
