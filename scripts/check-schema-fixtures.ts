/**
 * Compare our Taskcluster schema fixtures (test/fixtures/taskcluster-schemas.ts)
 * with the official API reference, so a change upstream does not go unnoticed
 * while the fake keeps validating against an old shape.
 *
 *   node dist/scripts/check-schema-fixtures.js [taskcluster-api-subset.json]
 *
 * The default path is ../shared/reference/taskcluster-api-subset.json beside
 * the repository. Exits 1 and lists the differences when there are any.
 * test/schema-fixtures.test.ts runs the same comparison under tap when
 * START_WORKER_TASKCLUSTER_REFERENCE names the file (.ci/run sets it).
 *
 * Prose (description, title, $comment, examples) and ids are not compared;
 * every other keyword is, at every depth, after resolving the reference's
 * $refs. `required` and `enum` are compared as sets.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { taskclusterCalls, taskclusterSchemas, type TaskclusterCall } from '../test/fixtures/taskcluster-schemas.js';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

/** The parts of the reference file this check reads. */
export interface TaskclusterReference {
  apis: Record<string, { entries: { name: string; method: string; route: string; input?: string; output?: string }[] }>;
  /** By `$id`, e.g. `/schemas/worker-manager/v1/register-worker-request.json#`. */
  schemas: Record<string, JsonObject>;
}

const PROSE = new Set(['description', 'title', '$comment', 'examples', '$id', '$schema']);
/** Keywords whose value is a map of name → schema. */
const SCHEMA_MAPS = new Set(['properties', 'patternProperties', 'definitions', '$defs', 'dependentSchemas']);
/** Keywords whose value is a schema (or, for some, a boolean). */
const SCHEMA_VALUES = new Set([
  'additionalProperties',
  'items',
  'additionalItems',
  'contains',
  'propertyNames',
  'not',
  'if',
  'then',
  'else',
]);
/** Keywords whose value is a list of schemas. */
const SCHEMA_LISTS = new Set(['oneOf', 'anyOf', 'allOf']);
/** Keywords whose value is a set. */
const SETS = new Set(['required', 'enum']);

const isObject = (value: unknown): value is JsonObject =>
  typeof value === 'object' && value !== null && !Array.isArray(value);
const show = (value: unknown): string => JSON.stringify(value);

/** The official `$id` of a fixture's short name. */
export const referenceId = (shortName: string): string => `/schemas/${shortName}#`;

/** Resolves the reference's $refs, which are relative to the `$id` of the schema they appear in. */
class RefResolver {
  constructor(private readonly schemas: Record<string, JsonObject>) {}

