import type { JsonObject } from '../src/json.js';
import { Logger, type LogDestination, type LogLevel, type LogSource } from '../src/logging/logger.js';

export interface CapturedRecord {
  level: LogLevel;
  source: LogSource | 'stderr';
  message: string | JsonObject;
}

/** A real Logger whose destination keeps every record, for assertions. */
export function captureLogger(): { log: Logger; records: CapturedRecord[] } {
  const records: CapturedRecord[] = [];
  const destination: LogDestination = {
    write: (level, source, message) => records.push({ level, source, message }),
    writeWorkerStderr: (line) => records.push({ level: 'info', source: 'stderr', message: line }),
    flush: () => undefined,
  };
  return { log: new Logger(destination, { level: 'debug' }), records };
}
