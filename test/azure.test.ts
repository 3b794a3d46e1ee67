import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parse } from 'yaml';
import { validateRunnerConfig } from '../src/config/validate.js';
import type { TerminationRequest } from '../src/plugin.js';
import { builtinRegistry } from '../builtins.js';
import { emptyRunState } from '../src/state.js';
import {
  ATTESTED,
  FakeAzureMetadata,
  INSTANCE,
  SCHEDULED_EVENTS,
  workerManagerTags,
  type FakeAzureOptions,
} from './fakes/azure-metadata.js';
import { FakeTaskcluster } from './fakes/taskcluster.js';
import {
  fakeWorkerSection,
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

const POOL = 'proj/azure-pool';
const PROVIDER = 'azure-prov';
const GROUP = 'westus2';

interface Recorded {
  event: string;
  time: number;
  message?: Record<string, unknown>;
}

type Teardown = { teardown(fn: () => void | Promise<void>): void };

/** Taskcluster and IMDS fakes, a temp dir, and a runner config writer pointed at them. */
async function setup(t: Teardown, options: { workerConfig?: Record<string, unknown>; imds?: FakeAzureOptions } = {}) {
  const tc = await new FakeTaskcluster().start();
  t.teardown(() => tc.stop());
  tc.addWorkerPool(POOL, PROVIDER, options.workerConfig ?? {});
  tc.acceptProofsFrom.add(PROVIDER);
  // worker-manager writes the root URL as configured, trailing slash and all
  const imds = await new FakeAzureMetadata({ tags: workerManagerTags(`${tc.rootUrl}/`), ...options.imds }).start();
  t.teardown(() => imds.stop());
  const dir = tempDir(t);
  const shutdown = recordingShutdown(dir);
  const record = join(dir, 'record.jsonl');
  const config = (provider: Record<string, unknown> = {}, extra: Record<string, unknown> = {}, name = 'runner.yaml') =>
    writeConfig(
      dir,
      {
        provider: { providerType: 'azure', metadataEndpoint: imds.endpoint, ...provider },
        worker: fakeWorkerSection(),
        shutdownCommand: shutdown.command,
        getSecrets: false,
        startupRetryWindow: 20,
        ...extra,
      },
      { name },
    );
  const env = (script: Record<string, unknown>, more: Record<string, string> = {}) => ({
    FAKE_WORKER: JSON.stringify(script),
    FAKE_WORKER_RECORD: record,
    ...more,
  });
  const recorded = () => readJsonLines<Recorded>(record);
  const terminations = () => recorded().filter((r) => r.message?.['type'] === 'graceful-termination');
  const started = () => waitFor('the worker to start', () => recorded().find((r) => r.event === 'started'));
  /** Wait for `count` Scheduled Events answers (200) to requests made after `since`. */
  const polled = (since: number, count = 1) =>
    waitFor(
      `${count} scheduled-events poll(s)`,
      () =>
        imds.requestsTo(SCHEDULED_EVENTS, 'GET').filter((r) => r.time >= since && r.outcome === 200).length >= count,
    );
  return { tc, imds, dir, shutdown, config, env, recorded, terminations, started, polled };
}

const GRACEFUL = { capabilities: ['graceful-termination'], onGracefulTermination: { exit: 0 } };

t.jobs = 8;

t.test(
  'registration: identity proof, ids, location, provider metadata and the worker config (generic-worker)',
  async (t) => {
    const { tc, imds, dir, shutdown, config, env } = await setup(t, {
      workerConfig: { genericWorker: { config: { fromWorkerManager: true } } },
    });
    const executable = join(dir, 'generic-worker');
    writeFileSync(executable, `#!/bin/sh\nexec "${process.execPath}" "${protocolWorkerPath}" "$@"\n`);
    chmodSync(executable, 0o755);
    const configPath = join(dir, 'gw.json');
    const result = await runCli(
      [
        config(
          {},
          {
            worker: { implementation: 'generic-worker', path: executable, configPath },
            workerConfig: { fromRunner: 1 },
          },
        ),
      ],
      {
        env: env({ capabilities: [], exitAfterOutput: 0 }),
      },
    );
    t.equal(result.code, 0, result.stderr);

    const [register] = tc.callsTo('registerWorker');
    const body = register!.body!;
    t.same(
      { ...body, systemBootTime: undefined },
      {
        workerPoolId: POOL,
        providerId: PROVIDER,
        workerGroup: GROUP,
        workerId: imds.vmName,
        workerIdentityProof: { document: imds.attested['signature'] },
        systemBootTime: undefined,
      },
      'registerWorker body (validated against the official schema by the fake)',
    );

    const gw = JSON.parse(readFileSync(configPath, 'utf8')) as Record<string, unknown>;
    const metadata = {
      'vm-id': '02aab8a4-74ef-476e-8182-f6d2ba4166a6',
      'instance-type': 'Standard_D4s_v5',
      region: 'westus2',
      'local-ipv4': '10.144.133.132',
      'public-ipv4': '20.9.8.7',
    };
    t.match(gw, {
      fromRunner: 1,
      fromWorkerManager: true,
      rootURL: tc.rootUrl,
      provisionerId: 'proj',
      workerType: 'azure-pool',
      workerGroup: GROUP,
      workerId: imds.vmName,
      publicIP: '20.9.8.7',
      privateIP: '10.144.133.132',
      instanceType: 'Standard_D4s_v5',
      region: 'westus2',
    });
    t.same(JSON.parse(gw['workerLocation'] as string), { cloud: 'azure', region: 'westus2' });
    t.same(gw['workerTypeMetadata'], metadata, 'provider metadata');

    t.equal(imds.requestsTo(INSTANCE).length, 1);
    t.equal(imds.requestsTo(ATTESTED).length, 1);
    t.same(imds.refused(), [], 'every request carried Metadata: true and a known api-version');
    t.same(
      new Set(imds.requests.filter((r) => r.path !== SCHEDULED_EVENTS).map((r) => r.apiVersion)),
      new Set(['2025-04-07']),
    );
    t.ok(imds.requestsTo(SCHEDULED_EVENTS).every((r) => r.apiVersion === '2020-07-01'));
    t.equal(tc.workers.get(`${POOL}/${GROUP}/${imds.vmName}`)?.removed, true, 'the finished worker removed itself');
    t.same(shutdown.calls(), []);
  },
);

t.test('the endpoint comes from AZURE_IMDS_ENDPOINT; metadataEndpoint wins over it', async (t) => {
  const { imds, config, env } = await setup(t);
  // two interfaces: no address is reported, as it would be ambiguous
  const network = imds.instance['network'] as { interface: unknown[] };
  network.interface.push(network.interface[0]);
  const fromEnv = await runCli([config({ metadataEndpoint: undefined }, { worker: { implementation: 'dummy' } })], {
    env: env({}, { AZURE_IMDS_ENDPOINT: imds.endpoint }),
  });
  t.equal(fromEnv.code, 0, fromEnv.stderr);
  t.match(fromEnv.stderr, `reading instance metadata from ${imds.endpoint}`);
  const dump = parse(fromEnv.stdout) as Record<string, unknown>;
  t.same(dump['providerMetadata'], {
    'vm-id': '02aab8a4-74ef-476e-8182-f6d2ba4166a6',
    'instance-type': 'Standard_D4s_v5',
    region: 'westus2',
  });
  t.same(dump['workerLocation'], { cloud: 'azure', region: 'westus2' });
  t.equal(dump['workerId'], imds.vmName);

  const before = imds.requests.length;
  const wins = await runCli([config({}, { worker: { implementation: 'dummy' } }, 'wins.yaml')], {
    env: env({}, { AZURE_IMDS_ENDPOINT: 'http://127.0.0.1:9' }),
  });
  t.equal(wins.code, 0, wins.stderr);
  t.ok(imds.requests.length > before, 'the configured endpoint was used');
  t.notMatch(wins.stderr, '127.0.0.1:9');

  const badEnv = await runCli([config({ metadataEndpoint: undefined }, {}, 'bad-env.yaml')], {
    env: env({}, { AZURE_IMDS_ENDPOINT: '169.254.169.254' }),
  });
  t.equal(badEnv.code, 1);
  t.match(
    badEnv.stderr,
    /error: the environment variable AZURE_IMDS_ENDPOINT: '169\.254\.169\.254' is not an http\(s\) URL/,
  );
});

t.test(
  'a Preempt mid-run reaches the worker with its deadline; Freeze and other VMs are ignored; acknowledged after exit',
  async (t) => {
    const { tc, imds, shutdown, config, env, terminations, started, polled } = await setup(t);
    const run = startCli([config({ terminationPollInterval: 0.1, acknowledgeEvents: true })], {
      env: env(GRACEFUL),
      t,
    });
    await started();
    await polled(0);

    const ignoredAt = Date.now();
    imds.postEvent({ EventType: 'Freeze', Resources: [imds.vmName], DurationInSeconds: 5 });
    imds.postEvent({ EventType: 'Reboot', Resources: ['some-other-vm'] });
    await polled(ignoredAt, 3);
    t.same(terminations(), [], 'a Freeze and an event for another VM do not stop the worker');

    const notBefore = new Date(Date.now() + 30_000).toUTCString();
    const preempt = imds.postEvent({ EventType: 'Preempt', NotBefore: notBefore, Resources: [imds.vmName] });
    const result = await run.done;
    t.equal(result.code, 0, result.stderr);
    t.same(
      terminations().map((r) => r.message),
      [
        {
          type: 'graceful-termination',
          'finish-tasks': false,
          reason: 'preemption',
          deadline: new Date(Date.parse(notBefore)).toISOString(),
        },
      ],
    );
    t.match(result.stderr, /Azure scheduled a Preempt of this VM/);
    t.same(
      imds.acknowledgements.map((a) => a.eventIds),
      [[preempt.EventId]],
      'only the Preempt was acknowledged',
    );
    t.ok(
      result.stderr.indexOf('worker exited') < result.stderr.indexOf('acknowledged scheduled event'),
      'after the worker exited',
    );
    t.equal(tc.workers.get(`${POOL}/${GROUP}/${imds.vmName}`)?.removed, true);
    t.same(shutdown.calls(), []);
  },
);

t.test(
  'a started maintenance event for every VM: reason maintenance, no deadline, not acknowledged by default',
  async (t) => {
    const { imds, config, env, terminations, started, polled } = await setup(t);
    const run = startCli([config({ terminationPollInterval: 0.1 })], { env: env(GRACEFUL), t });
    await started();
    await polled(0);
    imds.postEvent({ EventType: 'Reboot', Resources: [], EventStatus: 'Started', NotBefore: '' });
    const result = await run.done;
    t.equal(result.code, 0, result.stderr);
    t.same(
      terminations().map((r) => r.message),
      [{ type: 'graceful-termination', 'finish-tasks': false, reason: 'maintenance' }],
    );
    t.same(imds.requestsTo(SCHEDULED_EVENTS, 'POST'), [], 'nothing acknowledged');
  },
);

t.test('a worker without graceful-termination gets its termination signal', async (t) => {
  const { imds, config, env, recorded, started, polled } = await setup(t);
  const run = startCli([config({ terminationPollInterval: 0.1 })], { env: env({ capabilities: [] }), t });
  await started();
  await polled(0);
  imds.postEvent({ EventType: 'Terminate' });
  const result = await run.done;
  t.equal(result.code, 143, result.stderr);
  t.ok(recorded().some((r) => r.event === 'sigterm'));
  t.match(result.stderr, /does not accept graceful-termination; sending it SIGTERM \(reason: maintenance\)/);
});

t.test(
  'an event already announced at startup does not stop the worker from starting; it is told at once',
  async (t) => {
    const { imds, config, env, terminations, started } = await setup(t);
    const notBefore = new Date(Date.now() + 60_000).toUTCString();
    imds.postEvent({ EventType: 'Redeploy', NotBefore: notBefore });
    const result = await runCli([config()], { env: env(GRACEFUL) });
    t.equal(result.code, 0, result.stderr);
    await started();
    t.same(
      terminations().map((r) => r.message),
      [
        {
          type: 'graceful-termination',
          'finish-tasks': false,
          reason: 'maintenance',
          deadline: new Date(Date.parse(notBefore)).toISOString(),
        },
      ],
    );
    const firstPoll = imds.requestsTo(SCHEDULED_EVENTS, 'GET')[0]!;
    const registered = imds.requestsTo(ATTESTED)[0]!;
    t.ok(firstPoll.time >= registered.time, 'no Scheduled Events call during startup');
  },
);

t.test('a slow first Scheduled Events call does not delay the worker, and is waited for', async (t) => {
  const { imds, config, env, terminations, started, polled } = await setup(t, {
    imds: { firstScheduledEventsDelayMs: 4000 },
  });
  const run = startCli([config({ terminationPollInterval: 0.1 })], { env: env(GRACEFUL), t });
  const start = await started();
  await polled(0);
  const [first, second] = imds.requestsTo(SCHEDULED_EVENTS, 'GET');
  t.ok(start.time < first!.answeredAt!, 'the worker started before the first call was answered');
  t.ok(first!.answeredAt! - first!.time >= 3900, 'the first call took its time');
  t.equal(first!.outcome, 200, 'and was not abandoned at the usual 2 s timeout');
  await waitFor('a second poll', () => second ?? imds.requestsTo(SCHEDULED_EVENTS, 'GET')[1]);
  t.ok(imds.requestsTo(SCHEDULED_EVENTS, 'GET')[1]!.time >= first!.answeredAt!, 'polls never overlap');
  imds.postEvent({ EventType: 'Preempt' });
  const result = await run.done;
  t.equal(result.code, 0, result.stderr);
  t.equal(terminations().length, 1);
  t.notMatch(result.stderr, /watching Azure scheduled events failed/);
});

t.test(
  '20 s of failing Scheduled Events: no crash, no termination, bounded requests; then an event still arrives',
  async (t) => {
    const { imds, config, env, terminations, started, polled } = await setup(t);
    const run = startCli([config({ terminationPollInterval: 0.2 })], { env: env(GRACEFUL), t, timeoutMs: 90_000 });
    await started();
    await polled(0);
    const windowStart = Date.now();
    const windowEnd = windowStart + 20_000;
    imds.failScheduledEvents(20_000, [
      { kind: 'status', status: 502 },
      { kind: 'drop' },
      { kind: 'delay', ms: 5000 },
      { kind: 'status', status: 500, body: { error: 'Internal Server Error' } },
    ]);
    await waitFor(
      'a successful poll after the failures',
      () => imds.requestsTo(SCHEDULED_EVENTS, 'GET').some((r) => r.time >= windowEnd && r.outcome === 200),
      40_000,
    );
    const during = imds.requestsTo(SCHEDULED_EVENTS, 'GET').filter((r) => r.fault !== undefined);
    t.ok(during.length >= 4, `retried during the failures (${during.length} requests)`);
    t.ok(during.length <= 10, `backed off: ${during.length} requests in 20 s, not the 100 a 0.2 s poll would make`);
    t.ok(
      during.every((r) => r.outcome !== 200 && r.time < windowEnd),
      `every one of them failed: ${JSON.stringify(during.map((r) => [r.time - windowStart, r.outcome]))}`,
    );
    t.equal(run.child.exitCode, null, 'the runner is still running');
    t.same(terminations(), [], 'a failed poll is not an event');
    t.match(
      run.stderr(),
      /watching Azure scheduled events failed \(1 in a row\): GET \/metadata\/scheduledevents: HTTP 502: Bad Gateway/,
    );
    await waitFor('the watcher to log its recovery', () =>
      /watching Azure scheduled events: working again after \d+ failed attempt\(s\)/.test(run.stderr()),
    );

    imds.postEvent({ EventType: 'Preempt' });
    const result = await run.done;
    t.equal(result.code, 0, result.stderr);
    t.equal(terminations().length, 1);
  },
);

t.test('startup: metadata faults (502, dropped connection, slow answer, 410) are retried', async (t) => {
  const { tc, imds, config } = await setup(t);
  imds.inject(INSTANCE, { kind: 'status', status: 502 });
  imds.inject(INSTANCE, { kind: 'drop' });
  imds.inject(ATTESTED, { kind: 'delay', ms: 2500 });
  imds.inject(ATTESTED, { kind: 'status', status: 410 });
  const result = await runCli([config({}, { worker: { implementation: 'dummy' } })]);
  t.equal(result.code, 0, result.stderr);
  t.equal(imds.requestsTo(INSTANCE).length, 3);
  t.equal(imds.requestsTo(ATTESTED).length, 3);
  t.match(result.stderr, /instance metadata: GET \/metadata\/instance: HTTP 502: Bad Gateway; retrying in/);
  t.match(
    result.stderr,
    /attested document: GET http:\/\/127\.0\.0\.1:\d+\/metadata\/attested\/document\?api-version=2025-04-07: no answer within 2s; retrying/,
  );
  t.match(result.stderr, /attested document: GET \/metadata\/attested\/document: HTTP 410/);
  t.equal(tc.callsTo('registerWorker').length, 1);
});

t.test('startup: a persistent failure ends after the retry window, naming the path; a 404 at once', async (t) => {
  const { tc, imds, shutdown, config } = await setup(t);
  imds.inject(INSTANCE, { kind: 'status', status: 500, body: { error: 'Internal Server Error' } }, 1000);
  const started = Date.now();
  const result = await runCli([config({}, { startupRetryWindow: 2 })]);
  t.equal(result.code, 1);
  t.match(
    result.stderr,
    /error: GET \/metadata\/instance: HTTP 500: Internal Server Error; gave up after startupRetryWindow \(2s\): is this an Azure VM with its metadata service at http:\/\/127\.0\.0\.1:\d+\? Elsewhere, set provider\.metadataEndpoint or AZURE_IMDS_ENDPOINT\n/,
  );
  const attempts = imds.requestsTo(INSTANCE).length;
  t.ok(attempts >= 2 && attempts <= 8, `retried a bounded number of times (${attempts})`);
  t.ok(Date.now() - started < 15_000, 'within the window');

  imds.faults.clear();
  imds.inject(INSTANCE, { kind: 'status', status: 404, body: { error: 'Not found' } });
  const notFound = await runCli([config({}, {}, 'not-found.yaml')]);
  t.equal(notFound.code, 1);
  t.match(
    notFound.stderr,
    /error: GET \/metadata\/instance: HTTP 404: Not found; is the metadata endpoint an Azure Instance Metadata Service\?\n/,
  );
  t.equal(imds.requestsTo(INSTANCE).length, attempts + 1, 'a 404 is not retried');
  t.equal(tc.callsTo('registerWorker').length, 0);
  t.same(shutdown.calls(), []);
});

t.test('missing required values are errors naming them', async (t) => {
  const cases: { name: string; change: (imds: FakeAzureMetadata) => void; error: RegExp }[] = [
    {
      name: 'a tag',
      change: (imds) => imds.setTag('worker-group', undefined),
      error:
        /error: \/metadata\/instance: the VM has no tag 'worker-group' in compute\.tagsList; worker-manager tags the VMs it creates/,
    },
    {
      name: 'an empty tag',
      change: (imds) => imds.setTag('root-url', ''),
      error: /error: \/metadata\/instance: the VM has no tag 'root-url'/,
    },
    {
      name: 'the VM name',
      change: (imds) => delete (imds.instance['compute'] as Record<string, unknown>)['name'],
      error: /error: \/metadata\/instance: compute\.name is missing or empty/,
    },
    {
      name: 'the tags',
      change: (imds) => delete (imds.instance['compute'] as Record<string, unknown>)['tagsList'],
      error: /error: \/metadata\/instance: compute\.tagsList is missing or empty/,
    },
    {
      name: 'the signature',
      change: (imds) => delete imds.attested['signature'],
      error: /error: \/metadata\/attested\/document: signature is missing or empty/,
    },
    {
      name: 'pkcs7',
      change: (imds) => (imds.attested['encoding'] = 'base64'),
      error: /error: \/metadata\/attested\/document: expected an attested document with encoding pkcs7, got "base64"/,
    },
  ];
  await Promise.all(
    cases.map(async ({ name, change, error }) => {
      const { tc, imds, shutdown, config } = await setup(t);
      change(imds);
      const result = await runCli([config()]);
      t.equal(result.code, 1, name);
      t.match(result.stderr, error, name);
      t.equal(tc.callsTo('registerWorker').length, 0, `${name}: nothing registered`);
      t.same(shutdown.calls(), [], `${name}: no shutdown`);
    }),
  );
});

t.test('the fake is as strict as IMDS: Metadata: true and a known api-version', async (t) => {
  const imds = await new FakeAzureMetadata().start();
  t.teardown(() => imds.stop());
  const get = async (path: string, headers: Record<string, string>) => {
    const response = await fetch(`${imds.endpoint}${path}`, { headers });
    return { status: response.status, body: (await response.json()) as { error: string } };
  };
  const noHeader = await get(`${INSTANCE}?api-version=2025-04-07`, {});
  t.equal(noHeader.status, 400);
  t.equal(noHeader.body.error, 'Bad request. Required metadata header not specified');
  t.equal(
    (await get(`${INSTANCE}?api-version=2025-04-07`, { Metadata: 'true', 'X-Forwarded-For': '10.0.0.1' })).status,
    400,
  );
  const noVersion = await get(INSTANCE, { Metadata: 'true' });
  t.equal(noVersion.status, 400);
  t.match(noVersion.body.error, /api-version was not specified/);
  t.equal(
    (await get(`${SCHEDULED_EVENTS}?api-version=2025-04-07`, { Metadata: 'true' })).status,
    400,
    'Scheduled Events has its own versions',
  );
  t.equal((await get(`${SCHEDULED_EVENTS}?api-version=2020-07-01`, { Metadata: 'true' })).status, 200);
  t.equal(imds.refused().length, 4);
});

t.test('useCachedRun makes no metadata request, and the watcher still runs after it', async (t) => {
  const imds = await new FakeAzureMetadata().start();
  t.teardown(() => imds.stop());
  const registry = builtinRegistry();
  const { config } = await validateRunnerConfig(
    {
      provider: {
        providerType: 'azure',
        metadataEndpoint: imds.endpoint,
        terminationPollInterval: 0.05,
        acknowledgeEvents: true,
      },
      worker: { implementation: 'dummy' },
    },
    registry,
  );
  const azure = await registry.get('provider', 'azure');
  const { log } = captureLogger();
  const provider = azure.create(config!.provider, { log, runnerConfig: config! });
  const state = { ...emptyRunState({}), workerId: imds.vmName };
  await provider.useCachedRun(state);
  t.same(imds.requests, [], 'no request');

  const requests: TerminationRequest[] = [];
  provider.workerStarted({ requestTermination: (request) => requests.push(request) });
  await waitFor('a poll', () => imds.requestsTo(SCHEDULED_EVENTS, 'GET').some((r) => r.outcome === 200));
  const reboot = imds.postEvent({ EventType: 'Reboot', NotBefore: 'Mon, 19 Sep 2044 18:29:47 GMT' });
  const preempt = imds.postEvent({ EventType: 'Preempt', NotBefore: 'Mon, 19 Sep 2044 18:20:00 GMT' });
  imds.postEvent({ EventType: 'Redeploy', EventStatus: 'Started', NotBefore: '', Resources: ['another-vm'] });
  await waitFor('the request', () => requests.length === 1);
  const posted = Date.now();
  await waitFor(
    'more polls',
    () => imds.requestsTo(SCHEDULED_EVENTS, 'GET').filter((r) => r.time > posted && r.outcome === 200).length >= 3,
  );
  t.same(
    requests,
    [{ finishTasks: false, reason: 'preemption', deadline: new Date('2044-09-19T18:20:00Z') }],
    'once: preemption, the earliest deadline',
  );
  await provider.workerFinished(state);
  t.same(
    imds.acknowledgements.map((a) => a.eventIds.sort()),
    [[reboot.EventId, preempt.EventId].sort()],
  );
  t.notOk(
    imds.requests.some((r) => r.outcome === 'pending'),
    'no poll left running',
  );
});

t.test('config: metadataEndpoint must be a URL, terminationPollInterval positive', async (t) => {
  const dir = tempDir(t);
  const bad = writeConfig(dir, {
    provider: { providerType: 'azure', metadataEndpoint: 'not a url', terminationPollInterval: 0 },
    worker: { implementation: 'dummy' },
  });
  const result = await runCli(['validate', bad]);
  t.equal(result.code, 1);
  t.match(result.stderr, /provider\.terminationPollInterval: must be > 0/);
  const url = writeConfig(
    dir,
    { provider: { providerType: 'azure', metadataEndpoint: 'ftp://x' }, worker: { implementation: 'dummy' } },
    { name: 'url.yaml' },
  );
  const urlResult = await runCli(['validate', url]);
  t.equal(urlResult.code, 1);
  t.match(urlResult.stderr, /provider\.metadataEndpoint: 'ftp:\/\/x' is not an http\(s\) URL/);
  const valid = await runCli([
    'validate',
    writeConfig(
      dir,
      {
        provider: { providerType: 'azure', acknowledgeEvents: true, terminationPollInterval: 0.25 },
        worker: { implementation: 'dummy' },
      },
      { name: 'ok.yaml' },
    ),
  ]);
  t.equal(valid.code, 0, valid.stderr);
});
