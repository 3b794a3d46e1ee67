import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parse } from 'yaml';
import awsPlugin from '../providers/aws.js';
import type { RunnerConfig } from '../src/config/types.js';
import type { TerminationRequest } from '../src/plugin.js';
import { emptyRunState } from '../src/state.js';
import {
  DEFAULT_IDENTITY,
  FakeEc2Metadata,
  REBALANCE,
  SPOT_INSTANCE_ACTION,
  SPOT_TERMINATION_TIME,
  TOKEN_PATH,
} from './fakes/aws-metadata.js';
import { FAKE_AWS_CREDENTIALS, FAKE_AWS_ENV, FakeAwsSecretsManager } from './fakes/aws-secrets-manager.js';
import { FakeTaskcluster } from './fakes/taskcluster.js';
import { captureLogger } from './log-capture.js';
import {
  fakeWorkerSection,
  isAlive,
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

const POOL = 'proj/aws-pool';
const PROVIDER = 'aws-prov';
const GROUP = 'us-west-2';
const WORKER_KEY = `${POOL}/${GROUP}/${DEFAULT_IDENTITY.instanceId}`;
const ALL = ['error-report', 'graceful-termination', 'log', 'new-credentials', 'shutdown'];
const USER_DATA = '/latest/user-data';
const DOCUMENT = '/latest/dynamic/instance-identity/document';
const SIGNATURE = '/latest/dynamic/instance-identity/signature';
const PUBLIC_IPV4 = '/latest/meta-data/public-ipv4';

interface Recorded {
  event: string;
  time: number;
  pid?: number;
  message?: Record<string, unknown>;
  env?: Record<string, string>;
}

type Teardown = { teardown(fn: () => void | Promise<void>): void };

/** A Taskcluster deployment with an aws worker pool, an EC2 metadata service, and a directory for the run. */
async function awsSetup(t: Teardown, workerConfig: Record<string, unknown> = {}) {
  const tc = await new FakeTaskcluster().start();
  t.teardown(() => tc.stop());
  tc.addWorkerPool(POOL, PROVIDER, workerConfig);
  tc.acceptProofsFrom.add(PROVIDER);
  const imds = await new FakeEc2Metadata().start();
  t.teardown(() => imds.stop());
  imds.setUserData({ rootUrl: tc.rootUrl, workerPoolId: POOL, providerId: PROVIDER, workerGroup: GROUP });
  const dir = tempDir(t);
  const shutdown = recordingShutdown(dir);
  const recordFile = join(dir, 'record.jsonl');
  const recorded = () => readJsonLines<Recorded>(recordFile);
  const messages = () =>
    recorded()
      .filter((r) => r.event === 'message')
      .map((r) => r.message!);
  /** A runner config: the aws provider pointed at the fake (unless overridden), a protocol test worker. */
  const config = (
    options: {
      provider?: Record<string, unknown>;
      worker?: Record<string, unknown>;
      extra?: Record<string, unknown>;
      name?: string;
    } = {},
  ) =>
    writeConfig(
      dir,
      {
        provider: {
          providerType: 'aws',
          metadataEndpoint: imds.endpoint,
          terminationPollInterval: 0.1,
          ...options.provider,
        },
        worker: options.worker ?? fakeWorkerSection(),
        getSecrets: false,
        shutdownCommand: shutdown.command,
        startupRetryWindow: 5,
        ...options.extra,
      },
      options.name ? { name: options.name } : {},
    );
  /** The environment for the CLI: the worker's script, and no inherited metadata endpoint. */
  const env = (script: Record<string, unknown>, overrides: Record<string, string | undefined> = {}) => ({
    FAKE_WORKER: JSON.stringify(script),
    FAKE_WORKER_RECORD: recordFile,
    AWS_EC2_METADATA_SERVICE_ENDPOINT: undefined,
    ...overrides,
  });
  return { tc, imds, dir, shutdown, recorded, messages, config, env };
}

/** An executable that runs the protocol test worker (generic-worker's place). */
function fakeExecutable(path: string): void {
  writeFileSync(path, `#!/bin/sh\nexec "${process.execPath}" "${protocolWorkerPath}" "$@"\n`);
  chmodSync(path, 0o755);
}

/** A time a whole second in the future, as EC2 writes notice times. */
function wholeSecondsFromNow(seconds: number): Date {
  return new Date(Math.ceil(Date.now() / 1000) * 1000 + seconds * 1000);
}

const helloSeen = (run: { stderr: () => string }) =>
  waitFor('the worker to say hello', () => run.stderr().includes('worker capabilities'));

t.test('the fake metadata service is as strict as IMDSv2', async (t) => {
  const imds = await new FakeEc2Metadata().start();
  t.teardown(() => imds.stop());
  const get = (token?: string) =>
    fetch(`${imds.endpoint}${DOCUMENT}`, { headers: token ? { 'X-aws-ec2-metadata-token': token } : {} });
  t.equal((await get()).status, 401, 'a GET without a token is refused');
  t.equal((await get('made-up')).status, 401, 'a GET with an unknown token is refused');
  t.equal(
    (await fetch(`${imds.endpoint}${TOKEN_PATH}`, { method: 'PUT' })).status,
    400,
    'a token PUT without the TTL header is refused',
  );
  t.equal(
    (
      await fetch(`${imds.endpoint}${TOKEN_PATH}`, {
        method: 'PUT',
        headers: { 'X-aws-ec2-metadata-token-ttl-seconds': '21601' },
      })
    ).status,
    400,
    'a TTL over 6 hours is refused',
  );
  const put = await fetch(`${imds.endpoint}${TOKEN_PATH}`, {
    method: 'PUT',
    headers: { 'X-aws-ec2-metadata-token-ttl-seconds': '60' },
  });
  t.equal(put.status, 200);
  const token = await put.text();
  const document = await get(token);
  t.equal(document.status, 200);
  t.equal(await document.text(), imds.identityDocument);
  t.equal(
    (await fetch(`${imds.endpoint}${SPOT_INSTANCE_ACTION}`, { headers: { 'X-aws-ec2-metadata-token': token } })).status,
    404,
    'no notice yet',
  );
  imds.expireTokens();
  t.equal((await get(token)).status, 401, 'an expired token is refused');
  t.equal(imds.tokenPuts, 1);
  t.equal(imds.count(DOCUMENT), 4);
});

t.test('aws end to end', async (t) => {
  t.jobs = 8;

  t.test(
    'registration: identity proof, ids, location, provider metadata, the worker config (endpoint from the environment)',
    async (t) => {
      const { tc, imds, dir, shutdown, recorded, config, env } = await awsSetup(t, {
        genericWorker: { config: { fromWorkerManager: true } },
      });
      fakeExecutable(join(dir, 'gw'));
      const configPath = join(dir, 'gw.json');
      const runnerConfig = config({
        provider: { metadataEndpoint: undefined },
        worker: { implementation: 'generic-worker', path: join(dir, 'gw'), configPath },
      });
      const result = await runCli([runnerConfig], {
        env: env({ capabilities: [], exitAfterOutput: 0 }, { AWS_EC2_METADATA_SERVICE_ENDPOINT: `${imds.endpoint}/` }),
      });
      t.equal(result.code, 0, result.stderr);

      const [register] = tc.callsTo('registerWorker');
      t.equal(register?.clientId, undefined, 'registerWorker is not authenticated');
      t.same(
        { ...register!.body, systemBootTime: undefined },
        {
          workerPoolId: POOL,
          providerId: PROVIDER,
          workerGroup: GROUP,
          workerId: DEFAULT_IDENTITY.instanceId,
          workerIdentityProof: { document: imds.identityDocument, signature: imds.identitySignature },
          systemBootTime: undefined,
        },
        'the raw document and signature are the proof; the instance ID is the worker ID',
      );

      const providerMetadata = {
        'instance-id': DEFAULT_IDENTITY.instanceId,
        image: DEFAULT_IDENTITY.imageId,
        'instance-type': DEFAULT_IDENTITY.instanceType,
        region: DEFAULT_IDENTITY.region,
        'availability-zone': DEFAULT_IDENTITY.availabilityZone,
        'local-ipv4': DEFAULT_IDENTITY.privateIp,
        'public-hostname': 'ec2-203-0-113-25.us-west-2.compute.amazonaws.com',
        'public-ipv4': '203.0.113.25',
      };
      const location = { cloud: 'aws', region: 'us-west-2', availabilityZone: 'us-west-2b' };
      const gwConfig = JSON.parse(readFileSync(configPath, 'utf8')) as Record<string, unknown>;
      t.match(gwConfig, {
        fromWorkerManager: true,
        publicIP: '203.0.113.25',
        privateIP: DEFAULT_IDENTITY.privateIp,
        instanceType: DEFAULT_IDENTITY.instanceType,
        instanceID: DEFAULT_IDENTITY.instanceId,
        region: 'us-west-2',
        availabilityZone: 'us-west-2b',
        workerLocation: JSON.stringify(location),
        rootURL: tc.rootUrl,
        clientId: /^worker\/aws-prov\//,
        provisionerId: 'proj',
        workerType: 'aws-pool',
        workerGroup: GROUP,
        workerId: DEFAULT_IDENTITY.instanceId,
      });
      t.same(gwConfig['workerTypeMetadata'], providerMetadata, 'the provider metadata, complete');
      t.notOk('ignored' in gwConfig, "the user data's workerConfig is ignored in favour of registerWorker's");
      t.ok(
        recorded().some((r) => r.event === 'started'),
        'the worker ran',
      );

      t.equal(imds.tokenPuts, 1, 'one session token for the whole run');
      t.same(
        imds.requests.filter((r) => r.status === 401),
        [],
        'every GET carried a valid token',
      );
      t.equal(imds.count(REBALANCE), 0, 'rebalance recommendations are ignored by default');
      t.ok(tc.workers.get(WORKER_KEY)?.removed, 'the worker was removed when it exited');
      t.same(shutdown.calls(), [], 'no shutdown');
      t.same(leakedSecrets(result.stdout + result.stderr, tc.issuedSecrets()), [], 'no secret appears in the output');
    },
  );

  t.test(
    'the config key wins over the environment; a private instance has no public hostname or address',
    async (t) => {
      const { tc, imds, config, env } = await awsSetup(t);
      imds.metaData.delete('public-hostname');
      imds.metaData.delete('public-ipv4');
      const result = await runCli([config({ worker: { implementation: 'dummy' } })], {
        // nothing listens on the discard port: the run only works if the config key wins
        env: env({}, { AWS_EC2_METADATA_SERVICE_ENDPOINT: 'http://127.0.0.1:9' }),
      });
      t.equal(result.code, 0, result.stderr);
      const dump = parse(result.stdout) as {
        providerMetadata: Record<string, string>;
        workerLocation: Record<string, string>;
        workerId: string;
      };
      t.same(dump.providerMetadata, {
        'instance-id': DEFAULT_IDENTITY.instanceId,
        image: DEFAULT_IDENTITY.imageId,
        'instance-type': DEFAULT_IDENTITY.instanceType,
        region: 'us-west-2',
        'availability-zone': 'us-west-2b',
        'local-ipv4': DEFAULT_IDENTITY.privateIp,
      });
      t.same(dump.workerLocation, { cloud: 'aws', region: 'us-west-2', availabilityZone: 'us-west-2b' });
      t.equal(imds.count(PUBLIC_IPV4), 1, 'a 404 is an answer, not retried');
      t.equal(tc.callsTo('registerWorker').length, 1);
    },
  );

  t.test("an AWS Secrets Manager source without a region reads from the instance's region", async (t) => {
    const { config, env } = await awsSetup(t);
    const secretsManager = await new FakeAwsSecretsManager(FAKE_AWS_CREDENTIALS).start();
    t.teardown(() => secretsManager.stop());
    secretsManager.secrets.set('workers/aws', JSON.stringify({ fromSecretsManager: true }));
    const secrets = [{ source: 'aws-secrets-manager', secretId: 'workers/aws', endpoint: secretsManager.endpoint }];
    const result = await runCli([config({ worker: { implementation: 'dummy' }, extra: { secrets } })], {
      env: env({}, FAKE_AWS_ENV),
    });
    t.equal(result.code, 0, result.stderr);
    t.equal(secretsManager.calls[0]?.region, DEFAULT_IDENTITY.region, 'the region of the instance identity document');
    t.match(
      parse(result.stdout),
      { workerConfig: { fromSecretsManager: '<redacted>' } },
      'the secret reached the worker config (its value redacted in the dump)',
    );
  });

  t.test('a spot interruption mid-run reaches the worker as graceful-termination with its deadline', async (t) => {
    const { tc, imds, shutdown, recorded, messages, config, env } = await awsSetup(t);
    const run = startCli([config()], { env: env({ capabilities: ALL, onGracefulTermination: { exit: 0 } }), t });
    await helloSeen(run);
    const started = recorded().find((r) => r.event === 'started');
    t.same(JSON.parse(started!.env!['TASKCLUSTER_WORKER_LOCATION']!), {
      cloud: 'aws',
      region: 'us-west-2',
      availabilityZone: 'us-west-2b',
    });
    t.equal(started!.env!['TASKCLUSTER_WORKER_ID'], DEFAULT_IDENTITY.instanceId);
    t.equal(started!.env!['TASKCLUSTER_PROVIDER_ID'], PROVIDER);
    await waitFor('a first poll', () => imds.count(SPOT_INSTANCE_ACTION) > 0);
    const deadline = wholeSecondsFromNow(120);
    imds.announceSpotInterruption('terminate', deadline);
    const result = await run.done;
    t.equal(result.code, 0, result.stderr);
    t.same(
      messages().find((m) => m['type'] === 'graceful-termination'),
      {
        type: 'graceful-termination',
        'finish-tasks': false,
        reason: 'spot-interruption',
        deadline: deadline.toISOString(),
      },
    );
    t.match(
      result.stderr,
      /EC2 spot interruption notice \(\/latest\/meta-data\/spot\/instance-action\): terminate at /,
    );
    t.equal(result.stderr.match(/sent graceful-termination/g)?.length, 1, 'sent once');
    t.ok(tc.workers.get(WORKER_KEY)?.removed, 'removed from worker-manager');
    t.same(shutdown.calls(), []);
  });

  t.test('a spot interruption and a worker without graceful-termination: its termination signal', async (t) => {
    const { imds, recorded, config, env } = await awsSetup(t);
    const run = startCli([config()], { env: env({ capabilities: ['log'] }), t });
    await helloSeen(run);
    imds.announceSpotInterruption('stop', wholeSecondsFromNow(120));
    const result = await run.done;
    t.equal(result.code, 143, 'the worker died of SIGTERM (143 is its exit code for it)');
    t.ok(recorded().some((r) => r.event === 'sigterm'));
    t.match(result.stderr, /does not accept graceful-termination; sending it SIGTERM \(reason: spot-interruption\)/);
  });

  t.test('rebalance: graceful asks the worker to finish its tasks; a spot notice then says stop now', async (t) => {
    const { imds, messages, config, env } = await awsSetup(t);
    const run = startCli(
      [config({ provider: { rebalance: 'graceful' }, worker: fakeWorkerSection({ gracePeriod: 120 }) })],
      {
        env: env({ capabilities: ALL, onGracefulTermination: 'ignore' }),
        t,
      },
    );
    await helloSeen(run);
    await waitFor('rebalance polls', () => imds.count(REBALANCE) > 0);
    imds.recommendRebalance(new Date());
    const terminations = () => messages().filter((m) => m['type'] === 'graceful-termination');
    await waitFor('the rebalance request', () => terminations().length === 1);
    t.same(terminations()[0], { type: 'graceful-termination', 'finish-tasks': true, reason: 'rebalance' });
    const rebalancePolls = imds.count(REBALANCE);
    const deadline = wholeSecondsFromNow(120);
    imds.announceSpotInterruption('terminate', deadline);
    await waitFor('the spot request', () => terminations().length === 2);
    t.same(terminations()[1], {
      type: 'graceful-termination',
      'finish-tasks': false,
      reason: 'spot-interruption',
      deadline: deadline.toISOString(),
    });
    t.equal(
      imds.count(REBALANCE),
      rebalancePolls,
      'a recommendation is acted on once; only the spot notice is watched after it',
    );
    // The worker ignores both; two SIGTERMs to the runner end it.
    run.child.kill('SIGTERM');
    await waitFor('the runner to handle SIGTERM', () => run.stderr().includes('received SIGTERM'));
    run.child.kill('SIGTERM');
    const result = await run.done;
    t.equal(result.code, 137);
    t.match(
      result.stderr,
      /EC2 rebalance recommendation \(\/latest\/meta-data\/events\/recommendations\/rebalance\): \{"noticeTime":/,
    );
  });

  t.test('refusing to start under an announced interruption', async (t) => {
    t.test('spot/instance-action', async (t) => {
      const { tc, imds, shutdown, recorded, config, env } = await awsSetup(t);
      imds.announceSpotInterruption('terminate', wholeSecondsFromNow(90));
      const result = await runCli([config()], { env: env({ capabilities: ALL, exitAfterOutput: 0 }) });
      t.equal(result.code, 1);
      t.match(
        result.stderr,
        /error: the EC2 metadata service announces a spot interruption \(\/latest\/meta-data\/spot\/instance-action: terminate at [-\d:T.]+Z\); not starting a worker on an instance about to go away\n$/,
      );
      t.equal(tc.callsTo('registerWorker').length, 0, 'not registered');
      t.same(recorded(), [], 'no worker started');
      t.same(shutdown.calls(), []);
    });
    t.test('spot/termination-time alone (a timestamp)', async (t) => {
      const { tc, imds, config, env } = await awsSetup(t);
      imds.metaData.set('spot/termination-time', '2030-01-05T18:02:00Z');
      const result = await runCli([config()], { env: env({ capabilities: ALL, exitAfterOutput: 0 }) });
      t.equal(result.code, 1);
      t.match(
        result.stderr,
        /announces a spot interruption \(\/latest\/meta-data\/spot\/termination-time: 2030-01-05T18:02:00.000Z\)/,
      );
      t.equal(tc.callsTo('registerWorker').length, 0);
      t.equal(imds.count(SPOT_TERMINATION_TIME), 1);
    });
    t.test('a termination-time that is not a timestamp is not a notice', async (t) => {
      const { imds, config, env } = await awsSetup(t);
      imds.metaData.set('spot/termination-time', 'none');
      const result = await runCli([config({ worker: { implementation: 'dummy' } })], { env: env({}) });
      t.equal(result.code, 0, result.stderr);
    });
  });

  t.test(
    '20 s of erroring metadata during the watch: no crash, a bounded number of requests, and the watch recovers',
    async (t) => {
      const { imds, messages, config, env } = await awsSetup(t);
      const run = startCli([config()], {
        env: env({ capabilities: ALL, onGracefulTermination: { exit: 0 } }),
        t,
        timeoutMs: 90_000,
      });
      await helloSeen(run);
      await waitFor('a first poll', () => imds.count(SPOT_INSTANCE_ACTION) > 0);
      // Errors, dropped connections and answers slower than the timeout, over and over.
      for (let i = 0; i < 200; i++) {
        imds.inject(SPOT_INSTANCE_ACTION, { kind: 'status', status: 500 });
        imds.inject(SPOT_INSTANCE_ACTION, { kind: 'drop' });
        imds.inject(SPOT_INSTANCE_ACTION, { kind: 'delay', ms: 2500 });
        imds.inject(SPOT_INSTANCE_ACTION, { kind: 'status', status: 503 });
      }
      const windowStart = Date.now();
      // The outage lasts 20 s: a duration under test, not a wait for an event.
      await new Promise((resolve) => setTimeout(resolve, 20_000));
      imds.faults.clear();
      const inWindow = imds.requestsSince(windowStart);
      t.equal(run.child.exitCode, null, 'the runner is still running');
      // At 0.1 s a hot loop would make ~200 requests; backoff (0.5 s doubling, at most 10 s) allows about 8.
      t.ok(inWindow.length <= 10, `at most 10 requests in 20 s of errors (made ${inWindow.length})`);
      t.ok(inWindow.length >= 4, `it kept trying (made ${inWindow.length})`);
      t.ok(
        inWindow.every((r) => r.path === SPOT_INSTANCE_ACTION),
        'only the notice was polled (the token was reused)',
      );
      const warnings = run.stderr().match(/EC2 spot interruption watch failed/g)?.length ?? 0;
      t.ok(warnings <= 4, `failures are logged, not each one (${warnings} warnings)`);
      t.match(run.stderr(), /no answer within 2s/, 'a slow answer times out after 2 s');

      const deadline = wholeSecondsFromNow(120);
      imds.announceSpotInterruption('terminate', deadline);
      const result = await run.done;
      t.equal(result.code, 0, result.stderr);
      t.same(
        messages().find((m) => m['type'] === 'graceful-termination'),
        {
          type: 'graceful-termination',
          'finish-tasks': false,
          reason: 'spot-interruption',
          deadline: deadline.toISOString(),
        },
      );
      t.match(
        result.stderr,
        /EC2 spot interruption watch: working again after \d+ failed attempt\(s\)|EC2 spot interruption notice/,
      );
    },
  );

  t.test('startup faults are retried; an expired token is refreshed once', async (t) => {
    const { tc, imds, messages, config, env } = await awsSetup(t);
    imds.inject(TOKEN_PATH, { kind: 'drop' });
    imds.inject(TOKEN_PATH, { kind: 'status', status: 500 });
    imds.inject(USER_DATA, { kind: 'status', status: 500 }, 2);
    imds.inject(DOCUMENT, { kind: 'delay', ms: 2500 });
    imds.inject(SIGNATURE, { kind: 'drop' });
    imds.inject(PUBLIC_IPV4, { kind: 'status', status: 503 });
    imds.inject(SPOT_INSTANCE_ACTION, { kind: 'status', status: 500 });
    const run = startCli([config()], { env: env({ capabilities: ALL, onGracefulTermination: { exit: 0 } }), t });
    await helloSeen(run);
    t.equal(tc.callsTo('registerWorker').length, 1, 'registered');
    t.equal(imds.count(TOKEN_PATH), 3, 'the token PUT was retried after a dropped connection and a 500');
    t.equal(imds.count(USER_DATA), 3);
    t.equal(imds.count(DOCUMENT), 2);
    t.equal(imds.count(SIGNATURE), 2);
    t.equal(imds.count(PUBLIC_IPV4), 2);
    t.match(
      run.stderr(),
      /EC2 metadata: GET http:\/\/127\.0\.0\.1:\d+\/latest\/dynamic\/instance-identity\/document: no answer within 2s; retrying in/,
    );
    t.same(tc.callsTo('registerWorker')[0]!.body!['workerIdentityProof'], {
      document: imds.identityDocument,
      signature: imds.identitySignature,
    });

    const expired = Date.now();
    imds.expireTokens();
    await waitFor('a new token', () => imds.tokenPuts === 2);
    await waitFor(
      'polls with the new token',
      () => imds.requestsSince(expired).filter((r) => r.path === SPOT_INSTANCE_ACTION && r.status === 404).length >= 2,
    );
    t.equal(imds.requests.filter((r) => r.status === 401).length, 1, 'one refusal, one refresh: no loop');
    imds.announceSpotInterruption('terminate', wholeSecondsFromNow(120));
    const result = await run.done;
    t.equal(result.code, 0, result.stderr);
    t.ok(messages().some((m) => m['type'] === 'graceful-termination'));
    t.equal(imds.tokenPuts, 2);
  });

  t.test('a missing or unusable required value is an error naming the metadata path', async (t) => {
    t.jobs = 8;
    const cases: {
      name: string;
      prepare: (imds: FakeEc2Metadata) => void;
      error: RegExp;
      requests?: [string, number];
      window?: [string, number];
    }[] = [
      {
        name: 'no user data',
        prepare: (imds) => (imds.userData = undefined),
        error:
          /error: GET http:\/\/127\.0\.0\.1:\d+\/latest\/user-data: not found \(HTTP 404\); start-worker's aws provider needs it/,
      },
      {
        name: 'user data without workerGroup',
        prepare: (imds) =>
          (imds.userData = JSON.stringify({ rootUrl: 'http://127.0.0.1:1', workerPoolId: POOL, providerId: PROVIDER })),
        error:
          /error: the user data \(GET http:\/\/127\.0\.0\.1:\d+\/latest\/user-data\) has no workerGroup; worker-manager's aws provider writes/,
      },
      {
        name: 'user data that is not JSON',
        prepare: (imds) => (imds.userData = '#!/bin/bash\necho hi'),
        error: /error: the user data \(GET .*\/latest\/user-data\) is not JSON/,
      },
      {
        name: 'a document without instanceId',
        prepare: (imds) =>
          (imds.identityDocument = JSON.stringify({ region: 'us-west-2', availabilityZone: 'us-west-2b' })),
        error:
          /error: the instance identity document \(GET http:\/\/127\.0\.0\.1:\d+\/latest\/dynamic\/instance-identity\/document\) has no instanceId/,
      },
      {
        name: 'no signature',
        prepare: (imds) => (imds.identitySignature = undefined),
        error:
          /error: GET http:\/\/127\.0\.0\.1:\d+\/latest\/dynamic\/instance-identity\/signature: not found \(HTTP 404\)/,
      },
      {
        name: 'a persistent 500 gives up when startupRetryWindow has passed',
        prepare: (imds) => imds.inject(DOCUMENT, { kind: 'status', status: 500 }, 100),
        error:
          /error: GET http:\/\/127\.0\.0\.1:\d+\/latest\/dynamic\/instance-identity\/document: HTTP 500: "injected fault"; gave up after startupRetryWindow \(5s\): is this an EC2 instance, with its metadata service at http:\/\/127\.0\.0\.1:\d+\? Elsewhere, set provider\.metadataEndpoint or AWS_EC2_METADATA_SERVICE_ENDPOINT\n$/,
        window: [DOCUMENT, 5000],
      },
      {
        name: 'tokens refused (403): the metadata service is disabled',
        prepare: (imds) => imds.inject(TOKEN_PATH, { kind: 'status', status: 403 }, 100),
        error:
          /error: PUT http:\/\/127\.0\.0\.1:\d+\/latest\/api\/token: HTTP 403: "injected fault"; the instance metadata service is disabled for this instance \(enable HttpEndpoint\)/,
        requests: [TOKEN_PATH, 1],
      },
      {
        name: 'a 401 after a fresh token is not retried forever',
        prepare: (imds) => imds.inject(USER_DATA, { kind: 'status', status: 401 }, 100),
        error: /error: GET .*\/latest\/user-data: HTTP 401/,
        requests: [USER_DATA, 2],
      },
    ];
    for (const c of cases) {
      t.test(c.name, async (t) => {
        const { tc, imds, shutdown, config, env } = await awsSetup(t);
        c.prepare(imds);
        const started = Date.now();
        const result = await runCli([config()], { env: env({ capabilities: ALL, exitAfterOutput: 0 }) });
        t.equal(result.code, 1);
        t.match(result.stderr, c.error);
        t.equal(tc.callsTo('registerWorker').length, 0, 'not registered');
        t.same(shutdown.calls(), [], 'no shutdown: the machine is not known to worker-manager yet');
        if (c.requests)
          t.equal(imds.count(c.requests[0]), c.requests[1], `${c.requests[1]} request(s) to ${c.requests[0]}`);
        if (c.window) {
          const times = imds
            .requestsSince(started)
            .filter((r) => r.path === c.window![0])
            .map((r) => r.time);
          t.ok(times.length >= 4, `retried (${times.length} attempts)`);
          t.ok(
            times.at(-1)! - times[0]! <= c.window[1] + 500,
            `no attempt after the window (the last ${times.at(-1)! - times[0]!} ms after the first)`,
          );
        }
        t.ok(Date.now() - started < 20_000, 'within a bounded time');
      });
    }
  });

  t.test('the worker exits (code 3): removed from worker-manager, no shutdown, its code is ours', async (t) => {
    const { tc, shutdown, config, env } = await awsSetup(t);
    const result = await runCli([config()], { env: env({ capabilities: ALL, exitAfterOutput: 3 }) });
    t.equal(result.code, 3);
    t.ok(tc.workers.get(WORKER_KEY)?.removed, 'removed');
    t.equal(tc.callsTo('removeWorker').length, 1);
    t.same(shutdown.calls(), []);
  });

  t.test('removal refused (403): the shutdown command runs', async (t) => {
    const { tc, shutdown, config, env } = await awsSetup(t);
    tc.inject('removeWorker', { kind: 'status', status: 403 });
    const result = await runCli([config()], { env: env({ capabilities: ALL, exitAfterOutput: 0 }) });
    t.equal(result.code, 0);
    t.equal(tc.callsTo('removeWorker').length, 1, 'a 403 is not retried');
    t.notOk(tc.workers.get(WORKER_KEY)?.removed);
    t.same(shutdown.calls(), ['shutdown -h now']);
    t.match(result.stderr, /could not remove the worker from worker-manager/);
  });

  t.test('a shutdown message: removed while the worker runs; the runner exits with its code later', async (t) => {
    const { tc, shutdown, recorded, config, env } = await awsSetup(t);
    const run = startCli([config()], {
      env: env({ capabilities: ALL, output: ['~{"type":"shutdown"}'], onGracefulTermination: { exit: 5 } }),
      t,
    });
    await waitFor('the removal', () => tc.workers.get(WORKER_KEY)?.removed);
    const worker = recorded().find((r) => r.event === 'started')!;
    t.ok(isAlive(worker.pid!), 'the worker still runs');
    t.equal(run.child.exitCode, null, 'so does the runner');
    run.child.kill('SIGTERM');
    const result = await run.done;
    t.equal(result.code, 5, "the worker's exit code");
    t.equal(tc.callsTo('removeWorker').length, 1, 'removed once');
    t.same(shutdown.calls(), []);
  });

  t.test('startup failure after registration: a worker-error report, then removal', async (t) => {
    t.test('a worker command that does not exist', async (t) => {
      const { tc, dir, shutdown, config, env } = await awsSetup(t);
      const result = await runCli(
        [
          config({
            worker: { implementation: 'command', command: [join(dir, 'missing-worker')], passCredentials: 'none' },
          }),
        ],
        { env: env({}) },
      );
      t.equal(result.code, 1);
      t.match(result.stderr, /error: cannot start worker .*missing-worker/);
      t.equal(tc.reportedErrors.length, 1);
      t.match(tc.reportedErrors[0], {
        kind: 'worker-error',
        title: 'start-worker could not start the worker',
        description: /missing-worker/,
        workerGroup: GROUP,
        workerId: DEFAULT_IDENTITY.instanceId,
      });
      t.notMatch(result.stderr, /worker reported an error/, "start-worker's own report is not the worker's");
      t.match(
        result.stderr,
        /reporting the failure to worker-manager: worker-error: start-worker could not start the worker/,
      );
      const routes = tc.calls.map((c) => c.route).filter((r) => r === 'reportWorkerError' || r === 'removeWorker');
      t.same(routes, ['reportWorkerError', 'removeWorker'], 'reported, then removed');
      t.ok(tc.workers.get(WORKER_KEY)?.removed);
      t.same(shutdown.calls(), []);
    });
    t.test('the worker-pool secret refused (403)', async (t) => {
      const { tc, shutdown, config, env } = await awsSetup(t);
      tc.secrets.set(`worker-pool:${POOL}`, { status: 403 });
      const result = await runCli([config({ extra: { getSecrets: true } })], {
        env: env({ capabilities: ALL, exitAfterOutput: 0 }),
      });
      t.equal(result.code, 1);
      t.match(tc.reportedErrors[0], {
        kind: 'worker-error',
        description: /worker-pool:proj\/aws-pool failed \(HTTP 403\)/,
      });
      t.ok(tc.workers.get(WORKER_KEY)?.removed);
      t.same(shutdown.calls(), []);
    });
    t.test('with shutdownOnStartupFailure: false, neither happens', async (t) => {
      const { tc, dir, shutdown, config, env } = await awsSetup(t);
      const result = await runCli(
        [
          config({
            worker: { implementation: 'command', command: [join(dir, 'missing-worker')], passCredentials: 'none' },
            extra: { shutdownOnStartupFailure: false },
          }),
        ],
        { env: env({}) },
      );
      t.equal(result.code, 1);
      t.equal(tc.callsTo('reportWorkerError').length, 0);
      t.equal(tc.callsTo('removeWorker').length, 0);
      t.notOk(tc.workers.get(WORKER_KEY)?.removed);
      t.same(shutdown.calls(), []);
    });
  });

  t.test('registration refused (400): no credentials, so the shutdown command runs', async (t) => {
    const { tc, shutdown, recorded, config, env } = await awsSetup(t);
    tc.inject('registerWorker', { kind: 'status', status: 400 });
    const result = await runCli([config()], { env: env({ capabilities: ALL, exitAfterOutput: 0 }) });
    t.equal(result.code, 1);
    t.match(result.stderr, /worker-manager registerWorker failed \(HTTP 400\)/);
    t.match(result.stderr, /the worker has no credentials to remove itself from worker-manager/);
    t.same(shutdown.calls(), ['shutdown -h now']);
    t.equal(tc.callsTo('reportWorkerError').length, 0, 'nothing to report with');
    t.same(recorded(), [], 'no worker started');
  });

  t.test('a restart from the state cache asks the metadata service only about interruptions', async (t) => {
    const { tc, imds, dir, shutdown, messages, config, env } = await awsSetup(t);
    fakeExecutable(join(dir, 'gw'));
    const runnerConfig = config({
      worker: { implementation: 'generic-worker', path: join(dir, 'gw'), configPath: join(dir, 'gw.json') },
      extra: { cacheOverRestarts: join(dir, 'state.json') },
    });
    // generic-worker's exit code 67 asks for a reboot: the worker stays registered.
    const first = await runCli([runnerConfig], { env: env({ capabilities: [], exitAfterOutput: 67 }) });
    t.equal(first.code, 67, first.stderr);
    const restartedAt = Date.now();
    const second = startCli([runnerConfig], {
      env: env({ capabilities: ['graceful-termination'], onGracefulTermination: { exit: 0 } }),
      t,
    });
    await helloSeen(second);
    await waitFor('the watch', () => imds.count(SPOT_INSTANCE_ACTION, restartedAt) > 0);
    const deadline = wholeSecondsFromNow(120);
    imds.announceSpotInterruption('terminate', deadline);
    const result = await second.done;
    t.equal(result.code, 0, result.stderr);
    t.match(result.stderr, /continuing the run cached in/);
    const paths = new Set(imds.requestsSince(restartedAt).map((r) => `${r.method} ${r.path}`));
    t.same(
      [...paths].sort(),
      [`GET ${SPOT_INSTANCE_ACTION}`, `GET ${SPOT_TERMINATION_TIME}`, `PUT ${TOKEN_PATH}`],
      'no identity requests after a restart, only the notice check and the watch',
    );
    t.equal(tc.callsTo('registerWorker').length, 1, 'registered once');
    t.same(
      messages().find((m) => m['type'] === 'graceful-termination'),
      {
        type: 'graceful-termination',
        'finish-tasks': false,
        reason: 'spot-interruption',
        deadline: deadline.toISOString(),
      },
    );
    t.ok(tc.workers.get(WORKER_KEY)?.removed, 'removed when the restarted worker exits');
    t.same(shutdown.calls(), []);
  });

  t.test('a restart from the state cache under an announced spot interruption does not start the worker', async (t) => {
    const { tc, imds, dir, config, env, recorded } = await awsSetup(t);
    fakeExecutable(join(dir, 'gw'));
    const runnerConfig = config({
      worker: { implementation: 'generic-worker', path: join(dir, 'gw'), configPath: join(dir, 'gw.json') },
      extra: { cacheOverRestarts: join(dir, 'state.json') },
    });
    t.equal((await runCli([runnerConfig], { env: env({ capabilities: [], exitAfterOutput: 67 }) })).code, 67);
    const started = recorded().filter((r) => r.event === 'started').length;
    imds.announceSpotInterruption('terminate', wholeSecondsFromNow(100));
    const result = await runCli([runnerConfig], { env: env({ capabilities: [], exitAfterOutput: 0 }) });
    t.equal(result.code, 1);
    t.match(result.stderr, /continuing the run cached in/);
    t.match(
      result.stderr,
      /announces a spot interruption \(\/latest\/meta-data\/spot\/instance-action: terminate at .*\); not starting a worker/,
    );
    t.equal(recorded().filter((r) => r.event === 'started').length, started, 'no worker started');
    t.equal(tc.callsTo('registerWorker').length, 1, 'no second registration');
  });

  t.test(
    'cached credentials that have expired: an error saying the instance should be replaced, and no request',
    async (t) => {
      const { tc, imds, dir, config, env } = await awsSetup(t);
      fakeExecutable(join(dir, 'gw'));
      const cachePath = join(dir, 'state.json');
      const runnerConfig = config({
        worker: { implementation: 'generic-worker', path: join(dir, 'gw'), configPath: join(dir, 'gw.json') },
        extra: { cacheOverRestarts: cachePath },
      });
      t.equal((await runCli([runnerConfig], { env: env({ capabilities: [], exitAfterOutput: 67 }) })).code, 67);
      const cached = JSON.parse(readFileSync(cachePath, 'utf8')) as Record<string, unknown>;
      writeFileSync(
        cachePath,
        JSON.stringify({ ...cached, credentialsExpire: new Date(Date.now() - 60_000).toISOString() }),
        { mode: 0o600 },
      );
      const restartedAt = Date.now();
      const result = await runCli([runnerConfig], { env: env({ capabilities: [], exitAfterOutput: 0 }) });
      t.equal(result.code, 1);
      t.match(
        result.stderr,
        /the credentials cached in .*state\.json expired at .*; this worker cannot register again, so the instance should be replaced/,
      );
      t.same(imds.requestsSince(restartedAt), [], 'no metadata request');
      t.equal(tc.callsTo('registerWorker').length, 1, 'no second registration');
    },
  );

  t.test('the requests after the token go out on connections opened while the token was fetched', async (t) => {
    const { imds, config, env } = await awsSetup(t);
    // a slow token: a connection opened for the requests after it is plainly opened before its answer
    imds.inject(TOKEN_PATH, { kind: 'delay', ms: 300 });
    const result = await runCli([config()], { env: env({ capabilities: [], exitAfterOutput: 0 }) });
    t.equal(result.code, 0, result.stderr);
    const [token] = imds.requests.filter((r) => r.path === TOKEN_PATH);
    const configure = imds.requests.filter(
      (r) => r.method === 'GET' && !r.path.includes('/spot/') && r.time < (token?.answeredAt ?? 0) + 1000,
    );
    t.equal(configure.length, 5, 'user data, identity document and signature, public hostname and address');
    const late = configure.filter((r) => r.connectedAt! > token!.answeredAt!);
    t.same(
      late.map((r) => r.path),
      [],
      'no request waited for a connection of its own after the token',
    );
  });

  t.test('idle traffic at default settings: one poll a second, the token reused', async (t) => {
    const { imds, config, env } = await awsSetup(t);
    const run = startCli([config({ provider: { terminationPollInterval: undefined } })], {
      env: env({ capabilities: ALL, onGracefulTermination: { exit: 0 } }),
      t,
    });
    await helloSeen(run);
    await waitFor('a first poll', () => imds.count(SPOT_INSTANCE_ACTION) > 0);
    const windowStart = Date.now();
    // Traffic over a 10 s window: a duration under test, not a wait for an event.
    await new Promise((resolve) => setTimeout(resolve, 10_000));
    const inWindow = imds.requestsSince(windowStart);
    t.ok(
      inWindow.length >= 8 && inWindow.length <= 11,
      `about one request a second (${inWindow.length} in 10 s; 11 is 66/min)`,
    );
    t.ok(
      inWindow.every((r) => r.method === 'GET' && r.path === SPOT_INSTANCE_ACTION),
      'only spot/instance-action GETs',
    );
    t.equal(imds.tokenPuts, 1, 'one token for the whole run');
    run.child.kill('SIGTERM');
    t.equal((await run.done).code, 0);
  });
});

t.test('configuration', async (t) => {
  const dir = tempDir(t);
  const validate = (provider: Record<string, unknown>) =>
    runCli([
      'validate',
      writeConfig(
        dir,
        { provider: { providerType: 'aws', ...provider }, worker: { implementation: 'dummy' } },
        { name: `${Math.random()}.yaml` },
      ),
    ]);
  t.equal((await validate({})).code, 0, 'no key is required');
  t.match(
    (await validate({ metadataEndpoint: 'ftp://127.0.0.1' })).stderr,
    /provider\.metadataEndpoint: 'ftp:\/\/127\.0\.0\.1' must be an http:\/\/ or https:\/\/ URL such as http:\/\/169\.254\.169\.254/,
  );
  t.match(
    (await validate({ metadataEndpoint: 'not a url' })).stderr,
    /provider\.metadataEndpoint: 'not a url' is not a URL/,
  );
  t.match((await validate({ terminationPollInterval: 0 })).stderr, /provider\.terminationPollInterval/);
  t.match((await validate({ rebalance: 'sometimes' })).stderr, /provider\.rebalance/);

  const badEnv = await runCli(
    [
      writeConfig(
        dir,
        { provider: { providerType: 'aws' }, worker: { implementation: 'dummy' } },
        { name: 'env.yaml' },
      ),
    ],
    {
      env: { AWS_EC2_METADATA_SERVICE_ENDPOINT: '169.254.169.254' },
    },
  );
  t.equal(badEnv.code, 1);
  t.match(
    badEnv.stderr,
    /error: the environment variable AWS_EC2_METADATA_SERVICE_ENDPOINT: '169\.254\.169\.254' is not a URL/,
  );
});

t.test(
  'the provider on its own: useCachedRun asks only about interruptions; the watcher runs after it and stops when told',
  async (t) => {
    const imds = await new FakeEc2Metadata().start();
    t.teardown(() => imds.stop());
    const { log } = captureLogger();
    const provider = awsPlugin.create(
      { providerType: 'aws', metadataEndpoint: imds.endpoint, terminationPollInterval: 0.05, rebalance: 'ignore' },
      { log, runnerConfig: {} as RunnerConfig },
    );
    const state = emptyRunState({});
    await provider.useCachedRun(state);
    t.same(
      new Set(imds.requests.map((r) => r.path)),
      new Set([TOKEN_PATH, SPOT_INSTANCE_ACTION, SPOT_TERMINATION_TIME]),
      'a cached run asks only whether an interruption is announced',
    );

    const requests: TerminationRequest[] = [];
    provider.workerStarted({ requestTermination: (request) => requests.push(request) });
    await waitFor('polls', () => imds.count(SPOT_INSTANCE_ACTION) >= 3);
    const deadline = wholeSecondsFromNow(60);
    imds.announceSpotInterruption('hibernate', deadline);
    await waitFor('the notice', () => requests.length > 0);
    await provider.workerFinished(state);
    t.same(
      requests,
      [{ finishTasks: false, reason: 'spot-interruption', deadline }],
      'requested once, with the deadline',
    );

    // A notice AWS did not write as documented is still a notice, without a deadline.
    const garbled = awsPlugin.create(
      { providerType: 'aws', metadataEndpoint: imds.endpoint, terminationPollInterval: 0.05, rebalance: 'ignore' },
      { log, runnerConfig: {} as RunnerConfig },
    );
    imds.metaData.set('spot/instance-action', '<not json>');
    const garbledRequests: TerminationRequest[] = [];
    garbled.workerStarted({ requestTermination: (request) => garbledRequests.push(request) });
    await waitFor('the notice', () => garbledRequests.length > 0);
    await garbled.workerFinished(state);
    t.same(garbledRequests, [{ finishTasks: false, reason: 'spot-interruption' }]);

    // A second run: stopping the watcher stops the polling.
    const second = awsPlugin.create(
      { providerType: 'aws', metadataEndpoint: imds.endpoint, terminationPollInterval: 0.05, rebalance: 'ignore' },
      { log, runnerConfig: {} as RunnerConfig },
    );
    imds.metaData.delete('spot/instance-action');
    const before = imds.count(SPOT_INSTANCE_ACTION);
    second.workerStarted({ requestTermination: () => t.fail('no notice') });
    await waitFor('polls', () => imds.count(SPOT_INSTANCE_ACTION) >= before + 2);
    await second.workerFinished(state);
    const stopped = imds.count(SPOT_INSTANCE_ACTION);
    // Ten poll intervals of silence prove the poller is gone.
    await new Promise((resolve) => setTimeout(resolve, 500));
    t.equal(imds.count(SPOT_INSTANCE_ACTION), stopped, 'no poll after workerFinished');
  },
);
