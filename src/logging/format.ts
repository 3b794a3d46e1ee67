import type { JsonObject, JsonValue } from '../json.js';

/**
 * Render a structured message as one line, as Taskcluster's worker-runner
 * does: a string `textPayload` first, then `key: value` pairs sorted by key
 * (JSON for non-string values), separated by "; ". Never empty.
 */
export function toUnstructured(message: JsonObject): string {
  const textPayload = message['textPayload'];
  const hasTextPayload = typeof textPayload === 'string';
  // most messages have one key besides textPayload: no array, no sort
  let only: string | undefined;
  let keys: string[] | undefined;
  for (const key in message) {
    if (hasTextPayload && key === 'textPayload') continue;
    if (only === undefined && keys === undefined) only = key;
    else (keys ??= [only!]).push(key);
  }
  let text = hasTextPayload ? textPayload : '';
  if (keys !== undefined) {
    keys.sort();
    for (const key of keys) text = withPair(text, key, message[key]);
  } else if (only !== undefined) {
    text = withPair(text, only, message[only]);
  }
  return text === '' ? '{}' : text;
}

function withPair(text: string, key: string, value: JsonValue | undefined): string {
  return `${text === '' ? '' : `${text}; `}${key}: ${typeof value === 'string' ? value : JSON.stringify(value)}`;
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
