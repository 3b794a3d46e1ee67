/**
 * The retry policy a fleet needs: full jitter, Retry-After (seconds or an
 * HTTP date) honoured with a spread, and the retry window as the bound.
 * withRetries runs on a virtual clock with a seeded random source, so the
 * properties are checked over thousands of draws in milliseconds.
 */
import { Agent, createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import taskcluster from 'taskcluster-client';
import { registerWorkerCall, TaskclusterCallError } from '../src/taskcluster/client.js';
import {
  backoffCeiling,
  fullJitterDelay,
  parseRetryAfter,
  retryAfterDelay,
  RetryAfterTooLateError,
  SHARED_SERVICE_BACKOFF,
  withRetries,
  type RetryClock,
} from '../src/util/backoff.js';

/** mulberry32: a small seeded PRNG, so a failure can be replayed. */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let x = state;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/** A clock that moves only when slept on, recording every sleep. */
function virtualClock(start = 1_000_000): RetryClock & { sleeps: number[] } {
  let now = start;
  const sleeps: number[] = [];
  return {
    sleeps,
    now: () => now,
    sleep: async (ms) => {
      sleeps.push(ms);
      now += ms;
    },
  };
}

function stats(values: number[]): { min: number; max: number; mean: number } {
  return {
    min: Math.min(...values),
    max: Math.max(...values),
    mean: values.reduce((a, b) => a + b, 0) / values.length,
  };
}

class Refused extends Error {
  constructor(readonly retryAfterMs?: number) {
    super(retryAfterMs === undefined ? 'refused' : `refused, retry after ${retryAfterMs} ms`);
  }
}

t.test('full jitter: delays for one attempt spread over all of [0, min(cap, base * 2^(n-1))]', async (t) => {
  const random = seeded(1);
  for (const [attempt, ceiling] of [
    [1, 1000],
    [4, 8000],
    [10, 30_000],
  ] as const) {
    t.equal(backoffCeiling(attempt, 1000, 30_000), ceiling);
    const delays = Array.from({ length: 10_000 }, () => fullJitterDelay(attempt, 1000, 30_000, random));
    const { min, max, mean } = stats(delays);
    t.ok(min >= 0 && max <= ceiling, `attempt ${attempt}: within [0, ${ceiling}] (saw ${min}..${max})`);
    t.ok(min < ceiling * 0.01 && max > ceiling * 0.99, `attempt ${attempt}: reaching both ends (saw ${min}..${max})`);
    t.ok(
      Math.abs(mean - ceiling / 2) < ceiling * 0.02,
      `attempt ${attempt}: mean about half the ceiling (${mean.toFixed(0)})`,
    );
    // no clustering: each tenth of the interval gets about a tenth of the draws
    const deciles = new Array<number>(10).fill(0);
    for (const delay of delays) deciles[Math.min(9, Math.floor((delay / ceiling) * 10))]! += 1;
    t.ok(
      deciles.every((n) => n > 800 && n < 1200),
      `attempt ${attempt}: uniform by tenths (${deciles.join(' ')})`,
    );
  }
});

t.test('withRetries with the shared-service policy draws full-jitter delays', async (t) => {
  const clock = virtualClock();
  let calls = 0;
  await t.rejects(
    withRetries(
      async () => {
        calls += 1;
        throw new Refused();
      },
      { ...SHARED_SERVICE_BACKOFF, maxAttempts: 2000, random: seeded(2), clock },
    ),
  );
  t.equal(calls, 2000);
  const late = clock.sleeps.slice(10); // capped at 30 s from the sixth retry on
  const { min, max, mean } = stats(late);
  t.ok(min < 300 && max > 29_700 && max <= 30_000, `capped delays spread over [0, 30 s] (saw ${min}..${max})`);
  t.ok(Math.abs(mean - 15_000) < 1000, `mean about 15 s (${mean.toFixed(0)})`);
});

t.test('Retry-After: at least that long, plus a spread of four times it, doubling, capped', async (t) => {
  const random = seeded(3);
  t.equal(
    retryAfterDelay(2000, 1, 1000, 30_000, () => 0),
    2000,
    'never sooner than told',
  );
  t.equal(
    retryAfterDelay(2000, 1, 1000, 30_000, () => 0.999_999),
    10_000,
    'spread S * 2^(n+1) = 8 s on the first retry',
  );
  t.equal(
    retryAfterDelay(2000, 2, 1000, 30_000, () => 0.999_999),
    18_000,
    'and 16 s on the second',
  );
  t.equal(
    retryAfterDelay(2000, 3, 1000, 30_000, () => 0.999_999),
    32_000,
    'capped at 30 s from the third',
  );
  t.equal(
    retryAfterDelay(60_000, 1, 1000, 30_000, () => 0.999_999),
    90_000,
    'the spread is capped at 30 s',
  );
  t.equal(
    retryAfterDelay(0, 4, 1000, 30_000, () => 0.999_999),
    8000,
    'Retry-After 0: the ordinary backoff, not a hot loop',
  );

  // 1000 runners told "2 seconds" at once come back spread over [2 s, 10 s], not in one wave
  const delays = Array.from({ length: 1000 }, () => retryAfterDelay(2000, 1, 1000, 30_000, random));
  const { min, max, mean } = stats(delays);
  t.ok(min >= 2000, `none sooner than told (least ${min})`);
  t.ok(min < 2100 && max > 9900 && max <= 10_000, `spread over the whole [2 s, 10 s] (saw ${min}..${max})`);
  t.ok(Math.abs(mean - 6000) < 250, `mean about 6 s (${mean.toFixed(0)})`);
  const busiest = Math.max(
    ...Array.from({ length: 80 }, (_, i) => delays.filter((d) => d >= 2000 + i * 100 && d < 2100 + i * 100).length),
  );
  t.ok(busiest < 30, `no 100 ms of the spread takes more than ~2.5x its share of 12.5 (busiest ${busiest})`);
});

t.test('parseRetryAfter: delay-seconds or an HTTP date', async (t) => {
  const now = Date.parse('2026-03-01T12:00:00Z');
  t.equal(parseRetryAfter('2', now), 2000);
  t.equal(parseRetryAfter(' 120 ', now), 120_000);
  t.equal(parseRetryAfter('0', now), 0);
  t.equal(parseRetryAfter('Sun, 01 Mar 2026 12:00:05 GMT', now), 5000, 'IMF-fixdate');
  t.equal(parseRetryAfter('Sunday, 01-Mar-26 12:00:30 GMT', now), 30_000, 'the obsolete RFC 850 form');
  t.equal(parseRetryAfter('Sun, 01 Mar 2026 11:00:00 GMT', now), 0, 'a date in the past: now');
  for (const bad of ['soon', '1.5', '-1', '', '12 seconds', undefined])
    t.equal(parseRetryAfter(bad, now), undefined, `not a Retry-After: ${JSON.stringify(bad)}`);
});

t.test("withRetries honours a failure's retryAfterMs", async (t) => {
  const clock = virtualClock();
  const starts: number[] = [];
  const told: number[] = [];
  const value = await withRetries(
    async (attempt) => {
      starts.push(clock.now());
      if (attempt <= 5) {
        told.push(clock.now() + 3000);
        throw new Refused(3000);
      }
      return 'registered';
    },
    { ...SHARED_SERVICE_BACKOFF, deadline: clock.now() + 300_000, random: seeded(4), clock },
  );
  t.equal(value, 'registered');
  for (let i = 1; i < starts.length; i++)
    t.ok(starts[i]! >= told[i - 1]!, `attempt ${i + 1} came ${starts[i]! - told[i - 1]!} ms after it was allowed`);
});

t.test('a Retry-After beyond the deadline gives up at once, saying so', async (t) => {
  const clock = virtualClock();
  let calls = 0;
  const failure = await withRetries(
    async () => {
      calls += 1;
      throw new Refused(60_000);
    },
    { ...SHARED_SERVICE_BACKOFF, deadline: clock.now() + 20_000, clock },
  ).catch((err: unknown) => err);
  t.equal(calls, 1, 'no retry');
  t.same(clock.sleeps, [], 'no waiting');
  t.type(failure, RetryAfterTooLateError);
  t.match(
    (failure as Error).message,
    /^refused, retry after 60000 ms; the service asked to retry after 60s, past the end of the retry window \(20s left\): giving up now$/,
  );
  t.type((failure as Error).cause, Refused, 'the cause is the failure');

  // without a deadline, a Retry-After longer than maxRetryAfterMs (default 5 minutes) gives up too
  const removal = await withRetries(async () => Promise.reject(new Refused(600_000)), {
    ...SHARED_SERVICE_BACKOFF,
    maxAttempts: 5,
    clock,
  }).catch((err: unknown) => err);
  t.match(
    (removal as Error).message,
    /asked to retry after 600s, longer than start-worker waits \(300s\): giving up now/,
  );
});

t.test('the window: no attempt starts after the deadline, with or without Retry-After', async (t) => {
  const endings = { tooLate: 0, atDeadline: 0 };
  for (const [what, retryAfterMs] of [
    ['no Retry-After', undefined],
    ['Retry-After 7 s', 7000],
  ] as const) {
    for (let seed = 0; seed < 50; seed++) {
      const clock = virtualClock();
      const deadline = clock.now() + 60_000;
      const starts: number[] = [];
      const failure = await withRetries(
        async () => {
          starts.push(clock.now());
          throw new Refused(retryAfterMs);
        },
        { ...SHARED_SERVICE_BACKOFF, deadline, random: seeded(seed), clock },
      ).catch((err: unknown) => err);
      const late = starts.filter((start) => start > deadline);
      if (late.length > 0 || clock.now() > deadline)
        t.fail(`${what}, seed ${seed}: attempts after the deadline: ${late.join(', ')}`);
      if (retryAfterMs === undefined) {
        // the last attempt is at the deadline, then it gives up with the failure itself
        if (starts[starts.length - 1] !== deadline || !(failure instanceof Refused))
          t.fail(`${what}, seed ${seed}: last attempt ${starts[starts.length - 1]! - deadline} ms from the deadline`);
      } else {
        // told to come back later than the window allows: at once; or an attempt at the deadline itself failed
        const tooLate = failure instanceof RetryAfterTooLateError && deadline - clock.now() < retryAfterMs;
        const atDeadline = failure instanceof Refused && clock.now() === deadline;
        endings[tooLate ? 'tooLate' : 'atDeadline'] += 1;
        if (!tooLate && !atDeadline) t.fail(`${what}, seed ${seed}: gave up with ${deadline - clock.now()} ms left`);
        for (let i = 1; i < starts.length; i++)
          if (starts[i]! - starts[i - 1]! < retryAfterMs) t.fail(`${what}, seed ${seed}: retried sooner than told`);
      }
    }
    t.pass(`${what}: 50 seeds, every attempt within the window`);
  }
  t.ok(
    endings.tooLate > 0 && endings.atDeadline > 0,
    `with Retry-After, both endings were seen (${JSON.stringify(endings)})`,
  );
});

/** A worker-manager stand-in that refuses every registerWorker with the status and Retry-After the request's workerId names. */
async function refusingServer(t: { teardown(fn: () => Promise<void>): void }) {
  const connections = { count: 0 };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      const [status, retryAfter] = (JSON.parse(body) as { workerId: string }).workerId.split('-');
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (retryAfter !== undefined && retryAfter !== 'none')
        headers['retry-after'] = retryAfter === 'date' ? new Date(Date.now() + 4000).toUTCString() : retryAfter;
      // answers come back in a different order than the requests went out
      setTimeout(
        () => {
          res.writeHead(Number(status), headers);
          res.end(JSON.stringify({ code: 'Busy', message: 'busy' }));
        },
        Math.floor(Math.random() * 20),
      );
    });
  });
  server.on('connection', () => (connections.count += 1));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { rootUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, connections };
}

