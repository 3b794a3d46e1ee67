/**
 * Soak: four real start-workers (aws, azure, google, static) run side by
 * side for SOAK_SECONDS (default 600), each with its own loopback fakes, a
 * long-lived protocol worker (graceful-termination, new-credentials), the
 * interruption watch at terminationPollInterval 0.05 s (20 polls a second)
 * and credentials that live 33 s (renewed every ~3 s), so ten minutes stand
 * for days of polls and renewals. Random faults go into every fake along
 * the way (5xx, dropped connections, slow answers and timeouts, revoked
 * IMDSv2 tokens, a 503 burst from worker-manager at renewal). At the end each
 * cloud fake announces an interruption (static gets SIGTERM), which must
 * reach the worker as graceful-termination.
 *
 * Each start-worker runs with --expose-gc and the soak probe
 * (test/fixtures/soak-probe.cts), which forces a GC every SOAK_SAMPLE_MS
 * (default 1000) and samples RSS, heap used, CPU and live listeners; polls
 * are counted from the fakes' request logs. The floor, in the same run: a
 * minimal poller process (plain fetch with a timeout per request, and a
 * keep-alive node:http agent) polling an IMDS fake at the same rate, with
 * the same probe.
 *
 * Environment: SOAK_SECONDS (at the default of 600 the run goes on, two
 * minutes at most, until each watcher has made SOAK_MIN_POLLS, default
 * 10,000), SOAK_SAMPLE_MS, SOAK_WARMUP_SECONDS (default a fifth of the
 * run; samples before it are left out of slopes), SOAK_SEED
 * (faults are drawn from it; printed), SOAK_KEEP=1 keeps the run's
 * directory (probe files, worker records, stderr) and prints its path.
 *
 * Targets: retained heap per poll <= 1.2x the floor's after warm-up, no
 * Node warnings, every renewal succeeded (retries allowed), the final
 * notice arrives (aws/azure within ~1.5 s at worst). Only printed: a
 * benchmark never fails CI.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FakeEc2Metadata, SPOT_INSTANCE_ACTION, TOKEN_PATH } from '../test/fakes/aws-metadata.js';
import { FakeAzureMetadata, SCHEDULED_EVENTS, workerManagerTags } from '../test/fakes/azure-metadata.js';
import { FakeGoogleMetadata, MAINTENANCE_PATH, PREEMPTED_PATH } from '../test/fakes/google-metadata.js';
import type { Fault } from '../test/fakes/http.js';
import { FakeTaskcluster } from '../test/fakes/taskcluster.js';
import {
  fakeWorkerSection,
  networkGuard,
  readJsonLines,
  recordingShutdown,
  STATIC_SECRET,
  startCli,
  waitFor,
  writeConfig,
} from '../test/helpers.js';
import {
  nodeWarningLines,
  probeEnv,
  probeNodeArgs,
  readProbe,
  windowFigures,
  type ProbeSample,
  type WindowFigures,
} from '../test/soak-probe.js';

const POLL_INTERVAL_SECONDS = 0.05;
/** renewalDelayMs renews 30 s before expiry: a 33 s lifetime renews about every 3 s. */
const CREDENTIAL_LIFETIME_SECONDS = 33;
/** The pause between two faults into one cloud fake, and into one Taskcluster fake (ms, uniform in the range). */
const METADATA_FAULT_EVERY_MS: [number, number] = [6000, 12_000];
const TASKCLUSTER_FAULT_EVERY_MS: [number, number] = [20_000, 40_000];
const floorScript = fileURLToPath(new URL('./soak-floor.js', import.meta.url));

/** A small seeded generator (mulberry32), so a run's faults can be drawn again. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Random = () => number;
const between = (random: Random, [low, high]: [number, number]) => low + random() * (high - low);
const pick = <T>(random: Random, items: readonly T[]): T => items[Math.floor(random() * items.length)]!;

interface FaultChoice {
  label: string;
  apply(): void;
}

/** One start-worker under soak and the fakes it talks to. */
interface Runner {
  name: string;
  tc: FakeTaskcluster;
  provider: Record<string, unknown>;
  /** When the watcher made each poll (empty for static). */
  pollTimes(): number[];
  /** Faults the cloud fake can be given (none for static). */
  metadataFaults: () => FaultChoice[];
  /** Undo what the bench keeps doing to the fake (google's event churn) and clear queued faults. */
  quiesce(): void;
  /** Whether the watcher has polled successfully since `since`. */
  healthySince(since: number): boolean;
  /** Announce the interruption (or signal start-worker); the time it was announced. */
  interrupt(child: ChildProcess): number;
  stop(): Promise<void>;
}

