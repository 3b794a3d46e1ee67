/**
 * Buffered writes to the runner's stderr. Worker output can arrive at
 * hundreds of thousands of lines a second, so lines are gathered and written
 * in batches once the current burst of input has been handled; runner
 * messages are rare and written at once, after anything already buffered.
 */
export class StderrWriter {
  private pending = '';
  private scheduled = false;

  constructor(private readonly stream: NodeJS.WritableStream = process.stderr) {}

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
    this.stream.write(text);
  }
}
