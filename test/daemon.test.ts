import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parse } from 'yaml';
import { environmentVariable, OPTIONS, parseCliOptions } from '../src/cli-options.js';
import { fakeWorkerSection, leakedSecrets, runCli, standaloneProvider, tempDir, writeConfig } from './helpers.js';

t.test('every settable option by flag, by environment, and both (the flag wins)', async (t) => {
  const samples: Record<string, { flag: string[]; env: string; flagValue: unknown; envValue: unknown; key: string }> = {
    verbose: { flag: ['--verbose'], env: 'true', flagValue: true, envValue: true, key: 'verbose' },
    quiet: { flag: ['--quiet'], env: 'true', flagValue: true, envValue: true, key: 'quiet' },
    'log-format': {
      flag: ['--log-format', 'json'],
      env: 'text',
      flagValue: 'json',
      envValue: 'text',
      key: 'logFormat',
    },
    override: {
      flag: ['--override', 'a=1'],
      env: 'b=2 c=3',
      flagValue: ['a=1'],
      envValue: ['b=2', 'c=3'],
      key: 'overrides',
    },
    'ca-cert': {
      flag: ['--ca-cert', '/flag.pem'],
      env: '/env.pem',
      flagValue: '/flag.pem',
      envValue: '/env.pem',
      key: 'caCert',
    },
    cert: { flag: ['--cert', '/flag.crt'], env: '/env.crt', flagValue: '/flag.crt', envValue: '/env.crt', key: 'cert' },
    'cert-key': {
      flag: ['--cert-key', '/flag.key'],
      env: '/env.key',
      flagValue: '/flag.key',
      envValue: '/env.key',
      key: 'certKey',
    },
    'cert-key-pass': {
      flag: ['--cert-key-pass', 'flagpass'],
      env: 'envpass',
      flagValue: 'flagpass',
      envValue: 'envpass',
      key: 'certKeyPass',
    },
    'no-verify-certs': {
      flag: ['--no-verify-certs'],
      env: 'true',
      flagValue: true,
      envValue: true,
      key: 'noVerifyCerts',
    },
  };
  const settable = OPTIONS.filter((o) => o.fromEnvironment).map((o) => o.name);
  t.same(settable.sort(), Object.keys(samples).sort(), 'every option settable by environment has a sample here');
  for (const [name, sample] of Object.entries(samples)) {
    const variable = environmentVariable(name);
    const byFlag = parseCliOptions(sample.flag, {}) as unknown as Record<string, unknown>;
    t.same(byFlag[sample.key], sample.flagValue, `${name} by flag`);
    const byEnv = parseCliOptions([], { [variable]: sample.env }) as unknown as Record<string, unknown>;
    t.same(byEnv[sample.key], sample.envValue, `${name} by ${variable}`);
    if (name !== 'quiet' && name !== 'verbose' && name !== 'no-verify-certs') {
      const both = parseCliOptions(sample.flag, { [variable]: sample.env }) as unknown as Record<string, unknown>;
      t.same(both[sample.key], sample.flagValue, `${name}: the flag wins`);
    }
  }
  t.same(parseCliOptions([], { START_WORKER_VERBOSE: 'false' }).verbose, false);
  t.throws(() => parseCliOptions([], { START_WORKER_VERBOSE: 'yes' }), {
    message: 'START_WORKER_VERBOSE must be true or false, not "yes"',
  });
  t.throws(() => parseCliOptions(['--log-format', 'xml'], {}), { message: /--log-format must be text or json/ });
  t.same(
    parseCliOptions([], { START_WORKER_HELP: 'true', START_WORKER_VERSION: 'true' }).help,
    false,
    'actions are not taken from the environment',
  );
});

t.test('--help names each variable', async (t) => {
  const help = (await runCli(['--help'])).stdout;
  for (const option of OPTIONS.filter((o) => o.fromEnvironment)) t.match(help, environmentVariable(option.name));
  t.match(help, 'START_WORKER_CONFIG');
});