async function refusal(rootUrl: string, workerId: string): Promise<TaskclusterCallError> {
  const payload = {
    workerPoolId: 'proj/pool',
    providerId: 'p',
    workerGroup: 'g',
    workerId,
    workerIdentityProof: { staticSecret: 'x'.repeat(44) },
    systemBootTime: new Date().toISOString(),
  };
  const failure = await registerWorkerCall({ rootUrl, requestTimeoutMs: 5000, startupRetryWindowMs: 0 }, payload).catch(
    (err: unknown) => err,
  );
  if (!(failure instanceof TaskclusterCallError))
    throw new Error(`expected a TaskclusterCallError, got ${String(failure)}`);
  return failure;
}

t.test('a Taskcluster call carries the Retry-After of its 503 or 429, and only those', async (t) => {
  const { rootUrl } = await refusingServer(t);
  t.equal((await refusal(rootUrl, '503-7')).retryAfterMs, 7000);
  t.equal((await refusal(rootUrl, '429-2')).retryAfterMs, 2000);
  const dated = await refusal(rootUrl, '503-date');
  t.ok(
    dated.retryAfterMs! > 2000 && dated.retryAfterMs! <= 4000,
    `an HTTP date, counted from the response (${dated.retryAfterMs} ms)`,
  );
  t.match(
    (await refusal(rootUrl, '503-7')).message,
    /^worker-manager registerWorker failed \(HTTP 503; Retry-After 7\): busy$/,
  );
  t.equal((await refusal(rootUrl, '500-7')).retryAfterMs, undefined, 'not on a 500');
  t.equal((await refusal(rootUrl, '503-none')).retryAfterMs, undefined, 'none sent');
  t.equal((await refusal(rootUrl, '503-soon')).retryAfterMs, undefined, 'not a Retry-After');
});

