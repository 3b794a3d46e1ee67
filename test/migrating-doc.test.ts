import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { repoRoot } from './helpers.js';

const guidePath = join(repoRoot, 'docs', 'migrating.md');

/** Each difference the migration guide must keep covering, by a word it cannot do without. */
const TOPICS: [string, RegExp][] = [
  ['exit status', /exit status/i],
  ['removal on worker exit', /removeWorker|removes the\s+worker/i],
  ['default file mode 0600 and the mode key', /0600[\s\S]*`mode`/],
  ['relative paths refused', /relative (file )?paths? (are|is) refused/i],
  ['files carried in secrets', /files carried in secrets/i],
  ['stricter config', /stricter config/i],
  ['ISO-8601 timestamps', /ISO-8601/],
  ['over-long lines and worker.maxLineBytes', /over-long[\s\S]*worker\.maxLineBytes/i],
  ['messages without the agreed capability', /agreed capability/i],
  ['new-credentials without certificate', /new-credentials[\s\S]*certificate/],
  ['SIGTERM and SIGUSR2', /SIGTERM[\s\S]*SIGUSR2/],
  ["a Go runner's cache file", /cacheOverRestarts[\s\S]*cache file/],
  ['Windows', /Windows is not supported/],
  ['what stays the same', /^## What stays the same$/m],
];

t.test('the migration guide covers every difference', async (t) => {
  t.ok(existsSync(guidePath), 'docs/migrating.md exists');
  const guide = readFileSync(guidePath, 'utf8');
  for (const [topic, pattern] of TOPICS) t.match(guide, pattern, topic);
});

t.test('the README links to the migration guide', async (t) => {
  const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
  t.match(readme, '](docs/migrating.md)');
});
