import type { JsonObject } from '../json.js';

/**
 * Render a structured message as one line, as Taskcluster's worker-runner
 * does: a string `textPayload` first, then `key: value` pairs sorted by key
 * (JSON for non-string values), separated by "; ". Never empty.
 */
export function toUnstructured(message: JsonObject): string {
  const textPayload = message['textPayload'];
  const hasTextPayload = typeof textPayload === 'string';
  const parts: string[] = hasTextPayload && textPayload !== '' ? [textPayload] : [];
  const keys = Object.keys(message)
    .filter((key) => !(hasTextPayload && key === 'textPayload'))
    .sort();
  for (const key of keys) {
    const value = message[key];
    parts.push(`${key}: ${typeof value === 'string' ? value : JSON.stringify(value)}`);
  }
  return parts.length === 0 ? '{}' : parts.join('; ');
}

let lastMillis = -1;
let lastTimestamp = '';

/** ISO-8601 UTC timestamp of now, computed at most once per millisecond. */
export function timestamp(): string {
  const now = Date.now();
  if (now !== lastMillis) {
    lastMillis = now;
    lastTimestamp = new Date(now).toISOString();
  }
  return lastTimestamp;
}
