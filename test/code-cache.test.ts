/**
 * bin/start-worker's code cache (src/code-cache.cts): made after startup,
 * used from the next start on, never trusted from a directory others can
 * write, and never a reason for a run to fail.
 */
import { chmodSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Script } from 'node:vm';
import t, { type Test } from 'tap';
import {
  fakeWorkerSection,
  recordingShutdown,
  repoRoot,
  runCli,
  standaloneProvider,
  startCli,
  tempDir,
  waitFor,
  writeConfig,
} from './helpers.js';

const example = join(repoRoot, 'examples', 'standalone-dummy.yaml');
const mainBundle = join(repoRoot, 'dist', 'bundle', 'start-worker.cjs');

/** The example, run with this cache setting; it must succeed as it always does. */
async function runExample(t: Test, env: Record<string, string | undefined>): Promise<void> {
  const result = await runCli([example], { env });
  t.equal(result.code, 0, `the example ran (stderr: ${result.stderr})`);
  t.match(result.stdout, /workerId: example-1/);
  t.notMatch(result.stderr, /\(node:\d+\)|ExperimentalWarning/, 'no Node warning');
}

const cacheFiles = (dir: string) => readdirSync(dir).filter((name) => name.endsWith('.cache'));

t.test('the first run writes the cache once its worker has started; the next run uses it as it is', async (t) => {
  const dir = join(tempDir(t), 'cache');
  await runExample(t, { START_WORKER_CODE_CACHE: dir });
  t.equal(statSync(dir).mode & 0o777, 0o700, 'the directory is the user’s alone');
  const [file] = cacheFiles(dir);
  t.same(cacheFiles(dir), [file], 'one cache file, for the main bundle');
  t.match(
    file,
    new RegExp(
      `^start-worker\\.cjs\\.\\d+-[0-9a-f]+\\.${process.version.replace(/\./g, '\\.')}-${process.arch}-[0-9a-f]+\\.cache$`,
    ),
  );
  const first = statSync(join(dir, file!));
  t.equal(first.mode & 0o777, 0o600, 'the cache file is the user’s alone');

  // Made after startup, it holds the functions startup compiled, not just the top level a
  // cache made at compile time (Node's own compile cache) holds.
  const source = readFileSync(mainBundle, 'utf8');
  const topLevelOnly = new Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, {
    filename: mainBundle,
  }).createCachedData().length;
  t.ok(first.size > 2 * topLevelOnly, `the cache (${first.size} B) is far more than the top level (${topLevelOnly} B)`);

  await runExample(t, { START_WORKER_CODE_CACHE: dir });
  const second = statSync(join(dir, file!));
  // A cache V8 rejected would have been written again (a new file renamed over it).
  t.equal(second.ino, first.ino, 'the second run accepted the cache: the file was not replaced');
  t.equal(second.mtimeMs, first.mtimeMs);
});

t.test('a damaged cache is replaced by a good one, and the run is not harmed', async (t) => {
  const dir = join(tempDir(t), 'cache');
  await runExample(t, { START_WORKER_CODE_CACHE: dir });
  const [file] = cacheFiles(dir);
  const path = join(dir, file!);
  const size = statSync(path).size;
  const garbage = Buffer.alloc(size, 0x5a);
  writeFileSync(path, garbage, { mode: 0o600 });
  await runExample(t, { START_WORKER_CODE_CACHE: dir });
  t.notOk(readFileSync(path).equals(garbage), 'rewritten');
  const ino = statSync(path).ino;
  await runExample(t, { START_WORKER_CODE_CACHE: dir });
  t.equal(statSync(path).ino, ino, 'and the rewritten cache is accepted');

  writeFileSync(path, 'short', { mode: 0o600 });
  await runExample(t, { START_WORKER_CODE_CACHE: dir });
  t.ok(statSync(path).size > 1000, 'a truncated cache is replaced too');
});

t.test('a directory others can write to, or of another user, is not used', async (t) => {
  const open = join(tempDir(t), 'open');
  mkdirSync(open);
  chmodSync(open, 0o777);
  await runExample(t, { START_WORKER_CODE_CACHE: open });
  t.same(readdirSync(open), [], 'nothing read or written in a world-writable directory');

  const groupWritable = join(tempDir(t), 'group');
  mkdirSync(groupWritable, { mode: 0o770 });
  chmodSync(groupWritable, 0o770);
  await runExample(t, { START_WORKER_CODE_CACHE: groupWritable });
  t.same(readdirSync(groupWritable), [], 'nor in a group-writable one');

  if (process.getuid?.() === 0) {
    const theirs = join(tempDir(t), 'theirs');
    mkdirSync(theirs, { mode: 0o700 });
    const { chownSync } = await import('node:fs');
    chownSync(theirs, 65534, 65534);
    await runExample(t, { START_WORKER_CODE_CACHE: theirs });
    t.same(readdirSync(theirs), [], 'nor in a directory of another user');
  }
});

