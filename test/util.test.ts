import t from 'tap';
import { withRetries } from '../src/util/backoff.js';
import { sleepUntil } from '../src/util/wall-clock.js';

t.test('sleepUntil waits for a wall-clock time, and can be aborted', async (t) => {
  const started = Date.now();
  t.equal(await sleepUntil(started + 200), true);
  t.ok(Date.now() - started >= 195, 'not before the time');
  t.equal(await sleepUntil(started - 1000), true, 'a time already past: at once');
  const abort = new AbortController();
  const waiting = sleepUntil(Date.now() + 60_000, abort.signal);
  setTimeout(() => abort.abort(), 50);
  t.equal(await waiting, false, 'aborted');
  const aborted = new AbortController();
  aborted.abort();
  t.equal(await sleepUntil(Date.now() + 60_000, aborted.signal), false, 'already aborted');
});

t.test('withRetries: transient failures are retried within the bounds, permanent ones are not', async (t) => {
  let calls = 0;
  const value = await withRetries(
    async () => {
      calls += 1;
      if (calls < 3) throw new Error('transient');
      return 'ok';
    },
    { initialDelayMs: 10, maxAttempts: 5 },
  );
  t.equal(value, 'ok');
  t.equal(calls, 3);

  calls = 0;
  await t.rejects(
    withRetries(async () => {
      calls += 1;
      throw new Error('permanent');
    }, { initialDelayMs: 10, isTransient: () => false }),
    { message: 'permanent' },
  );
  t.equal(calls, 1, 'a permanent failure is not retried');

  calls = 0;
  await t.rejects(withRetries(async () => { calls += 1; throw new Error('always'); }, { initialDelayMs: 10, maxAttempts: 3 }), { message: 'always' });
  t.equal(calls, 3, 'at most maxAttempts');

  calls = 0;
  const started = Date.now();
  await t.rejects(withRetries(async () => { calls += 1; throw new Error('until the deadline'); }, { initialDelayMs: 50, deadline: Date.now() + 300 }));
  t.ok(Date.now() - started < 1000, 'gives up at the deadline');
  t.ok(calls >= 2, 'retried until then');
});
