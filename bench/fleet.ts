/**
 * A fleet booting at once (issue 13, point 5): N real start-worker processes
 * (static provider, dummy worker) released together against one Taskcluster
 * fake that admits R registrations a second and refuses the rest with 503 or
 * 429 and a Retry-After. Then a brown-out: every registration fails with 503
 * (no Retry-After) for the first 30 s, then R a second are admitted.
 *
 * Floors, measured in the same run: the same fleet against a fake that
 * admits every registration at once (what this machine's CPU allows: 200
 * Node.js processes on 2 cores), and the ideal schedule (one request each,
 * the last admitted after N/R seconds).
 * Targets: all register within startupRetryWindow; requests per runner
 * <= 3; no 100 ms window above 3 x R requests after the first second;
 * Retry-After honoured. Brown-out: all register.
 *
 * Environment: FLEET_RUNNERS (200), FLEET_RATE (20), FLEET_RETRY_AFTER (1),
 * FLEET_REJECT (mixed | 503 | 429), FLEET_OUTAGE_RUNNERS (50),
 * FLEET_OUTAGE_SECONDS (30), FLEET_CASES (floor,admission,outage).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fleetTargets, runFleet, type FleetResult } from '../test/fleet.js';
import type { AdmissionLimit } from '../test/fakes/taskcluster.js';

/** start-worker's default startupRetryWindow (seconds). */
const DEFAULT_WINDOW = 300;

function numberFromEnv(name: string, fallback: number): number {
  const value = process.env[name];
  if (value === undefined || value === '') return fallback;
  const parsed = Number(value);
  if (!Number.isFinite(parsed) || parsed <= 0) throw new Error(`${name} must be a positive number, not '${value}'`);
  return parsed;
}

function rejectFromEnv(): AdmissionLimit['reject'] {
  const value = process.env['FLEET_REJECT'] ?? 'mixed';
  if (value === 'mixed') return 'mixed';
  if (value === '503' || value === '429') return Number(value) as 503 | 429;
  throw new Error(`FLEET_REJECT must be mixed, 503 or 429, not '${value}'`);
}

function seconds(ms: number | undefined): string {
  return ms === undefined ? '-' : `${(ms / 1000).toFixed(1)} s`;
}

type Targets = { name: string; value: string; met: boolean }[];

function report(
  title: string,
  result: FleetResult,
  rate: number,
  elapsedMs: number,
  targets: Targets,
  floor: FleetResult | undefined,
): void {
  console.log(title);
  console.log(
    `  registered ${result.registered}/${result.runners}, gave up ${result.gaveUp} (run took ${seconds(elapsedMs)})`,
  );
  console.log(
    `  time to registration from release: p50 ${seconds(result.registrationMs?.p50)}, p99 ${seconds(result.registrationMs?.p99)}, max ${seconds(result.registrationMs?.max)}`,
  );
  if (floor?.registrationMs && floor.runners === result.runners) {
    console.log(
      `  floor (all admitted at once, same machine): p50 ${seconds(floor.registrationMs.p50)}, p99 ${seconds(floor.registrationMs.p99)}`,
    );
  }
  console.log(
    `  floor (ideal schedule at ${rate}/s): last admitted after ${(result.runners / rate).toFixed(1)} s, 1 request per runner`,
  );
  console.log(
    `  registerWorker requests: ${result.requests.total} (${result.requests.perRunnerMean.toFixed(2)} per runner, max ${result.requests.perRunnerMax})`,
  );
  console.log(
    `  most requests in 100 ms: ${result.peak100ms.afterFirstSecond} after the first second (${result.peak100ms.afterFirstSecond * 10}/s against R = ${rate}/s), ` +
      `${result.peak100ms.overall} overall, ${result.peak100ms.retries} of retries alone`,
  );
  console.log(
    `  Retry-After: ${result.retryAfter.told} retries after one, ${result.retryAfter.violations} sooner than told` +
      (result.retryAfter.minSlackMs !== undefined ? ` (least slack ${result.retryAfter.minSlackMs} ms)` : ''),
  );
  for (const message of result.gaveUpMessages) console.log(`  gave up: ${message}`);
  for (const target of targets) console.log(`  [${target.met ? 'met' : 'MISSED'}] ${target.name}: ${target.value}`);
}

async function fleetCase(
  runners: number,
  admission: AdmissionLimit,
): Promise<{ result: FleetResult; elapsedMs: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'start-worker-bench-fleet-'));
  const started = Date.now();
  try {
    const result = await runFleet({
      runners,
      admission,
      dir,
      timeoutMs: (DEFAULT_WINDOW + 240) * 1000,
      progress: (line) => console.log(`  (${line} after ${seconds(Date.now() - started)})`),
    });
    return { result, elapsedMs: Date.now() - started };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function benchFleet(): Promise<void> {
  const runners = numberFromEnv('FLEET_RUNNERS', 200);
  const rate = numberFromEnv('FLEET_RATE', 20);
  const retryAfterSeconds = numberFromEnv('FLEET_RETRY_AFTER', 1);
  const reject = rejectFromEnv();
  const outageRunners = numberFromEnv('FLEET_OUTAGE_RUNNERS', 50);
  const outageSeconds = numberFromEnv('FLEET_OUTAGE_SECONDS', 30);
  const cases = (process.env['FLEET_CASES'] ?? 'floor,admission,outage').split(',');

  let floor: FleetResult | undefined;
  if (cases.includes('floor')) {
    const { result, elapsedMs } = await fleetCase(runners, { registrationsPerSecond: 1e9, reject: 503 });
    floor = result;
    console.log(`fleet floor: ${runners} runners booting at once, every registration admitted`);
    console.log(`  registered ${result.registered}/${result.runners} (run took ${seconds(elapsedMs)})`);
    console.log(
      `  time to registration from release: p50 ${seconds(result.registrationMs?.p50)}, p99 ${seconds(result.registrationMs?.p99)}, max ${seconds(result.registrationMs?.max)}`,
    );
  }
  if (cases.includes('admission')) {
    const admission: AdmissionLimit = { registrationsPerSecond: rate, reject, retryAfterSeconds };
    const { result, elapsedMs } = await fleetCase(runners, admission);
    report(
      `fleet: ${runners} runners booting at once, worker-manager admits ${rate} registrations/s (refusing with ${reject}, Retry-After ${retryAfterSeconds} s)`,
      result,
      rate,
      elapsedMs,
      fleetTargets(result, rate, DEFAULT_WINDOW),
      floor,
    );
  }
  if (cases.includes('outage')) {
    const admission: AdmissionLimit = { registrationsPerSecond: rate, reject, retryAfterSeconds, outageSeconds };
    const { result, elapsedMs } = await fleetCase(outageRunners, admission);
    const all = fleetTargets(result, rate, DEFAULT_WINDOW);
    report(
      `fleet brown-out: ${outageRunners} runners, every registration 503 for ${outageSeconds} s, then ${rate}/s admitted (Retry-After ${retryAfterSeconds} s)`,
      result,
      rate,
      elapsedMs,
      [all[0]!, all[1]!, all[4]!],
      undefined,
    );
  }
}
