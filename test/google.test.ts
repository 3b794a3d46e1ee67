import { chmodSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parse } from 'yaml';
import plugin from '../providers/google.js';
import type { RunnerConfig } from '../src/config/types.js';
import type { TerminationRequest } from '../src/plugin.js';
import { emptyRunState } from '../src/state.js';
import {
  EXTERNAL_IP_PATH,
  FAKE_INSTANCE_ID,
  FakeGoogleMetadata,
  IDENTITY_PATH,
  MAINTENANCE_PATH,
  PREEMPTED_PATH,
  tokenPayload,
  type GoogleMetadataOptions,
} from './fakes/google-metadata.js';
import { FakeTaskcluster } from './fakes/taskcluster.js';
import {
  fakeWorkerSection,
  leakedSecrets,
  protocolWorkerPath,
  readJsonLines,
  recordingShutdown,
  runCli,
  startCli,
  tempDir,
  waitFor,
  writeConfig,
} from './helpers.js';
import { captureLogger } from './log-capture.js';

const POOL = 'proj/google-pool';
const PROVIDER_ID = 'gcp';
const WORKER_GROUP = 'us-central1';
const WORKER_KEY = `${POOL}/${WORKER_GROUP}/${FAKE_INSTANCE_ID}`;

interface Recorded {
  event: string;
  time: number;
  message?: Record<string, unknown>;
  env?: Record<string, string>;
  argv?: string[];
}

type Teardown = { teardown(fn: () => void | Promise<void>): void };

/** Taskcluster and metadata fakes, a temporary directory and a recording shutdown command. */
async function setup(
  t: Teardown,
  options: { workerConfig?: Record<string, unknown>; metadata?: GoogleMetadataOptions } = {},
) {
  const tc = await new FakeTaskcluster().start();
  t.teardown(() => tc.stop());
  tc.addWorkerPool(POOL, PROVIDER_ID, options.workerConfig ?? {});
  tc.acceptProofsFrom.add(PROVIDER_ID);
  const metadata = await new FakeGoogleMetadata({ rootUrl: tc.rootUrl, ...options.metadata }).start();
  t.teardown(() => metadata.stop());
  const dir = tempDir(t);
  const shutdown = recordingShutdown(dir);
  const record = join(dir, 'record.jsonl');
  const recorded = () => readJsonLines<Recorded>(record);
  const messages = (type: string) => recorded().filter((r) => r.message?.['type'] === type);
  /** A runner config for the google provider pointed at the metadata fake (unless `provider` overrides it). */
  const config = (
    extra: Record<string, unknown> = {},
    provider: Record<string, unknown> = { metadataEndpoint: metadata.url },
  ) =>
    writeConfig(
      dir,
      {
        provider: { providerType: 'google', ...provider },
        worker: { implementation: 'dummy' },
        getSecrets: false,
        startupRetryWindow: 30,
        shutdownCommand: shutdown.command,
        ...extra,
      },
      { name: `runner-${Math.random().toString(36).slice(2)}.yaml` },
    );
  const workerEnv = (script: Record<string, unknown>) => ({
    FAKE_WORKER: JSON.stringify(script),
    FAKE_WORKER_RECORD: record,
  });
  return { tc, metadata, dir, shutdown, record, recorded, messages, config, workerEnv };
}

/** The protocol test worker, agreeing to graceful-termination and exiting 0 when it gets it. */
const STOPPABLE_WORKER = { capabilities: ['graceful-termination', 'log'], onGracefulTermination: { exit: 0 } };

/** Both notice paths are being long-polled (the watchers are running). */
function watching(metadata: FakeGoogleMetadata): Promise<true> {
  return waitFor(
    'both watchers to long-poll',
    () => metadata.pendingLongPolls(PREEMPTED_PATH) === 1 && metadata.pendingLongPolls(MAINTENANCE_PATH) === 1,
  );
}

/** Requests for a path that were not long-polls. */
function plainRequests(metadata: FakeGoogleMetadata, path: string) {
  return metadata.requestsTo(path).filter((r) => r.query['wait_for_change'] === undefined);
}

t.jobs = 6;

