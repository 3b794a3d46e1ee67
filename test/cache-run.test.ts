import { chmodSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parse } from 'yaml';
import { leakedSecrets, runCli, standaloneProvider, tempDir, writeConfig } from './helpers.js';

t.test('standalone: the first run caches the state; a restart continues it without configuring again', async (t) => {
  const dir = tempDir(t);
  const cache = join(dir, 'state.json');
  const first = await runCli([
    writeConfig(dir, {
      provider: standaloneProvider(),
      worker: { implementation: 'dummy' },
      getSecrets: false,
      cacheOverRestarts: cache,
      workerConfig: { generation: 1 },
    }),
  ]);
  t.equal(first.code, 0, first.stderr);
  t.equal(statSync(cache).mode & 0o777, 0o600);
  const cached = JSON.parse(readFileSync(cache, 'utf8')) as {
    credentials: { accessToken: string };
    workerConfig: unknown;
  };
  t.equal(cached.credentials.accessToken, 'SECRET-access-token-0123456789', 'the cache holds the credentials');
  t.same(cached.workerConfig, { generation: 1 });

  // The config changes, but a restart continues the cached run.
  const second = await runCli([
    writeConfig(dir, {
      provider: standaloneProvider(),
      worker: { implementation: 'dummy' },
      getSecrets: false,
      cacheOverRestarts: cache,
      workerConfig: { generation: 2 },
    }),
  ]);
  t.equal(second.code, 0, second.stderr);
  t.match(second.stderr, `continuing the run cached in ${cache}`);
  t.notMatch(second.stderr, 'configuring with provider');
  t.same((parse(second.stdout) as { workerConfig: unknown }).workerConfig, { generation: 1 });
  t.same(
    leakedSecrets(first.stdout + first.stderr + second.stdout + second.stderr, ['SECRET-access-token-0123456789']),
    [],
  );
});

t.test('a cache others may read stops startup and is left alone', async (t) => {
  const dir = tempDir(t);
  const cache = join(dir, 'state.json');
  const config = writeConfig(dir, {
    provider: standaloneProvider(),
    worker: { implementation: 'dummy' },
    getSecrets: false,
    cacheOverRestarts: cache,
  });
  t.equal((await runCli([config])).code, 0);
  chmodSync(cache, 0o644);
  const result = await runCli([config]);
  t.equal(result.code, 1);
  t.match(
    result.stderr,
    /state cache .*state\.json may be read or changed by group or others \(mode 0644\); refusing to use it/,
  );
  t.equal(statSync(cache).mode & 0o777, 0o644);
});
