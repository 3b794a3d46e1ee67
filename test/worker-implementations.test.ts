import { chmodSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parse } from 'yaml';
import { protocolWorkerPath, readJsonLines, runCli, standaloneProvider, tempDir, writeConfig } from './helpers.js';

interface Started {
  event: string;
  argv: string[];
  env: Record<string, string>;
  cwd: string;
}

const metadata = {
  'public-ipv4': '203.0.113.7',
  'local-ipv4': '10.0.0.7',
  'public-hostname': 'host.example.com',
  'instance-type': 'm5.large',
  'instance-id': 'i-123',
  region: 'us-east-1',
  'availability-zone': 'us-east-1a',
  extra: 'kept',
};

/** An executable that runs the test worker, recording argv, env and cwd. */
function fakeExecutable(path: string): void {
  writeFileSync(path, `#!/bin/sh\nexec "${process.execPath}" "${protocolWorkerPath}" "$@"\n`);
  chmodSync(path, 0o755);
}

async function run(
  t: { teardown(fn: () => void): void },
  worker: Record<string, unknown>,
  options: {
    exitCode?: number;
    env?: Record<string, string>;
    providerOverrides?: Record<string, unknown>;
    workerConfig?: Record<string, unknown>;
  } = {},
) {
  const dir = tempDir(t);
  const record = join(dir, 'record.jsonl');
  const resolved = JSON.parse(JSON.stringify(worker).replaceAll('$DIR', dir)) as Record<string, unknown>;
  const config = writeConfig(dir, {
    provider: standaloneProvider({
      providerMetadata: metadata,
      workerLocation: { zone: 'z1' },
      ...options.providerOverrides,
    }),
    worker: resolved,
    workerConfig: options.workerConfig ?? { existing: 1, workerTypeMetadata: { fromRunner: true } },
    getSecrets: false,
  });
  const result = await runCli([config], {
    env: {
      FAKE_WORKER: JSON.stringify({ capabilities: [], exitAfterOutput: options.exitCode ?? 0 }),
      FAKE_WORKER_RECORD: record,
      ...options.env,
    },
  });
  const started = readJsonLines<Started>(record).find((r) => r.event === 'started');
  return { dir, result, started };
}

function readConfig(path: string): Record<string, unknown> {
  t.equal(statSync(path).mode & 0o777, 0o600, `${path} is owner-only`);
  return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
}

t.test('generic-worker: a missing executable is one clear error', async (t) => {
  const { result, started } = await run(t, {
    implementation: 'generic-worker',
    path: '$DIR/generic-worker',
    configPath: '$DIR/gw.json',
  });
  t.equal(result.code, 1);
  t.match(result.stderr, /error: cannot start worker \/.*\/generic-worker: .*ENOENT/);
  t.notOk(started);
});

t.test('generic-worker: argv and the config file, field by field', async (t) => {
  const dir = tempDir(t);
  fakeExecutable(join(dir, 'gw'));
  const { result, started } = await run(t, {
    implementation: 'generic-worker',
    path: join(dir, 'gw'),
    configPath: join(dir, 'gw.json'),
  });
  t.equal(result.code, 0, result.stderr);
  t.same(started?.argv, ['run', '--config', join(dir, 'gw.json'), '--with-worker-runner']);
  const config = readConfig(join(dir, 'gw.json'));
  t.same(config, {
    existing: 1,
    publicIP: '203.0.113.7',
    privateIP: '10.0.0.7',
    instanceType: 'm5.large',
    instanceID: 'i-123',
    region: 'us-east-1',
    availabilityZone: 'us-east-1a',
    workerLocation: '{"cloud":"standalone","zone":"z1"}',
    workerTypeMetadata: { fromRunner: true, ...metadata },
    rootURL: 'http://127.0.0.1:9',
    clientId: 'test/client',
    accessToken: 'SECRET-access-token-0123456789',
    provisionerId: 'proj',
    workerType: 'pool',
    workerGroup: 'group',
    workerId: 'worker-1',
  });
  t.notOk('certificate' in config, 'no certificate without one in the credentials');
  t.notMatch(result.stderr, 'SECRET-access-token', 'the token is not logged');
});

t.test('generic-worker: exit code 67 asks for a reboot', async (t) => {
  const dir = tempDir(t);
  fakeExecutable(join(dir, 'gw'));
  const { result } = await run(
    t,
    { implementation: 'generic-worker', path: join(dir, 'gw'), configPath: join(dir, 'gw.json') },
    { exitCode: 67 },
  );
  t.equal(result.code, 67);
  t.match(result.stderr, /asked for a reboot \(exit code 67\); leaving it registered/);
});

