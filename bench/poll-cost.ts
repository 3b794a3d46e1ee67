/**
 * What it costs to sit beside the worker: CPU and retained heap per
 * metadata poll of an aws start-worker (20 polls a second, no faults, no
 * renewals), against a minimal keep-alive `node:http` poller of the same
 * fake at the same rate, in the same run, both with the soak probe (a GC
 * forced before each sample, its CPU subtracted).
 * Targets: <= 1.2x the floor for CPU and for retained heap per poll.
 *
 * POLL_COST_SECONDS (default 300) sets the window, POLL_COST_WARMUP_SECONDS
 * the warm-up before it (default 600). The warm-up is long because the
 * target is about weeks: at 20 polls a second V8 goes on compiling the
 * polling code, a function at a time, for the first ten minutes or so
 * (86, 54, 22, 5, 4, 5, 3, 1 optimisations in the first eight minutes),
 * and what it keeps shows as a slope that falls from one of the window's
 * quarters (printed too) to the next.
 * A second pair runs beside the first with `--jitless`, where V8 compiles
 * nothing once the code has run: its slope is what the JavaScript keeps.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FakeEc2Metadata, SPOT_INSTANCE_ACTION } from '../test/fakes/aws-metadata.js';
import { FakeTaskcluster } from '../test/fakes/taskcluster.js';
import { fakeWorkerSection, networkGuard, startCli, waitFor, writeConfig } from '../test/helpers.js';
import { probeEnv, probeNodeArgs, readProbe, windowFigures, type WindowFigures } from '../test/soak-probe.js';

const INTERVAL_SECONDS = 0.05;
const floorScript = fileURLToPath(new URL('./soak-floor.js', import.meta.url));

const pollTimes = (imds: FakeEc2Metadata) =>
  imds.requests.filter((r) => r.path === SPOT_INSTANCE_ACTION).map((r) => r.time);

/** Extra V8 flags of each measured pair: as shipped, then with V8's compilers off. */
const MODES: { name: string; v8Flags: string[] }[] = [
  { name: 'as shipped', v8Flags: [] },
  {
    name: "--jitless (V8 compiles nothing once the code has run: the heap slope is what the JavaScript keeps; CPU is the interpreter's)",
    v8Flags: ['--jitless'],
  },
];

interface Side {
  probe: string;
  imds: FakeEc2Metadata;
}

interface Pair {
  mode: string;
  runner: Side;
  floor: Side;
  /** Resolves once the runner's worker has said hello. */
  started: Promise<unknown>;
  /** SIGTERM to both; resolves once both have exited. */
  stop(): Promise<unknown>;
}

export async function benchPollCost(): Promise<void> {
  const seconds = Number(process.env['POLL_COST_SECONDS'] ?? 300);
  const warmUpMs = Number(process.env['POLL_COST_WARMUP_SECONDS'] ?? 600) * 1000;
  const timeoutMs = warmUpMs + (seconds + 120) * 1000;
  const dir = mkdtempSync(join(tmpdir(), 'start-worker-poll-cost-'));
  // No renewals: credentials that outlast the run (a worker without
  // new-credentials, as here, is asked to stop when they near expiry).
  const tc = await new FakeTaskcluster({ credentialLifetimeSeconds: 2 * (timeoutMs / 1000) }).start();
  tc.addWorkerPool('bench/poll', 'aws-bench');
  tc.acceptProofsFrom.add('aws-bench');
  const pairs: Pair[] = [];
  try {
    for (const [index, mode] of MODES.entries()) pairs.push(await startPair(tc, dir, index, mode, timeoutMs));
    await Promise.all(pairs.map((pair) => pair.started));
    const from = Date.now() + warmUpMs;
    await new Promise((resolve) => setTimeout(resolve, warmUpMs + seconds * 1000));
    const to = Date.now();
    await Promise.all(pairs.map((pair) => pair.stop()));
    console.log(
      `poll cost (aws watch at ${1 / INTERVAL_SECONDS} polls/s for ${seconds} s, after ${warmUpMs / 1000} s of warm-up; GC forced before each sample)`,
    );
    for (const pair of pairs) reportPair(pair, from, to);
  } finally {
    await Promise.all(pairs.map((pair) => pair.stop()));
    rmSync(dir, { recursive: true, force: true });
    await Promise.all([...pairs.flatMap((pair) => [pair.runner.imds.stop(), pair.floor.imds.stop()]), tc.stop()]);
  }
}