  /** The schema `ref` points to, from a schema whose document id is `base`; with that document's id. */
  resolve(ref: string, base: string): { schema: Json; base: string } {
    const url = new URL(ref, new URL(base, 'reference:/'));
    const documentId = `${url.pathname}#`;
    const document = this.schemas[documentId];
    if (document === undefined) throw new Error(`$ref ${ref} (from ${base}): no schema ${documentId} in the reference`);
    let target: Json = document;
    const pointer = decodeURIComponent(url.hash.replace(/^#/, ''));
    for (const token of pointer.split('/').slice(1)) {
      const key = token.replace(/~1/g, '/').replace(/~0/g, '~');
      const next: Json | undefined = isObject(target)
        ? target[key]
        : Array.isArray(target)
          ? target[Number(key)]
          : undefined;
      if (next === undefined) throw new Error(`$ref ${ref} (from ${base}): ${pointer} is not in ${documentId}`);
      target = next;
    }
    return { schema: target, base: documentId };
  }

  /** `schema` with every $ref replaced by what it points to (Taskcluster's refs have no siblings that matter). */
  inline(schema: Json, base: string, depth = 0): Json {
    if (depth > 50) throw new Error(`$refs nest deeper than 50 levels below ${base}: a cycle?`);
    if (Array.isArray(schema)) return schema.map((item) => this.inline(item, base, depth));
    if (!isObject(schema)) return schema;
    if (typeof schema['$ref'] === 'string') {
      const target = this.resolve(schema['$ref'], base);
      const { $ref: _ref, ...siblings } = schema;
      const inlined = this.inline(target.schema, target.base, depth + 1);
      return isObject(inlined) ? { ...inlined, ...siblings } : inlined;
    }
    const own = typeof schema['$id'] === 'string' ? schema['$id'] : base;
    return Object.fromEntries(Object.entries(schema).map(([key, value]) => [key, this.inline(value, own, depth)]));
  }
}

/** Differences between two schemas, as `path: what differs` lines. */
function compareSchemas(fixture: Json, reference: Json, path = ''): string[] {
  const at = path === '' ? '/' : path;
  if (typeof fixture === 'boolean' || typeof reference === 'boolean' || !isObject(fixture) || !isObject(reference)) {
    return show(fixture) === show(reference) ? [] : [`${at}: fixture ${show(fixture)}, reference ${show(reference)}`];
  }
  const differences: string[] = [];
  const keywords = new Set([...Object.keys(fixture), ...Object.keys(reference)].filter((k) => !PROSE.has(k)));
  for (const keyword of [...keywords].sort()) {
    const mine = fixture[keyword];
    const theirs = reference[keyword];
    const here = `${path}/${keyword}`;
    if (mine === undefined || theirs === undefined) {
      differences.push(
        mine === undefined
          ? `${here}: missing from the fixture (reference ${show(theirs)})`
          : `${here}: only in the fixture (${show(mine)})`,
      );
    } else if (SCHEMA_MAPS.has(keyword) && isObject(mine) && isObject(theirs)) {
      for (const name of [...new Set([...Object.keys(mine), ...Object.keys(theirs)])].sort()) {
        const entry = `${here}/${name}`;
        if (!(name in theirs)) differences.push(`${entry}: only in the fixture`);
        else if (!(name in mine))
          differences.push(`${entry}: missing from the fixture (reference ${show(theirs[name])})`);
        else differences.push(...compareSchemas(mine[name]!, theirs[name]!, entry));
      }
    } else if (SCHEMA_VALUES.has(keyword)) {
      differences.push(...compareSchemas(mine, theirs, here));
    } else if (SCHEMA_LISTS.has(keyword) && Array.isArray(mine) && Array.isArray(theirs)) {
      if (mine.length !== theirs.length)
        differences.push(`${here}: fixture has ${mine.length} schemas, reference ${theirs.length}`);
      else mine.forEach((item, i) => differences.push(...compareSchemas(item, theirs[i]!, `${here}/${i}`)));
    } else if (SETS.has(keyword) && Array.isArray(mine) && Array.isArray(theirs)) {
      const a = new Set(mine.map(show));
      const b = new Set(theirs.map(show));
      const onlyMine = [...a].filter((v) => !b.has(v));
      const onlyTheirs = [...b].filter((v) => !a.has(v));
      if (onlyMine.length > 0 || onlyTheirs.length > 0) {
        differences.push(
          `${here}: only in the fixture [${onlyMine.join(', ')}], only in the reference [${onlyTheirs.join(', ')}]`,
        );
      }
    } else if (show(mine) !== show(theirs)) {
      differences.push(`${here}: fixture ${show(mine)}, reference ${show(theirs)}`);
    }
  }
  return differences;
}

/** Short name of a schema the reference names relative to its service (`v1/secret.json#`). */
const shortName = (service: string, name: string | undefined): string | undefined =>
  name === undefined ? undefined : `${service}/${name.replace(/#$/, '')}`;

/** Every difference between our fixtures (and the calls that use them) and the reference. */
export function fixtureDifferences(
  reference: TaskclusterReference,
  fixtures: Record<string, unknown> = taskclusterSchemas,
  calls: Record<string, TaskclusterCall> = taskclusterCalls,
): string[] {
  const differences: string[] = [];
  for (const [route, call] of Object.entries(calls)) {
    const entry = reference.apis[call.service]?.entries.find((e) => e.name === call.name);
    if (entry === undefined) {
      differences.push(`${call.service}.${call.name}: not in the reference`);
      continue;
    }
    const expected = {
      method: entry.method,
      route: entry.route,
      input: shortName(call.service, entry.input),
      output: shortName(call.service, entry.output),
    };
    for (const key of ['method', 'route', 'input', 'output'] as const) {
      if (call[key] !== expected[key])
        differences.push(
          `${call.service}.${call.name} (the fake's ${route}): ${key} is ${show(call[key])} here, ${show(expected[key])} in the reference`,
        );
    }
    for (const schema of [call.input, call.output]) {
      if (schema !== undefined && !(schema in fixtures))
        differences.push(`${call.service}.${call.name}: no fixture ${schema}`);
    }
  }
  const resolver = new RefResolver(reference.schemas);
  for (const [name, fixture] of Object.entries(fixtures)) {
    const id = referenceId(name);
    const official = reference.schemas[id];
    if (official === undefined) {
      differences.push(`${name}: the reference has no schema ${id}`);
      continue;
    }
    try {
      differences.push(...compareSchemas(fixture as Json, resolver.inline(official, id)).map((d) => `${name} ${d}`));
    } catch (err) {
      differences.push(`${name}: ${(err as Error).message}`);
    }
  }
  return differences;
}

export function readReference(file: string): TaskclusterReference {
  return JSON.parse(readFileSync(file, 'utf8')) as TaskclusterReference;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
  const file = resolve(
    process.argv[2] ?? resolve(repoRoot, '..', 'shared', 'reference', 'taskcluster-api-subset.json'),
  );
  const differences = fixtureDifferences(readReference(file));
  if (differences.length === 0) {
    console.log(
      `${Object.keys(taskclusterSchemas).length} schema fixtures and ${Object.keys(taskclusterCalls).length} calls agree with ${file}`,
    );
  } else {
    console.log(`the schema fixtures differ from ${file}:\n${differences.map((d) => `  ${d}`).join('\n')}`);
    process.exitCode = 1;
  }
}
