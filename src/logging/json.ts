import type { JsonObject } from '../json.js';
import { timestamp } from './format.js';
import type { LogDestination, LogLevel, LogSource } from './logger.js';
import { StderrWriter } from './stderr.js';

const LEVELS = new Set(['debug', 'info', 'warn', 'error']);

/**
 * One JSON object per line on stderr, ready for cloud log agents: `time`,
 * `level`, `source` and the message (`textPayload` for text), plus the fields
 * of structured worker messages. The worker's stderr is wrapped too, so
 * every line parses.
 */
export class JsonDestination implements LogDestination {
  constructor(private readonly out = new StderrWriter()) {}

  write(level: LogLevel, source: LogSource, message: string | JsonObject): void {
    if (typeof message === 'string') {
      const line = `${JSON.stringify({ time: timestamp(), level, source, textPayload: message })}\n`;
      if (source === 'worker') this.out.queue(line);
      else this.out.writeNow(line);
      return;
    }
    // A worker may say how severe its message is; anything else is info.
    const workerLevel = typeof message['level'] === 'string' && LEVELS.has(message['level']) ? message['level'] : level;
    this.out.queue(`${JSON.stringify({ ...message, time: timestamp(), level: workerLevel, source })}\n`);
  }

  writeWorkerStderr(line: string): void {
    this.out.queue(
      `${JSON.stringify({ time: timestamp(), level: 'info', source: 'worker', stream: 'stderr', textPayload: line })}\n`,
    );
  }

  behind(): Promise<void> | undefined {
    return this.out.behind();
  }

  flush(): void {
    this.out.flush();
  }
}
