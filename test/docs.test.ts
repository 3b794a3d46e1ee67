import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { updatedReadme } from '../scripts/generate-docs.js';
import { coreSchema } from '../src/config/core-schema.js';
import { schemaKeys } from '../src/docs.js';
import { builtinRegistry } from '../builtins.js';
import { COMMON_WORKER_PROPERTIES, PLUGIN_SECTIONS } from '../src/registry.js';
import type { JsonSchema } from '../src/schema.js';
import { repoRoot } from './helpers.js';

t.test('the README reference is what npm run docs generates', async (t) => {
  const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
  t.equal(readme, await updatedReadme(readme), 'run `npm run docs` and commit README.md');
});

t.test('every plugin is documented with its keys', async (t) => {
  const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
  const registry = builtinRegistry();
  for (const { kind, plugin } of await registry.all()) {
    t.match(readme, plugin.usage.trim().split('\n')[0]!, `${kind} ${plugin.name} usage`);
    for (const key of Object.keys(plugin.schema.properties ?? {})) {
      const section = kind === 'provider' ? 'provider' : kind === 'worker' ? 'worker' : 'logging';
      t.match(readme, `\`${section}.${key}\``, `${kind} ${plugin.name} key ${key}`);
    }
  }
});

t.test(
  'the reference is complete: every key of every schema, nested ones too, with its type and a description',
  async (t) => {
    const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
    const registry = builtinRegistry();
    const schemas: [string, JsonSchema, string][] = [
      ['core', coreSchema, ''],
      ['every worker', { properties: COMMON_WORKER_PROPERTIES }, 'worker.'],
    ];
    for (const { kind, plugin } of await registry.all())
      schemas.push([`${kind} ${plugin.name}`, plugin.schema, `${PLUGIN_SECTIONS[kind].section}.`]);
    let keys = 0;
    for (const [what, schema, prefix] of schemas) {
      for (const { path, property } of schemaKeys(schema, prefix)) {
        keys += 1;
        const row = readme.split('\n').find((line) => line.startsWith(`| \`${path}\` | `));
        if (!row) {
          t.fail(`${what}: ${path} is not in the README reference`);
          continue;
        }
        const [, , type, , , description] = row.split(/(?<!\\)\|/).map((cell) => cell.trim());
        t.ok(type !== '' && type !== 'any', `${what}: ${path} has a type (${type})`);
        t.ok((description ?? '') !== '' || property.description !== undefined, `${what}: ${path} has a description`);
      }
    }
    t.ok(keys > 70, `${keys} keys checked`);
    for (const nested of [
      'secrets[].secretId',
      'secrets[].source',
      'fileLimits.maxZipBytes',
      'hooks.pre-start',
      'plugins',
      'startupRetryWindow',
    ]) {
      t.match(readme, `| \`${nested}\` |`, nested);
    }
  },
);
