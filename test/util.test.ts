import { getEventListeners } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { sleep, withRetries } from '../src/util/backoff.js';
import { httpRequest, preconnect } from '../src/util/http.js';
import { MetadataNotFoundError, MetadataPermanentError, MetadataTransientError } from '../providers/metadata/errors.js';
import { MetadataService } from '../providers/metadata/request.js';
import { Poller } from '../src/util/poller.js';
import { LoopbackServer } from './fakes/http.js';
import { waitFor } from './helpers.js';
import { captureLogger } from './log-capture.js';
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
    withRetries(
      async () => {
        calls += 1;
        throw new Error('permanent');
      },
      { initialDelayMs: 10, isTransient: () => false },
    ),
    { message: 'permanent' },
  );
  t.equal(calls, 1, 'a permanent failure is not retried');

  calls = 0;
  await t.rejects(
    withRetries(
      async () => {
        calls += 1;
        throw new Error('always');
      },
      { initialDelayMs: 10, maxAttempts: 3 },
    ),
    { message: 'always' },
  );
  t.equal(calls, 3, 'at most maxAttempts');

  calls = 0;
  const started = Date.now();
  await t.rejects(
    withRetries(
      async () => {
        calls += 1;
        throw new Error('until the deadline');
      },
      { initialDelayMs: 50, deadline: Date.now() + 300 },
    ),
  );
  t.ok(Date.now() - started < 1000, 'gives up at the deadline');
  t.ok(calls >= 2, 'retried until then');
});

t.test('a poller leaves no abort listener behind per poll', async (t) => {
  const counts: number[] = [];
  const { log } = captureLogger();
  let polls = 0;
  const poller = new Poller(
    async (signal) => {
      counts.push(getEventListeners(signal, 'abort').length);
      polls += 1;
      if (polls % 7 === 0) throw new Error('a failing poll');
      return polls >= 2000;
    },
    { name: 'test poll', intervalMs: 0, errorDelayMs: 0, maxBackoffMs: 0, log },
  );
  poller.start();
  await waitFor('2000 polls', () => polls >= 2000);
  await poller.stop();
  t.ok(Math.max(...counts) <= 1, `at most one listener at a time (saw up to ${Math.max(...counts)})`);
});

t.test('sleep with a signal: resolves early on abort and removes its listener either way', async (t) => {
  const abort = new AbortController();
  for (let i = 0; i < 100; i++) await sleep(0, abort.signal);
  t.equal(getEventListeners(abort.signal, 'abort').length, 0, 'no listeners after timers fired');
  const started = Date.now();
  const waiting = sleep(60_000, abort.signal);
  abort.abort();
  await waiting;
  t.ok(Date.now() - started < 1000, 'aborted early');
  await sleep(60_000, abort.signal);
  t.pass('an already aborted signal returns at once');
});

t.test('httpRequest leaves no listener on the caller signal, answered, failed or timed out', async (t) => {
  const server = await LoopbackServer.start((req, res) => {
    if (req.url === '/slow') setTimeout(() => res.end('late'), 2000);
    else res.end('ok');
  });
  t.teardown(() => server.stop());
  const abort = new AbortController();
  for (let i = 0; i < 50; i++)
    t.equal((await httpRequest(`${server.url}/`, { timeoutMs: 2000, signal: abort.signal })).body, 'ok');
  await t.rejects(httpRequest(`${server.url}/slow`, { timeoutMs: 50, signal: abort.signal }), /no answer within 0.05s/);
  const closed = await LoopbackServer.start(() => undefined);
  await closed.stop();
  await t.rejects(httpRequest(closed.url, { timeoutMs: 2000, signal: abort.signal }), /ECONNREFUSED/);
  t.equal(getEventListeners(abort.signal, 'abort').length, 0);
  const pending = httpRequest(`${server.url}/slow`, { timeoutMs: 5000, signal: abort.signal });
  abort.abort();
  await t.rejects(pending, /aborted/);
});

t.test(
  'MetadataService: find answers a missing value (404) with undefined, and fails as request does otherwise',
  async (t) => {
    const statuses: Record<string, number> = { '/here': 200, '/missing': 404, '/busy': 503, '/refused': 403 };
    const server = await LoopbackServer.start((req, res) => {
      res.statusCode = statuses[req.url ?? ''] ?? 500;
      res.end(res.statusCode === 200 ? 'value' : '<html><body><h1>nope</h1></body></html>');
    });
    t.teardown(() => server.stop());
    const service = new MetadataService(server.url);
    t.equal((await service.find({ path: '/here' }))?.body, 'value');
    t.equal(await service.find({ path: '/missing' }), undefined);
    await t.rejects(
      service.request({ path: '/missing' }),
      new MetadataNotFoundError(`GET ${server.url}/missing: HTTP 404: nope`),
    );
    for (const request of [service.find.bind(service), service.request.bind(service)]) {
      const busy = await request({ path: '/busy' }).catch((err: unknown) => err);
      t.ok(busy instanceof MetadataTransientError, 'a 503 is transient');
      t.match(busy, { status: 503, message: `GET ${server.url}/busy: HTTP 503: nope` });
      const refused = await request({ path: '/refused' }).catch((err: unknown) => err);
      t.ok(
        refused instanceof MetadataPermanentError && !(refused instanceof MetadataNotFoundError),
        'a 403 is permanent',
      );
    }
  },
);

t.test('sleepUntil refuses a time that is not a number (an unparsable expiry), instead of spinning', async (t) => {
  await t.rejects(sleepUntil(Number.NaN), /not a time/);
});

t.test(
  'preconnect opens connections that the next requests take; unused ones are closed; a failed one is dropped',
  async (t) => {
    let opened = 0;
    let closed = 0;
    const requestedAfter: number[] = [];
    const server = createServer((req, res) => {
      requestedAfter.push(opened);
      res.end('ok');
    });
    server.on('connection', (socket) => {
      opened += 1;
      socket.on('close', () => (closed += 1));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.teardown(() => {
      server.closeAllConnections();
      server.close();
    });
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

    await preconnect(url, 3);
    await waitFor('three connections', () => opened === 3);
    const answers = await Promise.all([1, 2, 3].map((i) => httpRequest(`${url}/${i}`, { timeoutMs: 2000 })));
    t.same(
      answers.map((a) => a.body),
      ['ok', 'ok', 'ok'],
    );
    t.equal(opened, 3, 'three requests at once, on the three connections opened before them');
    t.equal(closed, 0, 'kept alive');

    await preconnect(url, 2);
    await waitFor('two more connections', () => opened === 5);
    await waitFor('the unused ones closed after a few seconds', () => closed >= 2, 8000);
    t.equal((await httpRequest(`${url}/again`, { timeoutMs: 2000 })).body, 'ok', 'requests go on afterwards');

    const gone = createServer();
    await new Promise<void>((resolve) => gone.listen(0, '127.0.0.1', resolve));
    const goneUrl = `http://127.0.0.1:${(gone.address() as AddressInfo).port}`;
    await new Promise((resolve) => gone.close(resolve));
    await preconnect(goneUrl, 2);
    await new Promise((resolve) => setTimeout(resolve, 100));
    await t.rejects(
      httpRequest(goneUrl, { timeoutMs: 2000 }),
      /ECONNREFUSED/,
      'the request reports the failure itself',
    );
  },
);
