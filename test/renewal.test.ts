import { join } from 'node:path';
import t from 'tap';
import taskcluster from 'taskcluster-client';
import { renewalDelayMs, renewalSafetyMarginMs } from '../src/taskcluster/renewal.js';
import { backoffDelay } from '../src/util/backoff.js';
import { FakeTaskcluster } from './fakes/taskcluster.js';
import {
  fakeWorkerSection,
  leakedSecrets,
  readJsonLines,
  recordingShutdown,
  runCli,
  STATIC_SECRET,
  tempDir,
  writeConfig,
} from './helpers.js';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const POOL = 'proj/renewing';

t.test('the renewal schedule', async (t) => {
  t.equal(renewalDelayMs(40 * SECOND), 10 * SECOND, '40 s credentials renew after 10 s');
  t.equal(renewalDelayMs(60 * MINUTE), 30 * MINUTE, 'long lifetimes: 30 minutes before expiry');
  t.equal(renewalDelayMs(96 * 60 * MINUTE), 96 * 60 * MINUTE - 30 * MINUTE);
  t.equal(renewalDelayMs(20 * MINUTE), 5 * MINUTE, 'no sooner than 5 minutes from now');
  t.equal(
    renewalDelayMs(5 * MINUTE),
    5 * MINUTE - 30 * SECOND,
    'never later than 30 s before expiry (the last rule wins)',
  );
  t.equal(renewalDelayMs(20 * SECOND), 0, 'already inside the last 30 s: now');
  t.equal(renewalDelayMs(-5 * SECOND), 0, 'already expired: now');
  t.equal(renewalSafetyMarginMs(30 * SECOND), 7.5 * SECOND, 'a quarter of a short remaining lifetime');
  t.equal(renewalSafetyMarginMs(60 * MINUTE), 2 * MINUTE, 'at most 2 minutes');
});

t.test('backoff delays grow, are capped, and are jittered', async (t) => {
  t.equal(
    backoffDelay(1, 1000, 30_000, () => 0),
    500,
  );
  t.equal(
    backoffDelay(1, 1000, 30_000, () => 1),
    1000,
  );
  t.equal(
    backoffDelay(4, 1000, 30_000, () => 1),
    8000,
  );
  t.equal(
    backoffDelay(20, 1000, 30_000, () => 1),
    30_000,
    'capped',
  );
  t.equal(
    backoffDelay(20, 1000, 30_000, () => 0),
    15_000,
    'at least half',
  );
});

interface Recorded {
  event: string;
  message?: Record<string, unknown>;
}

/** A static worker whose credentials live 40 s, so renewal happens about 10 s after it starts. */
async function renewingRun(
  t: { teardown(fn: () => void | Promise<void>): void },
  script: Record<string, unknown>,
  setup: (fake: FakeTaskcluster) => void = () => undefined,
  credentialLifetimeSeconds = 40,
) {
  const fake = await new FakeTaskcluster({ credentialLifetimeSeconds }).start();
  t.teardown(() => fake.stop());
  fake.addWorkerPool(POOL, 'static-prov');
  fake.addStaticWorker(POOL, 'g', 'w', STATIC_SECRET);
  setup(fake);
  const dir = tempDir(t);
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
  const result = await runCli([config], {
    env: { FAKE_WORKER: JSON.stringify(script), FAKE_WORKER_RECORD: record },
    timeoutMs: 90_000,
  });
  const events = readJsonLines<Recorded & { time: number }>(record);
  const messages = events.filter((r) => r.event === 'message').map((r) => r.message!);
  return {
    fake,
    result,
    events,
    messages,
    leaks: leakedSecrets(result.stdout + result.stderr, [STATIC_SECRET, ...fake.issuedSecrets()]),
  };
}

