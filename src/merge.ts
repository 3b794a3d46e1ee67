import { StartWorkerError } from './errors.js';
import { defineOwn, isJsonObject, type JsonObject, type JsonValue } from './json.js';

/**
 * Merge worker configuration the way Taskcluster does: objects merge
 * recursively, arrays concatenate, any other value from `later` wins.
 * Neither input is modified.
 */
export function mergeConfig(earlier: JsonObject, later: JsonObject): JsonObject {
  return mergeValues(earlier, later) as JsonObject;
}

function mergeValues(earlier: JsonValue | undefined, later: JsonValue): JsonValue {
  if (isJsonObject(earlier) && isJsonObject(later)) {
    const result: JsonObject = {};
    for (const [key, value] of Object.entries(earlier)) defineOwn(result, key, value);
    for (const [key, value] of Object.entries(later)) {
      defineOwn(result, key, Object.hasOwn(earlier, key) ? mergeValues(earlier[key], value) : value);
    }
    return result;
  }
  if (Array.isArray(earlier) && Array.isArray(later)) return [...earlier, ...later];
  return later;
}

/**
 * The paths (as key lists) of the values `later` contributes when merged
 * onto `earlier`: whole replaced values, appended array items, and the leaves
 * of merged objects. Used to redact values that came from secrets.
 */
export function contributedPaths(earlier: JsonValue | undefined, later: JsonValue, prefix: string[] = []): string[][] {
  if (isJsonObject(earlier) && isJsonObject(later)) {
    return Object.entries(later).flatMap(([key, value]) =>
      contributedPaths(Object.hasOwn(earlier, key) ? earlier[key] : undefined, value, [...prefix, key]),
    );
  }
  if (Array.isArray(earlier) && Array.isArray(later)) {
    return later.map((_, index) => [...prefix, String(earlier.length + index)]);
  }
  return [prefix];
}

function splitPath(path: string): string[] {
  const keys = path.split('.');
  if (keys.some((key) => key === '')) {
    throw new StartWorkerError(`invalid configuration path '${path}': use dot-separated, non-empty keys such as a.b.c`);
  }
  return keys;
}

/**
 * Return a copy of `config` with `value` at the dotted `path`, creating
 * intermediate objects. Fails when a prefix of the path holds a non-object.
 */
export function setPath(config: JsonObject, path: string, value: JsonValue): JsonObject {
  const keys = splitPath(path);
  const setAt = (node: JsonObject, depth: number): JsonObject => {
    const copy: JsonObject = {};
    for (const [key, existing] of Object.entries(node)) defineOwn(copy, key, existing);
    const key = keys[depth]!;
    if (depth === keys.length - 1) {
      defineOwn(copy, key, value);
      return copy;
    }
    const child = Object.hasOwn(node, key) ? node[key] : {};
    if (!isJsonObject(child)) {
      const prefix = keys.slice(0, depth + 1).join('.');
      throw new StartWorkerError(`cannot set '${path}': '${prefix}' is ${describeValue(child)}, not an object`);
    }
    defineOwn(copy, key, setAt(child, depth + 1));
    return copy;
  };
  return setAt(config, 0);
}

/**
 * The value at the dotted `path`, or undefined when a key is missing.
 * Fails when a prefix of the path holds a non-object.
 */
export function getPath(config: JsonObject, path: string): JsonValue | undefined {
  const keys = splitPath(path);
  let node: JsonValue = config;
  for (const [depth, key] of keys.entries()) {
    if (!isJsonObject(node)) {
      const prefix = keys.slice(0, depth).join('.');
      throw new StartWorkerError(`cannot get '${path}': '${prefix}' is ${describeValue(node)}, not an object`);
    }
    if (!Object.hasOwn(node, key)) return undefined;
    node = node[key]!;
  }
  return node;
}

function describeValue(value: JsonValue | undefined): string {
  if (Array.isArray(value)) return 'an array';
  if (value === null) return 'null';
  return `a ${typeof value}`;
}