function taskclusterFaults(tc: FakeTaskcluster): FaultChoice[] {
  const inject =
    (fault: Fault, count = 1) =>
    () =>
      tc.inject('reregisterWorker', fault, count);
  return [
    { label: 'tc 503 burst x3', apply: inject({ kind: 'status', status: 503 }, 3) },
    { label: 'tc 503 burst x2', apply: inject({ kind: 'status', status: 503 }, 2) },
    { label: 'tc 500', apply: inject({ kind: 'status', status: 500 }) },
    { label: 'tc drop', apply: inject({ kind: 'drop' }) },
    { label: 'tc slow 1.5 s', apply: inject({ kind: 'delay', ms: 1500 }) },
  ];
}

async function taskcluster(pool: string, providerId: string): Promise<FakeTaskcluster> {
  const tc = await new FakeTaskcluster({ credentialLifetimeSeconds: CREDENTIAL_LIFETIME_SECONDS }).start();
  tc.addWorkerPool(pool, providerId);
  return tc;
}

async function awsRunner(): Promise<Runner> {
  const tc = await taskcluster('soak/aws', 'aws-soak');
  tc.acceptProofsFrom.add('aws-soak');
  const imds = await new FakeEc2Metadata().start();
  imds.setUserData({ rootUrl: tc.rootUrl, workerPoolId: 'soak/aws', providerId: 'aws-soak', workerGroup: 'soak' });
  const spot = (fault: Fault) => () => imds.inject(SPOT_INSTANCE_ACTION, fault);
  return {
    name: 'aws',
    tc,
    provider: { providerType: 'aws', metadataEndpoint: imds.endpoint, terminationPollInterval: POLL_INTERVAL_SECONDS },
    // a poll refused with 401 is asked again with a fresh token: one poll
    pollTimes: () =>
      imds.requests.filter((r) => r.path === SPOT_INSTANCE_ACTION && r.status !== 401).map((r) => r.time),
    metadataFaults: () => [
      { label: 'aws 503', apply: spot({ kind: 'status', status: 503 }) },
      { label: 'aws 500', apply: spot({ kind: 'status', status: 500 }) },
      { label: 'aws drop', apply: spot({ kind: 'drop' }) },
      { label: 'aws slow 0.3 s', apply: spot({ kind: 'delay', ms: 300 }) },
      { label: 'aws timeout', apply: spot({ kind: 'delay', ms: 2500 }) },
      { label: 'aws token revoked', apply: () => imds.expireTokens() },
      {
        label: 'aws token revoked, PUT 503',
        apply: () => {
          imds.expireTokens();
          imds.inject(TOKEN_PATH, { kind: 'status', status: 503 });
        },
      },
    ],
    quiesce: () => imds.faults.clear(),
    healthySince: (since) =>
      imds.requests.some((r) => r.path === SPOT_INSTANCE_ACTION && r.time >= since && r.status === 404),
    interrupt: () => {
      imds.announceSpotInterruption('terminate', new Date(Date.now() + 120_000));
      return imds.spotAnnouncedAt!;
    },
    stop: async () => {
      await imds.stop();
      await tc.stop();
    },
  };
}

async function azureRunner(): Promise<Runner> {
  const tc = await taskcluster('soak/azure', 'azure-soak');
  tc.acceptProofsFrom.add('azure-soak');
  const imds = await new FakeAzureMetadata({
    tags: workerManagerTags(tc.rootUrl, { 'worker-pool-id': 'soak/azure', 'provider-id': 'azure-soak' }),
  }).start();
  const events = (fault: Fault) => () => imds.inject(SCHEDULED_EVENTS, fault);
  return {
    name: 'azure',
    tc,
    provider: {
      providerType: 'azure',
      metadataEndpoint: imds.endpoint,
      terminationPollInterval: POLL_INTERVAL_SECONDS,
    },
    pollTimes: () => imds.requestsTo(SCHEDULED_EVENTS, 'GET').map((r) => r.time),
    metadataFaults: () => [
      { label: 'azure 500', apply: events({ kind: 'status', status: 500 }) },
      { label: 'azure 502', apply: events({ kind: 'status', status: 502 }) },
      { label: 'azure 503', apply: events({ kind: 'status', status: 503 }) },
      { label: 'azure drop', apply: events({ kind: 'drop' }) },
      { label: 'azure slow 0.3 s', apply: events({ kind: 'delay', ms: 300 }) },
      { label: 'azure timeout', apply: events({ kind: 'delay', ms: 2500 }) },
      {
        label: 'azure 1.5 s outage (502/drop)',
        apply: () => imds.failScheduledEvents(1500, [{ kind: 'status', status: 502 }, { kind: 'drop' }]),
      },
    ],
    quiesce: () => imds.faults.clear(),
    healthySince: (since) => imds.requestsTo(SCHEDULED_EVENTS, 'GET').some((r) => r.time >= since && r.outcome === 200),
    interrupt: () => {
      const at = Date.now();
      imds.postEvent({ EventType: 'Preempt' });
      return at;
    },
    stop: async () => {
      await imds.stop();
      await tc.stop();
    },
  };
}

