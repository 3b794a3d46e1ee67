import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parse } from 'yaml';
import { FakeTaskcluster } from './fakes/taskcluster.js';
import {
  fakeWorkerSection,
  leakedSecrets,
  recordingShutdown,
  runCli,
  STATIC_SECRET,
  tempDir,
  writeConfig,
} from './helpers.js';

const POOL = 'proj/static-pool';

async function startFake(t: { teardown(fn: () => Promise<void>): void }, options = {}) {
  const fake = await new FakeTaskcluster(options).start();
  t.teardown(() => fake.stop());
  return fake;
}

function staticConfig(fake: FakeTaskcluster, dir: string, extra: Record<string, unknown> = {}) {
  return {
    provider: {
      providerType: 'static',
      rootURL: `${fake.rootUrl}/`,
      providerID: 'static-prov',
      workerPoolID: POOL,
      workerGroup: 'rack-1',
      workerID: 'host-1',
      staticSecret: STATIC_SECRET,
    },
    worker: { implementation: 'dummy' },
    shutdownCommand: recordingShutdown(dir).command,
    startupRetryWindow: 5,
    ...extra,
  };
}

function prepare(fake: FakeTaskcluster, workerConfig: Record<string, unknown> = {}) {
  fake.addWorkerPool(POOL, 'static-prov', workerConfig);
  fake.addStaticWorker(POOL, 'rack-1', 'host-1', STATIC_SECRET);
}

t.test('static: registerWorker without credentials, the nested workerConfig form, the state', async (t) => {
  const fake = await startFake(t);
  prepare(fake, { dummy: { config: { fromWorkerManager: 1, shared: 'wm' }, files: [] } });
  const dir = tempDir(t);
  const config = writeConfig(dir, { ...staticConfig(fake, dir), workerConfig: { fromRunner: true, shared: 'runner' } });
  const result = await runCli([config]);
  t.equal(result.code, 0, result.stderr);

  const [register] = fake.callsTo('registerWorker');
  t.equal(register?.clientId, undefined, 'registerWorker was not authenticated');
  const body = register!.body!;
  t.same(
    { ...body, systemBootTime: undefined },
    {
      workerPoolId: POOL,
      providerId: 'static-prov',
      workerGroup: 'rack-1',
      workerId: 'host-1',
      workerIdentityProof: { staticSecret: STATIC_SECRET },
      systemBootTime: undefined,
    },
  );
  t.ok(Date.parse(body['systemBootTime'] as string) < Date.now(), 'systemBootTime is in the past');

  const dump = parse(result.stdout) as Record<string, unknown>;
  t.equal(dump['rootUrl'], fake.rootUrl, 'root URL normalized');
  t.equal(dump['providerId'], 'static-prov');
  t.same(dump['workerLocation'], { cloud: 'static' });
  t.same(dump['workerConfig'], { fromRunner: true, shared: 'wm', fromWorkerManager: 1 });
  t.match(dump['credentials'], {
    clientId: /^worker\/static-prov\//,
    accessToken: '<redacted>',
    certificate: '<redacted>',
  });
  t.equal(dump['registrationSecret'], '<redacted>');
  t.ok(Date.parse(dump['credentialsExpire'] as string) > Date.now());
  t.same(
    leakedSecrets(result.stdout + result.stderr, [STATIC_SECRET, ...fake.issuedSecrets()]),
    [],
    'no secret appears in the output',
  );
});

t.test('the legacy flat workerConfig form', async (t) => {
  const fake = await startFake(t);
  prepare(fake, { flatKey: 'v', nested: { a: 1 } });
  const dir = tempDir(t);
  const result = await runCli([writeConfig(dir, { ...staticConfig(fake, dir), getSecrets: false })]);
  t.equal(result.code, 0, result.stderr);
  t.same((parse(result.stdout) as { workerConfig: unknown }).workerConfig, { flatKey: 'v', nested: { a: 1 } });
});

