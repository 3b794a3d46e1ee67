/**
 * The short form of the soak run (bench/soak.ts is the long one): a real
 * start-worker watching for interruptions at a high poll rate, with the
 * soak probe preloaded (--expose-gc, test/fixtures/soak-probe.cts), so that
 * a defect that costs a little on every poll shows in seconds: abort
 * listeners piling up on a long-lived signal, heap that grows with the
 * number of polls, Node's MaxListenersExceededWarning.
 *
 * aws cannot poll faster than every 0.05 s (its schema's minimum): a dozen
 * seconds give a couple of hundred polls, plenty to see listeners pile up
 * and Node warn, too few to tell a heap slope from warm-up. Azure's
 * interval only has to be above 0, so the heap slope is measured there, at
 * 2 ms: a few thousand polls through the same Poller and httpRequest.
 */
import { join } from 'node:path';
import t from 'tap';
import { FakeEc2Metadata, SPOT_INSTANCE_ACTION } from './fakes/aws-metadata.js';
import { FakeAzureMetadata, SCHEDULED_EVENTS, workerManagerTags } from './fakes/azure-metadata.js';
import { FakeTaskcluster } from './fakes/taskcluster.js';
import {
  fakeWorkerSection,
  readJsonLines,
  recordingShutdown,
  startCli,
  tempDir,
  waitFor,
  writeConfig,
} from './helpers.js';
import { nodeWarningLines, probeEnv, probeNodeArgs, readProbe, windowFigures } from './soak-probe.js';

/**
 * Retained heap per poll (least-squares slope of heap used after a forced
 * GC over polls, after warm-up) at or above which the run leaks. Measured
 * with this test on a 2-core machine, ~2,450 polls after a 1,000-poll
 * warm-up: the poller's abort listener per pause plus AbortSignal.any per
 * request retain 719-750 +-9 B/poll (four runs); with both fixed (the
 * listener removed when the pause ends, one AbortController per request)
 * 120-156 +-8 B/poll (fourteen runs), the JIT and caches still warming up;
 * over ten minutes in bench/soak.ts the fixed poll path keeps ~15-20
 * B/poll, the floor 5-15. 350 is under half the leak and more than twice
 * the fixed figure. The poller fixed alone leaves 182 B/poll: what
 * AbortSignal.any keeps (~40 B/poll) is caught by counting it instead.
 */
const HEAP_PER_POLL_LIMIT = 350;
/**
 * Live listeners one target may hold for one event type (and links an
 * AbortSignal.any input may keep). A watcher holds one abort listener on
 * its signal during a pause; the most seen anywhere in a healthy run is 3
 * (a ChildProcess's 'error'). Node warns at 11.
 */
const LISTENER_LIMIT = 10;

type Teardown = { teardown(fn: () => void | Promise<void>): void };

interface Soak {
  provider: 'aws' | 'azure';
  /** terminationPollInterval, seconds. */
  interval: number;
  /** Polls after hello left out of the slope (start-up garbage, JIT, caches filling). */
  warmUpPolls: number;
  /** Polls to measure after the warm-up; the run stops earlier at maxSeconds, on a slow machine. */
  polls: number;
  maxSeconds: number;
  sampleMs: number;
}

async function soak(t: Teardown, options: Soak) {
  const dir = tempDir(t);
  const pool = `soak/${options.provider}`;
  const providerId = `${options.provider}-soak`;
  const tc = await new FakeTaskcluster().start();
  t.teardown(() => tc.stop());
  tc.addWorkerPool(pool, providerId);
  tc.acceptProofsFrom.add(providerId);

  let provider: Record<string, unknown>;
  let pollTimes: () => number[];
  let announce: () => void;
  if (options.provider === 'aws') {
    const imds = await new FakeEc2Metadata().start();
    t.teardown(() => imds.stop());
    imds.setUserData({ rootUrl: tc.rootUrl, workerPoolId: pool, providerId, workerGroup: 'soak' });
    provider = { providerType: 'aws', metadataEndpoint: imds.endpoint, terminationPollInterval: options.interval };
    pollTimes = () => imds.requests.filter((r) => r.path === SPOT_INSTANCE_ACTION).map((r) => r.time);
    announce = () => imds.announceSpotInterruption('terminate', new Date(Date.now() + 120_000));
  } else {
    const imds = await new FakeAzureMetadata({
      tags: workerManagerTags(tc.rootUrl, { 'worker-pool-id': pool, 'provider-id': providerId }),
    }).start();
    t.teardown(() => imds.stop());
    provider = { providerType: 'azure', metadataEndpoint: imds.endpoint, terminationPollInterval: options.interval };
    pollTimes = () => imds.requestsTo(SCHEDULED_EVENTS, 'GET').map((r) => r.time);
    announce = () => imds.postEvent({ EventType: 'Preempt' });
  }

  const record = join(dir, 'record.jsonl');
  const probe = join(dir, 'probe.jsonl');
  const config = writeConfig(dir, {
    provider,
    worker: fakeWorkerSection(),
    getSecrets: false,
    shutdownCommand: recordingShutdown(dir).command,
  });
  const run = startCli([config], {
    t,
    nodeArgs: probeNodeArgs,
    env: {
      FAKE_WORKER: JSON.stringify({
        capabilities: ['graceful-termination', 'new-credentials'],
        onGracefulTermination: { exit: 0 },
      }),
      FAKE_WORKER_RECORD: record,
      AWS_EC2_METADATA_SERVICE_ENDPOINT: undefined,
      ...probeEnv(probe, options.sampleMs),
    },
    timeoutMs: (options.maxSeconds + 40) * 1000,
  });
  await waitFor('the worker to say hello', () => run.stderr().includes('worker capabilities'), 20_000);
  const helloAt = Date.now();
  // The soak itself: the watcher polls, the probe samples.
  const pollsSinceHello = () => pollTimes().filter((time) => time >= helloAt);
  await waitFor(
    `${options.warmUpPolls + options.polls} polls`,
    () => pollsSinceHello().length >= options.warmUpPolls + options.polls,
    options.maxSeconds * 1000,
  ).catch(() => undefined);
  const warmedUpAt = pollsSinceHello()[options.warmUpPolls] ?? Infinity;
  const announcedAt = Date.now();
  announce();
  const result = await run.done;
  const terminated = readJsonLines<{ message?: { type?: string } }>(record).some(
    (r) => r.message?.type === 'graceful-termination',
  );
  const { samples, warnings } = readProbe(probe);
  const figures = windowFigures(samples, pollTimes(), warmedUpAt, announcedAt);
  return { result, terminated, samples, warnings, figures };
}