t.test("with one keep-alive agent for every call, each call gets its own response's Retry-After", async (t) => {
  const { rootUrl, connections } = await refusingServer(t);
  // taskcluster-client's default agents, which every client without agent options uses (not in our type declarations)
  const { agents } = taskcluster as unknown as { agents: { http: Agent } };
  const original = agents.http;
  const keepAlive = new Agent({ keepAlive: true, maxSockets: 2 });
  agents.http = keepAlive;
  t.teardown(() => {
    agents.http = original;
    keepAlive.destroy();
  });
  // consecutive calls on one reused socket, alternating with and without a Retry-After
  for (const workerId of ['503-3', '503-none', '429-5', '503-none', '503-1']) {
    const [, seconds] = workerId.split('-');
    t.equal(
      (await refusal(rootUrl, workerId)).retryAfterMs,
      seconds === 'none' ? undefined : Number(seconds) * 1000,
      workerId,
    );
  }
  // concurrent calls queued on two sockets
  const ids = Array.from({ length: 30 }, (_, i) => (i % 3 === 0 ? '503-none' : `${i % 2 ? 503 : 429}-${i}`));
  const failures = await Promise.all(ids.map((id) => refusal(rootUrl, id)));
  t.same(
    failures.map((f) => f.retryAfterMs),
    ids.map((id) => (id.endsWith('none') ? undefined : Number(id.split('-')[1]) * 1000)),
    'every concurrent call has its own',
  );
  t.ok(connections.count <= 2, `the sockets were reused (${connections.count} connections for 35 calls)`);
});

t.test('an aborted signal ends the retries at once, with the last failure', async (t) => {
  const stopping = new AbortController();
  let attempts = 0;
  const started = Date.now();
  setTimeout(() => stopping.abort(), 50);
  const failure = await withRetries(
    async () => {
      attempts++;
      throw new Refused();
    },
    { initialDelayMs: 10_000, maxAttempts: 3, random: () => 1, signal: stopping.signal },
  ).catch((err: unknown) => err);
  t.ok(failure instanceof Refused, 'the failure itself');
  t.equal(attempts, 1, 'no attempt after the abort');
  t.ok(Date.now() - started < 2000, `the 10 s sleep was cut short (${Date.now() - started} ms)`);
});