t.test('renewal, end to end', async (t) => {
  t.jobs = 4;

  t.test('new credentials reach the worker and the old ones stop working', async (t) => {
    const { fake, result, messages, leaks } = await renewingRun(t, {
      capabilities: ['graceful-termination', 'log', 'new-credentials'],
      exitAfterCredentials: { count: 1, code: 0 },
    });
    t.equal(result.code, 0, result.stderr);
    const renewed = messages.find((m) => m['type'] === 'new-credentials');
    t.ok(renewed, 'the worker received new-credentials');
    const [registration] = fake.callsTo('registerWorker');
    const [reregistration] = fake.callsTo('reregisterWorker');
    t.ok(reregistration, 'reregisterWorker was called');
    t.equal(reregistration!.body!['workerPoolId'], POOL);
    t.ok(reregistration!.clientId?.startsWith('worker/static-prov/'), 'with the registered credentials');
    const current = [...fake.credentials.values()].find((c) => c.current && c.workerKey === `${POOL}/g/w`)!;
    t.same(renewed, {
      type: 'new-credentials',
      'client-id': current.clientId,
      'access-token': current.accessToken,
      certificate: current.certificate,
    });
    const stale = [...fake.credentials.values()].find((c) => !c.current && c.workerKey === `${POOL}/g/w`)!;
    t.ok(registration && stale, 'the first credentials were superseded');

    const report = { workerGroup: 'g', workerId: 'w', kind: 'k', title: 't', description: 'd', extra: {} };
    const withStale = new taskcluster.WorkerManager({ rootUrl: fake.rootUrl, credentials: stale, retries: 0 });
    await t.rejects(
      withStale.reportWorkerError(POOL, report),
      { message: /superseded by a renewal/ },
      'the fake rejects the old credentials',
    );
    const withCurrent = new taskcluster.WorkerManager({ rootUrl: fake.rootUrl, credentials: current, retries: 0 });
    await t.resolves(withCurrent.reportWorkerError(POOL, report), 'and accepts the new ones');
    t.same(leaks, []);
  });

  t.test('renewal survives three consecutive 503s', async (t) => {
    const { fake, result, messages } = await renewingRun(
      t,
      { capabilities: ['graceful-termination', 'new-credentials'], exitAfterCredentials: { count: 1, code: 0 } },
      (fake) => fake.inject('reregisterWorker', { kind: 'status', status: 503 }, 3),
    );
    t.equal(result.code, 0, result.stderr);
    t.equal(fake.callsTo('reregisterWorker').length, 4);
    t.ok(messages.some((m) => m['type'] === 'new-credentials'));
    t.notOk(
      messages.some((m) => m['type'] === 'graceful-termination'),
      'the worker was not stopped',
    );
    t.match(result.stderr, /renewing credentials: worker-manager reregisterWorker failed \(HTTP 503\).*retrying/);
  });

  t.test('a permanent failure stops the worker with graceful-termination', async (t) => {
    const { fake, result, messages } = await renewingRun(
      t,
      { capabilities: ['graceful-termination', 'new-credentials'], onGracefulTermination: { exit: 0 } },
      (fake) => fake.inject('reregisterWorker', { kind: 'status', status: 400 }, 1),
    );
    t.equal(result.code, 0, result.stderr);
    t.equal(fake.callsTo('reregisterWorker').length, 1, 'a 4xx is not retried');
    const termination = messages.find((m) => m['type'] === 'graceful-termination');
    t.match(termination, { 'finish-tasks': false, reason: 'credentials-expiring' });
    t.ok(Date.parse(termination!['deadline'] as string) > Date.now() - 60_000, 'with the expiry as deadline');
  });

  t.test('a renewal due before the worker says hello waits for the hello, then renews', async (t) => {
    // 31 s credentials are due for renewal after 1 s; the worker says hello after 3 s.
    const { fake, result, events, messages } = await renewingRun(
      t,
      {
        capabilities: ['graceful-termination', 'new-credentials'],
        helloDelayMs: 3000,
        exitAfterCredentials: { count: 1, code: 0 },
      },
      undefined,
      31,
    );
    t.equal(result.code, 0, result.stderr);
    t.notOk(
      messages.some((m) => m['type'] === 'graceful-termination'),
      'the worker was not asked to stop',
    );
    t.ok(
      messages.some((m) => m['type'] === 'new-credentials'),
      'it received new credentials',
    );
    const hello = events.find((e) => e.event === 'hello')!;
    t.ok(fake.callsTo('reregisterWorker').length === 1 && hello, 'renewed once, after the hello');
  });

  t.test('a worker that never says hello is stopped before its credentials expire', async (t) => {
    const { fake, result, messages } = await renewingRun(t, { capabilities: null }, undefined, 31);
    t.equal(result.code, 143, result.stderr);
    t.equal(fake.callsTo('reregisterWorker').length, 0);
    t.equal(messages.filter((m) => m['type'] === 'graceful-termination').length, 0, 'it cannot be told by message');
    t.match(result.stderr, /the worker has not said hello.*asking the worker to stop/);
  });

  t.test('a worker without new-credentials is stopped with graceful-termination', async (t) => {
    const { fake, result, messages } = await renewingRun(t, {
      capabilities: ['graceful-termination'],
      onGracefulTermination: { exit: 0 },
    });
    t.equal(result.code, 0, result.stderr);
    t.equal(fake.callsTo('reregisterWorker').length, 0);
    t.match(
      messages.find((m) => m['type'] === 'graceful-termination'),
      { 'finish-tasks': false, reason: 'credentials-expiring' },
    );
    t.match(result.stderr, /the worker does not accept new-credentials; asking the worker to stop/);
  });

  t.test('a slow error report does not hold up the renewal', async (t) => {
    const reportDelayMs = 25 * SECOND;
    const { fake, result, events } = await renewingRun(
      t,
      {
        capabilities: ['error-report', 'new-credentials', 'graceful-termination'],
        output: [`~${JSON.stringify({ type: 'error-report', kind: 'k', title: 'slow', description: 'd', extra: {} })}`],
        exitAfterCredentials: { count: 1, code: 0 },
      },
      (fake) => fake.inject('reportWorkerError', { kind: 'delay', ms: reportDelayMs }),
    );
    t.equal(result.code, 0, result.stderr);
    const [report] = fake.callsTo('reportWorkerError');
    const renewed = events.find((e) => e.event === 'message' && e.message!['type'] === 'new-credentials');
    t.ok(report && renewed, 'the report was sent and the worker renewed');
    t.ok(
      renewed!.time < report!.arrived + reportDelayMs - 5 * SECOND,
      `new credentials ${renewed!.time - report!.arrived} ms after the report arrived, before its answer (${reportDelayMs} ms)`,
    );
    t.ok(report!.answered! - report!.arrived >= reportDelayMs - SECOND, 'the report was held that long');
  });

  t.test('a worker reporting errors in a loop: ten reports on their way at most, the rest logged', async (t) => {
    const reports = Array.from(
      { length: 15 },
      (_, i) =>
        `~${JSON.stringify({ type: 'error-report', kind: 'k', title: `loop ${i}`, description: 'd', extra: {} })}`,
    );
    const { fake, result } = await renewingRun(
      t,
      { capabilities: ['error-report'], output: reports, exitAfterOutput: 0 },
      (fake) => fake.inject('reportWorkerError', { kind: 'delay', ms: 2 * SECOND }, 15),
    );
    t.equal(result.code, 0, result.stderr);
    t.equal(fake.reportedErrors.length, 10);
    t.equal(result.stderr.match(/worker reported an error: k: loop/g)?.length, 15, 'every report is logged');
    t.equal(
      result.stderr.match(/not forwarding this error report to worker-manager: 10 reports are still on their way/g)
        ?.length,
      5,
    );
  });

  t.test('error reports are forwarded to reportWorkerError, fitted to its limits', async (t) => {
    const { fake, result } = await renewingRun(t, {
      capabilities: ['error-report'],
      output: [
        `~${JSON.stringify({ type: 'error-report', kind: 'Disk Full!', title: 'T'.repeat(300), description: 'D'.repeat(20000), extra: { disk: '/' } })}`,
      ],
      exitAfterOutput: 0,
    });
    t.equal(result.code, 0, result.stderr);
    t.equal(fake.reportedErrors.length, 1);
    const [report] = fake.reportedErrors;
    t.equal(report!['kind'], 'disk-full');
    t.equal((report!['title'] as string).length, 128);
    t.equal((report!['description'] as string).length, 10240);
    t.same(report!['extra'], { disk: '/' });
    t.same([report!['workerGroup'], report!['workerId']], ['g', 'w']);
  });
});
