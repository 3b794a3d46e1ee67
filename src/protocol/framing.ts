import type { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';

/** The default longest line (without its newline) accepted from a worker: 1 MiB. */
export const DEFAULT_MAX_LINE_BYTES = 1_048_576;

/** UTF-8 needs at most 3 bytes per UTF-16 code unit, so a short line needs no byte count. */
const MAX_UTF8_BYTES_PER_UNIT = 3;

/**
 * Splits a byte stream into lines (strings without the newline or a
 * trailing `\r`). Each chunk is decoded once and lines are sliced from it,
 * which keeps the hot path (hundreds of thousands of lines a second) cheap.
 * A line longer than `maxLineBytes` bytes is dropped (reported once, with
 * its length) and reading resumes after its newline; at most `maxLineBytes`
 * are ever buffered. A final line without a newline is delivered by `end()`.
 */
export class LineSplitter {
  private readonly decoder = new StringDecoder('utf8');
  private parts: string[] = [];
  private partsBytes = 0;
  /** Bytes of the current over-long line seen so far, or -1 when not discarding. */
  private discarding = -1;

  constructor(
    private readonly maxLineBytes: number,
    private readonly onLine: (line: string) => void,
    private readonly onOverlong: (bytes: number) => void,
  ) {}

  push(chunk: Buffer): void {
    this.split(this.decoder.write(chunk));
  }

  /** The input has ended: deliver a final unterminated line. */
  end(): void {
    this.split(this.decoder.end());
    if (this.discarding >= 0 || this.parts.length > 0) this.finishLine();
  }

  private split(text: string): void {
    let start = 0;
    while (start < text.length) {
      const newline = text.indexOf('\n', start);
      const end = newline === -1 ? text.length : newline;
      if (this.discarding >= 0) {
        this.discarding += Buffer.byteLength(text.slice(start, end));
      } else if (newline !== -1 && this.parts.length === 0) {
        // the common case: a whole line inside one chunk
        const line = text.slice(start, end);
        const bytes = line.length * MAX_UTF8_BYTES_PER_UNIT <= this.maxLineBytes ? 0 : Buffer.byteLength(line);
        if (bytes > this.maxLineBytes) this.onOverlong(bytes);
        else this.emit(line);
        start = newline + 1;
        continue;
      } else {
        const part = text.slice(start, end);
        this.partsBytes += Buffer.byteLength(part);
        if (this.partsBytes > this.maxLineBytes) {
          this.discarding = this.partsBytes;
          this.parts = [];
          this.partsBytes = 0;
        } else {
          this.parts.push(part);
        }
      }
      if (newline === -1) return;
      this.finishLine();
      start = newline + 1;
    }
  }

  private finishLine(): void {
    if (this.discarding >= 0) {
      this.onOverlong(this.discarding);
      this.discarding = -1;
      return;
    }
    const line = this.parts.length === 1 ? this.parts[0]! : this.parts.join('');
    this.parts = [];
    this.partsBytes = 0;
    this.emit(line);
  }

  private emit(line: string): void {
    this.onLine(line.charCodeAt(line.length - 1) === 13 /* \r */ ? line.slice(0, -1) : line);
  }
}

/** Split a stream into lines until it closes; resolves then, after the last line. */
export function readLines(
  stream: Readable,
  maxLineBytes: number,
  onLine: (line: string) => void,
  onOverlong: (bytes: number) => void,
): Promise<void> {
  const lines = new LineSplitter(maxLineBytes, onLine, onOverlong);
  stream.on('data', (chunk: Buffer) => lines.push(chunk));
  return new Promise((resolve) =>
    stream.once('close', () => {
      lines.end();
      resolve();
    }),
  );
}