t.test('end to end: the config path, log format and overrides from the environment', async (t) => {
  const dir = tempDir(t);
  const config = writeConfig(dir, { provider: standaloneProvider(), worker: { implementation: 'dummy' } });
  const result = await runCli([], {
    env: {
      START_WORKER_CONFIG: config,
      START_WORKER_LOG_FORMAT: 'json',
      START_WORKER_OVERRIDE: 'getSecrets=false workerConfig.fromOverride=42',
    },
  });
  t.equal(result.code, 0, result.stderr);
  t.match(result.stdout, /fromOverride: 42/);
  for (const line of result.stderr.trimEnd().split('\n'))
    t.doesNotThrow(() => JSON.parse(line), `a JSON line: ${line}`);
  const flagWins = await runCli(
    ['--log-format', 'text', '--override', 'getSecrets=false', '--override', 'workerConfig.fromOverride=flag'],
    {
      env: {
        START_WORKER_CONFIG: config,
        START_WORKER_LOG_FORMAT: 'json',
        START_WORKER_OVERRIDE: 'getSecrets=false workerConfig.fromOverride=env',
      },
    },
  );
  t.match(flagWins.stdout, /fromOverride: flag/);
  t.notMatch(flagWins.stderr, /^\{/m, 'text log lines');
});

t.test('overrides: scalars, a missing section created, errors', async (t) => {
  const dir = tempDir(t);
  const config = writeConfig(dir, {
    provider: standaloneProvider(),
    worker: { implementation: 'command', command: ['/bin/true'], passCredentials: 'none' },
    getSecrets: false,
  });
  const result = await runCli([
    '--override',
    'worker.implementation=dummy',
    '--override',
    'workerConfig.flags.enabled=true',
    '--override',
    'workerConfig.flags.count=3',
    '--override',
    'workerConfig.flags.name=text with spaces',
    '--override',
    'workerConfig.flags.empty=',
    '--override',
    'workerConfig.flags.nothing=null',
    config,
  ]);
  t.equal(result.code, 0, result.stderr);
  t.same((parse(result.stdout) as { workerConfig: unknown }).workerConfig, {
    flags: { enabled: true, count: 3, name: 'text with spaces', empty: '', nothing: null },
  });
  const through = await runCli(['--override', 'getSecrets.deeper=1', config]);
  t.equal(through.code, 1);
  t.match(
    through.stderr,
    /--override getSecrets.deeper: cannot set 'getSecrets.deeper': 'getSecrets' is a boolean, not an object/,
  );
  const malformed = await runCli(['--override', 'no-equals-sign', config]);
  t.match(malformed.stderr, /--override "no-equals-sign": expected KEY=VALUE/);
  const collection = await runCli(['--override', 'workerConfig.list=[1, 2]', config]);
  t.match(collection.stderr, /the value must be a single value/);
  const validated = await runCli(['validate', '--override', 'getSecrets=maybe', config]);
  t.equal(validated.code, 1);
  t.match(validated.stderr, /getSecrets: must be a boolean/, 'overrides are validated like the file');
});

t.test('secret indirection: {env} and {file}; a group-readable file is refused; missing ones are named', async (t) => {
  const dir = tempDir(t);
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, 'token-from-a-file-0123456\n', { mode: 0o600 });
  const run = (provider: Record<string, unknown>, env: Record<string, string> = {}) =>
    runCli(
      [
        writeConfig(dir, {
          provider: standaloneProvider(provider),
          worker: fakeWorkerSection({ passCredentials: 'env' }),
          getSecrets: false,
        }),
      ],
      {
        env: { FAKE_WORKER: JSON.stringify({ capabilities: [], output: [], exitAfterOutput: 0 }), ...env },
      },
    );
  const fromFile = await run(
    { accessToken: { file: tokenFile }, clientID: { env: 'MY_CLIENT_ID' } },
    { MY_CLIENT_ID: 'client-from-env' },
  );
  t.equal(fromFile.code, 0, fromFile.stderr);
  t.same(leakedSecrets(fromFile.stdout + fromFile.stderr, ['token-from-a-file-0123456']), []);

  const relative = await run({ accessToken: { file: 'token' } });
  t.equal(relative.code, 0, 'relative to the config file');

  chmodSync(tokenFile, 0o640);
  const loose = await run({ accessToken: { file: tokenFile } });
  t.equal(loose.code, 1);
  t.match(
    loose.stderr,
    /provider\.accessToken: secret file .*token is readable by group or others \(mode 0640\); make it owner-only/,
  );
  const missingVar = await run({ accessToken: { env: 'NOT_SET_ANYWHERE' } });
  t.match(missingVar.stderr, /provider\.accessToken: environment variable NOT_SET_ANYWHERE is not set/);
  const missingFile = await run({ accessToken: { file: join(dir, 'absent') } });
  t.match(missingFile.stderr, /provider\.accessToken: cannot read secret file .*absent: ENOENT/);
});

