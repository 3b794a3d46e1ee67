import { join } from 'node:path';
import t from 'tap';
import { spawnWorker } from '../src/supervisor/spawn.js';
import { helloWaitMs, TerminationController } from '../src/supervisor/termination.js';
import { captureLogger } from './log-capture.js';
import { protocolWorkerPath, readJsonLines, tempDir, waitFor } from './helpers.js';

interface Recorded {
  event: string;
  message?: Record<string, unknown>;
}

async function startWorker(
  t: { teardown(fn: () => void): void },
  script: Record<string, unknown>,
  gracePeriodSeconds = 30,
) {
  const record = join(tempDir(t), 'record.jsonl');
  const { log } = captureLogger();
  const worker = await spawnWorker(
    {
      file: process.execPath,
      args: [protocolWorkerPath],
      env: { FAKE_WORKER: JSON.stringify(script), FAKE_WORKER_RECORD: record },
      gracePeriodSeconds,
    },
    { log },
  );
  t.teardown(() => worker.kill());
  const terminations = () =>
    readJsonLines<Recorded>(record)
      .filter((r) => r.message?.['type'] === 'graceful-termination')
      .map((r) => r.message!);
  return { worker, log, terminations, record };
}

t.test('a first request, then only an escalation from finishing tasks to stopping now', async (t) => {
  const { worker, log, terminations } = await startWorker(t, { capabilities: ['graceful-termination'] });
  await worker.protocol.initialized;
  const controller = new TerminationController(worker, log);
  controller.requestTermination({ finishTasks: true, reason: 'signal' });
  await waitFor('the first message', () => terminations().length === 1);
  controller.requestTermination({ finishTasks: true, reason: 'rebalance' });
  const deadline = new Date(Date.now() + 120_000);
  controller.requestTermination({ finishTasks: false, reason: 'spot-interruption', deadline });
  await waitFor('the escalation', () => terminations().length === 2);
  controller.requestTermination({ finishTasks: false, reason: 'maintenance' });
  controller.requestTermination({ finishTasks: true, reason: 'signal' });
  worker.signal('SIGTERM');
  await worker.exited;
  t.same(terminations(), [
    { type: 'graceful-termination', 'finish-tasks': true, reason: 'signal' },
    {
      type: 'graceful-termination',
      'finish-tasks': false,
      reason: 'spot-interruption',
      deadline: deadline.toISOString(),
    },
  ]);
});

t.test('a request before hello waits for it', async (t) => {
  const { worker, log, terminations } = await startWorker(t, { capabilities: ['graceful-termination'] });
  const controller = new TerminationController(worker, log);
  controller.requestTermination({ finishTasks: false, reason: 'preemption' });
  await waitFor('the message', () => terminations().length === 1);
  worker.signal('SIGTERM');
  await worker.exited;
  t.same(terminations(), [{ type: 'graceful-termination', 'finish-tasks': false, reason: 'preemption' }]);
});

t.test('helloWaitMs: at most 5 s, half the grace period, a quarter of the time to the deadline', async (t) => {
  const now = Date.now();
  t.equal(helloWaitMs(undefined, undefined, now), 5000);
  t.equal(helloWaitMs(2, undefined, now), 1000);
  t.equal(helloWaitMs(undefined, new Date(now + 8000), now), 2000);
  t.equal(helloWaitMs(60, new Date(now - 1000), now), 0, 'a deadline already past: no wait');
});

t.test('a worker that never says hello is signalled, and the grace period counts from the signal', async (t) => {
  // grace 4 s: the hello wait is 2 s at most; stopping takes 3 s, inside the grace period only if it counts from the signal
  const { worker, log, record } = await startWorker(
    t,
    { capabilities: null, signals: { SIGTERM: 0 }, stopDelayMs: 3000 },
    4,
  );
  const controller = new TerminationController(worker, log);
  const requested = Date.now();
  controller.requestTermination({ finishTasks: false, reason: 'spot-interruption' });
  const status = await worker.exited;
  const events = readJsonLines<Recorded & { time: number }>(record);
  const signalled = events.find((e) => e.event === 'signal');
  t.ok(signalled, 'the worker got SIGTERM');
  t.ok(
    signalled!.time - requested < 3000,
    `after at most half the grace period, with a second of slack (${signalled!.time - requested} ms)`,
  );
  t.same(
    status,
    { code: 0, signal: null },
    'it stopped on its own, not SIGKILLed, although stopping took most of its grace period',
  );
});