t.test('off, a directory that cannot be made, or a read-only one: a run as usual, without a cache', async (t) => {
  const tmp = tempDir(t);
  await runExample(t, { START_WORKER_CODE_CACHE: 'off', TMPDIR: tmp });
  await runExample(t, { NODE_DISABLE_COMPILE_CACHE: '1', TMPDIR: tmp });
  t.same(readdirSync(tmp), [], 'off (or NODE_DISABLE_COMPILE_CACHE=1): nothing in the temporary directory');

  await runExample(t, { TMPDIR: tmp });
  t.same(readdirSync(tmp), [`start-worker-code-cache-${process.getuid?.() ?? -1}`], 'by default: one per user');
  t.equal(cacheFiles(join(tmp, readdirSync(tmp)[0]!)).length, 1);

  const file = join(tmp, 'a-file');
  writeFileSync(file, '');
  await runExample(t, { START_WORKER_CODE_CACHE: join(file, 'cache') });

  if (process.getuid?.() !== 0) {
    // root writes anyway
    const readOnly = join(tmp, 'read-only');
    mkdirSync(readOnly, { mode: 0o500 });
    await runExample(t, { START_WORKER_CODE_CACHE: readOnly });
    t.same(readdirSync(readOnly), []);
  }
});

t.test('a symbolic link is followed where the operator set it, not where anyone could have made it', async (t) => {
  const tmp = tempDir(t);
  const target = join(tmp, 'target');
  mkdirSync(target, { mode: 0o700 });
  const link = join(tmp, 'link');
  symlinkSync(target, link);
  await runExample(t, { START_WORKER_CODE_CACHE: link });
  t.equal(cacheFiles(target).length, 1, 'START_WORKER_CODE_CACHE may be a link to a directory');

  const otherTarget = join(tmp, 'other-target');
  mkdirSync(otherTarget, { mode: 0o700 });
  const fakeTmp = join(tmp, 'tmp');
  mkdirSync(fakeTmp);
  symlinkSync(otherTarget, join(fakeTmp, `start-worker-code-cache-${process.getuid?.() ?? -1}`));
  await runExample(t, { TMPDIR: fakeTmp });
  t.same(readdirSync(otherTarget), [], 'the default directory in the temporary directory may not');
});

t.test("a new cache replaces an older bundle's on the same runtime, and leaves other runtimes' alone", async (t) => {
  const dir = join(tempDir(t), 'cache');
  await runExample(t, { START_WORKER_CODE_CACHE: dir });
  const [file] = cacheFiles(dir);
  const runtime = file!.split('.').slice(3, -1).join('.'); // v20.20.2-x64-<tag>
  const older = `start-worker.cjs.1234-abcdef.${runtime}.cache`;
  const otherRuntime = 'start-worker.cjs.1234-abcdef.v99.0.0-x64-0.cache';
  const unrelated = `taskcluster-client.cjs.1234-abcdef.${runtime}.cache`;
  for (const name of [older, otherRuntime, unrelated]) writeFileSync(join(dir, name), 'x');
  writeFileSync(join(dir, file!), 'damaged'); // so this run writes its cache again
  await runExample(t, { START_WORKER_CODE_CACHE: dir });
  t.same(cacheFiles(dir).sort(), [file, otherRuntime, unrelated].sort());
});

t.test('a run that started from the cache of a run that did less replaces it, once its worker is busy', async (t) => {
  const tmp = tempDir(t);
  const dir = join(tmp, 'cache');
  await runExample(t, { START_WORKER_CODE_CACHE: dir });
  const [file] = cacheFiles(dir);
  const fromExample = statSync(join(dir, file!));

  // A command worker: this run also compiles the supervisor and the protocol, some seconds in.
  const shutdown = recordingShutdown(tmp);
  const config = writeConfig(tmp, {
    provider: standaloneProvider(),
    worker: fakeWorkerSection(),
    workerConfig: {},
    getSecrets: false,
    shutdownCommand: shutdown.command,
  });
  const run = startCli([config], {
    t,
    env: {
      START_WORKER_CODE_CACHE: dir,
      FAKE_WORKER: JSON.stringify({ capabilities: ['graceful-termination'], onGracefulTermination: { exit: 0 } }),
    },
  });
  const started = Date.now();
  const replaced = await waitFor(
    'the cache to be replaced',
    () => {
      const now = statSync(join(dir, file!));
      return now.ino !== fromExample.ino && now;
    },
    30_000,
  );
  t.ok(Date.now() - started >= 9_000, 'not before the worker has run a while');
  t.ok(replaced.size > fromExample.size * 1.05, `larger: ${fromExample.size} -> ${replaced.size} B`);
  t.same(cacheFiles(dir), [file], 'still one file');
  run.child.kill('SIGTERM'); // the worker is told to stop, and goes
  t.equal((await run.done).code, 0);
  t.same(shutdown.calls(), []);
});
