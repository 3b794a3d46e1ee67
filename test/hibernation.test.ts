/**
 * A host that hibernates: its realtime clock jumps forward on resume while
 * the monotonic clock, which Node's timers run on, does not. Simulated with
 * libfaketime moving only the realtime clock of the start-worker process.
 *
 * The Taskcluster fake runs unfaked in this process, so after a jump the
 * client's clock is ahead of the server's: the jump stays inside the 15
 * minutes of skew that Taskcluster (and the fake) accept.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import hawk from 'hawk';
import t from 'tap';
import { FAKETIME_MISSING, faketimeEnv, findLibfaketime, setClockOffset } from './faketime.js';
import { CLOCK_SKEW_SECONDS, FakeTaskcluster } from './fakes/taskcluster.js';
import {
  cleanEnv,
  fakeWorkerSection,
  readJsonLines,
  recordingShutdown,
  repoRoot,
  startCli,
  STATIC_SECRET,
  tempDir,
  waitFor,
  writeConfig,
} from './helpers.js';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
/** sleepUntil's longest timer: how late after a jump it may notice. */
const STEP = 10 * SECOND;
/** Slack for a loaded 2-core machine. */
const MARGIN = 10 * SECOND;
const POOL = 'proj/hibernating';

const library = findLibfaketime();
const skip = library === undefined ? FAKETIME_MISSING : false;

