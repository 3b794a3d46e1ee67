import { chmodSync, chownSync, lstatSync, symlinkSync, watch, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { readStateCache, writeStateCache } from '../src/state-cache.js';
import { emptyRunState, type RunState } from '../src/state.js';
import { tempDir } from './helpers.js';

function state(): RunState {
  return {
    ...emptyRunState({ setting: 1 }),
    rootUrl: 'https://tc.example.com',
    credentials: { clientId: 'c', accessToken: 'cached-access-token', certificate: '{"version":1}' },
    credentialsExpire: new Date(Date.now() + 3600_000).toISOString(),
    registrationSecret: 'r'.repeat(44),
    workerPoolId: 'p/w',
    workerGroup: 'g',
    workerId: 'i',
    providerId: 'prov',
    workerLocation: { cloud: 'aws' },
  };
}

t.test('the cache is written 0600 at every moment, even with a permissive umask, and read back', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'cache.json');
  const seen: { name: string; mode: number }[] = [];
  const watcher = watch(dir, (_event, name) => {
    if (!name) return;
    try {
      seen.push({ name, mode: lstatSync(join(dir, name)).mode & 0o777 });
    } catch {
      // renamed away already
    }
  });
  const written = state();
  const previousUmask = process.umask(0);
  try {
    for (let i = 0; i < 20; i++) await writeStateCache(path, written);
  } finally {
    process.umask(previousUmask);
  }
  await new Promise((resolve) => setTimeout(resolve, 100)); // let the last watch events arrive
  watcher.close();
  t.ok(seen.length > 0, 'the watcher saw the writes');
  t.same(
    seen.filter((s) => s.mode !== 0o600),
    [],
    'every file the watcher saw was 0600',
  );
  t.equal(lstatSync(path).mode & 0o777, 0o600);
  t.same(await readStateCache(path), written, 'read back as written, credentials included');
});

t.test('no cache file: undefined', async (t) => {
  t.equal(await readStateCache(join(tempDir(t), 'none.json')), undefined);
});

t.test('a cache others may read is refused and left as it is', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'cache.json');
  await writeStateCache(path, state());
  chmodSync(path, 0o644);
  await t.rejects(readStateCache(path), {
    message: /may be read or changed by group or others \(mode 0644\); refusing to use it/,
  });
  t.equal(lstatSync(path).mode & 0o777, 0o644, 'never loosened or tightened');
});

t.test(
  'a cache owned by another user is refused',
  { skip: process.getuid?.() !== 0 ? 'needs root to chown' : false },
  async (t) => {
    const dir = tempDir(t);
    const path = join(dir, 'cache.json');
    await writeStateCache(path, state());
    chownSync(path, 65534, 65534);
    await t.rejects(readStateCache(path), { message: /is owned by uid 65534, not by this user \(uid 0\)/ });
  },
);

t.test('a symbolic link is refused, never followed', async (t) => {
  const dir = tempDir(t);
  const real = join(dir, 'real.json');
  await writeStateCache(real, state());
  symlinkSync(real, join(dir, 'link.json'));
  await t.rejects(readStateCache(join(dir, 'link.json')), { message: /is not a regular file/ });
});

t.test('a corrupt or truncated cache is an error naming the file and the way out', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'cache.json');
  const full = JSON.stringify(state());
  for (const content of [
    full.slice(0, full.length / 2),
    '[]',
    '{"rootUrl": 5}',
    JSON.stringify({ ...state(), credentials: undefined }),
  ]) {
    writeFileSync(path, content, { mode: 0o600 });
    await t.rejects(readStateCache(path), {
      message: new RegExp(`^state cache ${path} is corrupt or truncated \\(.*\\); delete it to start a fresh run$`),
    });
  }
});

t.test("a cache written by Taskcluster's worker-runner is named as such, not as corrupt", async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'cache.json');
  // the shape of the Go runner's cached run.State: Go field names
  const goState = {
    RootURL: 'https://tc.example.com',
    Credentials: { ClientID: 'worker/x', AccessToken: 'go-access-token-0123456789', Certificate: '' },
    WorkerPoolID: 'proj/pool',
    WorkerGroup: 'g',
    WorkerID: 'w',
    WorkerConfig: {},
    Files: [],
  };
  writeFileSync(path, JSON.stringify(goState), { mode: 0o600 });
  await t.rejects(readStateCache(path), {
    message: `state cache ${path} was written by another runner version (Taskcluster's worker-runner); delete it, and start-worker starts a fresh run`,
  });
});