/**
 * Google's watch is a long-poll (held up to 60 s): to have it poll at 20 a
 * second, the bench changes instance/maintenance-event every 50 ms between
 * NONE and MIGRATE_ON_HOST_MAINTENANCE (a live migration, not a reason to
 * stop), and every change answers the held request. instance/preempted
 * stays unchanged and is polled as it is (about once a minute).
 */
async function googleRunner(): Promise<Runner> {
  const tc = await taskcluster('soak/google', 'google-soak');
  tc.acceptProofsFrom.add('google-soak');
  const metadata = await new FakeGoogleMetadata({
    rootUrl: tc.rootUrl,
    workerPoolId: 'soak/google',
    providerId: 'google-soak',
  }).start();
  let migrating = false;
  const churn = setInterval(() => {
    migrating = !migrating;
    metadata.setMaintenanceEvent(migrating ? 'MIGRATE_ON_HOST_MAINTENANCE' : 'NONE');
  }, POLL_INTERVAL_SECONDS * 1000);
  const watch = (fault: Fault) => () => metadata.inject(MAINTENANCE_PATH, fault);
  const longPolls = () =>
    metadata.requests.filter(
      (r) => (r.path === MAINTENANCE_PATH || r.path === PREEMPTED_PATH) && r.query['wait_for_change'] === 'true',
    );
  return {
    name: 'google',
    tc,
    provider: {
      providerType: 'google',
      metadataEndpoint: metadata.url,
      terminationPollInterval: POLL_INTERVAL_SECONDS,
    },
    pollTimes: () => longPolls().map((r) => r.time),
    metadataFaults: () => [
      { label: 'google 503', apply: watch({ kind: 'status', status: 503 }) },
      { label: 'google 500', apply: watch({ kind: 'status', status: 500 }) },
      { label: 'google drop', apply: watch({ kind: 'drop' }) },
      { label: 'google slow 0.3 s', apply: watch({ kind: 'delay', ms: 300 }) },
      { label: 'google long-polls cut', apply: () => metadata.dropLongPolls() },
    ],
    quiesce: () => {
      clearInterval(churn);
      metadata.setMaintenanceEvent('NONE');
      metadata.faults.clear();
    },
    // both watches held by the server again: nothing changes any more, so no new request need come
    healthySince: (since) =>
      Date.now() - since >= 500 &&
      metadata.pendingLongPolls(PREEMPTED_PATH) === 1 &&
      metadata.pendingLongPolls(MAINTENANCE_PATH) === 1,
    interrupt: () => {
      const at = Date.now();
      metadata.preempt();
      return at;
    },
    stop: async () => {
      clearInterval(churn);
      await metadata.stop();
      await tc.stop();
    },
  };
}

async function staticRunner(): Promise<Runner> {
  const tc = await taskcluster('soak/static', 'static-soak');
  tc.addStaticWorker('soak/static', 'soak', 'static-1', STATIC_SECRET);
  return {
    name: 'static',
    tc,
    provider: {
      providerType: 'static',
      rootURL: tc.rootUrl,
      providerID: 'static-soak',
      workerPoolID: 'soak/static',
      workerGroup: 'soak',
      workerID: 'static-1',
      staticSecret: STATIC_SECRET,
    },
    pollTimes: () => [],
    metadataFaults: () => [],
    quiesce: () => undefined,
    healthySince: () => true,
    interrupt: (child) => {
      const at = Date.now();
      child.kill('SIGTERM');
      return at;
    },
    stop: () => tc.stop(),
  };
}

interface Recorded {
  time: number;
  message?: { type?: string };
}