t.jobs = 2;

t.test('aws at its fastest poll (0.05 s): abort listeners stay few and Node does not warn', async (t) => {
  const { result, terminated, samples, warnings, figures } = await soak(t, {
    provider: 'aws',
    interval: 0.05,
    warmUpPolls: 0,
    polls: 200,
    maxSeconds: 20,
    sampleMs: 250,
  });
  t.comment(
    `aws: ${figures.polls} polls; most live listeners on one target ${figures.listenersLive} (${figures.listenersWorst}); heap ${figures.heapPerPoll.toFixed(0)} +-${figures.heapPerPollError.toFixed(0)} B/poll`,
  );
  t.equal(result.code, 0, result.stderr);
  t.ok(terminated, 'the spot notice reached the worker as graceful-termination');
  t.ok(samples.length >= 20 && samples.every((s) => s.gc), 'the probe sampled, with a GC it could force');
  t.ok(figures.polls >= 100, `enough polls to tell (${figures.polls})`);
  t.ok(
    figures.listenersLive <= LISTENER_LIMIT,
    `live listeners on one target stay few: ${figures.listenersLive} (${figures.listenersWorst}) after ${figures.polls} polls`,
  );
  t.ok(
    (figures.anyDependants ?? 0) <= LISTENER_LIMIT,
    `no long-lived signal keeps a link per request made with AbortSignal.any (${figures.anyDependants ?? 'none'})`,
  );
  t.same(
    warnings.map((w) => `${w.name}: ${w.message}`),
    [],
    'no process warnings',
  );
  t.same(nodeWarningLines(result.stderr), [], 'no Node warnings on stderr');
});

t.test('azure at 2 ms: heap used after GC does not grow with polls', async (t) => {
  const { result, terminated, samples, warnings, figures } = await soak(t, {
    provider: 'azure',
    interval: 0.002,
    warmUpPolls: 1000,
    polls: 2500,
    maxSeconds: 30,
    sampleMs: 250,
  });
  t.comment(
    `azure: ${figures.polls} polls; heap ${figures.heapPerPoll.toFixed(0)} +-${figures.heapPerPollError.toFixed(0)} B/poll; most live listeners on one target ${figures.listenersLive} (${figures.listenersWorst})`,
  );
  t.equal(result.code, 0, result.stderr);
  t.ok(terminated, 'the Preempt notice reached the worker as graceful-termination');
  t.ok(samples.length >= 30 && samples.every((s) => s.gc), 'the probe sampled, with a GC it could force');
  t.ok(figures.polls >= 1000, `enough polls for a slope (${figures.polls})`);
  t.ok(
    figures.heapPerPoll < HEAP_PER_POLL_LIMIT,
    `heap used after GC grows ${figures.heapPerPoll.toFixed(0)} +-${figures.heapPerPollError.toFixed(0)} B/poll over ${figures.polls} polls (limit ${HEAP_PER_POLL_LIMIT})`,
  );
  t.ok(
    figures.listenersLive <= LISTENER_LIMIT,
    `live listeners on one target stay few: ${figures.listenersLive} (${figures.listenersWorst})`,
  );
  // Node 20 never prunes an input's links to the signals AbortSignal.any made from it
  t.ok(
    (figures.anyDependants ?? 0) <= LISTENER_LIMIT,
    `no long-lived signal keeps a link per request made with AbortSignal.any (${figures.anyDependants ?? 'none'})`,
  );
  t.same(
    warnings.map((w) => `${w.name}: ${w.message}`),
    [],
    'no process warnings',
  );
  t.same(nodeWarningLines(result.stderr), [], 'no Node warnings on stderr');
});
