import t from 'tap';
import taskcluster from 'taskcluster-client';
import { FakeTaskcluster } from './fakes/taskcluster.js';
import { STATIC_SECRET } from './helpers.js';

const POOL = 'proj/strict-pool';

async function startFake(t: { teardown(fn: () => Promise<void>): void }) {
  const fake = await new FakeTaskcluster().start();
  t.teardown(() => fake.stop());
  fake.addWorkerPool(POOL, 'static-prov', { some: 'config' });
  fake.addStaticWorker(POOL, 'rack-1', 'host-1', STATIC_SECRET);
  return fake;
}

const registration = {
  workerPoolId: POOL,
  providerId: 'static-prov',
  workerGroup: 'rack-1',
  workerId: 'host-1',
  workerIdentityProof: { staticSecret: STATIC_SECRET },
};

async function register(
  fake: FakeTaskcluster,
  body: unknown,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${fake.rootUrl}/api/worker-manager/v1/worker/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

t.test('the Taskcluster fake refuses request bodies that worker-manager would refuse', async (t) => {
  const fake = await startFake(t);
  const refused: [string, unknown][] = [
    ['a workerGroup over 38 characters', { ...registration, workerGroup: 'g'.repeat(39) }],
    ['an empty workerId', { ...registration, workerId: '' }],
    ['a workerPoolId without a slash', { ...registration, workerPoolId: 'no-slash' }],
    ['a property worker-manager does not know', { ...registration, region: 'moon-1' }],
    [
      'a static secret that is not 44 characters',
      { ...registration, workerIdentityProof: { staticSecret: STATIC_SECRET.slice(1) } },
    ],
    ['an identity proof of no provider type', { ...registration, workerIdentityProof: { document: 'd', token: 't' } }],
    ['no identity proof', { ...registration, workerIdentityProof: undefined }],
    ['a systemBootTime that is not a date-time', { ...registration, systemBootTime: 'yesterday' }],
  ];
  for (const [what, body] of refused) {
    const { status, body: error } = await register(fake, body);
    t.equal(status, 400, what);
    t.equal(error['code'], 'InputValidationError', what);
    t.match(error['message'], /request body does not match worker-manager\/v1\/register-worker-request\.json/, what);
  }
  t.equal(fake.workers.size, 0, 'nothing was registered');

  const accepted = await register(fake, { ...registration, systemBootTime: new Date().toISOString() });
  t.equal(accepted.status, 200, 'the same body, valid, is accepted');
  t.same(accepted.body['workerConfig'], { some: 'config' });

  // An authenticated call is validated too.
  const credentials = accepted.body['credentials'] as { clientId: string; accessToken: string; certificate?: string };
  const workerManager = new taskcluster.WorkerManager({ rootUrl: fake.rootUrl, credentials, retries: 0 });
  const report = {
    workerGroup: 'rack-1',
    workerId: 'host-1',
    kind: 'worker-error',
    title: 't',
    description: 'd',
    extra: {},
  };
  await t.rejects(
    workerManager.reportWorkerError(POOL, { ...report, title: 't'.repeat(129) }),
    { statusCode: 400, code: 'InputValidationError' },
    'a title over 128 characters',
  );
  await t.rejects(
    workerManager.reportWorkerError(POOL, { ...report, extra: undefined }),
    { statusCode: 400, code: 'InputValidationError' },
    'no extra',
  );
  await t.resolves(workerManager.reportWorkerError(POOL, report), 'a valid report is accepted');
  t.equal(fake.reportedErrors.length, 1);
});

t.test('the Taskcluster fake refuses to send a response that does not match the reference', async (t) => {
  const fake = await startFake(t);
  // Only a test can make the fake answer wrongly: a worker pool whose workerConfig is a list.
  fake.workerPools.set(POOL, {
    providerId: 'static-prov',
    workerConfig: ['a', 'list'] as unknown as Record<string, unknown>,
  });
  const { status, body } = await register(fake, registration);
  t.equal(status, 500);
  t.equal(body['code'], 'OutputValidationError');
  t.match(body['message'], /response body does not match worker-manager\/v1\/register-worker-response\.json/);

  fake.addWorkerPool(POOL, 'static-prov');
  const credentials = (await register(fake, registration)).body['credentials'] as {
    clientId: string;
    accessToken: string;
  };
  fake.secrets.set('worker-pool:proj/strict-pool', 'a string' as unknown as Record<string, unknown>);
  const secrets = new taskcluster.Secrets({ rootUrl: fake.rootUrl, credentials, retries: 0 });
  await t.rejects(
    secrets.get('worker-pool:proj/strict-pool'),
    { statusCode: 500, code: 'OutputValidationError' },
    'a secret that is not an object',
  );
});

t.test('an admission limit: R registrations in any rolling second, the rest refused with a Retry-After', async (t) => {
  const fake = await new FakeTaskcluster({
    admission: { registrationsPerSecond: 3, reject: 'mixed', retryAfterSeconds: 4 },
  }).start();
  t.teardown(() => fake.stop());
  fake.addWorkerPool(POOL, 'static-prov');
  fake.addStaticWorker(POOL, 'rack-1', 'host-1', STATIC_SECRET);
  const body = { ...registration, systemBootTime: new Date().toISOString() };
  const answers = await Promise.all(
    Array.from({ length: 7 }, () =>
      fetch(`${fake.rootUrl}/api/worker-manager/v1/worker/register`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      }).then(async (response) => ({
        status: response.status,
        retryAfter: response.headers.get('retry-after'),
        body: (await response.json()) as Record<string, unknown>,
      })),
    ),
  );
  const calls = fake.callsTo('registerWorker');
  const admitted = calls.filter((c) => c.status === 200);
  const refused = calls.filter((c) => c.status !== 200);
  t.ok(calls[calls.length - 1]!.arrived - calls[0]!.arrived < 1000, 'all within one second');
  t.equal(admitted.length, 3, 'three admitted');
  t.same(
    refused.map((c) => c.status),
    [503, 429, 503, 429],
    'the rest refused, 503 and 429 in turn',
  );
  t.ok(
    refused.every((c) => c.retryAfter === '4' && c.answered! >= c.arrived),
    'each with its Retry-After, recorded with the times',
  );
  const refusal = answers.find((a) => a.status === 429)!;
  t.equal(refusal.retryAfter, '4', 'the header is sent');
  t.match(
    refusal.body,
    { code: 'TooManyRequests', message: /retry later/, requestInfo: { method: 'POST' } },
    "Taskcluster's error shape",
  );
  t.same(
    fake.arrivals('registerWorker'),
    calls.map((c) => c.arrived),
  );
});