t.test('generic-worker: worker pool ID without a slash, service mode and path/service rules', async (t) => {
  const dir = tempDir(t);
  fakeExecutable(join(dir, 'gw'));
  const noSlash = await run(
    t,
    { implementation: 'generic-worker', path: join(dir, 'gw'), configPath: join(dir, 'gw.json') },
    { providerOverrides: { workerPoolID: 'noslash' } },
  );
  t.equal(noSlash.result.code, 1);
  t.match(
    noSlash.result.stderr,
    /provider\.workerPoolID: must be <provisionerId>\/<workerType>.*'noslash' has no '\/'/,
    'refused before boot now',
  );

  const base = { provider: standaloneProvider(), getSecrets: false };
  const service = writeConfig(
    dir,
    { ...base, worker: { implementation: 'generic-worker', service: 'Generic Worker', configPath: '/x.json' } },
    { name: 'svc.yaml' },
  );
  const serviceResult = await runCli(['validate', service]);
  t.equal(serviceResult.code, 1);
  t.match(
    serviceResult.stderr,
    /worker\.service: generic-worker as a Windows service is not supported: start-worker does not support Windows/,
  );
  const both = writeConfig(
    dir,
    {
      ...base,
      worker: { implementation: 'generic-worker', path: '/gw', configPath: '/x.json', protocolPipe: '\\\\.\\pipe\\gw' },
    },
    { name: 'both.yaml' },
  );
  t.match((await runCli(['validate', both])).stderr, /worker\.protocolPipe: .*does not support Windows/);
  const neither = writeConfig(
    dir,
    { ...base, worker: { implementation: 'generic-worker', configPath: '/x.json' } },
    { name: 'neither.yaml' },
  );
  t.match((await runCli(['validate', neither])).stderr, /worker\.path: required: the generic-worker executable/);
  t.notMatch(
    serviceResult.stderr,
    /worker\.path: required/,
    'a service is refused for what it is, not for a missing path',
  );
});

t.test('docker-worker: the release layout, argv, environment and config', async (t) => {
  const dir = tempDir(t);
  mkdirSync(join(dir, 'dw', 'bin'), { recursive: true });
  fakeExecutable(join(dir, 'dw', 'bin', 'docker-worker'));
  const { result, started } = await run(t, {
    implementation: 'docker-worker',
    path: join(dir, 'dw'),
    configPath: join(dir, 'dw.json'),
  });
  t.equal(result.code, 0, result.stderr);
  t.same(started?.argv, ['--host', 'worker-runner', 'production']);
  t.equal(started?.env['DOCKER_WORKER_CONFIG'], join(dir, 'dw.json'));
  t.same(readConfig(join(dir, 'dw.json')), {
    existing: 1,
    workerTypeMetadata: { fromRunner: true },
    host: 'host.example.com',
    publicIp: '203.0.113.7',
    privateIp: '10.0.0.7',
    workerNodeType: 'm5.large',
    instanceType: 'm5.large',
    instanceId: 'i-123',
    region: 'us-east-1',
    workerLocation: '{"cloud":"standalone","zone":"z1"}',
    rootUrl: 'http://127.0.0.1:9',
    taskcluster: { clientId: 'test/client', accessToken: 'SECRET-access-token-0123456789' },
    workerId: 'worker-1',
    workerGroup: 'group',
    provisionerId: 'proj',
    workerType: 'pool',
  });
});

t.test(
  'docker-worker: a checkout (src/main.js since 2020) runs with node; neither layout is an error naming both',
  async (t) => {
    const dir = tempDir(t);
    mkdirSync(join(dir, 'dw', 'src'), { recursive: true });
    writeFileSync(join(dir, 'dw', 'src', 'main.js'), `import ${JSON.stringify(protocolWorkerPath)};\n`);
    writeFileSync(join(dir, 'dw', 'package.json'), '{"type":"module"}');
    const { result, started } = await run(t, {
      implementation: 'docker-worker',
      path: join(dir, 'dw'),
      configPath: join(dir, 'dw.json'),
    });
    t.equal(result.code, 0, result.stderr);
    t.same(started?.argv, ['--host', 'worker-runner', 'production']);
    t.equal(started?.env['DOCKER_WORKER_CONFIG'], join(dir, 'dw.json'));

    mkdirSync(join(dir, 'old', 'src', 'bin'), { recursive: true });
    writeFileSync(join(dir, 'old', 'src', 'bin', 'worker.js'), '');
    const neither = await run(t, {
      implementation: 'docker-worker',
      path: join(dir, 'old'),
      configPath: join(dir, 'old.json'),
    });
    t.equal(neither.result.code, 1);
    t.match(
      neither.result.stderr,
      `error: worker.path: neither ${join(dir, 'old', 'bin', 'docker-worker')} (a docker-worker release) nor ${join(dir, 'old', 'src', 'main.js')} (a docker-worker checkout) exists`,
    );
  },
);

