import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { cleanEnv, repoRoot, standaloneProvider, tempDir, writeConfig } from './helpers.js';

const binary = join(repoRoot, 'dist', 'start-worker');
const version = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;

t.test('the single executable runs without node_modules beside it', { skip: existsSync(binary) ? false : 'not built; run npm run build:binary' }, async (t) => {
  // A directory of its own, far from the repository's node_modules.
  const dir = tempDir(t);
  const copy = join(dir, 'start-worker');
  copyFileSync(binary, copy);
  const run = (args: string[]) => spawnSync(copy, args, { cwd: dir, env: cleanEnv({ NODE_PATH: undefined }), encoding: 'utf8', timeout: 60_000 });

  t.equal(run(['--version']).stdout, `start-worker ${version}\n`);
  const example = writeConfig(dir, readFileSync(join(repoRoot, 'examples', 'standalone-dummy.yaml'), 'utf8'), { name: 'example.yaml' });
  const result = run([example]);
  t.equal(result.status, 0, result.stderr);
  t.match(result.stdout, /workerId: example-1/);
  t.match(result.stdout, /accessToken: <redacted>/);

  const command = writeConfig(dir, {
    provider: standaloneProvider(),
    worker: { implementation: 'command', command: ['/bin/echo', 'hello from a worker'], passCredentials: 'none' },
    getSecrets: false,
  });
  const worker = run([command]);
  t.equal(worker.status, 0, worker.stderr);
  t.match(worker.stderr, /Z hello from a worker\n/);
  t.equal(run(['validate', command]).stdout, 'ok\n');
});