t.test('registerWorker body, run state, provider metadata and location (GCE_METADATA_HOST)', async (t) => {
  const { tc, metadata, config, shutdown } = await setup(t, {
    workerConfig: { dummy: { config: { fromWorkerManager: true } } },
  });
  // Through the environment variable: no metadataEndpoint in the config.
  const result = await runCli([config({ workerConfig: { fromRunner: 1 } }, {})], {
    t,
    env: { GCE_METADATA_HOST: metadata.host },
  });
  t.equal(result.code, 0, result.stderr);

  const [register] = tc.callsTo('registerWorker');
  t.ok(register, 'registerWorker was called (and its body matched the official schema)');
  const body = register!.body!;
  t.same(
    { ...body, systemBootTime: undefined },
    {
      workerPoolId: POOL,
      providerId: PROVIDER_ID,
      workerGroup: WORKER_GROUP,
      workerId: FAKE_INSTANCE_ID,
      workerIdentityProof: { token: metadata.issuedTokens[0] },
      systemBootTime: undefined,
    },
  );
  t.equal(body['workerId'], '7213445820392040261', 'the instance id is the exact text, not a rounded number');
  t.equal(metadata.issuedTokens.length, 1);
  const claims = tokenPayload(metadata.issuedTokens[0]!);
  t.equal(claims['aud'], tc.rootUrl, 'the identity token was made for the root URL');
  t.ok(claims['google'], 'format=full was asked for');
  const identityRequest = metadata.requestsTo(IDENTITY_PATH)[0]!;
  t.same(identityRequest.query, { audience: tc.rootUrl, format: 'full' });

  const dump = parse(result.stdout) as Record<string, unknown>;
  t.equal(dump['rootUrl'], tc.rootUrl);
  t.equal(dump['workerId'], FAKE_INSTANCE_ID);
  t.equal(dump['workerGroup'], WORKER_GROUP);
  t.equal(dump['providerId'], PROVIDER_ID);
  t.same(dump['workerLocation'], { cloud: 'google', region: 'us-central1', zone: 'us-central1-a' });
  t.same(dump['providerMetadata'], {
    'instance-id': FAKE_INSTANCE_ID,
    'project-id': 'tc-workers-1',
    image: 'projects/debian-cloud/global/images/debian-12-bookworm-v20240709',
    'instance-type': 'n2-standard-4',
    zone: 'us-central1-a',
    region: 'us-central1',
    'public-hostname': `worker-${FAKE_INSTANCE_ID}.us-central1-a.c.tc-workers-1.internal`,
    'public-ipv4': '203.0.113.42',
    'local-ipv4': '10.128.0.42',
  });
  t.same(dump['workerConfig'], { fromRunner: 1, fromWorkerManager: true });
  t.match(dump['credentials'], { clientId: new RegExp(`^worker/${PROVIDER_ID}/`) });

  t.equal(tc.workers.get(WORKER_KEY)?.removed, true, 'the finished worker was removed from worker-manager');
  t.same(shutdown.calls(), [], 'removal worked, so no shutdown');
  t.same(
    leakedSecrets(result.stdout + result.stderr, [...metadata.issuedTokens, ...tc.issuedSecrets()]),
    [],
    'neither the token nor credentials are logged',
  );
  for (const path of [PREEMPTED_PATH, MAINTENANCE_PATH])
    t.equal(plainRequests(metadata, path).length, 1, `${path} checked once at startup`);
});

t.test('the generic-worker config written from Google metadata', async (t) => {
  const { tc, dir, config, workerEnv, recorded } = await setup(t, {
    workerConfig: { genericWorker: { config: { cleanUpTaskDirs: true } } },
  });
  const executable = join(dir, 'generic-worker');
  writeFileSync(executable, `#!/bin/sh\nexec "${process.execPath}" "${protocolWorkerPath}" "$@"\n`);
  chmodSync(executable, 0o755);
  const configPath = join(dir, 'gw.json');
  const result = await runCli(
    [config({ worker: { implementation: 'generic-worker', path: executable, configPath } })],
    {
      t,
      env: workerEnv({ capabilities: [], exitAfterOutput: 0 }),
    },
  );
  t.equal(result.code, 0, result.stderr);
  t.equal(statSync(configPath).mode & 0o777, 0o600);
  const written = JSON.parse(readFileSync(configPath, 'utf8')) as Record<string, unknown>;
  t.match(written, {
    cleanUpTaskDirs: true,
    publicIP: '203.0.113.42',
    privateIP: '10.128.0.42',
    instanceType: 'n2-standard-4',
    instanceID: FAKE_INSTANCE_ID,
    region: 'us-central1',
    workerLocation: '{"cloud":"google","region":"us-central1","zone":"us-central1-a"}',
    rootURL: tc.rootUrl,
    provisionerId: 'proj',
    workerType: 'google-pool',
    workerGroup: WORKER_GROUP,
    workerId: FAKE_INSTANCE_ID,
  });
  t.match(written['workerTypeMetadata'], {
    'instance-id': FAKE_INSTANCE_ID,
    'instance-type': 'n2-standard-4',
    zone: 'us-central1-a',
    'project-id': 'tc-workers-1',
  });
  t.same(recorded().find((r) => r.event === 'started')?.argv, ['run', '--config', configPath, '--with-worker-runner']);
});