/** An aws start-worker and a floor poller, each polling a metadata fake of its own, both with `mode`'s V8 flags. */
async function startPair(
  tc: FakeTaskcluster,
  dir: string,
  index: number,
  { name, v8Flags }: (typeof MODES)[number],
  timeoutMs: number,
): Promise<Pair> {
  const runner: Side = { probe: join(dir, `runner-${index}.probe.jsonl`), imds: await new FakeEc2Metadata().start() };
  const floor: Side = { probe: join(dir, `floor-${index}.probe.jsonl`), imds: await new FakeEc2Metadata().start() };
  runner.imds.setUserData({
    rootUrl: tc.rootUrl,
    workerPoolId: 'bench/poll',
    providerId: 'aws-bench',
    workerGroup: `bench-${index}`,
  });
  const config = writeConfig(
    dir,
    {
      provider: {
        providerType: 'aws',
        metadataEndpoint: runner.imds.endpoint,
        terminationPollInterval: INTERVAL_SECONDS,
      },
      worker: fakeWorkerSection(),
      getSecrets: false,
      shutdownCommand: ['/bin/true'],
    },
    { name: `runner-${index}.yaml` },
  );
  const run = startCli([config], {
    nodeArgs: [...v8Flags, ...probeNodeArgs],
    env: {
      FAKE_WORKER: JSON.stringify({ capabilities: ['graceful-termination'], onGracefulTermination: { exit: 0 } }),
      AWS_EC2_METADATA_SERVICE_ENDPOINT: undefined,
      ...probeEnv(runner.probe, 1000),
    },
    timeoutMs,
  });
  const floorProcess = spawn(
    process.execPath,
    [
      '--require',
      networkGuard,
      ...v8Flags,
      ...probeNodeArgs,
      floorScript,
      'agent',
      floor.imds.endpoint,
      String(INTERVAL_SECONDS * 1000),
    ],
    { env: { ...process.env, NODE_OPTIONS: '', ...probeEnv(floor.probe, 1000) }, stdio: 'ignore' },
  );
  const floorClosed = new Promise((resolve) => floorProcess.on('close', resolve));
  return {
    mode: name,
    runner,
    floor,
    started: waitFor(
      `the worker of the ${v8Flags.join(' ') || 'shipped'} runner to say hello`,
      () => run.stderr().includes('worker capabilities'),
      60_000,
    ),
    stop() {
      run.child.kill('SIGTERM');
      floorProcess.kill('SIGTERM');
      return Promise.all([run.done, floorClosed]);
    },
  };
}

/**
 * One pair's figures. With --jitless V8 compiles nothing after start-up, so
 * what its slope shows is what the JavaScript keeps; the difference from
 * the shipped pair is code V8 compiles (and keeps) as functions get hot.
 */
function reportPair(pair: Pair, from: number, to: number): void {
  const runnerSamples = readProbe(pair.runner.probe).samples;
  const floorSamples = readProbe(pair.floor.probe).samples;
  const figures = (start: number, end: number): [WindowFigures, WindowFigures] => [
    windowFigures(runnerSamples, pollTimes(pair.runner.imds), start, end),
    windowFigures(floorSamples, pollTimes(pair.floor.imds), start, end),
  ];
  const [runner, floor] = figures(from, to);
  const line = (name: string, f: WindowFigures) =>
    `    ${name.padEnd(34)} ${f.polls} polls, CPU ${f.cpuUsPerPoll.toFixed(0)} µs/poll, retained heap ${f.heapPerPoll.toFixed(0)} ± ${f.heapPerPollError.toFixed(0)} B/poll, RSS ${(f.rssEnd / 2 ** 20).toFixed(1)} MiB`;
  console.log(`  ${pair.mode}:`);
  console.log(line('start-worker', runner));
  console.log(line('floor (keep-alive node:http)', floor));
  console.log(
    `    ratios: CPU ${(runner.cpuUsPerPoll / floor.cpuUsPerPoll).toFixed(2)}x (target <= 1.2x), retained heap ${heapRatio(runner, floor).toFixed(2)}x the floor's (or its noise) (target <= 1.2x)`,
  );
  const quarter = (to - from) / 4;
  for (let i = 0; i < 4; i++) {
    const [r, f] = figures(from + i * quarter, from + (i + 1) * quarter);
    console.log(
      `    quarter ${i + 1}: retained heap ${r.heapPerPoll.toFixed(0)} ± ${r.heapPerPollError.toFixed(0)} vs ${f.heapPerPoll.toFixed(0)} ± ${f.heapPerPollError.toFixed(0)} B/poll (${heapRatio(r, f).toFixed(2)}x), CPU ${(r.cpuUsPerPoll / f.cpuUsPerPoll).toFixed(2)}x`,
    );
  }
}

/** A slope within its error of zero is no growth: compare growth, not noise. */
function heapRatio(runner: WindowFigures, floor: WindowFigures): number {
  return Math.max(runner.heapPerPoll, 0) / Math.max(floor.heapPerPoll, floor.heapPerPollError, 1);
}