interface RunnerResult {
  name: string;
  polls: number;
  pollRate: number;
  renewalsIssued: number;
  renewalsDelivered: number;
  renewalAttempts: number;
  renewalRetries: number;
  renewalFailures: string[];
  faults: number;
  faultsByLabel: Map<string, number>;
  rssAtHello: number;
  heapAtHello: number;
  figures: WindowFigures;
  /** Figures against renewals (static has no polls). */
  perRenewal: WindowFigures;
  /** Figures against minutes (the "polls" are one a minute). */
  perMinute: WindowFigures;
  warnings: string[];
  noticeMs: number | undefined;
  exitCode: number | null;
}

interface FloorResult {
  name: string;
  polls: number;
  pollRate: number;
  rssAtStart: number;
  heapAtStart: number;
  figures: WindowFigures;
  perMinute: WindowFigures;
  warnings: string[];
}

/** Slopes against time (per minute), for what has no polls. */
function perMinuteFigures(samples: ProbeSample[], from: number, to: number): WindowFigures {
  // 1000 evenly spaced "polls" a minute, then scaled back: x resolution of 60 ms
  const ticks: number[] = [];
  for (let t = from; t <= to; t += 60) ticks.push(t);
  const figures = windowFigures(samples, ticks, from, to);
  const perMinute = (value: number) => value * 1000;
  return {
    ...figures,
    heapPerPoll: perMinute(figures.heapPerPoll),
    heapPerPollError: perMinute(figures.heapPerPollError),
    rssPerPoll: perMinute(figures.rssPerPoll),
    cpuUsPerPoll: perMinute(figures.cpuUsPerPoll),
  };
}

function firstSampleAfter(samples: ProbeSample[], t: number): ProbeSample | undefined {
  return samples.find((s) => !s.final && s.t >= t);
}

