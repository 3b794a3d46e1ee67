import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { updatedReadme } from '../scripts/generate-docs.js';
import { PluginRegistry } from '../src/registry.js';
import { repoRoot } from './helpers.js';

t.test('the README reference is what npm run docs generates', async (t) => {
  const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
  t.equal(readme, await updatedReadme(readme), 'run `npm run docs` and commit README.md');
});

t.test('every plugin is documented with its keys', async (t) => {
  const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
  const registry = new PluginRegistry();
  for (const { kind, plugin } of await registry.all()) {
    t.match(readme, plugin.usage.trim().split('\n')[0]!, `${kind} ${plugin.name} usage`);
    for (const key of Object.keys(plugin.schema.properties ?? {})) {
      const section = kind === 'provider' ? 'provider' : kind === 'worker' ? 'worker' : 'logging';
      t.match(readme, `\`${section}.${key}\``, `${kind} ${plugin.name} key ${key}`);
    }
  }
});
