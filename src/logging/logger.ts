import type { JsonObject } from '../json.js';
import { Redactor } from './redact.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogSource = 'runner' | 'worker';

const LEVEL_RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/** Where log lines go. Everything handed to a destination is already redacted. */
export interface LogDestination {
  /** A runner message (text) or a worker message (structured, or `{textPayload}` for a plain line). */
  write(level: LogLevel, source: LogSource, message: string | JsonObject): void;
  /** One line the worker wrote on its stderr, without the newline. */
  writeWorkerStderr(line: string): void;
  /** Write out anything buffered. Called before the process exits. */
  flush(): void;
  /**
   * When the destination cannot keep up (its reader is slow), a promise of
   * its catching up; undefined when it can take more. A destination without
   * it is never behind.
   */
  behind?(): Promise<void> | undefined;
}

export interface LoggerOptions {
  /** The lowest level of the runner's own messages that is written. */
  level?: LogLevel;
  redactor?: Redactor;
}

/**
 * The runner's logger. It redacts every message and hands it to the
 * configured destination; the destination can be swapped once the runner
 * config has chosen one.
 */
export class Logger {
  readonly redactor: Redactor;
  private destination: LogDestination;
  private minRank: number;

  constructor(destination: LogDestination, options: LoggerOptions = {}) {
    this.destination = destination;
    this.redactor = options.redactor ?? new Redactor();
    this.minRank = LEVEL_RANK[options.level ?? 'info'];
  }

  setDestination(destination: LogDestination): void {
    this.destination.flush();
    this.destination = destination;
  }

  setLevel(level: LogLevel): void {
    this.minRank = LEVEL_RANK[level];
  }

  isEnabled(level: LogLevel): boolean {
    return LEVEL_RANK[level] >= this.minRank;
  }

  debug(message: string): void {
    this.runner('debug', message);
  }

  info(message: string): void {
    this.runner('info', message);
  }

  warn(message: string): void {
    this.runner('warn', message);
  }

  error(message: string): void {
    this.runner('error', message);
  }

  /**
   * A message from the worker: the body of a `log` message, or
   * `{textPayload}` for a line that was not a protocol message. Worker output
   * is the workload's own log, so it is forwarded whatever the runner's level.
   * `raw`, the text the message was parsed from, lets redaction check the
   * whole line at once (see Redactor.redactParsed).
   */
  worker(message: JsonObject, raw?: string): void {
    this.destination.write('info', 'worker', this.redactor.redactParsed(message, raw));
  }

  workerStderr(line: string): void {
    this.destination.writeWorkerStderr(this.redactor.redact(line));
  }

  flush(): void {
    this.destination.flush();
  }

  /** See LogDestination.behind: while it is, a child's output is left in its pipe. */
  behind(): Promise<void> | undefined {
    return this.destination.behind?.();
  }

  private runner(level: LogLevel, message: string): void {
    if (LEVEL_RANK[level] < this.minRank) return;
    this.destination.write(level, 'runner', this.redactor.redact(message));
  }
}