t.test('precedence: runner config < worker-manager < legacy secret < worker-pool secret', async (t) => {
  const fake = await startFake(t);
  prepare(fake, { dummy: { config: { b: 'wm', c: 'wm', list: ['wm'] } } });
  fake.secrets.set(`worker-type:${POOL}`, { c: 'legacy', d: 'legacy-flat-format', list: ['legacy'] });
  fake.secrets.set(`worker-pool:${POOL}`, { config: { c: 'pool-secret', password: 'hunter2-very-secret' }, files: [] });
  const dir = tempDir(t);
  const result = await runCli([
    writeConfig(dir, {
      ...staticConfig(fake, dir),
      workerConfig: { a: 'runner', b: 'runner', c: 'runner', list: ['runner'] },
    }),
  ]);
  t.equal(result.code, 0, result.stderr);
  const dump = parse(result.stdout) as { workerConfig: Record<string, unknown> };
  t.same(
    dump.workerConfig,
    {
      a: 'runner',
      b: 'wm',
      c: '<redacted>',
      list: ['runner', 'wm', '<redacted>'],
      d: '<redacted>',
      password: '<redacted>',
    },
    'values from secrets are redacted in the dump, the rest is merged in order',
  );
  t.equal(fake.callsTo('getSecret').length, 2);
  t.ok(
    fake.callsTo('getSecret').every((c) => c.clientId?.startsWith('worker/static-prov/')),
    'secrets were read with the issued credentials',
  );
  t.same(
    leakedSecrets(result.stdout + result.stderr, [
      'hunter2-very-secret',
      'legacy-flat-format',
      STATIC_SECRET,
      ...fake.issuedSecrets(),
    ]),
    [],
    'no secret appears in the output',
  );
});

t.test('the order of the secrets decides: worker-pool wins over worker-type', async (t) => {
  const fake = await startFake(t);
  prepare(fake);
  fake.secrets.set(`worker-type:${POOL}`, { value: 'legacy' });
  fake.secrets.set(`worker-pool:${POOL}`, { config: { value: 'current' } });
  const dir = tempDir(t);
  // the dummy dump redacts secret values; the command worker's config file shows them
  const configPath = join(dir, 'worker.json');
  const result = await runCli([
    writeConfig(dir, {
      ...staticConfig(fake, dir),
      worker: { implementation: 'command', command: [process.execPath, '-e', ''], configPath, passCredentials: 'none' },
    }),
  ]);
  t.equal(result.code, 0, result.stderr);
  const { readFileSync } = await import('node:fs');
  t.equal((JSON.parse(readFileSync(configPath, 'utf8')) as { value: string }).value, 'current');
});

t.test('secrets: 403 on the legacy name and 404s are fine; no secret at all is a warning', async (t) => {
  const fake = await startFake(t);
  prepare(fake);
  fake.secrets.set(`worker-type:${POOL}`, { status: 403 });
  const dir = tempDir(t);
  const result = await runCli([writeConfig(dir, staticConfig(fake, dir))]);
  t.equal(result.code, 0, result.stderr);
  t.match(result.stderr, /warning: no worker secrets for worker pool proj\/static-pool/);
});

t.test('secrets: an expired worker-pool secret (410) is skipped with a warning', async (t) => {
  const fake = await startFake(t);
  prepare(fake);
  fake.secrets.set(`worker-pool:${POOL}`, { status: 410 });
  const dir = tempDir(t);
  const result = await runCli([writeConfig(dir, staticConfig(fake, dir))]);
  t.equal(result.code, 0, result.stderr);
  t.match(result.stderr, /secret worker-pool:proj\/static-pool has expired; ignoring it/);
});

t.test(
  'secrets: a persistent 500 is a startup error after the retry window; a 403 on worker-pool at once',
  async (t) => {
    const fake = await startFake(t);
    prepare(fake);
    fake.inject('getSecret', { kind: 'status', status: 500 }, 1000);
    const dir = tempDir(t);
    const started = Date.now();
    const result = await runCli([writeConfig(dir, { ...staticConfig(fake, dir), startupRetryWindow: 2 })]);
    t.equal(result.code, 1);
    t.match(
      result.stderr,
      /error: cannot read worker secrets: secrets get worker-type:proj\/static-pool failed \(HTTP 500\): injected fault; gave up after startupRetryWindow \(2s\)\n/,
    );
    t.ok(fake.callsTo('getSecret').length > 1, 'retried');
    t.ok(Date.now() - started < 15_000, 'within a bounded window');
    t.same(
      leakedSecrets(result.stderr, [STATIC_SECRET, ...fake.issuedSecrets()]),
      [],
      'no secret appears in the output',
    );

    fake.faults.clear();
    fake.secrets.set(`worker-pool:${POOL}`, { status: 403 });
    const forbidden = await runCli([writeConfig(dir, staticConfig(fake, dir), { name: 'forbidden.yaml' })]);
    t.equal(forbidden.code, 1);
    t.match(
      forbidden.stderr,
      /cannot read worker secrets: secrets get worker-pool:proj\/static-pool failed \(HTTP 403\)/,
    );
  },
);

t.test('a secret that is not an object is an error', async (t) => {
  const fake = await startFake(t);
  prepare(fake);
  fake.secrets.set(`worker-pool:${POOL}`, { config: 'not an object' });
  const dir = tempDir(t);
  const result = await runCli([writeConfig(dir, staticConfig(fake, dir))]);
  t.equal(result.code, 1);
  t.match(result.stderr, /secret worker-pool:proj\/static-pool: config must be an object/);
});

