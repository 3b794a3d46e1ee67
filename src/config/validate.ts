import type { ErrorObject } from 'ajv';
import { isJsonObject, type JsonObject, type JsonValue } from '../json.js';
import { PLUGIN_SECTIONS, sectionSchema, type PluginKind, type PluginRegistry } from '../registry.js';
import type { JsonSchema } from '../schema.js';
import { closest } from '../util/closest.js';
import { coreSchema } from './core-schema.js';
import { validatorFor } from './validators.js';
import type { RunnerConfig } from './types.js';

export interface ValidationResult {
  /** The config with defaults filled in, when there were no problems. */
  config?: RunnerConfig;
  /** Each problem as `path: what is wrong`. */
  problems: string[];
  /** Unknown keys and the like: reported, not fatal. */
  warnings: string[];
}

const PLUGIN_KINDS: PluginKind[] = ['provider', 'worker', 'logging'];

/**
 * Validate a parsed runner config against the core schema and the schema of
 * each plugin it selects. Nothing here touches the network or the disk.
 */
export async function validateRunnerConfig(raw: JsonValue, registry: PluginRegistry): Promise<ValidationResult> {
  if (!isJsonObject(raw)) {
    return { problems: ['the top level must be a mapping of keys to values'], warnings: [] };
  }
  // Defaults are filled in place, so work on a copy.
  const data = structuredClone(raw);
  const warnings = unknownKeys(coreSchema, data, []);
  const problems = await check('core', coreSchema, data, []);

  for (const kind of PLUGIN_KINDS) {
    const { section: sectionName, selector } = PLUGIN_SECTIONS[kind];
    const section = data[sectionName];
    if (!isJsonObject(section) || typeof section[selector] !== 'string') continue; // reported above
    const name = section[selector];
    if (!registry.has(kind, name)) {
      problems.push(registry.unknownMessage(kind, name));
      continue;
    }
    const plugin = await registry.get(kind, name);
    const schema = sectionSchema(kind, plugin);
    warnings.push(...unknownKeys(schema, section, [sectionName]));
    const key = registry.isBuiltin(kind, name) ? validatorKey(kind, name) : `external:${kind}:${name}`;
    const sectionProblems = await check(key, schema, section, [sectionName]);
    // A plugin's own checks assume its section has the right shape.
    if (sectionProblems.length === 0 && plugin.check) sectionProblems.push(...plugin.check(section as never, data));
    problems.push(...sectionProblems);
  }

  if (problems.length > 0) return { problems, warnings };
  return { config: data as unknown as RunnerConfig, problems, warnings };
}

/** The name of a built-in section's precompiled validator. */
export function validatorKey(kind: PluginKind, name: string): string {
  return `${kind}:${name}`;
}

async function check(key: string, schema: JsonSchema, data: JsonObject, path: string[]): Promise<string[]> {
  const validate = await validatorFor(key, schema);
  if (validate(data)) return [];
  const errors = validate.errors ?? [];
  // A value matching none of several forms: one line naming the forms, not one per failed branch.
  const alternatives = errors.filter((e) => e.keyword === 'anyOf' || e.keyword === 'oneOf');
  const within = (e: ErrorObject, a: ErrorObject) =>
    e !== a && e.schemaPath.startsWith(a.schemaPath.replace(/\/(anyOf|oneOf)$/, '/'));
  return errors
    .filter((e) => !alternatives.some((a) => within(e, a)))
    .map((e) => (alternatives.includes(e) ? describeAlternatives(e, schema, path) : describeError(e, path)));
}

function describeAlternatives(error: ErrorObject, schema: JsonSchema, prefix: string[]): string {
  const node = error.schemaPath
    .replace(/^#\//, '')
    .split('/')
    .slice(0, -1)
    .reduce<unknown>(
      (at, segment) => (at as Record<string, unknown> | undefined)?.[segment.replace(/~1/g, '/').replace(/~0/g, '~')],
      schema,
    ) as JsonSchema | undefined;
  const path = formatPath([...prefix, ...instanceSegments(error)]) || '(top level)';
  return `${path}: must be ${node?.description ?? 'one of the allowed forms'}`;
}

function instanceSegments(error: ErrorObject): string[] {
  return error.instancePath
    .split('/')
    .slice(1)
    .map((segment) => segment.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function describeError(error: ErrorObject, prefix: string[]): string {
  const path = [...prefix, ...instanceSegments(error)];
  const at = (segments: string[]) => formatPath(segments) || '(top level)';
  const params = error.params as Record<string, unknown>;
  switch (error.keyword) {
    case 'required':
      return `${at([...path, String(params['missingProperty'])])}: required`;
    case 'type': {
      const type = String(params['type']);
      return `${at(path)}: must be ${/^[aeiou]/.test(type) ? 'an' : 'a'} ${type.replace(',', ' or ')}`;
    }
    case 'const':
      return `${at(path)}: must be ${JSON.stringify(params['allowedValue'])}`;
    case 'enum':
      return `${at(path)}: must be one of ${(params['allowedValues'] as JsonValue[]).map((v) => JSON.stringify(v)).join(', ')}`;
    default:
      return `${at(path)}: ${error.message ?? 'is invalid'}`;
  }
}

/** `a.b[0].c` from path segments. */
export function formatPath(segments: string[]): string {
  return segments.reduce(
    (text, segment) => (/^\d+$/.test(segment) ? `${text}[${segment}]` : text ? `${text}.${segment}` : segment),
    '',
  );
}

/**
 * Keys the schema does not know, each with the closest known key. Existing
 * Taskcluster configs carry stray keys, so these are warnings, not errors.
 * A schema with `additionalProperties` expects free-form keys.
 */
function unknownKeys(schema: JsonSchema, value: JsonValue | undefined, path: string[]): string[] {
  const warnings: string[] = [];
  if (isJsonObject(value) && schema.properties !== undefined) {
    const known = Object.keys(schema.properties);
    for (const [key, child] of Object.entries(value)) {
      const childSchema = Object.hasOwn(schema.properties, key) ? schema.properties[key] : undefined;
      if (childSchema !== undefined) {
        warnings.push(...unknownKeys(childSchema, child, [...path, key]));
      } else if (schema.additionalProperties === undefined) {
        const suggestion = closest(key, known);
        const hint = suggestion === undefined ? '' : ` (closest known key: ${formatPath([...path, suggestion])})`;
        warnings.push(`${formatPath([...path, key])}: unknown key, ignored${hint}`);
      }
    }
  } else if (Array.isArray(value) && schema.items !== undefined) {
    value.forEach((item, index) => warnings.push(...unknownKeys(schema.items!, item, [...path, String(index)])));
  }
  return warnings;
}
