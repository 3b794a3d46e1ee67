/**
 * A small fleet booting at once (the short form of `npm run bench -- fleet`):
 * 20 real start-worker processes released together against a worker-manager
 * that admits 5 registrations a second and refuses the rest with 503 or 429
 * and a Retry-After. The properties are the benchmark's targets.
 */
import t from 'tap';
import { checkRetryAfter, fleetTargets, peakInWindow, retryAllowedAt, runFleet, type FleetResult } from './fleet.js';
import type { RecordedCall } from './fakes/taskcluster.js';
import { tempDir } from './helpers.js';

const WINDOW_SECONDS = 300;

function assertTargets(t: { ok(value: unknown, message: string): void }, result: FleetResult, rate: number): void {
  for (const target of fleetTargets(result, rate, WINDOW_SECONDS)) t.ok(target.met, `${target.name}: ${target.value}`);
  t.ok(
    result.retryAfter.told > 0,
    `the limit was reached, and runners were told to wait (${result.retryAfter.told} times)`,
  );
}

t.test('the fleet measures: windows, Retry-After in seconds and as a date', async (t) => {
  t.equal(peakInWindow([0, 10, 99, 100, 150, 1000], 100), 3, 'a window holds [start, start + 100)');
  t.equal(peakInWindow([0, 10, 99, 1000, 1001], 100, 500), 2, 'only windows from `from` on');
  const call = (arrived: number, retryAfter?: string): RecordedCall => ({
    route: 'registerWorker',
    method: 'POST',
    path: '/',
    arrived,
    answered: arrived + 5,
    ...(retryAfter !== undefined ? { retryAfter } : {}),
  });
  t.equal(retryAllowedAt(call(1000, '2')), 3005, 'seconds after the answer');
  t.equal(retryAllowedAt(call(1000, new Date(60_000).toUTCString())), 60_000, 'an HTTP date');
  t.same(
    checkRetryAfter([
      [call(0, '1'), call(1005)],
      [call(0, '1'), call(900)],
    ]),
    { told: 2, violations: 1, minSlackMs: -105 },
  );
});

// 20 runners, R = 5: boots in seconds, registers in about 10 s.
t.test('20 runners booting into a worker-manager that admits 5 registrations a second', async (t) => {
  const rate = 5;
  const result = await runFleet({
    runners: 20,
    admission: { registrationsPerSecond: rate, reject: 'mixed', retryAfterSeconds: 1 },
    dir: tempDir(t),
    timeoutMs: 150_000,
  });
  t.comment(
    `registered ${result.registered}/20 (p50 ${result.registrationMs?.p50} ms, max ${result.registrationMs?.max} ms); ` +
      `${result.requests.perRunnerMean.toFixed(2)} requests per runner; peak ${result.peak100ms.afterFirstSecond} in 100 ms after the first second; ` +
      `Retry-After: ${result.retryAfter.violations}/${result.retryAfter.told} too soon`,
  );
  assertTargets(t, result, rate);
});

t.test('a Retry-After as an HTTP date (429) is honoured too', async (t) => {
  const rate = 2;
  const result = await runFleet({
    runners: 6,
    admission: { registrationsPerSecond: rate, reject: 429, retryAfterSeconds: 1, retryAfterAsDate: true },
    dir: tempDir(t),
    timeoutMs: 150_000,
  });
  t.ok(
    result.outcomes.some((o) => o.requests.some((c) => c.retryAfter !== undefined && /GMT$/.test(c.retryAfter))),
    'dates were sent',
  );
  assertTargets(t, result, rate);
});