t.test('the value from an indirection reaches the worker, without its trailing newline', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'token'), 'exact-token-value-987654\n', { mode: 0o600 });
  const configPath = join(dir, 'worker.json');
  const result = await runCli([
    writeConfig(dir, {
      provider: standaloneProvider({ accessToken: { file: 'token' } }),
      worker: { implementation: 'command', command: [process.execPath, '-e', ''], configPath },
      getSecrets: false,
    }),
  ]);
  t.equal(result.code, 0, result.stderr);
  const { readFileSync } = await import('node:fs');
  t.equal(
    (JSON.parse(readFileSync(configPath, 'utf8')) as { taskcluster: { accessToken: string } }).taskcluster.accessToken,
    'exact-token-value-987654',
  );
});

t.test('json logging: every stderr line parses; worker fields and stderr are carried', async (t) => {
  const dir = tempDir(t);
  const config = writeConfig(dir, {
    provider: standaloneProvider(),
    worker: fakeWorkerSection(),
    getSecrets: false,
    logging: { implementation: 'json' },
  });
  const result = await runCli([config], {
    env: {
      FAKE_WORKER: JSON.stringify({
        capabilities: ['log'],
        output: [
          '~{"type":"log","body":{"textPayload":"task done","taskId":"abc","level":"warn"}}',
          'plain stdout line',
        ],
        stderr: ['raw stderr line'],
        exitAfterOutput: 0,
      }),
    },
  });
  t.equal(result.code, 0, result.stderr);
  const records = result.stderr
    .trimEnd()
    .split('\n')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
  for (const record of records) {
    t.match(record, {
      time: /^\d{4}-\d\d-\d\dT[\d:.]+Z$/,
      level: /^(debug|info|warn|error)$/,
      source: /^(runner|worker)$/,
    });
  }
  t.ok(records.some((r) => r['source'] === 'runner' && typeof r['textPayload'] === 'string'));
  t.ok(
    records.some(
      (r) =>
        r['source'] === 'worker' && r['textPayload'] === 'task done' && r['taskId'] === 'abc' && r['level'] === 'warn',
    ),
    'worker fields',
  );
  t.ok(records.some((r) => r['source'] === 'worker' && r['textPayload'] === 'plain stdout line'));
  t.ok(
    records.some((r) => r['source'] === 'worker' && r['stream'] === 'stderr' && r['textPayload'] === 'raw stderr line'),
  );
});

t.test('--quiet: only errors of the runner, the worker output still', async (t) => {
  const dir = tempDir(t);
  const config = writeConfig(dir, { provider: standaloneProvider(), worker: fakeWorkerSection(), getSecrets: false });
  const result = await runCli(['--quiet', config], {
    env: { FAKE_WORKER: JSON.stringify({ capabilities: [], output: ['worker says hi'], exitAfterOutput: 0 }) },
  });
  t.equal(result.code, 0);
  t.notMatch(result.stderr, 'configuring with provider');
  t.match(result.stderr, 'worker says hi');
});