export async function benchSoak(): Promise<void> {
  const seconds = Number(process.env['SOAK_SECONDS'] ?? 600);
  // At the default duration the run goes on (two minutes at most) until every watcher has made 10,000 polls.
  const minPolls = Number(process.env['SOAK_MIN_POLLS'] ?? (process.env['SOAK_SECONDS'] === undefined ? 10_000 : 0));
  const sampleMs = Number(process.env['SOAK_SAMPLE_MS'] ?? 1000);
  const warmUpMs = Number(process.env['SOAK_WARMUP_SECONDS'] ?? seconds / 5) * 1000;
  const seed = Number(process.env['SOAK_SEED'] ?? Math.floor(Math.random() * 2 ** 31));
  const keep = process.env['SOAK_KEEP'] === '1';
  const random = seededRandom(seed);
  const dir = mkdtempSync(join(tmpdir(), 'start-worker-soak-'));
  const runners = [await awsRunner(), await azureRunner(), await googleRunner(), await staticRunner()];
  const floorFakes = { fetch: await new FakeEc2Metadata().start(), agent: await new FakeEc2Metadata().start() };
  const floors: {
    name: 'fetch' | 'agent';
    child: ChildProcess;
    closed: Promise<number | null>;
    probe: string;
    fake: FakeEc2Metadata;
  }[] = [];
  const runs: ReturnType<typeof startCli>[] = [];
  const shutdown = recordingShutdown(dir);
  try {
    console.error(
      `soak: ${seconds} s, seed ${seed}, samples every ${sampleMs} ms, warm-up ${warmUpMs / 1000} s, in ${dir}`,
    );
    for (const runner of runners) {
      const config = writeConfig(
        dir,
        {
          provider: runner.provider,
          worker: fakeWorkerSection(),
          getSecrets: false,
          shutdownCommand: shutdown.command,
        },
        { name: `${runner.name}.yaml` },
      );
      runs.push(
        startCli([config], {
          nodeArgs: probeNodeArgs,
          env: {
            FAKE_WORKER: JSON.stringify({
              capabilities: ['graceful-termination', 'new-credentials'],
              onGracefulTermination: { exit: 0 },
            }),
            FAKE_WORKER_RECORD: join(dir, `${runner.name}.record.jsonl`),
            AWS_EC2_METADATA_SERVICE_ENDPOINT: undefined,
            ...probeEnv(join(dir, `${runner.name}.probe.jsonl`), sampleMs),
          },
          timeoutMs: (seconds + 300) * 1000,
        }),
      );
    }
    for (const name of ['fetch', 'agent'] as const) {
      const fake = floorFakes[name];
      const probe = join(dir, `floor-${name}.probe.jsonl`);
      const child = spawn(
        process.execPath,
        [
          '--require',
          networkGuard,
          ...probeNodeArgs,
          floorScript,
          name,
          fake.endpoint,
          String(POLL_INTERVAL_SECONDS * 1000),
        ],
        {
          env: { ...process.env, NODE_OPTIONS: '', ...probeEnv(probe, sampleMs) },
          stdio: ['ignore', 'ignore', 'pipe'],
        },
      );
      let stderr = '';
      child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      const closed = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
      floors.push({
        name,
        child,
        closed: closed.then((code) => (writeFileSync(join(dir, `floor-${name}.stderr`), stderr), code)),
        probe,
        fake,
      });
    }
    await Promise.all(
      runs.map((run, i) =>
        waitFor(
          `${runners[i]!.name}: the worker to say hello`,
          () => run.stderr().includes('worker capabilities'),
          60_000,
        ),
      ),
    );
    const helloAt = Date.now();
    const floorStart = helloAt;

    // Faults, drawn from the seed, until the end of the soak.
    const faultCounts = runners.map(() => new Map<string, number>());
    const count = (i: number, label: string) => faultCounts[i]!.set(label, (faultCounts[i]!.get(label) ?? 0) + 1);
    const nextMetadataFault = runners.map(() => helloAt + between(random, METADATA_FAULT_EVERY_MS));
    const nextTaskclusterFault = runners.map(() => helloAt + between(random, TASKCLUSTER_FAULT_EVERY_MS));
    const scheduler = setInterval(() => {
      const now = Date.now();
      runners.forEach((runner, i) => {
        const choices = runner.metadataFaults();
        if (choices.length > 0 && now >= nextMetadataFault[i]!) {
          const fault = pick(random, choices);
          fault.apply();
          count(i, fault.label);
          nextMetadataFault[i] = now + between(random, METADATA_FAULT_EVERY_MS);
        }
        if (now >= nextTaskclusterFault[i]!) {
          const fault = pick(random, taskclusterFaults(runner.tc));
          fault.apply();
          count(i, fault.label);
          nextTaskclusterFault[i] = now + between(random, TASKCLUSTER_FAULT_EVERY_MS);
        }
      });
    }, 100);
    const progress = setInterval(() => {
      const elapsed = Math.round((Date.now() - helloAt) / 1000);
      console.error(
        `soak: ${elapsed}/${seconds} s; polls ${runners.map((r) => `${r.name} ${r.pollTimes().length}`).join(', ')}; renewals ${runners.map((r) => `${r.name} ${r.tc.callsTo('reregisterWorker').length}`).join(', ')}`,
      );
    }, 60_000);
    await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
    const pollers = runners.filter((runner) => runner.metadataFaults().length > 0);
    const enoughPolls = () =>
      pollers.every((runner) => runner.pollTimes().filter((time) => time >= helloAt).length >= minPolls);
    await waitFor(`${minPolls} polls from every watcher`, enoughPolls, 120_000).catch(() => undefined);
    const soakedSeconds = Math.round((Date.now() - helloAt) / 1000);
    clearInterval(scheduler);
    clearInterval(progress);

    // Quiet: no more faults; wait until every watcher polls successfully again.
    const quietAt = Date.now();
    for (const runner of runners) {
      runner.quiesce();
      runner.tc.faults.clear();
    }
    await Promise.all(
      runners.map((runner) =>
        waitFor(`${runner.name}: a successful poll after the faults`, () => runner.healthySince(quietAt), 30_000),
      ),
    );
    const windowEnd = Date.now();

    // The final notice, to all at once.
    const announcedAt = runners.map((runner, i) => runner.interrupt(runs[i]!.child));
    const results = await Promise.all(runs.map((run) => run.done));
    for (const floor of floors) floor.child.kill('SIGTERM');
    await Promise.all(floors.map((floor) => floor.closed));

    const runnerResults: RunnerResult[] = runners.map((runner, i) => {
      const result = results[i]!;
      writeFileSync(join(dir, `${runner.name}.stderr`), result.stderr);
      const recorded = readJsonLines<Recorded>(join(dir, `${runner.name}.record.jsonl`));
      const termination = recorded.find((r) => r.message?.type === 'graceful-termination');
      const { samples, warnings } = readProbe(join(dir, `${runner.name}.probe.jsonl`));
      const polls = runner.pollTimes().filter((time) => time >= helloAt && time <= windowEnd);
      const renewalTimes = recorded.filter((r) => r.message?.type === 'new-credentials').map((r) => r.time);
      const atHello = firstSampleAfter(samples, helloAt);
      const failureLines = result.stderr
        .split('\n')
        .filter((line) =>
          /cannot renew credentials|cannot save the renewed state|credential renewal failed|before its credentials expire/.test(
            line,
          ),
        );
      return {
        name: runner.name,
        polls: polls.length,
        pollRate: polls.length / ((windowEnd - helloAt) / 1000),
        renewalsIssued: runner.tc.credentials.size - 1,
        renewalsDelivered: renewalTimes.length,
        renewalAttempts: runner.tc.callsTo('reregisterWorker').length,
        renewalRetries: result.stderr.split('\n').filter((line) => /renewing credentials: .*retrying/.test(line))
          .length,
        renewalFailures: failureLines,
        faults: [...faultCounts[i]!.values()].reduce((a, b) => a + b, 0),
        faultsByLabel: faultCounts[i]!,
        rssAtHello: atHello?.rss ?? NaN,
        heapAtHello: atHello?.heapUsed ?? NaN,
        figures: windowFigures(samples, polls, helloAt + warmUpMs, windowEnd),
        perRenewal: windowFigures(samples, renewalTimes, helloAt + warmUpMs, windowEnd),
        perMinute: perMinuteFigures(samples, helloAt + warmUpMs, windowEnd),
        warnings: [...new Set([...nodeWarningLines(result.stderr), ...warnings.map((w) => `${w.name}: ${w.message}`)])],
        noticeMs: termination === undefined ? undefined : termination.time - announcedAt[i]!,
        exitCode: result.code,
      };
    });
    const floorResults: FloorResult[] = floors.map((floor) => {
      const { samples, warnings } = readProbe(floor.probe);
      const polls = floor.fake.requests
        .filter((r) => r.path === SPOT_INSTANCE_ACTION && r.time >= floorStart && r.time <= windowEnd)
        .map((r) => r.time);
      const atStart = firstSampleAfter(samples, floorStart);
      return {
        name: `floor ${floor.name}`,
        polls: polls.length,
        pollRate: polls.length / ((windowEnd - floorStart) / 1000),
        rssAtStart: atStart?.rss ?? NaN,
        heapAtStart: atStart?.heapUsed ?? NaN,
        figures: windowFigures(samples, polls, floorStart + warmUpMs, windowEnd),
        perMinute: perMinuteFigures(samples, floorStart + warmUpMs, windowEnd),
        warnings: warnings.map((w) => `${w.name}: ${w.message}`),
      };
    });
    report({
      seconds: soakedSeconds,
      seed,
      warmUpMs,
      runners: runnerResults,
      floors: floorResults,
      shutdownCalls: shutdown.calls(),
      dir: keep ? dir : undefined,
    });
  } finally {
    if (keep) runs.forEach((run, i) => writeFileSync(join(dir, `${runners[i]!.name}.stderr`), run.stderr()));
    for (const run of runs) if (run.child.exitCode === null && run.child.signalCode === null) run.child.kill('SIGKILL');
    for (const floor of floors)
      if (floor.child.exitCode === null && floor.child.signalCode === null) floor.child.kill('SIGKILL');
    for (const runner of runners) await runner.stop();
    await floorFakes.fetch.stop();
    await floorFakes.agent.stop();
    if (!keep) rmSync(dir, { recursive: true, force: true });
  }
}