t.test('a VM without an external address: public-ipv4 is omitted', async (t) => {
  const { metadata, config } = await setup(t);
  metadata.remove(EXTERNAL_IP_PATH);
  const result = await runCli([config()], { t });
  t.equal(result.code, 0, result.stderr);
  const dump = parse(result.stdout) as { providerMetadata: Record<string, unknown> };
  t.notOk('public-ipv4' in dump.providerMetadata);
  t.equal(dump.providerMetadata['local-ipv4'], '10.128.0.42');
});

t.test('metadataEndpoint wins over GCE_METADATA_HOST', async (t) => {
  const { metadata, config } = await setup(t);
  const other = await new FakeGoogleMetadata().start();
  t.teardown(() => other.stop());
  const result = await runCli([config()], { t, env: { GCE_METADATA_HOST: other.host } });
  t.equal(result.code, 0, result.stderr);
  t.ok(metadata.requests.length > 0, 'the configured endpoint was used');
  t.equal(other.requests.length, 0, 'the environment variable was not');
});

t.test('preemption mid-run reaches the worker as graceful-termination', async (t) => {
  const { tc, metadata, config, workerEnv, messages, recorded, shutdown } = await setup(t);
  const run = startCli(
    [
      config({
        worker: fakeWorkerSection(),
        provider: { providerType: 'google', metadataEndpoint: metadata.url, terminationPollInterval: 0.2 },
      }),
    ],
    {
      t,
      env: workerEnv(STOPPABLE_WORKER),
    },
  );
  await waitFor('the welcome message', () => messages('welcome').length === 1);
  const started = recorded().find((r) => r.event === 'started');
  t.equal(
    started?.env?.['TASKCLUSTER_WORKER_LOCATION'],
    '{"cloud":"google","region":"us-central1","zone":"us-central1-a"}',
  );
  t.equal(started?.env?.['TASKCLUSTER_WORKER_ID'], FAKE_INSTANCE_ID);
  t.equal(started?.env?.['TASKCLUSTER_PROVIDER_ID'], PROVIDER_ID);
  await watching(metadata);
  const [firstPoll] = metadata.requestsTo(PREEMPTED_PATH).filter((r) => r.query['wait_for_change'] === 'true');
  t.same(
    firstPoll?.query,
    { wait_for_change: 'true', timeout_sec: '60', last_etag: metadata.etagOf(PREEMPTED_PATH) },
    'the first long-poll resumes from the startup ETag',
  );

  metadata.preempt();
  const result = await run.done;
  t.equal(result.code, 0, result.stderr);
  const terminations = messages('graceful-termination');
  t.equal(terminations.length, 1, 'one graceful-termination');
  t.same(
    terminations[0]!.message,
    { type: 'graceful-termination', 'finish-tasks': false, reason: 'preemption' },
    'no deadline: Google gives none',
  );
  t.match(
    result.stderr,
    /Google metadata instance\/preempted is TRUE: the VM is being preempted; asking the worker to stop now/,
  );
  t.equal(tc.workers.get(WORKER_KEY)?.removed, true);
  t.same(shutdown.calls(), []);
  t.equal(metadata.pendingLongPolls(), 0, 'the watchers stopped with the worker');
});

t.test('host maintenance: MIGRATE is ignored, TERMINATE stops the worker', async (t) => {
  const { metadata, config, workerEnv, messages } = await setup(t);
  metadata.setMaintenanceEvent('MIGRATE_ON_HOST_MAINTENANCE'); // announced before start: not a reason to refuse
  const run = startCli([config({ worker: fakeWorkerSection() })], { t, env: workerEnv(STOPPABLE_WORKER) });
  await watching(metadata);
  const polls = () => metadata.requestsTo(MAINTENANCE_PATH).filter((r) => r.query['wait_for_change'] === 'true');
  metadata.setMaintenanceEvent('NONE');
  await waitFor(
    'the watcher to poll again after the change',
    () => polls().length === 2 && metadata.pendingLongPolls(MAINTENANCE_PATH) === 1,
  );
  t.equal(polls()[1]!.query['last_etag'], metadata.etagOf(MAINTENANCE_PATH), 'it resumed from the new ETag');
  t.equal(messages('graceful-termination').length, 0, 'a live migration does not stop the worker');

  metadata.setMaintenanceEvent('TERMINATE_ON_HOST_MAINTENANCE');
  const result = await run.done;
  t.equal(result.code, 0, result.stderr);
  t.same(
    messages('graceful-termination').map((r) => r.message),
    [{ type: 'graceful-termination', 'finish-tasks': false, reason: 'maintenance' }],
  );
  t.match(
    result.stderr,
    /instance\/maintenance-event is TERMINATE_ON_HOST_MAINTENANCE: host maintenance will terminate the VM/,
  );
  t.match(
    result.stderr,
    /Google metadata instance\/maintenance-event is now NONE\n/,
    'changes that are not notices are logged',
  );
});

