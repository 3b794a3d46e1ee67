/**
 * A fleet booting at once: N real start-worker processes (static provider,
 * each its own worker and static secret) against one Taskcluster fake that
 * admits R registrations a second. Shared by test/fleet.test.ts and
 * bench/fleet.ts.
 *
 * Every runner waits in a `pre-register` hook at a barrier on loopback until
 * all of them have booted, then all are released at once: on a 2-core test
 * machine, 200 Node.js processes take a minute to boot, which would spread
 * their first requests far more than a real fleet's.
 */
import { createServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { FakeTaskcluster, type AdmissionLimit, type RecordedCall } from './fakes/taskcluster.js';
import { recordingShutdown, startCli, testBuildDir, writeConfig, type CliResult } from './helpers.js';

const POOL = 'proj/fleet';
const preloadTaskclusterClient = pathToFileURL(join(testBuildDir, 'fixtures', 'preload-taskcluster-client.js')).href;
const PROVIDER = 'static-prov';

export interface FleetOptions {
  runners: number;
  admission: AdmissionLimit;
  /** A fresh directory for the runners' configs. */
  dir: string;
  /** startupRetryWindow of every runner (seconds; default: start-worker's default). */
  startupRetryWindow?: number;
  /** `dummy` prints the state and exits; `command` runs a worker that exits 0. */
  worker?: 'dummy' | 'command';
  /** How long the whole run may take before the runners are killed. */
  timeoutMs: number;
  /** Told about progress (booted, released). */
  progress?: (line: string) => void;
}

export interface RunnerOutcome {
  workerId: string;
  exit: CliResult | Error;
  /** registerWorker requests this runner made, in order. */
  requests: RecordedCall[];
  /** ms from the release to the answer of its successful registration; undefined if it never registered. */
  registeredAfterMs: number | undefined;
}

export interface RetryAfterCheck {
  /** Refusals that carried a Retry-After and were followed by another request. */
  told: number;
  /** Requests that came sooner than the Retry-After before them allowed. */
  violations: number;
  /** The smallest (next request − allowed time) in ms, negative when violated. */
  minSlackMs: number | undefined;
}

export interface FleetResult {
  runners: number;
  registered: number;
  /** Runners that exited without registering. */
  gaveUp: number;
  outcomes: RunnerOutcome[];
  /** When the barrier released the fleet (ms since the epoch). */
  releasedAt: number;
  registrationMs: { p50: number; p99: number; max: number } | undefined;
  requests: { total: number; perRunnerMean: number; perRunnerMax: number };
  /**
   * The most registerWorker requests in any 100 ms window: overall, in
   * windows starting a second or more after the first request, and of
   * retries alone (every request but each runner's first: the waves).
   */
  peak100ms: { overall: number; afterFirstSecond: number; retries: number };
  retryAfter: RetryAfterCheck;
  /** Lines start-worker logged about giving up, one per runner that did (first few). */
  gaveUpMessages: string[];
}

/** A static secret of worker-manager's form (44 characters) for runner `i`. */
function staticSecretFor(i: number): string {
  return `fleet-secret-${String(i).padStart(6, '0')}`.padEnd(44, 'x');
}

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** The most of `times` (ms) in any window of `widthMs`, among windows starting at or after `from`. */
export function peakInWindow(times: number[], widthMs: number, from = -Infinity): number {
  const sorted = [...times].sort((a, b) => a - b);
  let peak = 0;
  for (let start = 0, end = 0; start < sorted.length; start++) {
    if (sorted[start]! < from) continue;
    end = Math.max(end, start);
    while (end < sorted.length && sorted[end]! < sorted[start]! + widthMs) end++;
    peak = Math.max(peak, end - start);
  }
  return peak;
}

/** When a Retry-After allowed the next request: seconds after the answer, or an HTTP date. */
export function retryAllowedAt(call: RecordedCall): number | undefined {
  if (call.retryAfter === undefined || call.answered === undefined) return undefined;
  if (/^\d+$/.test(call.retryAfter.trim())) return call.answered + Number(call.retryAfter) * 1000;
  const date = Date.parse(call.retryAfter);
  return Number.isNaN(date) ? undefined : date;
}

/** Did each runner wait at least as long as each Retry-After it was given? `toleranceMs` allows for clock granularity. */
export function checkRetryAfter(perRunner: RecordedCall[][], toleranceMs = 5): RetryAfterCheck {
  let told = 0;
  let violations = 0;
  let minSlackMs: number | undefined;
  for (const requests of perRunner) {
    for (let i = 1; i < requests.length; i++) {
      const allowed = retryAllowedAt(requests[i - 1]!);
      if (allowed === undefined) continue;
      told += 1;
      const slack = requests[i]!.arrived - allowed;
      if (slack < -toleranceMs) violations += 1;
      minSlackMs = minSlackMs === undefined ? slack : Math.min(minSlackMs, slack);
    }
  }
  return { told, violations, minSlackMs };
}

/** A loopback barrier: each runner's hook connects and blocks until `release()` writes to every connection. */
async function startBarrier(): Promise<{
  port: number;
  waiting: () => number;
  release: () => void;
  close: () => Promise<void>;
}> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    waiting: () => sockets.size,
    release: () => {
      for (const socket of sockets) socket.end('go\n');
    },
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

export async function runFleet(options: FleetOptions): Promise<FleetResult> {
  const { runners, dir, progress } = options;
  const fake = await new FakeTaskcluster({ admission: options.admission }).start();
  const barrier = await startBarrier();
  const shutdown = recordingShutdown(dir);
  const children: ReturnType<typeof startCli>[] = [];
  try {
    fake.addWorkerPool(POOL, PROVIDER, {});
    fake.secrets.set(`worker-pool:${POOL}`, { config: { fromSecret: true } });
    const deadline = Date.now() + options.timeoutMs;
    for (let i = 0; i < runners; i++) {
      const workerId = `runner-${i}`;
      fake.addStaticWorker(POOL, 'fleet', workerId, staticSecretFor(i));
      const config = writeConfig(
        dir,
        {
          provider: {
            providerType: 'static',
            rootURL: fake.rootUrl,
            providerID: PROVIDER,
            workerPoolID: POOL,
            workerGroup: 'fleet',
            workerID: workerId,
            staticSecret: staticSecretFor(i),
          },
          worker:
            options.worker === 'command'
              ? { implementation: 'command', command: [process.execPath, '-e', ''], passCredentials: 'none' }
              : { implementation: 'dummy' },
          ...(options.startupRetryWindow !== undefined ? { startupRetryWindow: options.startupRetryWindow } : {}),
          shutdownCommand: shutdown.command,
          hooks: {
            'pre-register': [
              {
                command: ['/bin/bash', '-c', `exec 3<>/dev/tcp/127.0.0.1/${barrier.port} && read -r _ <&3`],
                timeout: Math.ceil(options.timeoutMs / 1000),
              },
            ],
          },
        },
        { name: `${workerId}.yaml` },
      );
      children.push(
        startCli([config], { timeoutMs: options.timeoutMs, nodeArgs: ['--import', preloadTaskclusterClient] }),
      );
    }
    const exits = children.map((child) =>
      child.done.then(
        (result): CliResult | Error => result,
        (err: unknown) => (err instanceof Error ? err : new Error(String(err))),
      ),
    );
    // All booted and waiting at the barrier, or one gave out before it.
    let finished = 0;
    for (const exit of exits) void exit.then(() => (finished += 1));
    while (barrier.waiting() + finished < runners) {
      if (Date.now() > deadline)
        throw new Error(`only ${barrier.waiting()} of ${runners} runners reached the barrier in time`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    progress?.(`${barrier.waiting()} runners booted and waiting; releasing them`);
    const releasedAt = Date.now();
    barrier.release();
    const results = await Promise.all(exits);

    const byRunner = new Map<string, RecordedCall[]>();
    for (const call of fake.callsTo('registerWorker')) {
      const workerId = String(call.body?.['workerId'] ?? '?');
      byRunner.set(workerId, [...(byRunner.get(workerId) ?? []), call]);
    }
    const outcomes: RunnerOutcome[] = results.map((exit, i) => {
      const workerId = `runner-${i}`;
      const requests = (byRunner.get(workerId) ?? []).sort((a, b) => a.arrived - b.arrived);
      const success = requests.find((call) => call.status === 200);
      return {
        workerId,
        exit,
        requests,
        registeredAfterMs: success?.answered !== undefined ? success.answered - releasedAt : undefined,
      };
    });
    const registeredTimes = outcomes.flatMap((o) => (o.registeredAfterMs !== undefined ? [o.registeredAfterMs] : []));
    const counts = outcomes.map((o) => o.requests.length);
    const arrivals = outcomes.flatMap((o) => o.requests.map((call) => call.arrived));
    const first = Math.min(...arrivals);
    const gaveUp = outcomes.filter((o) => o.registeredAfterMs === undefined);
    if (shutdown.calls().length > 0) throw new Error('a runner ran the shutdown command');
    return {
      runners,
      registered: registeredTimes.length,
      gaveUp: gaveUp.length,
      outcomes,
      releasedAt,
      registrationMs:
        registeredTimes.length > 0
          ? {
              p50: percentile(registeredTimes, 50),
              p99: percentile(registeredTimes, 99),
              max: Math.max(...registeredTimes),
            }
          : undefined,
      requests: {
        total: arrivals.length,
        perRunnerMean: arrivals.length / runners,
        perRunnerMax: Math.max(0, ...counts),
      },
      peak100ms: {
        overall: peakInWindow(arrivals, 100),
        afterFirstSecond: peakInWindow(arrivals, 100, first + 1000),
        retries: peakInWindow(
          outcomes.flatMap((o) => o.requests.slice(1).map((call) => call.arrived)),
          100,
        ),
      },
      retryAfter: checkRetryAfter(outcomes.map((o) => o.requests)),
      gaveUpMessages: gaveUp.slice(0, 3).map((o) => {
        if (o.exit instanceof Error) return `${o.workerId}: ${o.exit.message.split('\n')[0]}`;
        const lines = o.exit.stderr.trim().split('\n');
        return `${o.workerId} (exit ${o.exit.code}): ${lines[lines.length - 1] ?? ''}`;
      }),
    };
  } finally {
    for (const child of children)
      if (child.child.exitCode === null && child.child.signalCode === null) child.child.kill('SIGKILL');
    await barrier.close();
    await fake.stop();
  }
}

/** The targets a fleet must meet, each with whether it did. */
export function fleetTargets(
  result: FleetResult,
  admittedPerSecond: number,
  windowSeconds: number,
): { name: string; value: string; met: boolean }[] {
  const registration = result.registrationMs;
  return [
    {
      name: `all ${result.runners} registered`,
      value: `${result.registered} registered, ${result.gaveUp} gave up`,
      met: result.registered === result.runners,
    },
    {
      name: `all within startupRetryWindow (${windowSeconds} s)`,
      value: registration ? `slowest after ${(registration.max / 1000).toFixed(1)} s` : 'none registered',
      met: registration !== undefined && registration.max <= windowSeconds * 1000,
    },
    {
      name: 'requests per runner <= 3 (mean)',
      value: `mean ${result.requests.perRunnerMean.toFixed(2)}, max ${result.requests.perRunnerMax}`,
      met: result.requests.perRunnerMean <= 3,
    },
    {
      name: `no 100 ms window above 3 x R = ${3 * admittedPerSecond} requests after the first second`,
      value: `peak ${result.peak100ms.afterFirstSecond} (${result.peak100ms.afterFirstSecond * 10}/s; overall peak ${result.peak100ms.overall})`,
      met: result.peak100ms.afterFirstSecond <= 3 * admittedPerSecond,
    },
    {
      name: 'Retry-After honoured',
      value: `${result.retryAfter.violations} of ${result.retryAfter.told} retries too soon${result.retryAfter.minSlackMs !== undefined ? `, least slack ${result.retryAfter.minSlackMs} ms` : ''}`,
      met: result.retryAfter.violations === 0,
    },
  ];
}
