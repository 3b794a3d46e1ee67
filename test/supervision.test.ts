import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import {
  fakeWorkerSection,
  isAlive,
  protocolWorkerPath,
  readJsonLines,
  runCli,
  standaloneProvider,
  startCli,
  tempDir,
  testBuildDir,
  waitFor,
  writeConfig,
} from './helpers.js';

interface Recorded {
  event: string;
  time: number;
  message?: Record<string, unknown>;
  pid?: number;
  childPid?: number;
}

const ALL = ['error-report', 'graceful-termination', 'log', 'new-credentials', 'shutdown'];

function setup(
  t: { teardown(fn: () => void): void },
  script: Record<string, unknown>,
  worker: Record<string, unknown> = {},
) {
  const dir = tempDir(t);
  const record = join(dir, 'record.jsonl');
  const config = writeConfig(dir, {
    provider: standaloneProvider(),
    worker: fakeWorkerSection(worker),
    getSecrets: false,
  });
  const env = { FAKE_WORKER: JSON.stringify(script), FAKE_WORKER_RECORD: record };
  const recorded = () => readJsonLines<Recorded>(record);
  const started = () => waitFor('the worker to start', () => recorded().find((r) => r.event === 'started'));
  return { dir, config, env, recorded, started };
}

t.test('a worker with every capability: logs, error reports and plain lines are handled', async (t) => {
  const { config, env, recorded } = setup(t, {
    capabilities: ALL,
    output: [
      '~{"type":"log","body":{"textPayload":"hello from the worker","answer":42}}',
      '~{"type":"error-report","kind":"disk-full","title":"no space","description":"/ is full","extra":{}}',
      'a plain line',
    ],
    stderr: ['raw stderr from the worker'],
    exitAfterOutput: 0,
  });
  const result = await runCli([config], { env });
  t.equal(result.code, 0, result.stderr);
  t.match(result.stderr, /hello from the worker; answer: 42\n/);
  t.match(result.stderr, /\d{4}-\d\d-\d\dT[\d:.]+Z a plain line\n/);
  t.match(result.stderr, /\nraw stderr from the worker\n/, 'stderr passes through unchanged');
  t.match(result.stderr, /worker capabilities: error-report, graceful-termination, log, new-credentials, shutdown/);
  t.match(result.stderr, /worker reported an error: disk-full: no space/);
  const welcome = recorded().find((r) => r.message?.['type'] === 'welcome');
  t.same(welcome?.message, { type: 'welcome', capabilities: ALL });
});

t.test('a worker with no capabilities: its messages are ignored with a warning; its exit code is ours', async (t) => {
  const { config, env } = setup(t, {
    capabilities: [],
    output: ['~{"type":"log","body":{"textPayload":"dropped"}}'],
    exitAfterOutput: 3,
  });
  const result = await runCli([config], { env });
  t.equal(result.code, 3);
  t.match(result.stderr, /worker capabilities: \(none\)/);
  t.match(result.stderr, /capability "log" was not agreed; ignored it/);
  t.notMatch(result.stderr, /Z dropped/);
});

t.test('a worker that never says hello is still supervised', async (t) => {
  const { config, env } = setup(t, { capabilities: null, output: ['no protocol here'], exitAfterOutput: 0 });
  const result = await runCli([config], { env });
  t.equal(result.code, 0);
  t.match(result.stderr, /Z no protocol here\n/);
});

t.test('a worker that crashes mid-run: 128 + the signal', async (t) => {
  const { config, env } = setup(t, { capabilities: ALL, crash: { afterMs: 100, signal: 'SIGKILL' } });
  const result = await runCli([config], { env });
  t.equal(result.code, 137);
  t.match(result.stderr, /worker exited with signal SIGKILL/);
  const segv = setup(t, { capabilities: [], crash: { afterMs: 50, signal: 'SIGSEGV' } });
  t.equal((await runCli([segv.config], { env: segv.env })).code, 139);
});