t.test('a worker without graceful-termination gets its termination signal', async (t) => {
  const { metadata, config, workerEnv, recorded, messages } = await setup(t);
  const run = startCli([config({ worker: fakeWorkerSection() })], { t, env: workerEnv({ capabilities: [] }) });
  await waitFor('the welcome message', () => messages('welcome').length === 1);
  await watching(metadata);
  metadata.setMaintenanceEvent('TERMINATE_ON_HOST_MAINTENANCE');
  const result = await run.done;
  t.equal(result.code, 143);
  t.ok(
    recorded().some((r) => r.event === 'sigterm'),
    'the worker got SIGTERM',
  );
  t.match(result.stderr, /worker does not accept graceful-termination; sending it SIGTERM \(reason: maintenance\)/);
});

t.test('a preemption between the startup check and the first long-poll is not missed', async (t) => {
  const { tc, metadata, config, workerEnv, messages } = await setup(t);
  // Hold registration, which comes after the startup check, and preempt meanwhile.
  tc.inject('registerWorker', { kind: 'delay', ms: 1000 });
  const run = startCli([config({ worker: fakeWorkerSection() })], { t, env: workerEnv(STOPPABLE_WORKER) });
  await waitFor('registration to start', () => tc.callsTo('registerWorker').length === 1);
  t.equal(plainRequests(metadata, PREEMPTED_PATH).length, 1, 'the startup check has happened');
  metadata.preempt();
  const result = await run.done;
  t.equal(result.code, 0, result.stderr);
  t.same(
    messages('graceful-termination').map((r) => r.message?.['reason']),
    ['preemption'],
  );
  const [longPoll] = metadata.requestsTo(PREEMPTED_PATH).filter((r) => r.query['wait_for_change'] === 'true');
  t.not(
    longPoll?.query['last_etag'],
    metadata.etagOf(PREEMPTED_PATH),
    'the long-poll passed the ETag of the value seen at startup, so it was answered at once',
  );
});

t.test('refuses to start on a VM that is being preempted or terminated for maintenance', async (t) => {
  for (const [announce, expected] of [
    [
      (m: FakeGoogleMetadata) => m.preempt(),
      /error: Google metadata instance\/preempted is TRUE: the VM is being preempted, so the worker is not started\n/,
    ],
    [
      (m: FakeGoogleMetadata) => m.setMaintenanceEvent('TERMINATE_ON_HOST_MAINTENANCE'),
      /error: Google metadata instance\/maintenance-event is TERMINATE_ON_HOST_MAINTENANCE: host maintenance will terminate the VM, so the worker is not started\n/,
    ],
  ] as const) {
    const { tc, metadata, config, workerEnv, recorded, shutdown } = await setup(t);
    announce(metadata);
    const result = await runCli([config({ worker: fakeWorkerSection() })], { t, env: workerEnv(STOPPABLE_WORKER) });
    t.equal(result.code, 1);
    t.match(result.stderr, expected);
    t.equal(tc.callsTo('registerWorker').length, 0, 'nothing was registered');
    t.same(recorded(), [], 'the worker was not started');
    t.same(shutdown.calls(), []);
  }
});

t.test('metadata faults during startup are retried', async (t) => {
  const { metadata, config } = await setup(t);
  metadata.inject('instance/id', { kind: 'status', status: 503 }, 2);
  metadata.inject('instance/attributes/taskcluster', { kind: 'drop' });
  metadata.inject('project/project-id', { kind: 'delay', ms: 2500 }); // longer than the 2 s request timeout
  metadata.inject(IDENTITY_PATH, { kind: 'status', status: 500 });
  metadata.inject(PREEMPTED_PATH, { kind: 'status', status: 429 });
  const result = await runCli([config()], { t });
  t.equal(result.code, 0, result.stderr);
  t.equal(metadata.count('instance/id'), 3, 'two 503s, then the value');
  t.equal(metadata.count('instance/attributes/taskcluster'), 2, 'a dropped connection, then the value');
  t.equal(metadata.count('project/project-id'), 2, 'a timeout, then the value');
  t.equal(metadata.count(IDENTITY_PATH), 2);
  t.equal(plainRequests(metadata, PREEMPTED_PATH).length, 2);
  t.match(
    result.stderr,
    /warning: Google metadata instance\/id: HTTP 503 from http:\/\/127\.0\.0\.1:\d+\/computeMetadata\/v1\/instance\/id; retrying in/,
  );
  t.match(result.stderr, /warning: Google metadata project\/project-id: GET .*: no answer within 2s; retrying in/);
  const parsed = parse(result.stdout) as { workerId: string };
  t.equal(parsed.workerId, FAKE_INSTANCE_ID);
});

