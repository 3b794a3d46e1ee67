import type { JsonObject } from '../json.js';

/**
 * Render a structured message as one line, as Taskcluster's worker-runner
 * does: a string `textPayload` first, then `key: value` pairs sorted by key
 * (JSON for non-string values), separated by "; ". Never empty.
 */
export function toUnstructured(message: JsonObject): string {
  const textPayload = message['textPayload'];
  const hasTextPayload = typeof textPayload === 'string';
  const keys: string[] = [];
  for (const key in message) if (!(hasTextPayload && key === 'textPayload')) keys.push(key);
  if (keys.length > 1) keys.sort();
  let text = hasTextPayload ? textPayload : '';
  for (const key of keys) {
    const value = message[key];
    text += `${text === '' ? '' : '; '}${key}: ${typeof value === 'string' ? value : JSON.stringify(value)}`;
  }
  return text === '' ? '{}' : text;
}

let cachedTimestamp: string | undefined;

/**
 * ISO-8601 UTC timestamp of now. Lines handled in one burst of input share
 * one timestamp: reading the clock for each of hundreds of thousands of
 * lines a second costs more than the rest of their formatting.
 */
export function timestamp(): string {
  if (cachedTimestamp === undefined) {
    cachedTimestamp = new Date().toISOString();
    setImmediate(() => (cachedTimestamp = undefined));
  }
  return cachedTimestamp;
}