t.test('a worker that floods its log: every message arrives, the last ones too', async (t) => {
  const { config, env } = setup(t, { capabilities: ['log'], flood: 20000, exitAfterOutput: 0 });
  const result = await runCli([config], { env });
  t.equal(result.code, 0);
  const forwarded = result.stderr.split('\n').filter((line) => line.includes('flood message number'));
  t.equal(forwarded.length, 20000);
  t.match(forwarded.at(-1), /flood message number 20000; n: 20000$/);
});

t.test('a reader of its stderr that falls behind still gets every line before start-worker exits', async (t) => {
  // A pipe holds 64 KiB; the rest waits in start-worker, and process.exit() would drop it.
  const { config, env } = setup(t, { capabilities: ['log'], flood: 20000, exitAfterOutput: 0 });
  const result = await runCli([config], { env, readStderrAfterMs: 4000 });
  t.equal(result.code, 0);
  const forwarded = result.stderr.split('\n').filter((line) => line.includes('flood message number'));
  t.equal(forwarded.length, 20000);
  t.match(result.stderr, /worker exited with code 0\n$/, 'the last line too');
});

t.test(
  'a reader of its stderr that stops reading holds the worker back instead of start-worker buffering',
  async (t) => {
    // 100k messages are ~9 MB of log: far more than the pipes and start-worker's
    // batch hold, so the worker can finish writing only once the reader is back.
    const count = 100_000;
    const { config, env, recorded } = setup(t, { capabilities: ['log'], flood: count, exitAfterOutput: 0 });
    const readerBackAt = Date.now() + 3000;
    const result = await runCli([config], { env, readStderrAfterMs: 3000 });
    t.equal(result.code, 0);
    const flooded = recorded().find((r) => r.event === 'flooded');
    t.ok(
      flooded && flooded.time >= readerBackAt - 200,
      'the worker wrote its last message only after the reader was back',
    );
    const forwarded = result.stderr.split('\n').filter((line) => line.includes('flood message number'));
    t.equal(forwarded.length, count, 'every line');
    t.ok(
      forwarded.every((line, i) => line.endsWith(`flood message number ${i + 1}; n: ${i + 1}`)),
      'in the order written',
    );
  },
);

t.test('stderr to a file (written directly, not through the stream): every line, in order', async (t) => {
  const { config, env, dir } = setup(t, { capabilities: ['log'], flood: 20000, exitAfterOutput: 0 });
  const stderrFile = join(dir, 'stderr.log');
  const result = await runCli([config], { env, stderrFile });
  t.equal(result.code, 0);
  const lines = result.stderr.split('\n');
  const forwarded = lines.filter((line) => line.includes('flood message number'));
  t.equal(forwarded.length, 20000);
  t.ok(
    forwarded.every((line, i) => line.endsWith(`flood message number ${i + 1}; n: ${i + 1}`)),
    'in the order written',
  );
  const at = (pattern: RegExp) => lines.findIndex((line) => pattern.test(line));
  t.ok(at(/worker capabilities/) < at(/flood message number 1;/), 'runner messages in their place');
  t.match(result.stderr, /worker exited with code 0\n$/, 'the last line too');
});

t.test(
  'SIGTERM and SIGINT mean stop now: graceful-termination with finish-tasks false reaches the worker, which exits',
  async (t) => {
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      const { config, env, recorded, started } = setup(t, { capabilities: ALL, onGracefulTermination: { exit: 0 } });
      const run = startCli([config], { env, t });
      await started();
      await waitFor('the runner to see hello', () => run.stderr().includes('worker capabilities'));
      run.child.kill(signal);
      const result = await run.done;
      t.equal(result.code, 0, result.stderr);
      const message = recorded().find((r) => r.message?.['type'] === 'graceful-termination')?.message;
      t.same(message, { type: 'graceful-termination', 'finish-tasks': false, reason: 'signal' }, signal);
    }
  },
);

