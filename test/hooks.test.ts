import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { FakeTaskcluster } from './fakes/taskcluster.js';
import {
  fakeWorkerSection,
  isAlive,
  readJsonLines,
  recordingShutdown,
  runCli,
  startCli,
  STATIC_SECRET,
  tempDir,
  testBuildDir,
  waitFor,
  writeConfig,
} from './helpers.js';

interface HookRecord {
  step: string;
  argv: string[];
  env: Record<string, string>;
}

const recorder = join(testBuildDir, 'workers', 'hook-recorder.js');
const ALL_STEPS = [
  'pre-configure',
  'post-configure',
  'pre-register',
  'post-register',
  'pre-secrets',
  'post-secrets',
  'pre-files',
  'post-files',
  'pre-start',
  'post-start',
  'termination-notice',
  'worker-exit',
];

async function staticSetup(t: { teardown(fn: () => void | Promise<void>): void }) {
  const fake = await new FakeTaskcluster().start();
  t.teardown(() => fake.stop());
  fake.addWorkerPool('proj/hooks', 'static-prov');
  fake.addStaticWorker('proj/hooks', 'g', 'w', STATIC_SECRET);
  const dir = tempDir(t);
  const record = join(dir, 'hooks.jsonl');
  const hook = (...extra: string[]) => [process.execPath, recorder, record, ...extra];
  const config = (hooks: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
    writeConfig(dir, {
      provider: {
        providerType: 'static',
        rootURL: fake.rootUrl,
        providerID: 'static-prov',
        workerPoolID: 'proj/hooks',
        workerGroup: 'g',
        workerID: 'w',
        staticSecret: STATIC_SECRET,
      },
      worker: fakeWorkerSection(),
      shutdownCommand: recordingShutdown(dir).command,
      hooks,
      ...extra,
    });
  return { fake, dir, record, hook, config, records: () => readJsonLines<HookRecord>(record) };
}

t.test('hooks run in order around every step, with the step and identity but never credentials', async (t) => {
  const { hook, config, records } = await staticSetup(t);
  const hooks = Object.fromEntries(ALL_STEPS.map((step) => [step, [hook()]]));
  const run = startCli([config(hooks)], {
    t,
    env: {
      FAKE_WORKER: JSON.stringify({ capabilities: ['graceful-termination'], onGracefulTermination: { exit: 7 } }),
      TASKCLUSTER_ACCESS_TOKEN: 'inherited-token-must-not-reach-hooks',
      START_WORKER_CERT_KEY_PASS: 'passphrase-must-not-reach-hooks',
    },
  });
  await waitFor('post-start', () => records().some((r) => r.step === 'post-start'));
  await waitFor('the runner to see hello', () => run.stderr().includes('worker capabilities'));
  run.child.kill('SIGTERM');
  const result = await run.done;
  t.equal(result.code, 7, result.stderr);
  t.same(
    records().map((r) => r.step),
    ALL_STEPS,
  );
  const byStep = Object.fromEntries(records().map((r) => [r.step, r.env]));
  t.equal(byStep['pre-configure']!['TASKCLUSTER_WORKER_ID'], undefined, 'no identity before the provider step');
  for (const step of ALL_STEPS.slice(1)) {
    t.equal(byStep[step]!['TASKCLUSTER_WORKER_ID'], 'w', `${step} has the identity`);
    t.equal(byStep[step]!['TASKCLUSTER_WORKER_POOL_ID'], 'proj/hooks');
  }
  for (const env of Object.values(byStep)) {
    t.notOk('TASKCLUSTER_ACCESS_TOKEN' in env, 'no access token');
    t.notOk('START_WORKER_CERT_KEY_PASS' in env, 'no key passphrase');
    t.notOk(JSON.stringify(env).includes(STATIC_SECRET), 'no static secret');
  }
  t.equal(byStep['termination-notice']!['START_WORKER_TERMINATION_REASON'], 'signal');
  t.equal(byStep['termination-notice']!['START_WORKER_TERMINATION_DEADLINE'], '');
  t.equal(byStep['worker-exit']!['START_WORKER_EXIT_CODE'], '7');
  t.match(
    result.stderr,
    /hook pre-configure \[.*node\]: hello from the pre-configure hook/,
    'hook output goes to the log',
  );
});

t.test(
  'a failing pre/post hook stops startup with a clear error; a failing worker-exit hook is only logged',
  async (t) => {
    const { hook, config } = await staticSetup(t);
    const env = { FAKE_WORKER: JSON.stringify({ capabilities: [], exitAfterOutput: 0 }) };
    const failing = await runCli([config({ 'post-register': [hook('exit', '3')] })], { env });
    t.equal(failing.code, 1);
    t.match(failing.stderr, /error: hook post-register \[.*node\] exited with code 3\n$/);
    t.notMatch(failing.stderr, 'starting worker');

    const atExit = await runCli([config({ 'worker-exit': [hook('exit', '4')] })], { env });
    t.equal(atExit.code, 0, 'the worker exit code stands');
    t.match(atExit.stderr, /error: hook worker-exit \[.*node\] exited with code 4/);
  },
);

t.test('a hook that runs past its timeout is stopped and stops startup', async (t) => {
  const { hook, config } = await staticSetup(t);
  const started = Date.now();
  const result = await runCli([config({ 'pre-start': [{ command: hook('sleep', '30000'), timeout: 1 }] })], {
    env: { FAKE_WORKER: JSON.stringify({ capabilities: [], exitAfterOutput: 0 }) },
  });
  t.equal(result.code, 1);
  t.match(result.stderr, /error: hook pre-start \[.*node\] did not finish within 1s/);
  t.ok(Date.now() - started < 20_000);
});

t.test('a hook that starts a daemon is done when it exits; the daemon keeps running', async (t) => {
  const { config, dir } = await staticSetup(t);
  const pidFile = join(dir, 'daemon.pid');
  t.teardown(() => {
    const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8')) : 0;
    if (pid > 0 && isAlive(pid)) process.kill(pid, 'SIGKILL');
  });
  // the daemon inherits the hook's output and holds it open
  const script = `sh -c 'echo $$ > ${pidFile}; exec sleep 60' & echo started the daemon`;
  const started = Date.now();
  const result = await runCli([config({ 'pre-start': [{ command: ['/bin/sh', '-c', script], timeout: 20 }] })], {
    env: { FAKE_WORKER: JSON.stringify({ capabilities: [], exitAfterOutput: 0 }) },
  });
  t.equal(result.code, 0, result.stderr);
  t.match(result.stderr, /hook pre-start \[\/bin\/sh\]: started the daemon\n/);
  t.match(
    result.stderr,
    /hook pre-start \[\/bin\/sh\]: a process it started still holds its output open; no longer reading it/,
  );
  t.match(result.stderr, /starting worker/);
  t.ok(Date.now() - started < 15_000, `startup went on after ${Date.now() - started} ms, not after the daemon's 60 s`);
  t.ok(isAlive(Number(readFileSync(pidFile, 'utf8'))), 'the daemon is still running');
});

t.test('a hook that cannot be started stops startup, saying why', async (t) => {
  const { config } = await staticSetup(t);
  const result = await runCli([config({ 'pre-start': [['/nonexistent/hook']] })], {
    env: { FAKE_WORKER: JSON.stringify({ capabilities: [], exitAfterOutput: 0 }) },
  });
  t.equal(result.code, 1);
  t.match(
    result.stderr,
    /error: hook pre-start \[\/nonexistent\/hook\] could not be started: spawn \/nonexistent\/hook ENOENT\n$/,
  );
});

t.test('hooks of steps a cached run skips do not run', async (t) => {
  const { hook, config, records, dir } = await staticSetup(t);
  const hooks = Object.fromEntries(
    ['pre-configure', 'post-configure', 'pre-secrets', 'pre-files', 'pre-start', 'worker-exit'].map((step) => [
      step,
      [hook()],
    ]),
  );
  const env = { FAKE_WORKER: JSON.stringify({ capabilities: [], exitAfterOutput: 0 }) };
  // static does not cache; use a standalone worker for the restart
  const standalone = {
    providerType: 'standalone',
    rootURL: 'http://127.0.0.1:9',
    clientID: 'c',
    accessToken: 'standalone-token-123456',
    workerPoolID: 'p/w',
    workerGroup: 'g',
    workerID: 'w',
  };
  const path = config(hooks, { provider: standalone, getSecrets: false, cacheOverRestarts: join(dir, 'cache.json') });
  t.equal((await runCli([path], { env })).code, 0);
  t.same(
    records().map((r) => r.step),
    ['pre-configure', 'post-configure', 'pre-files', 'pre-start', 'worker-exit'],
    'no secrets step without secrets',
  );
  const before = records().length;
  t.equal((await runCli([path], { env })).code, 0);
  t.same(
    records()
      .slice(before)
      .map((r) => r.step),
    ['pre-start', 'worker-exit'],
    'a restart skips configure, secrets and files',
  );
});

t.test('an invalid hook entry names its path', async (t) => {
  const { config } = await staticSetup(t);
  const result = await runCli(['validate', config({ 'pre-start': ['not-a-list'], 'no-such-step': [['x']] })]);
  t.equal(result.code, 1);
  t.match(result.stderr, /hooks\.pre-start\[0\]: must be an argv list, or \{command: \[argv\], timeout: seconds\}/);
  t.match(result.stderr, /warning: .*hooks\.no-such-step: unknown key/);
});
