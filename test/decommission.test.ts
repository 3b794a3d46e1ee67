import t from 'tap';
import { Decommissioner } from '../src/decommission.js';
import { emptyRunState, type RunState } from '../src/state.js';
import { ErrorReporter } from '../src/taskcluster/error-report.js';
import { registerWorker } from '../src/taskcluster/registration.js';
import { FakeTaskcluster } from './fakes/taskcluster.js';
import { captureLogger } from './log-capture.js';
import { recordingShutdown, tempDir, waitFor } from './helpers.js';

const POOL = 'proj/dynamic';
const settings = { requestTimeoutMs: 5000, startupRetryWindowMs: 5000 };

/** A dynamically provisioned worker registered with the fake, as the aws provider would. */
async function registered(t: { teardown(fn: () => void | Promise<void>): void }) {
  const fake = await new FakeTaskcluster().start();
  t.teardown(() => fake.stop());
  fake.addWorkerPool(POOL, 'aws-prov');
  fake.acceptProofsFrom.add('aws-prov');
  const { log, records } = captureLogger();
  const state: RunState = {
    ...emptyRunState({}),
    rootUrl: fake.rootUrl,
    workerPoolId: POOL,
    workerGroup: 'us-east-1',
    workerId: 'i-0123',
    providerId: 'aws-prov',
    workerLocation: { cloud: 'aws' },
  };
  await registerWorker(state, { document: '{}', signature: 'sig' }, 'dummy', settings, log);
  const shutdown = recordingShutdown(tempDir(t));
  const exit = (dynamic = true) =>
    new Decommissioner({ state, dynamic, shutdownCommand: shutdown.command, settings, log });
  const removed = () => fake.workers.get(`${POOL}/us-east-1/i-0123`)!.removed;
  return { fake, state, log, records, shutdown, exit, removed };
}

t.test('a dynamic worker that exits is removed from worker-manager; nothing is shut down', async (t) => {
  const { fake, shutdown, exit, removed } = await registered(t);
  await exit().workerExited(false);
  t.ok(removed());
  t.equal(fake.callsTo('removeWorker').length, 1);
  t.ok(fake.callsTo('removeWorker')[0]!.clientId?.startsWith('worker/aws-prov/'), 'with the worker credentials');
  t.same(shutdown.calls(), []);
});

t.test('a reboot request (generic-worker exit 67) leaves the worker registered', async (t) => {
  const { fake, shutdown, exit } = await registered(t);
  await exit().workerExited(true);
  t.equal(fake.callsTo('removeWorker').length, 0);
  t.same(shutdown.calls(), []);
});

t.test('when removal fails, the shutdown command runs', async (t) => {
  const { fake, shutdown, exit, records } = await registered(t);
  fake.inject('removeWorker', { kind: 'status', status: 403 });
  await exit().workerExited(false);
  t.same(shutdown.calls(), ['shutdown -h now']);
  t.match(
    records.map((r) => r.message).join('\n'),
    /could not remove the worker from worker-manager: worker-manager removeWorker failed \(HTTP 403\)/,
  );
});

t.test('removal is retried on transient failures', async (t) => {
  const { fake, shutdown, exit, removed } = await registered(t);
  fake.inject('removeWorker', { kind: 'status', status: 503 }, 2);
  await exit().workerExited(false);
  t.ok(removed());
  t.equal(fake.callsTo('removeWorker').length, 3);
  t.same(shutdown.calls(), []);
});

t.test('a shutdown message removes the worker once, even when it then exits', async (t) => {
  const { fake, exit, removed } = await registered(t);
  const manager = exit();
  manager.shutdownRequested();
  await waitFor('the removal', () => removed());
  await manager.workerExited(false);
  t.equal(fake.callsTo('removeWorker').length, 1);
});

t.test('static and standalone workers are neither removed nor shut down', async (t) => {
  const { fake, shutdown, exit, records } = await registered(t);
  const manager = exit(false);
  manager.shutdownRequested();
  await manager.workerExited(false);
  t.equal(fake.callsTo('removeWorker').length, 0);
  t.same(shutdown.calls(), []);
  t.match(records.map((r) => r.message).join('\n'), /not dynamically provisioned/);
});

t.test('a startup failure is reported, then the worker is removed', async (t) => {
  const { fake, state, log, shutdown, exit, removed } = await registered(t);
  await exit().startupFailed(
    new Error('cannot write /etc/worker.json: EACCES'),
    new ErrorReporter(state, settings, log),
  );
  t.equal(fake.reportedErrors.length, 1);
  t.match(fake.reportedErrors[0], {
    kind: 'worker-error',
    title: 'start-worker could not start the worker',
    description: 'cannot write /etc/worker.json: EACCES',
  });
  t.ok(removed());
  t.same(shutdown.calls(), []);
});

t.test('a startup failure without credentials powers off', async (t) => {
  const { state, shutdown, exit } = await registered(t);
  state.credentials = { clientId: '', accessToken: '' };
  await exit().startupFailed(new Error('registration failed'), undefined);
  t.same(shutdown.calls(), ['shutdown -h now']);
});
