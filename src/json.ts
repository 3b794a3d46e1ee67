export type JsonPrimitive = string | number | boolean | null;
export type JsonValue = JsonPrimitive | JsonValue[] | JsonObject;
export interface JsonObject {
  [key: string]: JsonValue;
}

/** True for a plain object (not an array, not null). */
export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Set an own property even when the key is `__proto__`, so data parsed from
 * YAML or JSON can never change an object's prototype.
 */
export function defineOwn(target: JsonObject, key: string, value: JsonValue): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

/**
 * An object of the entries that have a value: `undefined` and `''` are left
 * out. For metadata where a missing value (a private instance's public
 * address) means no key at all.
 */
export function presentEntries(entries: Record<string, string | undefined>): JsonObject {
  const result: JsonObject = {};
  for (const [key, value] of Object.entries(entries))
    if (value !== undefined && value !== '') defineOwn(result, key, value);
  return result;
}