const MB = 1024 * 1024;
const mb = (bytes: number) => (Number.isFinite(bytes) ? (bytes / MB).toFixed(1) : '-');
const fixed = (value: number, digits = 0) => (Number.isFinite(value) ? value.toFixed(digits) : '-');

function report(input: {
  seconds: number;
  seed: number;
  warmUpMs: number;
  runners: RunnerResult[];
  floors: FloorResult[];
  shutdownCalls: string[];
  dir: string | undefined;
}): void {
  const { runners, floors } = input;
  const floor = floors.find((f) => f.name === 'floor fetch')!;
  const heapVerdict = (perPoll: number, error: number): string => {
    const floorHeap = floor.figures.heapPerPoll;
    // A slope within two standard errors of the floor's is the floor, whatever the ratio of two small numbers says.
    const noise = 2 * Math.hypot(error, floor.figures.heapPerPollError);
    const ok = perPoll <= 1.2 * Math.abs(floorHeap) || perPoll - floorHeap <= noise;
    return `${fixed(perPoll / floorHeap, 1)}x ${ok ? 'ok' : 'OVER'}`;
  };
  // Renewals come at a steady rate too, so what a renewal retains shows in the slope per poll. The
  // static runner renews as often and never polls: its heap per renewal, times renewals per poll,
  // is that share; the rest is what the polls retain.
  const statics = runners.find((r) => r.name === 'static');
  const renewalsPerPoll = (r: RunnerResult): number => r.renewalsDelivered / r.polls;
  const netOfRenewals = (r: RunnerResult): number =>
    r.figures.heapPerPoll - (statics?.perRenewal.heapPerPoll ?? 0) * renewalsPerPoll(r);
  const netError = (r: RunnerResult): number =>
    Math.hypot(r.figures.heapPerPollError, (statics?.perRenewal.heapPerPollError ?? 0) * renewalsPerPoll(r));
  const cloud = (r: RunnerResult, cell: (r: RunnerResult) => string): string => (r.name === 'static' ? 'n/a' : cell(r));
  const columns = [...runners.map((r) => r.name), ...floors.map((f) => f.name)];
  const rows: [string, string[]][] = [
    [
      'polls (target >= 10,000)',
      [
        ...runners.map((r) => (r.name === 'static' ? 'n/a' : `${r.polls} (${fixed(r.pollRate, 1)}/s)`)),
        ...floors.map((f) => `${f.polls} (${fixed(f.pollRate, 1)}/s)`),
      ],
    ],
    [
      'renewals ok/attempts, retries',
      [
        ...runners.map((r) => `${r.renewalsDelivered}/${r.renewalAttempts}, ${r.renewalRetries}`),
        ...floors.map(() => ''),
      ],
    ],
    [
      'every renewal succeeded',
      [
        ...runners.map((r) =>
          r.renewalFailures.length === 0 && r.renewalsDelivered >= r.renewalsIssued - 1 && r.renewalsDelivered >= 100
            ? 'yes'
            : r.renewalFailures.length === 0
              ? `yes (${r.renewalsDelivered} < 100)`
              : 'NO',
        ),
        ...floors.map(() => ''),
      ],
    ],
    ['faults injected', [...runners.map((r) => String(r.faults)), ...floors.map(() => '0')]],
    [
      'RSS at hello -> end, MB',
      [
        ...runners.map((r) => `${mb(r.rssAtHello)} -> ${mb(r.figures.rssEnd)}`),
        ...floors.map((f) => `${mb(f.rssAtStart)} -> ${mb(f.figures.rssEnd)}`),
      ],
    ],
    [
      'RSS slope, MB/10k polls',
      [
        ...runners.map((r) => (r.name === 'static' ? 'n/a' : fixed((r.figures.rssPerPoll * 10_000) / MB, 2))),
        ...floors.map((f) => fixed((f.figures.rssPerPoll * 10_000) / MB, 2)),
      ],
    ],
    [
      'heap after GC, hello -> end, MB',
      [
        ...runners.map((r) => `${mb(r.heapAtHello)} -> ${mb(r.figures.heapEnd)}`),
        ...floors.map((f) => `${mb(f.heapAtStart)} -> ${mb(f.figures.heapEnd)}`),
      ],
    ],
    [
      'retained heap, B/poll (+-se)',
      [
        ...runners.map((r) => cloud(r, () => `${fixed(r.figures.heapPerPoll)} +-${fixed(r.figures.heapPerPollError)}`)),
        ...floors.map((f) => `${fixed(f.figures.heapPerPoll)} +-${fixed(f.figures.heapPerPollError)}`),
      ],
    ],
    [
      '  vs floor fetch (target <= 1.2x)',
      [
        ...runners.map((r) => cloud(r, () => heapVerdict(r.figures.heapPerPoll, r.figures.heapPerPollError))),
        ...floors.map((f) => (f === floor ? '1x' : heapVerdict(f.figures.heapPerPoll, f.figures.heapPerPollError))),
      ],
    ],
    [
      '  net of renewals (static), B/poll',
      [...runners.map((r) => cloud(r, () => fixed(netOfRenewals(r)))), ...floors.map(() => '')],
    ],
    [
      '  net vs floor fetch',
      [...runners.map((r) => cloud(r, () => heapVerdict(netOfRenewals(r), netError(r)))), ...floors.map(() => '')],
    ],
    [
      'retained heap, KB/minute',
      [
        ...runners.map((r) => fixed(r.perMinute.heapPerPoll / 1024, 1)),
        ...floors.map((f) => fixed(f.perMinute.heapPerPoll / 1024, 1)),
      ],
    ],
    [
      'retained heap, B/renewal (static)',
      [
        ...runners.map((r) =>
          r.name === 'static' ? `${fixed(r.perRenewal.heapPerPoll)} +-${fixed(r.perRenewal.heapPerPollError)}` : 'n/a',
        ),
        ...floors.map(() => ''),
      ],
    ],
    [
      'CPU ms/1000 polls',
      [
        ...runners.map((r) => cloud(r, () => fixed(r.figures.cpuUsPerPoll))),
        ...floors.map((f) => fixed(f.figures.cpuUsPerPoll)),
      ],
    ],
    [
      '  vs floor fetch',
      [
        ...runners.map((r) => cloud(r, () => `${fixed(r.figures.cpuUsPerPoll / floor.figures.cpuUsPerPoll, 1)}x`)),
        ...floors.map((f) => `${fixed(f.figures.cpuUsPerPoll / floor.figures.cpuUsPerPoll, 1)}x`),
      ],
    ],
    [
      'CPU ms/minute',
      [
        ...runners.map((r) => fixed(r.perMinute.cpuUsPerPoll / 1000)),
        ...floors.map((f) => fixed(f.perMinute.cpuUsPerPoll / 1000)),
      ],
    ],
    [
      'most live listeners on a target',
      [...runners.map((r) => String(r.figures.listenersLive)), ...floors.map((f) => String(f.figures.listenersLive))],
    ],
    [
      'most AbortSignal.any dependants',
      [
        ...runners.map((r) => String(r.figures.anyDependants ?? '-')),
        ...floors.map((f) => String(f.figures.anyDependants ?? '-')),
      ],
    ],
    [
      'Node warnings (target 0)',
      [...runners.map((r) => String(r.warnings.length)), ...floors.map((f) => String(f.warnings.length))],
    ],
    [
      'notice -> graceful-termination',
      [
        ...runners.map((r) =>
          r.noticeMs === undefined ? 'NEVER' : `${r.noticeMs} ms${r.name === 'static' ? ' (SIGTERM)' : ''}`,
        ),
        ...floors.map(() => ''),
      ],
    ],
    ['exit code', [...runners.map((r) => String(r.exitCode)), ...floors.map(() => '')]],
  ];
  const labelWidth = Math.max(...rows.map(([label]) => label.length));
  const widths = columns.map((name, i) => Math.max(name.length, ...rows.map(([, cells]) => cells[i]!.length)));
  const line = (label: string, cells: string[]) =>
    `  ${label.padEnd(labelWidth)}  ${cells.map((cell, i) => cell.padStart(widths[i]!)).join('  ')}`;
  console.log(
    `soak: ${input.seconds} s, poll every ${POLL_INTERVAL_SECONDS} s (google: a long-poll answered by a change every ${POLL_INTERVAL_SECONDS} s), credentials for ${CREDENTIAL_LIFETIME_SECONDS} s, seed ${input.seed}, slopes after ${input.warmUpMs / 1000} s of warm-up`,
  );
  console.log(line('', columns));
  for (const [label, cells] of rows) console.log(line(label, cells));
  for (const r of runners) {
    const faults = [...r.faultsByLabel]
      .sort((a, b) => b[1] - a[1])
      .map(([label, n]) => `${label} x${n}`)
      .join(', ');
    console.log(
      `  ${r.name}: faults ${faults || 'none'}; listeners most on ${r.figures.listenersWorst || '-'}; timers at most ${r.figures.timersMax}`,
    );
    for (const warning of r.warnings.slice(0, 3)) console.log(`    warning: ${warning.slice(0, 200)}`);
    for (const failure of r.renewalFailures.slice(0, 3)) console.log(`    renewal: ${failure.slice(0, 200)}`);
  }
  console.log(
    '  targets: retained heap per poll <= 1.2x floor (or within 2 standard errors of it), no Node warnings, every renewal succeeded, notice within ~1.5 s (aws/azure)',
  );
  console.log(
    "  'net of renewals': the slope per poll less the static runner's heap per renewal times renewals per poll (renewals and polls both grow with time, so one slope holds both)",
  );
  // start-worker powers the machine off only when removing the worker failed: never expected here
  console.log(
    `  shutdown command called: ${input.shutdownCalls.length === 0 ? 'never' : `${input.shutdownCalls.length} time(s)`}`,
  );
  if (input.dir !== undefined) console.log(`  kept: ${input.dir}`);
}
