/**
 * Retry-After end to end: the real CLI against the Taskcluster fake, the
 * removal of a finished worker, and AWS Secrets Manager with the real SDK.
 */
import t from 'tap';
import { Decommissioner } from '../src/decommission.js';
import { emptyRunState, type RunState } from '../src/state.js';
import { registerWorker } from '../src/taskcluster/registration.js';
import { FakeAwsSecretsManager } from './fakes/aws-secrets-manager.js';
import { FakeTaskcluster } from './fakes/taskcluster.js';
import { captureLogger } from './log-capture.js';
import { recordingShutdown, runCli, STATIC_SECRET, standaloneProvider, tempDir, writeConfig } from './helpers.js';

const POOL = 'proj/static-pool';

async function staticRun(t: { teardown(fn: () => void | Promise<void>): void }, startupRetryWindow: number) {
  const fake = await new FakeTaskcluster().start();
  t.teardown(() => fake.stop());
  fake.addWorkerPool(POOL, 'static-prov');
  fake.addStaticWorker(POOL, 'rack-1', 'host-1', STATIC_SECRET);
  const dir = tempDir(t);
  const shutdown = recordingShutdown(dir);
  const config = writeConfig(dir, {
    provider: {
      providerType: 'static',
      rootURL: fake.rootUrl,
      providerID: 'static-prov',
      workerPoolID: POOL,
      workerGroup: 'rack-1',
      workerID: 'host-1',
      staticSecret: STATIC_SECRET,
    },
    worker: { implementation: 'dummy' },
    getSecrets: false,
    startupRetryWindow,
    shutdownCommand: shutdown.command,
  });
  return { fake, config, shutdown };
}

t.test('registerWorker: a 503 with Retry-After is waited out, with a spread', async (t) => {
  const { fake, config } = await staticRun(t, 60);
  fake.inject('registerWorker', { kind: 'status', status: 503, headers: { 'retry-after': '2' } });
  const result = await runCli([config]);
  t.equal(result.code, 0, result.stderr);
  const [refused, admitted] = fake.callsTo('registerWorker');
  t.equal(refused?.status, 503);
  t.ok(
    admitted!.arrived - refused!.answered! >= 2000,
    `came back ${admitted!.arrived - refused!.answered!} ms after the refusal`,
  );
  const delay = Number(
    /registerWorker failed \(HTTP 503; Retry-After 2\): injected fault; retrying in (\d+\.\d)s/.exec(
      result.stderr,
    )?.[1],
  );
  t.ok(delay >= 2 && delay <= 10, `waited Retry-After plus a spread of up to 4 x 2 s (${delay} s)`);
});

t.test('registerWorker: a Retry-After past startupRetryWindow gives up at once, saying so', async (t) => {
  const { fake, config, shutdown } = await staticRun(t, 5);
  fake.inject('registerWorker', {
    kind: 'status',
    status: 429,
    headers: { 'retry-after': new Date(Date.now() + 120_000).toUTCString() },
  });
  const started = Date.now();
  const result = await runCli([config]);
  t.equal(result.code, 1);
  t.ok(Date.now() - started < 4000, 'at once, not at the end of the window');
  t.equal(fake.callsTo('registerWorker').length, 1, 'not retried');
  t.match(
    result.stderr,
    /error: worker-manager registerWorker failed \(HTTP 429; Retry-After [^)]+GMT\): injected fault; the service asked to retry after 1\d\ds, past the end of the retry window \([\d.]+s left\): giving up now\n$/,
  );
  t.same(shutdown.calls(), [], 'a static worker does not power the machine off');
});

