/** `--override KEY=VALUE`: set dotted paths of the runner config before it is validated. */
import { parse } from 'yaml';
import { StartWorkerError, errorMessage } from '../errors.js';
import { isJsonObject, type JsonObject, type JsonValue } from '../json.js';
import { setPath } from '../merge.js';

export interface Override {
  path: string;
  value: JsonValue;
}

/** `a.b=VALUE`, VALUE parsed as a YAML scalar (`true`, `5`, `null`, text); an empty VALUE is an empty string. */
export function parseOverride(text: string): Override {
  const equals = text.indexOf('=');
  if (equals <= 0)
    throw new StartWorkerError(
      `--override ${JSON.stringify(text)}: expected KEY=VALUE, such as worker.path=/opt/generic-worker`,
    );
  const path = text.slice(0, equals);
  const raw = text.slice(equals + 1);
  let value: unknown;
  try {
    value = raw === '' ? '' : parse(raw);
  } catch (err) {
    throw new StartWorkerError(`--override ${path}: ${errorMessage(err)}`);
  }
  if (typeof value === 'object' && value !== null) {
    throw new StartWorkerError(
      `--override ${path}: the value must be a single value (a string, number, boolean or null), not a list or mapping`,
    );
  }
  if (typeof value === 'number' && !Number.isFinite(value)) value = raw;
  return { path, value: value as JsonValue };
}

/** Apply overrides in order; a missing section is created, a path through a non-object is an error. */
export function applyOverrides(config: JsonValue, overrides: Override[]): JsonValue {
  if (overrides.length === 0) return config;
  let result: JsonObject = isJsonObject(config) ? config : {};
  for (const { path, value } of overrides) {
    try {
      result = setPath(result, path, value);
    } catch (err) {
      throw new StartWorkerError(`--override ${path}: ${errorMessage(err)}`);
    }
  }
  return result;
}