t.test(
  'a workerConfig that is not an object is a broken worker pool: startup fails at once, naming the pool',
  async (t) => {
    const fake = await startFake(t);
    prepare(fake);
    // worker-manager validates its answers, so only a broken deployment sends this; the fault bypasses the fake's own check
    for (const workerConfig of ['a string', 7, ['a', 'list']]) {
      const broken = {
        credentials: { clientId: 'worker/x', accessToken: 'y'.repeat(44) },
        expires: new Date(Date.now() + 3_600_000).toISOString(),
        secret: 'z'.repeat(44),
        workerConfig,
      };
      fake.inject('registerWorker', { kind: 'status', status: 200, body: broken });
      const dir = tempDir(t);
      const result = await runCli([writeConfig(dir, { ...staticConfig(fake, dir), getSecrets: false })]);
      t.equal(result.code, 1, JSON.stringify(workerConfig));
      t.match(
        result.stderr,
        /registerWorker returned a workerConfig that is an? (string|number|array), not an object: the definition of worker pool proj\/static-pool is broken/,
      );
    }
    t.equal(fake.callsTo('registerWorker').length, 3, 'not retried');
  },
);

t.test('registration: transient failures are retried, a refusal is not', async (t) => {
  const fake = await startFake(t);
  prepare(fake);
  fake.inject('registerWorker', { kind: 'status', status: 503 }, 2);
  fake.inject('registerWorker', { kind: 'drop' });
  const dir = tempDir(t);
  const ok = await runCli([
    writeConfig(dir, { ...staticConfig(fake, dir), getSecrets: false, startupRetryWindow: 60 }),
  ]);
  t.equal(ok.code, 0, ok.stderr);
  t.equal(fake.callsTo('registerWorker').length, 4, 'two 503s and a dropped connection, then success');
  t.match(ok.stderr, /registerWorker: worker-manager registerWorker failed \(HTTP 503\).*retrying in/);

  const bad = await runCli([
    writeConfig(
      dir,
      { ...staticConfig(fake, dir), provider: { ...staticConfig(fake, dir).provider, staticSecret: 'x'.repeat(44) } },
      { name: 'bad.yaml' },
    ),
  ]);
  t.equal(bad.code, 1);
  t.match(bad.stderr, /error: worker-manager registerWorker failed \(HTTP 400\): bad worker identity proof\n$/);
  t.equal(fake.callsTo('registerWorker').length, 5, 'a 4xx is not retried');
  t.notMatch(bad.stderr, 'x'.repeat(44), 'the static secret is redacted');
});

t.test('registration: a slow worker-manager times out and is retried', async (t) => {
  const fake = await startFake(t);
  prepare(fake);
  fake.inject('registerWorker', { kind: 'delay', ms: 3000 });
  const dir = tempDir(t);
  const result = await runCli([
    writeConfig(dir, { ...staticConfig(fake, dir), getSecrets: false, requestTimeout: 1, startupRetryWindow: 30 }),
  ]);
  t.equal(result.code, 0, result.stderr);
  t.match(result.stderr, /registerWorker failed \(ECONNABORTED\)/);
});

t.test('static with cacheOverRestarts is rejected by validation', async (t) => {
  const fake = await startFake(t);
  const dir = tempDir(t);
  const result = await runCli([
    'validate',
    writeConfig(dir, { ...staticConfig(fake, dir), cacheOverRestarts: join(dir, 'cache.json') }),
  ]);
  t.equal(result.code, 1);
  t.match(
    result.stderr,
    /cacheOverRestarts: not used with the static provider, which registers from scratch on every boot/,
  );
});

t.test('static: when the worker exits, nothing is removed and nothing is shut down', async (t) => {
  const fake = await startFake(t);
  prepare(fake);
  const dir = tempDir(t);
  const shutdown = recordingShutdown(dir);
  const result = await runCli([writeConfig(dir, { ...staticConfig(fake, dir), shutdownCommand: shutdown.command })]);
  t.equal(result.code, 0);
  t.equal(fake.callsTo('removeWorker').length, 0);
  t.same(shutdown.calls(), []);
});

t.test('standalone: secrets are read with the configured credentials', async (t) => {
  const fake = await startFake(t);
  fake.addPermanentCredentials('project/standalone', 'standalone-token-abcdefghijkl');
  fake.secrets.set(`worker-pool:${POOL}`, { config: { fromSecret: 'value-from-the-secret' } });
  const dir = tempDir(t);
  const result = await runCli([
    writeConfig(dir, {
      provider: {
        providerType: 'standalone',
        rootURL: fake.rootUrl,
        clientID: 'project/standalone',
        accessToken: 'standalone-token-abcdefghijkl',
        workerPoolID: POOL,
        workerGroup: 'g',
        workerID: 'w',
      },
      worker: { implementation: 'dummy' },
    }),
  ]);
  t.equal(result.code, 0, result.stderr);
  t.equal(fake.callsTo('registerWorker').length, 0, 'standalone does not register');
  t.ok(fake.callsTo('getSecret').every((c) => c.clientId === 'project/standalone'));
  t.match(result.stdout, /fromSecret: <redacted>/);
  t.same(leakedSecrets(result.stdout + result.stderr, ['standalone-token-abcdefghijkl', 'value-from-the-secret']), []);
});