t.test(
  'a metadata server that keeps failing at startup: retries within startupRetryWindow, then a clear error',
  async (t) => {
    const { tc, metadata, config } = await setup(t);
    metadata.inject('instance/id', { kind: 'status', status: 500 }, 100);
    const result = await runCli([config({ startupRetryWindow: 4 })], { t });
    t.equal(result.code, 1);
    t.match(
      result.stderr,
      /error: Google metadata instance\/id: HTTP 500 from http:\/\/127\.0\.0\.1:\d+\/computeMetadata\/v1\/instance\/id; gave up after startupRetryWindow \(4s\): check that this is a Compute Engine VM, or where metadataEndpoint \/ GCE_METADATA_HOST point\n/,
    );
    const times = metadata.requestsTo('instance/id').map((r) => r.time);
    t.ok(times.length >= 4, `retried (${times.length} attempts)`);
    t.ok(
      times.at(-1)! - times[0]! <= 4500,
      `no attempt after the window (the last ${times.at(-1)! - times[0]!} ms after the first)`,
    );
    t.equal(tc.callsTo('registerWorker').length, 0);
  },
);

t.test('a missing or malformed required value is an error naming its metadata path', async (t) => {
  const cases: [string, (m: FakeGoogleMetadata) => void, RegExp][] = [
    [
      'no taskcluster attribute',
      (m) => m.remove('instance/attributes/taskcluster'),
      /error: Google metadata instance\/attributes\/taskcluster is missing \(HTTP 404 from http:\/\/127\.0\.0\.1:\d+\/computeMetadata\/v1\/instance\/attributes\/taskcluster\); it is required: is this a Compute Engine VM created by worker-manager\?\n/,
    ],
    ['no zone', (m) => m.remove('instance/zone'), /error: Google metadata instance\/zone is missing \(HTTP 404/],
    ['no instance id', (m) => m.remove('instance/id'), /error: Google metadata instance\/id is missing \(HTTP 404/],
    [
      'no maintenance-event',
      (m) => m.remove(MAINTENANCE_PATH),
      /error: Google metadata instance\/maintenance-event is missing \(HTTP 404/,
    ],
    [
      'user data without providerId',
      (m) => m.setUserData({ providerId: undefined }),
      /error: Google metadata instance\/attributes\/taskcluster has no providerId; worker-manager sets it on the VMs it creates\n/,
    ],
    [
      'user data that is not JSON',
      (m) => m.set('instance/attributes/taskcluster', 'workerPoolId=x'),
      /error: Google metadata instance\/attributes\/taskcluster is not JSON/,
    ],
    [
      'no service account',
      (m) => m.inject(IDENTITY_PATH, { kind: 'status', status: 404 }),
      /error: Google metadata instance\/service-accounts\/default\/identity is missing \(HTTP 404 .*\); it is required: the VM needs a service account to prove its identity to worker-manager\n/,
    ],
    [
      'an empty instance id',
      (m) => m.set('instance/id', ''),
      /error: Google metadata instance\/id is empty; it is required\n/,
    ],
  ];
  for (const [name, breakIt, expected] of cases) {
    const { tc, metadata, config } = await setup(t);
    breakIt(metadata);
    const result = await runCli([config()], { t });
    t.equal(result.code, 1, name);
    t.match(result.stderr, expected, name);
    t.equal(tc.callsTo('registerWorker').length, 0, `${name}: nothing registered`);
  }
});

t.test('20 s of an erroring metadata server during the watch: backoff, no crash, then recovery', async (t) => {
  const { metadata, config, workerEnv, messages } = await setup(t);
  // Default settings: terminationPollInterval 1 s, so the first pause after a failure is 1 s (the watcher's back-off).
  const run = startCli([config({ worker: fakeWorkerSection() })], {
    t,
    env: workerEnv(STOPPABLE_WORKER),
    timeoutMs: 90_000,
  });
  await waitFor('the welcome message', () => messages('welcome').length === 1);
  await watching(metadata);

  const since = Date.now();
  for (const path of [PREEMPTED_PATH, MAINTENANCE_PATH]) {
    for (let i = 0; i < 100; i++) {
      metadata.inject(path, { kind: 'status', status: 500 });
      metadata.inject(path, { kind: 'drop' });
      metadata.inject(path, { kind: 'status', status: 503 });
    }
  }
  metadata.dropLongPolls();
  // Observe the runner for 20 s (a window, not a wait for an event).
  await new Promise((resolve) => setTimeout(resolve, 20_000));
  const until = since + 20_000;
  const during = metadata.requests.filter((r) => r.time >= since && r.time <= until);
  t.equal(run.child.exitCode, null, 'the runner is still running');
  t.equal(messages('graceful-termination').length, 0, 'errors are not a reason to stop the worker');
  // Per path: pauses of at least 0.5, 1, 2, 4, 5, 5 s (half of 1, 2, 4, 8, 10, 10 s): at most 6 requests in 20 s.
  t.ok(during.length <= 12, `at most 12 requests in 20 s (got ${during.length})`);
  t.ok(during.length >= 6, `it kept trying (got ${during.length})`);
  for (const path of [PREEMPTED_PATH, MAINTENANCE_PATH]) {
    t.ok(during.filter((r) => r.path === path).length >= 3, `${path} was retried`);
  }
  const warnings = run.stderr().match(/watching Google metadata instance\/\S+ failed/g) ?? [];
  t.ok(warnings.length <= 8, `the log is not flooded (${warnings.length} warnings)`);

  metadata.faults.clear();
  await watching(metadata);
  metadata.preempt();
  const result = await run.done;
  t.equal(result.code, 0, result.stderr);
  t.same(
    messages('graceful-termination').map((r) => r.message?.['reason']),
    ['preemption'],
    'the watch recovered',
  );
});

t.test('a server that answers long-polls at once without a change is not hammered', async (t) => {
  const { metadata, config, workerEnv, messages } = await setup(t);
  const run = startCli(
    [config({ worker: fakeWorkerSection() }, { metadataEndpoint: metadata.url, terminationPollInterval: 0.1 })],
    {
      t,
      env: workerEnv(STOPPABLE_WORKER),
    },
  );
  await waitFor('the welcome message', () => messages('welcome').length === 1);
  await watching(metadata);
  // From now on the server ignores wait_for_change (a proxy in the way, say).
  const since = Date.now();
  metadata.answerLongPollsAtOnce = true;
  metadata.dropLongPolls();
  const failures =
    /watching Google metadata instance\/preempted failed \(3 in a row\): Google metadata instance\/preempted: the server answered a wait_for_change request at once without a change; retrying in/;
  await waitFor('three failures in a row', () => failures.test(run.stderr()));
  t.ok(
    metadata.count(PREEMPTED_PATH, since) <= 4,
    `backed off instead of spinning (${metadata.count(PREEMPTED_PATH, since)} requests)`,
  );
  metadata.answerLongPollsAtOnce = false;
  metadata.preempt();
  const result = await run.done;
  t.equal(result.code, 0, result.stderr);
  t.same(
    messages('graceful-termination').map((r) => r.message?.['reason']),
    ['preemption'],
  );
});

t.test(
  'terminationPollInterval is the pause between two long-polls; a change during the pause is still seen',
  async (t) => {
    const metadata = await new FakeGoogleMetadata().start();
    t.teardown(() => metadata.stop());
    const providerSection = { providerType: 'google', metadataEndpoint: metadata.url, terminationPollInterval: 1 };
    const { log, records } = captureLogger();
    const provider = plugin.create(providerSection, { log, runnerConfig: { startupRetryWindow: 5 } as RunnerConfig });
    const requests: TerminationRequest[] = [];
    await provider.useCachedRun(emptyRunState({}));
    provider.workerStarted({ requestTermination: (request) => requests.push(request) });
    t.teardown(() => provider.workerFinished(emptyRunState({})));
    await watching(metadata);
    const longPolls = () => metadata.requestsTo(MAINTENANCE_PATH).filter((r) => r.query['wait_for_change'] === 'true');

    // A change answers the held long-poll; the next change comes during the pause that follows.
    const changedAt = Date.now();
    metadata.setMaintenanceEvent('MIGRATE_ON_HOST_MAINTENANCE');
    const migrateEtag = metadata.etagOf(MAINTENANCE_PATH);
    await waitFor('the first change to be seen', () =>
      records.some((r) => /instance\/maintenance-event is now MIGRATE_ON_HOST_MAINTENANCE/.test(String(r.message))),
    );
    const pausedAt = Date.now();
    t.equal(longPolls().length, 1, 'no long-poll right after the answer');
    metadata.setMaintenanceEvent('TERMINATE_ON_HOST_MAINTENANCE');
    await waitFor('the termination request', () => requests.length === 1);
    t.same(requests, [{ finishTasks: false, reason: 'maintenance' }]);
    const [, second] = longPolls();
    t.ok(second!.time > pausedAt, 'the second change came before the next long-poll');
    t.ok(second!.time - changedAt >= 950, `the next long-poll waited out the pause (${second!.time - changedAt} ms)`);
    t.equal(
      second!.query['last_etag'],
      migrateEtag,
      'it resumed from the ETag of the answer before the pause, so it was answered at once',
    );
    t.equal(longPolls().length, 2, 'no other long-poll of the path');
  },
);

t.test('config validation and a bad GCE_METADATA_HOST', async (t) => {
  const { config } = await setup(t);
  const zero = await runCli(['validate', config({}, { terminationPollInterval: 0 })]);
  t.equal(zero.code, 1);
  t.match(zero.stderr, /provider\.terminationPollInterval/);
  const noScheme = await runCli(['validate', config({}, { metadataEndpoint: 'metadata.google.internal' })]);
  t.equal(noScheme.code, 1);
  t.match(noScheme.stderr, /provider\.metadataEndpoint/);
  const withQuery = await runCli(['validate', config({}, { metadataEndpoint: 'http://127.0.0.1:1/?x=1' })]);
  t.equal(withQuery.code, 1, 'refused by validate, not first at boot');
  t.match(
    withQuery.stderr,
    /provider\.metadataEndpoint 'http:\/\/127\.0\.0\.1:1\/\?x=1' must not have a query or fragment/,
  );
  const ok = await runCli([
    'validate',
    config({}, { metadataEndpoint: 'http://127.0.0.1:1/computeMetadata/v1', terminationPollInterval: 0.5 }),
  ]);
  t.equal(ok.code, 0, ok.stderr);

  const badHost = await runCli([config({}, {})], { t, env: { GCE_METADATA_HOST: 'not a host' } });
  t.equal(badHost.code, 1);
  t.match(
    badHost.stderr,
    /error: GCE_METADATA_HOST 'not a host' is not a valid metadata server address; expected host\[:port\]/,
  );
});

t.test(
  'a restart from cacheOverRestarts reads only the notice values before the worker starts, and still watches',
  async (t) => {
    const { tc, metadata, dir, config, workerEnv, messages } = await setup(t);
    const cache = join(dir, 'state.json');
    const runnerConfig = config({ worker: fakeWorkerSection(), cacheOverRestarts: cache });
    const first = await runCli([runnerConfig], { t, env: workerEnv({ capabilities: [], exitAfterOutput: 0 }) });
    t.equal(first.code, 0, first.stderr);
    t.equal(tc.callsTo('registerWorker').length, 1);

    const since = Date.now();
    const run = startCli([runnerConfig], { t, env: workerEnv(STOPPABLE_WORKER) });
    await waitFor('the welcome message', () => messages('welcome').length === 2);
    await watching(metadata);
    const paths = new Set(metadata.requests.filter((r) => r.time >= since).map((r) => r.path));
    t.same([...paths].sort(), [MAINTENANCE_PATH, PREEMPTED_PATH], 'only the watched values were read');
    t.same(
      metadata.requestsTo(PREEMPTED_PATH, since)[0]?.query,
      {},
      'the startup check read the current value, then the watcher long-polled',
    );
    metadata.preempt();
    const result = await run.done;
    t.equal(result.code, 0, result.stderr);
    t.match(result.stderr, `continuing the run cached in ${cache}`);
    t.notMatch(result.stderr, 'reading instance metadata');
    t.equal(tc.callsTo('registerWorker').length, 1, 'not registered again');
    t.same(
      messages('graceful-termination').map((r) => r.message?.['reason']),
      ['preemption'],
    );

    // Restarted again, on a VM that is being preempted: the worker is not started.
    const welcomes = messages('welcome').length;
    const refused = await runCli([runnerConfig], { t, env: workerEnv(STOPPABLE_WORKER) });
    t.equal(refused.code, 1);
    t.match(
      refused.stderr,
      /Google metadata instance\/preempted is TRUE: the VM is being preempted, so the worker is not started/,
    );
    t.equal(messages('welcome').length, welcomes, 'no worker started');
  },
);

t.test('the metadata fake is as strict as the real server', async (t) => {
  const metadata = await new FakeGoogleMetadata().start();
  t.teardown(() => metadata.stop());
  const url = `${metadata.url}/computeMetadata/v1/instance/preempted`;
  const flavor = { 'Metadata-Flavor': 'Google' };
  const missing = await fetch(url);
  t.equal(missing.status, 403);
  t.match(await missing.text(), /Missing Metadata-Flavor:Google header/);
  t.equal(
    (await fetch(url, { headers: { ...flavor, 'X-Forwarded-For': '10.0.0.1' } })).status,
    403,
    'proxied requests are refused',
  );
  t.equal((await fetch(`${metadata.url}/computeMetadata/v1/instance/nothing`, { headers: flavor })).status, 404);
  t.equal(
    (await fetch(`${metadata.url}/computeMetadata/v1/${IDENTITY_PATH}`, { headers: flavor })).status,
    400,
    'identity needs an audience',
  );

  const plain = await fetch(url, { headers: flavor });
  t.equal(await plain.text(), 'FALSE');
  t.equal(plain.headers.get('metadata-flavor'), 'Google');
  const etag = plain.headers.get('etag')!;
  t.match(etag, /^[0-9a-f]{16}$/);
  const stale = await fetch(`${url}?wait_for_change=true&last_etag=0000000000000000`, { headers: flavor });
  t.equal(await stale.text(), 'FALSE', 'a different last_etag is answered at once');
  const held = fetch(`${url}?wait_for_change=true&last_etag=${etag}&timeout_sec=30`, { headers: flavor });
  await waitFor('the long-poll to be held', () => metadata.pendingLongPolls(PREEMPTED_PATH) === 1);
  metadata.preempt();
  const changed = await held;
  t.equal(await changed.text(), 'TRUE', 'a held long-poll is answered when the value changes');
  t.not(changed.headers.get('etag'), etag);
  const timedOut = await fetch(`${url}?wait_for_change=true&last_etag=${changed.headers.get('etag')}&timeout_sec=1`, {
    headers: flavor,
  });
  t.equal(await timedOut.text(), 'TRUE', 'after timeout_sec the unchanged value');
});

t.test('in process: useCachedRun reads only the notice values; the watchers still start and stop', async (t) => {
  const metadata = await new FakeGoogleMetadata().start();
  t.teardown(() => metadata.stop());
  const providerSection = {
    providerType: 'google',
    metadataEndpoint: `${metadata.url}/`,
    terminationPollInterval: 0.05,
  };
  const runnerConfig: RunnerConfig = {
    provider: providerSection,
    worker: { implementation: 'dummy' },
    workerConfig: {},
    logging: { implementation: 'stdio' },
    getSecrets: false,
    startupRetryWindow: 5,
    requestTimeout: 5,
    shutdownCommand: ['false'],
    secrets: [],
    fileLimits: { maxZipEntries: 1, maxZipBytes: 1 },
  };
  const { log, records } = captureLogger();
  const requests: TerminationRequest[] = [];
  const control = { requestTermination: (request: TerminationRequest) => requests.push(request) };

  // A notice announced between the restart's check and the first long-poll.
  const first = plugin.create(providerSection, { log, runnerConfig });
  await first.useCachedRun(emptyRunState({}));
  t.same(
    new Set(metadata.requests.map((r) => r.path)),
    new Set([PREEMPTED_PATH, MAINTENANCE_PATH]),
    'useCachedRun read only the notice values',
  );
  metadata.preempt();
  first.workerStarted(control);
  await waitFor('the termination request', () => requests.length === 1);
  await first.workerFinished(emptyRunState({}));
  t.same(requests, [{ finishTasks: false, reason: 'preemption' }]);
  t.same(metadata.requestsTo(PREEMPTED_PATH)[0]?.query, {}, 'the check after a restart reads the current value');

  // A notice already in effect when the run is restarted: refused.
  const refused = plugin.create(providerSection, { log, runnerConfig });
  await t.rejects(
    refused.useCachedRun(emptyRunState({})),
    /instance\/preempted is TRUE: the VM is being preempted, so the worker is not started/,
  );

  // A notice announced later: long-polls resume from the ETag of that first read.
  metadata.set(PREEMPTED_PATH, 'FALSE');
  const second = plugin.create(providerSection, { log, runnerConfig });
  await second.useCachedRun(emptyRunState({}));
  second.workerStarted(control);
  await watching(metadata);
  t.same(metadata.requestsTo(MAINTENANCE_PATH).at(-1)?.query, {
    wait_for_change: 'true',
    timeout_sec: '60',
    last_etag: metadata.etagOf(MAINTENANCE_PATH),
  });
  metadata.setMaintenanceEvent('TERMINATE_ON_HOST_MAINTENANCE');
  await waitFor('the second termination request', () => requests.length === 2);
  t.same(requests[1], { finishTasks: false, reason: 'maintenance' });
  await second.workerFinished(emptyRunState({}));
  await waitFor('the held long-poll to be closed', () => metadata.pendingLongPolls() === 0);
  t.equal(metadata.pendingLongPolls(), 0, 'no request after workerFinished');
  t.ok(records.some((r) => /asking the worker to stop now/.test(String(r.message))));
});