const commandWorker = (extra: Record<string, unknown>) => ({
  implementation: 'command',
  command: [process.execPath, protocolWorkerPath, '--flag', 'value'],
  ...extra,
});
const identity = {
  TASKCLUSTER_ROOT_URL: 'http://127.0.0.1:9',
  TASKCLUSTER_WORKER_POOL_ID: 'proj/pool',
  TASKCLUSTER_WORKER_GROUP: 'group',
  TASKCLUSTER_WORKER_ID: 'worker-1',
  TASKCLUSTER_PROVIDER_ID: 'standalone',
  TASKCLUSTER_WORKER_LOCATION: '{"cloud":"standalone","zone":"z1"}',
};
const inherited = { TASKCLUSTER_ACCESS_TOKEN: 'inherited-token', TASKCLUSTER_CLIENT_ID: 'inherited-client' };

t.test('command: credentials in the config file (the default)', async (t) => {
  const dir = tempDir(t);
  const { result, started } = await run(
    t,
    commandWorker({ configPath: join(dir, 'w.json'), cwd: dir, env: { MY_SETTING: 'on' } }),
    { env: inherited },
  );
  t.equal(result.code, 0, result.stderr);
  t.same(started?.argv, ['--flag', 'value']);
  t.equal(started?.cwd, dir);
  t.equal(started?.env['MY_SETTING'], 'on');
  for (const [name, value] of Object.entries(identity)) t.equal(started?.env[name], value, name);
  t.notOk('TASKCLUSTER_ACCESS_TOKEN' in (started?.env ?? {}), 'inherited credentials are removed');
  t.notOk('TASKCLUSTER_CLIENT_ID' in (started?.env ?? {}));
  t.same(readConfig(join(dir, 'w.json')), {
    existing: 1,
    workerTypeMetadata: { fromRunner: true },
    taskcluster: {
      rootUrl: 'http://127.0.0.1:9',
      clientId: 'test/client',
      accessToken: 'SECRET-access-token-0123456789',
      workerPoolId: 'proj/pool',
      workerGroup: 'group',
      workerId: 'worker-1',
      providerId: 'standalone',
      workerLocation: { cloud: 'standalone', zone: 'z1' },
    },
  });
});

t.test('command: credentials in the environment, config as YAML', async (t) => {
  const dir = tempDir(t);
  const { result, started } = await run(
    t,
    commandWorker({ configPath: join(dir, 'w.yaml'), configFormat: 'yaml', passCredentials: 'env' }),
    { env: inherited },
  );
  t.equal(result.code, 0, result.stderr);
  t.equal(started?.env['TASKCLUSTER_CLIENT_ID'], 'test/client');
  t.equal(started?.env['TASKCLUSTER_ACCESS_TOKEN'], 'SECRET-access-token-0123456789');
  t.notOk('TASKCLUSTER_CERTIFICATE' in (started?.env ?? {}));
  t.equal(statSync(join(dir, 'w.yaml')).mode & 0o777, 0o600);
  const config = parse(readFileSync(join(dir, 'w.yaml'), 'utf8')) as { taskcluster: Record<string, unknown> };
  t.notOk('accessToken' in config.taskcluster, 'no credentials in the file');
  t.equal(config.taskcluster['workerId'], 'worker-1');
});

t.test('command: passCredentials none gives credentials nowhere', async (t) => {
  const { result, started } = await run(t, commandWorker({ passCredentials: 'none' }), { env: inherited });
  t.equal(result.code, 0, result.stderr);
  t.notOk('TASKCLUSTER_ACCESS_TOKEN' in (started?.env ?? {}));
  t.equal(started?.env['TASKCLUSTER_WORKER_ID'], 'worker-1');
});

t.test(
  'command: the smallest config, only a command, gets its credentials in the environment and writes no file',
  async (t) => {
    const { dir, result, started } = await run(
      t,
      { implementation: 'command', command: [process.execPath, protocolWorkerPath] },
      { env: inherited },
    );
    t.equal(result.code, 0, result.stderr);
    t.equal(started?.env['TASKCLUSTER_ROOT_URL'], 'http://127.0.0.1:9');
    t.equal(started?.env['TASKCLUSTER_CLIENT_ID'], 'test/client');
    t.equal(started?.env['TASKCLUSTER_ACCESS_TOKEN'], 'SECRET-access-token-0123456789');
    t.same(readdirSync(dir).sort(), ['record.jsonl', 'runner.yaml'], 'no config file written');
  },
);

t.test('command: passCredentials config without a configPath is refused', async (t) => {
  const dir = tempDir(t);
  const config = writeConfig(dir, {
    provider: standaloneProvider(),
    worker: commandWorker({ passCredentials: 'config' }),
    getSecrets: false,
  });
  const result = await runCli(['validate', config]);
  t.equal(result.code, 1);
  t.match(result.stderr, /worker\.configPath: required when worker\.passCredentials is "config"/);
  const minimal = writeConfig(
    dir,
    {
      provider: standaloneProvider(),
      worker: { implementation: 'command', command: ['my-daemon'] },
      getSecrets: false,
    },
    { name: 'minimal.yaml' },
  );
  t.equal((await runCli(['validate', minimal])).stdout, 'ok\n', 'only a command validates');
});