t.test('an admission limit with HTTP-date Retry-After, after a brown-out', async (t) => {
  const fake = await new FakeTaskcluster({
    admission: {
      registrationsPerSecond: 1,
      reject: 429,
      retryAfterSeconds: 2,
      retryAfterAsDate: true,
      outageSeconds: 0.3,
    },
  }).start();
  t.teardown(() => fake.stop());
  fake.addWorkerPool(POOL, 'static-prov');
  fake.addStaticWorker(POOL, 'rack-1', 'host-1', STATIC_SECRET);
  const body = { ...registration, systemBootTime: new Date().toISOString() };
  // register until the outage is over
  const during: Record<string, unknown>[] = [];
  for (let answer = await register(fake, body); answer.status !== 200; answer = await register(fake, body))
    during.push(answer.body);
  t.ok(
    during.every((error) => error['code'] === 'ServiceUnavailable'),
    'ServiceUnavailable during the outage',
  );
  const calls = fake.callsTo('registerWorker');
  t.ok(calls.length > 1, 'refused during the outage');
  // the outage counts from when the fake read the first registration, a moment after it arrived
  t.ok(
    calls
      .slice(0, -1)
      .every((c) => c.status === 503 && c.retryAfter === undefined && c.arrived < calls[0]!.arrived + 300 + 50),
    'all 503, without Retry-After, in the first 0.3 s',
  );
  t.ok(calls[calls.length - 1]!.arrived >= calls[0]!.arrived + 300 - 50, 'admitted after it');
  const refused = await register(fake, body);
  t.equal(refused.status, 429, 'then one a second');
  const retryAfter = fake.callsTo('registerWorker').at(-1)!.retryAfter!;
  t.match(retryAfter, /GMT$/);
  t.ok(
    Date.parse(retryAfter) >= Date.now() + 1000 && Date.parse(retryAfter) <= Date.now() + 3000,
    `a date about 2 s ahead (${retryAfter})`,
  );
});