/** A dynamically provisioned worker registered with the fake, as the aws provider would. */
async function registeredDynamic(t: { teardown(fn: () => void | Promise<void>): void }) {
  const fake = await new FakeTaskcluster().start();
  t.teardown(() => fake.stop());
  fake.addWorkerPool('proj/dynamic', 'aws-prov');
  fake.acceptProofsFrom.add('aws-prov');
  const { log, records } = captureLogger();
  const settings = { requestTimeoutMs: 5000, startupRetryWindowMs: 5000 };
  const state: RunState = {
    ...emptyRunState({}),
    rootUrl: fake.rootUrl,
    workerPoolId: 'proj/dynamic',
    workerGroup: 'us-east-1',
    workerId: 'i-0123',
    providerId: 'aws-prov',
    workerLocation: { cloud: 'aws' },
  };
  await registerWorker(state, { document: '{}', signature: 'sig' }, 'dummy', settings, log);
  const shutdown = recordingShutdown(tempDir(t));
  const decommissioner = new Decommissioner({ state, dynamic: true, shutdownCommand: shutdown.command, settings, log });
  return {
    fake,
    records,
    shutdown,
    decommissioner,
    removed: () => fake.workers.get('proj/dynamic/us-east-1/i-0123')!.removed,
  };
}

t.test('removeWorker: a Retry-After is honoured; one longer than start-worker waits powers off at once', async (t) => {
  const waiting = await registeredDynamic(t);
  waiting.fake.inject('removeWorker', { kind: 'status', status: 503, headers: { 'retry-after': '1' } });
  await waiting.decommissioner.workerExited(false);
  t.ok(waiting.removed(), 'removed on the second attempt');
  const [refused, accepted] = waiting.fake.callsTo('removeWorker');
  t.ok(
    accepted!.arrived - refused!.answered! >= 1000,
    `came back ${accepted!.arrived - refused!.answered!} ms after the refusal`,
  );
  t.same(waiting.shutdown.calls(), []);

  const refusing = await registeredDynamic(t);
  refusing.fake.inject('removeWorker', { kind: 'status', status: 503, headers: { 'retry-after': '3600' } });
  const started = Date.now();
  await refusing.decommissioner.workerExited(false);
  t.ok(Date.now() - started < 5000, 'no hour of waiting');
  t.equal(refusing.fake.callsTo('removeWorker').length, 1);
  t.same(refusing.shutdown.calls(), ['shutdown -h now'], 'powered off instead');
  t.match(
    refusing.records.map((r) => r.message).join('\n'),
    /could not remove the worker from worker-manager: .*asked to retry after 3600s, longer than start-worker waits \(300s\): giving up now/,
  );
});

t.test('AWS Secrets Manager: a 503 with Retry-After is waited out', async (t) => {
  const fake = await new FakeAwsSecretsManager({
    accessKeyId: 'AKIAFAKEFAKEFAKE',
    secretAccessKey: 'fake-secret-access-key-0123456789',
  }).start();
  t.teardown(() => fake.stop());
  fake.secrets.set('throttled', '{"ok": true}');
  fake.inject({
    kind: 'status',
    status: 503,
    body: { __type: 'ServiceUnavailable', message: 'slow down' },
    headers: { 'retry-after': '2', 'x-amzn-errortype': 'ServiceUnavailable' },
  });
  const dir = tempDir(t);
  const started = Date.now();
  const result = await runCli(
    [
      writeConfig(dir, {
        provider: standaloneProvider(),
        worker: { implementation: 'dummy' },
        getSecrets: false,
        startupRetryWindow: 30,
        secrets: [
          { source: 'aws-secrets-manager', secretId: 'throttled', region: 'us-east-1', endpoint: fake.endpoint },
        ],
      }),
    ],
    {
      env: {
        AWS_ACCESS_KEY_ID: 'AKIAFAKEFAKEFAKE',
        AWS_SECRET_ACCESS_KEY: 'fake-secret-access-key-0123456789',
        AWS_EC2_METADATA_DISABLED: 'true',
        AWS_PROFILE: undefined,
        AWS_CONFIG_FILE: '/nonexistent',
        AWS_SHARED_CREDENTIALS_FILE: '/nonexistent',
        AWS_ENDPOINT_URL_SECRETS_MANAGER: undefined,
      },
    },
  );
  t.equal(result.code, 0, result.stderr);
  t.equal(fake.calls.length, 2);
  const delay = Number(
    /AWS Secrets Manager secret 'throttled': .*\(HTTP 503\).*; retrying in (\d+\.\d)s/.exec(result.stderr)?.[1],
  );
  t.ok(delay >= 2, `waited at least the Retry-After (${delay} s)`);
  t.ok(Date.now() - started >= 2000);
});