t.test(
  '--verbose shows the boot: where values came from, each request with status and duration, step times, protocol messages, the worker argv; no secret',
  async (t) => {
    const fake = await startFake(t);
    prepare(fake);
    const dir = tempDir(t);
    const secretFile = join(dir, 'static-secret');
    writeFileSync(secretFile, `${STATIC_SECRET}\n`, { mode: 0o600 });
    const config = staticConfig(fake, dir);
    const path = writeConfig(dir, {
      ...config,
      provider: { ...config.provider, staticSecret: { file: secretFile } },
      worker: fakeWorkerSection(),
      hooks: { 'pre-start': [['/bin/true']] },
    });
    const result = await runCli(['-v', '--override', 'getSecrets=true', path], {
      env: {
        FAKE_WORKER: JSON.stringify({ capabilities: ['graceful-termination'], exitAfterOutput: 0 }),
        START_WORKER_LOG_FORMAT: 'text',
      },
    });
    t.equal(result.code, 0, result.stderr);
    const debug = result.stderr.split('\n').filter((line) => / debug: /.test(line));
    t.ok(
      debug.some((line) =>
        /option --log-format "text" from the environment variable START_WORKER_LOG_FORMAT/.test(line),
      ),
      'an option from the environment',
    );
    t.ok(
      debug.some((line) => /getSecrets: set by --override/.test(line)),
      'an override',
    );
    t.ok(
      debug.some((line) => line.includes(`provider.staticSecret: from the file ${secretFile} (a secret; not shown)`)),
      'an indirection',
    );
    t.ok(
      debug.some((line) =>
        /HTTP POST http:\/\/127\.0\.0\.1:\d+\/api\/worker-manager\/v1\/worker\/register: HTTP 200 in \d+ ms/.test(line),
      ),
      'the registration request, with status and duration',
    );
    t.ok(
      debug.some((line) =>
        /HTTP GET http:\/\/127\.0\.0\.1:\d+\/api\/secrets\/v1\/secret\/worker-pool%3Aproj%2Fstatic-pool: HTTP 404 in \d+ ms/.test(
          line,
        ),
      ),
      'a secrets request',
    );
    t.ok(
      debug.some((line) => /step register took \d+ ms/.test(line)),
      'step durations',
    );
    t.ok(
      debug.some((line) => /hook pre-start \[\/bin\/true\]: running \["\/bin\/true"\]/.test(line)) &&
        debug.some((line) => /hook pre-start \[\/bin\/true\] exited with code 0 after \d+ ms/.test(line)),
      'hooks and their exit codes',
    );
    t.ok(
      debug.some((line) =>
        /spawning \[".*node","[^"]*protocol-worker\.js"\]; environment: .*TASKCLUSTER_WORKER_ID/.test(line),
      ),
      'the worker argv and environment keys',
    );
    t.ok(
      debug.some((line) => /protocol → worker: welcome \{capabilities: \["error-report",/.test(line)),
      'a message to the worker',
    );
    t.ok(
      debug.some((line) => /protocol ← worker: hello \{capabilities: \["graceful-termination"\]\}/.test(line)),
      'a message from the worker',
    );
    t.match(
      result.stderr,
      /boot summary: the worker started [\d.]+s after the machine booted and [\d.]+s after start-worker started; the slowest step was \w+ \([\d.]+s\)/,
    );
    t.same(leakedSecrets(result.stderr, [STATIC_SECRET, ...fake.issuedSecrets()]), []);
  },
);

t.test('--verbose does not show a secret set by --override, only the key it sets', async (t) => {
  const fake = await startFake(t);
  prepare(fake);
  const dir = tempDir(t);
  const path = writeConfig(dir, { ...staticConfig(fake, dir), worker: fakeWorkerSection() });
  const result = await runCli(['-v', '--override', `provider.staticSecret=${STATIC_SECRET}`, path], {
    env: { FAKE_WORKER: JSON.stringify({ capabilities: [], exitAfterOutput: 0 }), START_WORKER_LOG_FORMAT: 'text' },
  });
  t.equal(result.code, 0, result.stderr);
  t.match(result.stderr, /option --override for provider\.staticSecret from the command line/);
  t.same(leakedSecrets(result.stdout + result.stderr, [STATIC_SECRET]), []);
});
