import type { JsonObject } from '../json.js';
import { timestamp, toUnstructured } from './format.js';
import type { LogDestination, LogLevel, LogSource } from './logger.js';
import { StderrWriter } from './stderr.js';

const LEVEL_PREFIX: Record<LogLevel, string> = { debug: 'debug: ', info: '', warn: 'warning: ', error: 'error: ' };

/** Text lines on stderr, each prefixed with an ISO-8601 UTC timestamp. */
export class StdioDestination implements LogDestination {
  constructor(private readonly out = new StderrWriter()) {}

  write(level: LogLevel, source: LogSource, message: string | JsonObject): void {
    const text = typeof message === 'string' ? message : toUnstructured(message);
    const line = `${timestamp()} ${LEVEL_PREFIX[level]}${text}\n`;
    if (source === 'worker') this.out.queue(line);
    else this.out.writeNow(line);
  }

  /** The worker's stderr passes through unchanged (but redacted). */
  writeWorkerStderr(line: string): void {
    this.out.queue(`${line}\n`);
  }

  behind(): Promise<void> | undefined {
    return this.out.behind();
  }

  flush(): void {
    this.out.flush();
  }
}