t.test('SIGUSR2 drains: finish-tasks true, reason drain; a SIGTERM after it escalates to stop now', async (t) => {
  const { config, env, recorded, started } = setup(t, { capabilities: ALL, onGracefulTermination: 'ignore' });
  const run = startCli([config], { env, t });
  await started();
  await waitFor('the runner to see hello', () => run.stderr().includes('worker capabilities'));
  const terminations = () =>
    recorded()
      .filter((r) => r.message?.['type'] === 'graceful-termination')
      .map((r) => r.message);
  run.child.kill('SIGUSR2');
  await waitFor('the drain message', () => terminations().length === 1);
  run.child.kill('SIGTERM');
  await waitFor('the escalation', () => terminations().length === 2);
  run.child.kill('SIGTERM');
  const result = await run.done;
  t.same(terminations(), [
    { type: 'graceful-termination', 'finish-tasks': true, reason: 'drain' },
    { type: 'graceful-termination', 'finish-tasks': false, reason: 'signal' },
  ]);
  t.equal(result.code, 137, 'a second SIGTERM kills the worker');
  t.notMatch(result.stderr, /acts only on its first termination request/, 'no warning for a worker that can escalate');
});

t.test(
  'a drain, then SIGTERM, to generic-worker: the escalation is sent with a warning that it cannot take effect',
  async (t) => {
    const dir = tempDir(t);
    const record = join(dir, 'record.jsonl');
    const gw = join(dir, 'generic-worker');
    writeFileSync(gw, `#!/bin/sh\nexec "${process.execPath}" "${protocolWorkerPath}" "$@"\n`);
    chmodSync(gw, 0o755);
    const config = writeConfig(dir, {
      provider: standaloneProvider(),
      worker: { implementation: 'generic-worker', path: gw, configPath: join(dir, 'gw.json') },
      getSecrets: false,
    });
    const env = {
      FAKE_WORKER: JSON.stringify({ capabilities: ALL, onGracefulTermination: 'ignore' }),
      FAKE_WORKER_RECORD: record,
    };
    const run = startCli([config], { env, t });
    await waitFor('the runner to see hello', () => run.stderr().includes('worker capabilities'));
    const terminations = () =>
      readJsonLines<Recorded>(record).filter((r) => r.message?.['type'] === 'graceful-termination');
    run.child.kill('SIGUSR2');
    await waitFor('the drain message', () => terminations().length === 1);
    run.child.kill('SIGTERM');
    await waitFor('the escalation', () => terminations().length === 2);
    await waitFor('the warning', () =>
      /warning: the worker acts only on its first termination request: it keeps finishing its tasks, although it should stop now \(reason: signal\)/.test(
        run.stderr(),
      ),
    );
    run.child.kill('SIGTERM');
    t.equal((await run.done).code, 137);
  },
);