interface ProgramResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run a small ESM program with node under libfaketime; resolves when it exits. */
function runFaked(source: string, offsetFile: string, timeoutMs: number): Promise<ProgramResult> {
  return new Promise((resolve, reject) => {
    // through env(1), as startCli does: tap forces NODE_OPTIONS on every child
    const child = spawn('/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, '--input-type=module', '-e', source], {
      env: cleanEnv(faketimeEnv(library!, offsetFile)),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the faked program did not finish in ${timeoutMs} ms; stderr:\n${stderr}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

function lastJson<T>(result: ProgramResult): T {
  const line = result.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as T;
  } catch {
    throw new Error(`the faked program printed no result (exit ${result.code}); stderr:\n${result.stderr}`);
  }
}

t.test('the Taskcluster fake allows a client clock 15 minutes off, as Taskcluster does, and no more', async (t) => {
  const fake = await new FakeTaskcluster().start();
  t.teardown(() => fake.stop());
  fake.addPermanentCredentials('test/skewed', 'skewed-access-token');
  const url = `${fake.rootUrl}/api/worker-manager/v1/ping`;
  const ping = async (offsetSeconds: number): Promise<{ status: number; body: string }> => {
    const credentials = { id: 'test/skewed', key: 'skewed-access-token', algorithm: 'sha256' };
    const { header } = hawk.client.header(url, 'GET', {
      credentials,
      timestamp: Math.floor(Date.now() / 1000) + offsetSeconds,
    });
    const response = await fetch(url, { headers: { authorization: header } });
    return { status: response.status, body: await response.text() };
  };
  const inside = CLOCK_SKEW_SECONDS - 60;
  const outside = CLOCK_SKEW_SECONDS + 60;
  t.equal((await ping(inside)).status, 200, 'a clock 14 minutes ahead');
  t.equal((await ping(-inside)).status, 200, 'a clock 14 minutes behind');
  t.match(await ping(outside), { status: 401, body: /Stale timestamp/ }, 'a clock 16 minutes ahead is refused');
  t.match(await ping(-outside), { status: 401, body: /Stale timestamp/ }, 'a clock 16 minutes behind is refused');
});

t.test(
  'libfaketime, as the other tests use it, moves only the realtime clock (of children too)',
  { skip },
  async (t) => {
    const dir = tempDir(t);
    const offsetFile = join(dir, 'clock-offset');
    setClockOffset(offsetFile, '+0');
    const result = await runFaked(
      `
    import { execFileSync } from 'node:child_process';
    import { renameSync, writeFileSync } from 'node:fs';
    const file = process.env.FAKETIME_TIMESTAMP_FILE;
    const wallBefore = Date.now();
    const monoBefore = performance.now();
    writeFileSync(file + '.next', '+10m\\n');
    renameSync(file + '.next', file);
    const jump = Date.now() - wallBefore;
    const timerStart = performance.now();
    const wallTimerStart = Date.now();
    await new Promise((resolve) => setTimeout(resolve, 200));
    const childNow = Number(execFileSync(process.execPath, ['-p', 'Date.now()'], { encoding: 'utf8' }));
    console.log(JSON.stringify({
      jump,
      monotonicAcrossJump: timerStart - monoBefore,
      timerMonotonic: performance.now() - timerStart,
      timerWall: Date.now() - wallTimerStart,
      childAhead: childNow - Date.now() + 600000,
    }));
    `,
      offsetFile,
      30 * SECOND,
    );
    t.equal(result.code, 0, result.stderr);
    const probe = lastJson<{
      jump: number;
      monotonicAcrossJump: number;
      timerMonotonic: number;
      timerWall: number;
      childAhead: number;
    }>(result);
    t.ok(
      Math.abs(probe.jump - 10 * MINUTE) < 5 * SECOND,
      `Date.now() jumped by 10 minutes as soon as the file changed (${probe.jump} ms)`,
    );
    t.ok(
      probe.monotonicAcrossJump < 5 * SECOND,
      `performance.now() did not jump (${probe.monotonicAcrossJump.toFixed(0)} ms)`,
    );
    t.ok(
      probe.timerMonotonic >= 195 && probe.timerMonotonic < 5 * SECOND,
      `a 200 ms timer still takes 200 ms (${probe.timerMonotonic.toFixed(0)} ms)`,
    );
    t.ok(
      probe.timerWall >= 195 && probe.timerWall < 5 * SECOND,
      `and the faked wall clock runs at the normal rate (${probe.timerWall} ms)`,
    );
    t.ok(
      Math.abs(probe.childAhead - 10 * MINUTE) < 5 * SECOND,
      `a child process inherits the offset (${probe.childAhead} ms ahead of the real clock)`,
    );
  },
);

t.test('a jump of the realtime clock', { skip }, async (t) => {
  // Each waits for a sleepUntil step: run them side by side.
  t.jobs = 3;

  /** sleepUntil(now + dueMs) under libfaketime, with the clock moved by `offset` one second in. */
  async function sleepUntilAcrossAJump(t: { teardown(fn: () => void): void }, dueMs: number, offset: string) {
    const dir = tempDir(t);
    const offsetFile = join(dir, 'clock-offset');
    setClockOffset(offsetFile, '+0');
    const wallClock = pathToFileURL(join(repoRoot, 'dist', 'src', 'util', 'wall-clock.js')).href;
    const result = await runFaked(
      `
      import { renameSync, writeFileSync } from 'node:fs';
      import { sleepUntil } from ${JSON.stringify(wallClock)};
      const file = process.env.FAKETIME_TIMESTAMP_FILE;
      const started = performance.now();
      const due = Date.now() + ${dueMs};
      const waiting = sleepUntil(due);
      await new Promise((resolve) => setTimeout(resolve, 1000));
      writeFileSync(file + '.next', ${JSON.stringify(`${offset}
`)});
      renameSync(file + '.next', file);
      const jumpedAt = performance.now() - started;
      const resolved = await waiting;
      console.log(JSON.stringify({ resolved, jumpedAt, resolvedAt: performance.now() - started, pastDueBy: Date.now() - due }));
      `,
      offsetFile,
      STEP + 30 * SECOND,
    );
    if (result.code !== 0) throw new Error(result.stderr);
    return lastJson<{ resolved: boolean; jumpedAt: number; resolvedAt: number; pastDueBy: number }>(result);
  }

  t.test('sleepUntil resolves at its next step after a forward jump, not at the monotonic due time', async (t) => {
    const outcome = await sleepUntilAcrossAJump(t, 10 * MINUTE, '+10m');
    t.equal(outcome.resolved, true);
    t.ok(outcome.pastDueBy >= 0, 'the wall clock had reached the due time');
    t.ok(
      outcome.resolvedAt >= STEP - 100,
      `resolved at the end of the first step (${outcome.resolvedAt.toFixed(0)} ms after the call)`,
    );
    t.ok(
      outcome.resolvedAt - outcome.jumpedAt <= STEP + MARGIN,
      `within a step of the jump (${(outcome.resolvedAt - outcome.jumpedAt).toFixed(0)} ms), not 10 minutes after the call`,
    );
  });

  t.test('sleepUntil is not delayed by a wall clock set back', async (t) => {
    const outcome = await sleepUntilAcrossAJump(t, 3 * SECOND, '-10m');
    t.equal(outcome.resolved, true);
    t.ok(
      outcome.resolvedAt >= 2900 && outcome.resolvedAt < 3000 + MARGIN,
      `resolved 3 s after the call on the monotonic clock (${outcome.resolvedAt.toFixed(0)} ms), not 10 minutes later`,
    );
  });

  t.test('a running start-worker renews its credentials within a step of the jump', async (t) => {
    // 40-minute credentials are renewed 10 minutes after issue (renewalDelayMs), so a +10m jump makes them due.
    const fake = await new FakeTaskcluster({ credentialLifetimeSeconds: 40 * 60 }).start();
    t.teardown(() => fake.stop());
    fake.addWorkerPool(POOL, 'static-prov');
    fake.addStaticWorker(POOL, 'g', 'w', STATIC_SECRET);
    const dir = tempDir(t);
    const offsetFile = join(dir, 'clock-offset');
    setClockOffset(offsetFile, '+0');
    const record = join(dir, 'record.jsonl');
    const config = writeConfig(dir, {
      provider: {
        providerType: 'static',
        rootURL: fake.rootUrl,
        providerID: 'static-prov',
        workerPoolID: POOL,
        workerGroup: 'g',
        workerID: 'w',
        staticSecret: STATIC_SECRET,
      },
      worker: fakeWorkerSection(),
      getSecrets: false,
      shutdownCommand: recordingShutdown(dir).command,
    });
    const worker = {
      capabilities: ['graceful-termination', 'new-credentials'],
      exitAfterCredentials: { count: 1, code: 0 },
      onGracefulTermination: { exit: 3 },
    };
    const run = startCli([config], {
      t,
      env: { ...faketimeEnv(library!, offsetFile), FAKE_WORKER: JSON.stringify(worker), FAKE_WORKER_RECORD: record },
      timeoutMs: 3 * MINUTE,
    });
    const scheduled = /^(\S+) .*credentials expire at (\S+); renewing at (\S+)$/m;
    const first = await waitFor(
      'renewal to be scheduled',
      () => scheduled.exec(run.stderr()) ?? undefined,
      30 * SECOND,
    );
    const sleeping = performance.now();
    const renewAt = Date.parse(first[3]!);
    const issuedDelay = renewAt - Date.parse(first[1]!);
    t.ok(
      Math.abs(issuedDelay - 10 * MINUTE) < 5 * SECOND,
      `before the jump, renewal is due 10 minutes out (${first[3]})`,
    );
    t.ok(Math.abs(Date.parse(first[1]!) - Date.now()) < 5 * SECOND, "and start-worker's clock agrees with ours");

    // A while of nothing: a renewal now would not be the jump's doing.
    await delay(5 * SECOND);
    t.equal(fake.callsTo('reregisterWorker').length, 0, 'no renewal before the jump');

    setClockOffset(offsetFile, '+10m');
    const jumped = performance.now();
    await waitFor('reregisterWorker after the jump', () => fake.callsTo('reregisterWorker')[0], STEP + MARGIN);
    const afterJump = performance.now() - jumped;
    t.ok(afterJump <= STEP + MARGIN, `reregisterWorker ${(afterJump / 1000).toFixed(1)} s after the jump`);
    t.ok(performance.now() - sleeping <= STEP + MARGIN, 'at the end of its first step after the jump');

    const result = await run.done;
    t.equal(result.code, 0, result.stderr);
    t.equal(fake.callsTo('reregisterWorker').length, 1, 'renewed once');
    const current = [...fake.credentials.values()].find((c) => c.current && c.workerKey === `${POOL}/g/w`)!;
    const messages = readJsonLines<{ event: string; message?: Record<string, unknown> }>(record)
      .filter((r) => r.event === 'message')
      .map((r) => r.message!);
    t.same(
      messages.find((m) => m['type'] === 'new-credentials'),
      {
        type: 'new-credentials',
        'client-id': current.clientId,
        'access-token': current.accessToken,
        certificate: current.certificate,
      },
      'the worker received the new credentials',
    );
    const renewed = /^(\S+) .*renewed credentials; sent them to the worker/m.exec(result.stderr);
    t.ok(renewed, 'start-worker logged the renewal');
    const ahead = Date.parse(renewed![1]!) - Date.now();
    t.ok(
      ahead > 9 * MINUTE && ahead < 11 * MINUTE,
      `start-worker's clock was 10 minutes ahead when it renewed (${(ahead / MINUTE).toFixed(1)} min)`,
    );
    t.notOk(
      messages.some((m) => m['type'] === 'graceful-termination'),
      'the worker was not asked to stop',
    );
  });
});
