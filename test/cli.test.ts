import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { networkGuard, repoRoot, runCli, standaloneProvider, tempDir, writeConfig } from './helpers.js';

const version = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;

t.test('--version, --short-version, --help', async (t) => {
  const long = await runCli(['--version']);
  t.equal(long.code, 0);
  t.equal(long.stdout, `start-worker ${version}\n`);
  const short = await runCli(['--short-version']);
  t.equal(short.stdout, `${version}\n`);
  const help = await runCli(['--help']);
  t.equal(help.code, 0);
  for (const word of ['--help', '--version', '--short-version', '--verbose', 'validate', '<runnerConfig>']) {
    t.match(help.stdout, word, `help mentions ${word}`);
  }
});

t.test('the example runs: dummy prints the state without the access token', async (t) => {
  const example = join(repoRoot, 'examples', 'standalone-dummy.yaml');
  const token = 'example-access-token-not-a-real-secret';
  t.match(readFileSync(example, 'utf8'), token, 'the example holds the token');
  const result = await runCli([example]);
  t.equal(result.code, 0, result.stderr);
  t.match(result.stdout, /workerId: example-1/);
  t.match(result.stdout, /rootUrl: https:\/\/tc\.example\.com\n/, 'root URL normalized');
  t.match(result.stdout, /cloud: standalone/);
  t.match(result.stdout, /accessToken: <redacted>/);
  t.notMatch(result.stdout + result.stderr, token);
  t.match(result.stderr, /worker exited with code 0/);
});

t.test('validate: ok, or every problem with its location', async (t) => {
  const dir = tempDir(t);
  const good = writeConfig(
    dir,
    { provider: standaloneProvider(), worker: { implementation: 'dummy' } },
    { name: 'good.yaml' },
  );
  const ok = await runCli(['validate', good]);
  t.equal(ok.code, 0);
  t.equal(ok.stdout, 'ok\n');

  const { workerPoolID: _unused, ...provider } = standaloneProvider();
  const bad = writeConfig(
    dir,
    { provider, worker: { implementation: 'dummy' }, getSecrets: 'no', extraKey: 1 },
    { name: 'bad.yaml', mode: 0o644 },
  );
  const result = await runCli(['validate', bad]);
  t.equal(result.code, 1);
  t.equal(result.stdout, '');
  t.match(result.stderr, `${bad}: provider.workerPoolID: required\n`);
  t.match(result.stderr, `${bad}: getSecrets: must be a boolean\n`);
  t.match(result.stderr, /warning: .*extraKey: unknown key/);
  t.match(result.stderr, /warning: .*readable by group or others \(mode 0644\)/);
  t.equal(statSync(bad).mode & 0o777, 0o644, 'validate leaves permissions alone');
  t.notMatch(result.stderr, 'SECRET-access-token', 'no secret in the output');
});

t.test('user mistakes: one line naming the file and the problem, exit 1, no stack', async (t) => {
  const dir = tempDir(t);
  const cases: [string, string[], RegExp][] = [
    ['missing file', [join(dir, 'nope.yaml')], /nope\.yaml: no such file/],
    ['bad YAML', [writeConfig(dir, 'provider: [\n', { name: 'syntax.yaml' })], /syntax\.yaml:\d+:\d+: invalid YAML/],
    [
      'invalid config',
      [
        writeConfig(
          dir,
          { provider: { providerType: 'standalone' }, worker: { implementation: 'dummy' } },
          { name: 'invalid.yaml' },
        ),
      ],
      /invalid\.yaml: provider\.rootURL: required; /,
    ],
    [
      'unknown provider',
      [
        writeConfig(
          dir,
          { provider: { providerType: 'nimbus' }, worker: { implementation: 'dummy' } },
          { name: 'unknown.yaml' },
        ),
      ],
      /unknown provider type 'nimbus'; known: /,
    ],
    ['no argument', [], /missing the runner config file argument/],
    ['unknown option', ['--frobnicate', 'x.yaml'], /Unknown option '--frobnicate'/],
  ];
  for (const [name, args, message] of cases) {
    const result = await runCli(args);
    t.equal(result.code, 1, `${name}: exit 1`);
    const lines = result.stderr.trimEnd().split('\n');
    t.equal(lines.length, 1, `${name}: one line: ${result.stderr}`);
    t.match(lines[0], message, name);
    t.notMatch(result.stderr, /\n\s+at /, `${name}: no stack trace`);
  }
});

t.test('--verbose adds the stack trace', async (t) => {
  const dir = tempDir(t);
  const result = await runCli(['--verbose', join(dir, 'nope.yaml')]);
  t.equal(result.code, 1);
  t.match(result.stderr, /no such file/);
  t.match(result.stderr, /\n\s+at /);
});

t.test('standalone with getSecrets: false needs no service', async (t) => {
  const dir = tempDir(t);
  const config = writeConfig(dir, {
    provider: standaloneProvider(),
    worker: { implementation: 'dummy' },
    getSecrets: false,
  });
  const result = await runCli([config]);
  t.equal(result.code, 0, result.stderr);
  t.notMatch(result.stdout + result.stderr, 'SECRET-access-token');
});

t.test('validate makes no network request', async (t) => {
  const dir = tempDir(t);
  const guard = networkGuard;
  const attempts = join(dir, 'attempts.log');
  const env = { NO_NETWORK_LOG: attempts, NO_NETWORK_STRICT: '1' };

  // The guard works: a connection attempt is caught and recorded.
  const { spawnSync } = await import('node:child_process');
  spawnSync(process.execPath, ['--require', guard, '-e', "try { require('net').connect(80, '127.0.0.1') } catch {}"], {
    env: { ...process.env, ...env },
  });
  t.match(readFileSync(attempts, 'utf8'), /"port":80/, 'the guard records attempts');
  const { rmSync } = await import('node:fs');
  rmSync(attempts);

  const config = writeConfig(dir, { provider: standaloneProvider(), worker: { implementation: 'dummy' } });
  const result = await runCli(['validate', config], { env });
  t.equal(result.code, 0, result.stderr);
  t.equal(result.stdout, 'ok\n');
  t.throws(() => readFileSync(attempts), { code: 'ENOENT' }, 'no connection was attempted');
});