t.test('SIGTERM to a worker without graceful-termination: its signal; a second SIGTERM kills the group', async (t) => {
  const { config, env, recorded, started } = setup(t, { capabilities: ['log'], ignoreSigterm: true, spawnChild: true });
  const run = startCli([config], { env, t });
  const start = await started();
  await waitFor('the runner to see hello', () => run.stderr().includes('worker capabilities'));
  run.child.kill('SIGTERM');
  await waitFor('the worker to get SIGTERM', () => recorded().some((r) => r.event === 'sigterm-ignored'));
  t.ok(isAlive(start.pid!), 'the worker ignored it');
  run.child.kill('SIGTERM');
  const result = await run.done;
  t.equal(result.code, 137);
  t.match(result.stderr, /received SIGTERM again: killing the worker's process group/);
  t.notOk(isAlive(start.pid!), 'the worker is gone');
  await waitFor('the worker child to be gone', () => !isAlive(start.childPid!), 2000);
  t.notOk(isAlive(start.childPid!), 'its child is gone too');
});

t.test('the grace period expiring kills the worker', async (t) => {
  const { config, env, started } = setup(t, { capabilities: [], ignoreSigterm: true }, { gracePeriod: 1 });
  const run = startCli([config], { env, t });
  await started();
  await waitFor('the runner to see hello', () => run.stderr().includes('worker capabilities'));
  const sent = Date.now();
  run.child.kill('SIGTERM');
  const result = await run.done;
  t.equal(result.code, 137);
  t.ok(Date.now() - sent >= 900, 'not before the grace period');
  t.match(result.stderr, /did not stop within its grace period of 1s/);
});

t.test('no orphans: what the worker leaves behind goes with it', async (t) => {
  const { config, env, started } = setup(t, { capabilities: [], spawnChild: true, exitAfterOutput: 0 });
  const run = startCli([config], { env, t });
  const start = await started();
  const result = await run.done;
  t.equal(result.code, 0);
  await waitFor('the child to be gone', () => !isAlive(start.childPid!), 2000);
  t.pass('the child the worker left behind was killed');
});

t.test('the test worker does not outlive a start-worker killed by a failing test', async (t) => {
  const { config, env, recorded, started } = setup(t, { capabilities: ['log'] });
  const run = startCli([config], { env, t });
  const start = await started();
  await waitFor('the runner to see hello', () => run.stderr().includes('worker capabilities'));
  run.child.kill('SIGKILL');
  await run.done;
  await waitFor('the worker to exit', () => !isAlive(start.pid!), 5000);
  t.ok(
    recorded().some((r) => r.event === 'stdin-closed'),
    'it saw its stdin close',
  );
});

t.test('a daemon the worker started in a session of its own does not keep start-worker waiting', async (t) => {
  const dir = tempDir(t);
  const pidFile = join(dir, 'daemon.pid');
  t.teardown(() => {
    const pid = Number(readFileSync(pidFile, 'utf8'));
    if (isAlive(pid)) process.kill(pid, 'SIGKILL');
  });
  // setsid: out of the worker's process group, so killing the group leaves it holding the output
  const daemon = `setsid sh -c 'echo $$ > ${pidFile}; exec sleep 60' & echo worker done`;
  const config = writeConfig(dir, {
    provider: standaloneProvider(),
    worker: { implementation: 'command', command: ['/bin/sh', '-c', daemon], passCredentials: 'none' },
    getSecrets: false,
  });
  const started = Date.now();
  const result = await runCli([config], { t, timeoutMs: 30_000 });
  t.equal(result.code, 0, result.stderr);
  t.ok(Date.now() - started < 15_000, `exited after ${Date.now() - started} ms, not after the daemon's 60 s`);
  t.match(result.stderr, /Z worker done\n/, "the worker's output before it exited");
  t.match(
    result.stderr,
    /outside its process group \(setsid\?\) still holds the worker's output open; no longer reading it/,
  );
  t.match(result.stderr, /worker exited with code 0\n$/);
});

t.test('protocol: false: stdout is log output and the termination signal is configurable', async (t) => {
  const { config, env, recorded, started } = setup(
    t,
    {
      capabilities: null,
      output: ['~{"type":"log","body":{"textPayload":"looks like protocol"}}'],
      signals: { SIGUSR2: 5 },
    },
    { protocol: false, terminationSignal: 'SIGUSR2' },
  );
  const run = startCli([config], { env, t });
  await started();
  await waitFor('the output', () => run.stderr().includes('looks like protocol'));
  t.same(
    recorded().filter((r) => r.event === 'message'),
    [],
    'no welcome was sent',
  );
  run.child.kill('SIGINT');
  const result = await run.done;
  t.equal(result.code, 5);
  t.ok(
    recorded().some((r) => r.event === 'signal'),
    'the worker got SIGUSR2',
  );
  t.match(result.stderr, /Z ~\{"type":"log"/, 'the line was logged as it was');
});

t.test(
  'oom_score_adj of the worker is -1000 when permitted, a warning otherwise',
  { skip: process.platform !== 'linux' },
  async (t) => {
    const { config, env, started } = setup(t, { capabilities: [] });
    const run = startCli([config], { env, t });
    const start = await started();
    // The runner adjusts the score before it sends welcome, so hello means it is done.
    await waitFor('the runner to see hello', () => run.stderr().includes('worker capabilities'));
    const adj = readFileSync(`/proc/${start.pid}/oom_score_adj`, 'utf8').trim();
    run.child.kill('SIGTERM');
    const result = await run.done;
    const warned =
      /could not set oom_score_adj of the worker/.test(result.stderr) ||
      /could not set oom_score_adj of start-worker/.test(result.stderr);
    if (warned) t.not(adj, '-1000', 'not permitted here (no CAP_SYS_RESOURCE): a warning, and the score is unchanged');
    else t.equal(adj, '-1000', 'permitted: the worker runs with oom_score_adj -1000');
  },
);

t.test('a worker that cannot be started is one clear line', async (t) => {
  const dir = tempDir(t);
  const config = writeConfig(dir, {
    provider: standaloneProvider(),
    worker: { implementation: 'command', command: [join(dir, 'missing-binary')], passCredentials: 'none' },
    getSecrets: false,
  });
  const result = await runCli([config]);
  t.equal(result.code, 1);
  t.match(result.stderr, /error: cannot start worker .*missing-binary: .*ENOENT/);
});

t.test(
  'a worker that asks for shutdown while stopping, on a standalone host (docker-worker on SIGTERM), is stopped',
  async (t) => {
    t.test('it exits on the signal that follows', async (t) => {
      const { config, env, recorded, started } = setup(t, {
        capabilities: ['log', 'shutdown'],
        shutdownOnSigterm: 'exit-next',
      });
      const run = startCli([config], { env, t });
      await started();
      await waitFor('the runner to see hello', () => run.stderr().includes('worker capabilities'));
      run.child.kill('SIGTERM');
      const result = await run.done;
      t.equal(result.code, 0, result.stderr);
      t.equal(
        recorded().filter((r) => r.event === 'sigterm').length,
        2,
        'its termination signal, then another after its shutdown request',
      );
      t.match(
        result.stderr,
        /the worker is stopping and asked for shutdown, which this provider does not do; sending it SIGTERM, and SIGKILL if it has not exited within 10s/,
      );
    });

    t.test('one that ignores it is killed after a bounded wait', async (t) => {
      const { config, env, started } = setup(t, { capabilities: ['log', 'shutdown'], shutdownOnSigterm: 'ignore' });
      const run = startCli([config], { env, t, timeoutMs: 30_000 });
      await started();
      await waitFor('the runner to see hello', () => run.stderr().includes('worker capabilities'));
      const signalledAt = Date.now();
      run.child.kill('SIGTERM');
      const result = await run.done;
      t.equal(result.code, 137, result.stderr);
      t.ok(Date.now() - signalledAt < 15_000, `stopped within the bound (${Date.now() - signalledAt} ms)`);
      t.match(
        result.stderr,
        /the worker did not exit within 10s of its shutdown request: killing the worker's process group/,
      );
    });
  },
);

t.test('a drain during startup reaches the worker once it runs', async (t) => {
  const dir = tempDir(t);
  const record = join(dir, 'record.jsonl');
  const hook = [
    process.execPath,
    join(testBuildDir, 'workers', 'hook-recorder.js'),
    join(dir, 'hooks.jsonl'),
    'sleep',
    '1500',
  ];
  const config = writeConfig(dir, {
    provider: standaloneProvider(),
    worker: fakeWorkerSection(),
    getSecrets: false,
    hooks: { 'pre-start': [hook] },
  });
  const env = {
    FAKE_WORKER: JSON.stringify({ capabilities: ALL, onGracefulTermination: { exit: 0 } }),
    FAKE_WORKER_RECORD: record,
  };
  const run = startCli([config], { env, t });
  await waitFor('the pre-start hook', () => run.stderr().includes('hello from the pre-start hook'));
  run.child.kill('SIGUSR2');
  const result = await run.done;
  t.equal(result.code, 0, result.stderr);
  t.match(result.stderr, /received SIGUSR2 during startup; the worker will be asked to finish and exit once it runs/);
  t.same(readJsonLines<Recorded>(record).find((r) => r.message?.['type'] === 'graceful-termination')?.message, {
    type: 'graceful-termination',
    'finish-tasks': true,
    reason: 'drain',
  });
});
