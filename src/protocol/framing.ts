/** The default longest line (without its newline) accepted from a worker: 1 MiB. */
export const DEFAULT_MAX_LINE_BYTES = 1_048_576;

const NEWLINE = 0x0a;
const CARRIAGE_RETURN = 0x0d;

/**
 * Splits a byte stream into lines. A line longer than `maxLineBytes` is
 * dropped (reported once, with its length) and reading resumes after its
 * newline; at most `maxLineBytes` are ever buffered. A trailing `\r` is
 * removed, and a final line without a newline is delivered by `end()`.
 */
export class LineSplitter {
  private parts: Buffer[] = [];
  private partsLength = 0;
  /** Bytes of the current over-long line seen so far, or -1 when not discarding. */
  private discarding = -1;

  constructor(
    private readonly maxLineBytes: number,
    private readonly onLine: (line: string) => void,
    private readonly onOverlong: (bytes: number) => void,
  ) {}

  push(chunk: Buffer): void {
    let start = 0;
    while (start < chunk.length) {
      const newline = chunk.indexOf(NEWLINE, start);
      const end = newline === -1 ? chunk.length : newline;
      const length = end - start;
      if (this.discarding >= 0) {
        this.discarding += length;
      } else if (this.partsLength + length > this.maxLineBytes) {
        this.discarding = this.partsLength + length;
        this.parts = [];
        this.partsLength = 0;
      } else if (newline !== -1 && this.partsLength === 0) {
        // the common case: a whole line inside one chunk, no copying
        this.emit(chunk.subarray(start, end));
        start = newline + 1;
        continue;
      } else {
        this.parts.push(chunk.subarray(start, end));
        this.partsLength += length;
      }
      if (newline === -1) return;
      this.finishLine();
      start = newline + 1;
    }
  }

  /** The input has ended: deliver a final unterminated line. */
  end(): void {
    if (this.discarding >= 0 || this.parts.length > 0) this.finishLine();
  }

  private finishLine(): void {
    if (this.discarding >= 0) {
      this.onOverlong(this.discarding);
      this.discarding = -1;
      return;
    }
    const line = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.partsLength);
    this.parts = [];
    this.partsLength = 0;
    this.emit(line);
  }

  private emit(line: Buffer): void {
    const length = line.length > 0 && line[line.length - 1] === CARRIAGE_RETURN ? line.length - 1 : line.length;
    this.onLine(line.toString('utf8', 0, length));
  }
}
