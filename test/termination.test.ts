import { join } from 'node:path';
import t from 'tap';
import { spawnWorker } from '../src/supervisor/spawn.js';
import { TerminationController } from '../src/supervisor/termination.js';
import { captureLogger } from './log-capture.js';
import { protocolWorkerPath, readJsonLines, tempDir, waitFor } from './helpers.js';

interface Recorded {
  event: string;
  message?: Record<string, unknown>;
}

async function startWorker(t: { teardown(fn: () => void): void }, script: Record<string, unknown>) {
  const record = join(tempDir(t), 'record.jsonl');
  const { log } = captureLogger();
  const worker = await spawnWorker(
    { file: process.execPath, args: [protocolWorkerPath], env: { FAKE_WORKER: JSON.stringify(script), FAKE_WORKER_RECORD: record }, gracePeriodSeconds: 30 },
    { log },
  );
  t.teardown(() => worker.kill());
  const terminations = () =>
    readJsonLines<Recorded>(record)
      .filter((r) => r.message?.['type'] === 'graceful-termination')
      .map((r) => r.message!);
  return { worker, log, terminations };
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
    { type: 'graceful-termination', 'finish-tasks': false, reason: 'spot-interruption', deadline: deadline.toISOString() },
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
