import { execFileSync } from 'node:child_process';
import { mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { loadRunnerConfig, parseYaml } from '../src/config/load.js';
import { validateRunnerConfig } from '../src/config/validate.js';
import { Redactor } from '../src/logging/redact.js';
import { builtinRegistry } from '../builtins.js';
import { runCli, standaloneProvider, STATIC_SECRET, tempDir, writeConfig } from './helpers.js';

const registry = builtinRegistry();
const validConfig = () => ({ provider: standaloneProvider(), worker: { implementation: 'dummy' } });

async function problemsOf(config: unknown): Promise<string[]> {
  return (await validateRunnerConfig(config as never, registry)).problems;
}

t.test('a valid config gets its defaults', async (t) => {
  const result = await validateRunnerConfig(validConfig() as never, registry);
  t.same(result.problems, []);
  t.same(result.warnings, []);
  t.equal(result.config?.getSecrets, true);
  t.same(result.config?.logging, { implementation: 'stdio' });
  t.same(result.config?.workerConfig, {});
});

t.test('missing required fields are reported with their paths', async (t) => {
  t.same(await problemsOf({}), ['provider: required', 'worker: required']);
  t.same(await problemsOf({ provider: {}, worker: {} }), [
    'provider.providerType: required',
    'worker.implementation: required',
  ]);
  const { workerPoolID, ...provider } = standaloneProvider();
  t.ok(workerPoolID);
  t.same(await problemsOf({ ...validConfig(), provider }), ['provider.workerPoolID: required']);
});

t.test('wrong types are reported with their paths', async (t) => {
  t.same(await problemsOf({ ...validConfig(), getSecrets: 'yes' }), ['getSecrets: must be a boolean']);
  t.same(await problemsOf({ ...validConfig(), workerConfig: [] }), ['workerConfig: must be an object']);
  t.same(await problemsOf({ ...validConfig(), provider: standaloneProvider({ workerGroup: 5 }) }), [
    'provider.workerGroup: must be a string',
  ]);
  t.same(await problemsOf({ ...validConfig(), provider: standaloneProvider({ workerLocation: { dc: 3 } }) }), [
    'provider.workerLocation.dc: must be a string',
  ]);
  t.same(await problemsOf({ ...validConfig(), provider: 'standalone' }), ['provider: must be an object']);
  t.same(await problemsOf([1, 2]), ['the top level must be a mapping of keys to values']);
});

t.test('every problem is reported at once', async (t) => {
  const problems = await problemsOf({
    provider: standaloneProvider({ rootURL: 1, clientID: undefined }),
    worker: { implementation: 'dummy' },
    getSecrets: 1,
  });
  t.same(
    problems.sort(),
    ['getSecrets: must be a boolean', 'provider.clientID: required', 'provider.rootURL: must be a string'].sort(),
  );
});

t.test('unknown plugins are errors listing the known ones', async (t) => {
  t.same(await problemsOf({ ...validConfig(), provider: { providerType: 'nimbus' } }), [
    `provider.providerType: unknown provider type 'nimbus'; known: ${registry.names('provider').join(', ')}`,
  ]);
  const [workerProblem] = await problemsOf({ ...validConfig(), worker: { implementation: 'nope' } });
  t.match(workerProblem, /^worker.implementation: unknown worker implementation 'nope'; known: .*dummy/);
  const [loggingProblem] = await problemsOf({ ...validConfig(), logging: { implementation: 'syslog' } });
  t.match(loggingProblem, /^logging.implementation: unknown logging implementation 'syslog'; known: .*stdio/);
});

t.test('unknown keys are warnings naming the closest known key', async (t) => {
  const result = await validateRunnerConfig(
    {
      ...validConfig(),
      getSecret: false,
      provider: standaloneProvider({ workerPoolId: 'x' }),
      workerConfig: { anything: 1 },
    } as never,
    registry,
  );
  t.same(result.problems, []);
  t.same(result.warnings.sort(), [
    'getSecret: unknown key, ignored (closest known key: getSecrets)',
    'provider.workerPoolId: unknown key, ignored (closest known key: provider.workerPoolID)',
  ]);
});

t.test('YAML syntax errors report line and column', async (t) => {
  t.throws(() => parseYaml('provider:\n  a: [1, 2\nworker: {}\n', 'r.yaml'), {
    message: /^r\.yaml:\d+:\d+: invalid YAML: /,
  });
  t.throws(() => parseYaml('a: 1\na: 2\n', 'r.yaml'), {
    message: /^r\.yaml:2:1: invalid YAML: .*[Mm]ap keys must be unique/,
  });
  t.throws(() => parseYaml('ok: 1\n\tbad: 2\n', 'r.yaml'), {
    message: 'r.yaml:2:1: invalid YAML: Tabs are not allowed as indentation',
  });
});

t.test('YAML that is not JSON data is refused', async (t) => {
  t.throws(() => parseYaml('a: !!binary aGVsbG8=\n', 'r.yaml'), { message: /r\.yaml: unsupported YAML value/ });
  t.throws(() => parseYaml('a: .inf\n', 'r.yaml'), { message: /numbers must be finite/ });
});

t.test('files: CRLF and a BOM are accepted; non-UTF-8 is refused', async (t) => {
  const dir = tempDir(t);
  const crlf = writeConfig(
    dir,
    '\uFEFFprovider:\r\n  providerType: standalone\r\n  rootURL: https://x\r\n  clientID: c\r\n  accessToken: tokentoken\r\n  workerPoolID: p/w\r\n  workerGroup: g\r\n  workerID: i\r\nworker:\r\n  implementation: dummy\r\n',
    { name: 'crlf.yaml' },
  );
  const loaded = await loadRunnerConfig(crlf, { tighten: true, registry, redactor: new Redactor() });
  t.equal(loaded.config.provider['accessToken'], 'tokentoken', 'no stray carriage return in values');
  const latin1 = writeConfig(
    dir,
    Buffer.from('provider:\n  providerType: standalone\n  clientID: caf\xe9\n', 'latin1'),
    { name: 'latin1.yaml' },
  );
  await t.rejects(loadRunnerConfig(latin1, { tighten: true, registry, redactor: new Redactor() }), {
    message: `runner config ${latin1}: line 3: not valid UTF-8; save the file as UTF-8`,
  });
});

t.test('files: a group-readable config is tightened with a warning; validate only warns', async (t) => {
  const dir = tempDir(t);
  const path = writeConfig(dir, validConfig(), { mode: 0o644 });
  const checked = await loadRunnerConfig(path, { tighten: false, registry, redactor: new Redactor() });
  t.match(checked.warnings.join('\n'), /is readable by group or others \(mode 0644\)/);
  t.equal(statSync(path).mode & 0o777, 0o644, 'validate changes nothing');
  const loaded = await loadRunnerConfig(path, { tighten: true, registry, redactor: new Redactor() });
  t.match(loaded.warnings.join('\n'), /was readable by group or others \(mode 0644\); tightened it to 0600/);
  t.equal(statSync(path).mode & 0o777, 0o600);
  const again = await loadRunnerConfig(path, { tighten: true, registry, redactor: new Redactor() });
  t.same(again.warnings, [], 'no warning once private');
});

t.test('files: not a regular file, or unreadable by its owner, is refused', async (t) => {
  const dir = tempDir(t);
  const fifo = join(dir, 'fifo.yaml');
  execFileSync('mkfifo', [fifo]);
  await t.rejects(loadRunnerConfig(fifo, { tighten: true, registry, redactor: new Redactor() }), {
    message: `runner config ${fifo}: is a FIFO; it must be a regular file`,
  });
  const directory = join(dir, 'dir.yaml');
  mkdirSync(directory);
  await t.rejects(loadRunnerConfig(directory, { tighten: true, registry, redactor: new Redactor() }), {
    message: /is a directory; it must be a regular file/,
  });
  await t.rejects(loadRunnerConfig('/dev/null', { tighten: true, registry, redactor: new Redactor() }), {
    message: /is a device; it must be a regular file/,
  });
  const writeOnly = writeConfig(dir, validConfig(), { name: 'wo.yaml', mode: 0o200 });
  await t.rejects(loadRunnerConfig(writeOnly, { tighten: true, registry, redactor: new Redactor() }), {
    message: process.getuid?.() === 0 ? /its owner cannot read it \(mode 0200\)/ : /permission denied/,
  });
  t.equal(statSync(writeOnly).mode & 0o777, 0o200, 'a refused file is left as it was');
  await t.rejects(loadRunnerConfig(join(dir, 'missing.yaml'), { tighten: true, registry, redactor: new Redactor() }), {
    message: /missing\.yaml: no such file$/,
  });
});

t.test('built-in schemas use the validators compiled at build time; a changed schema is compiled afresh', async (t) => {
  const { validatorFor } = await import('../src/config/validators.js');
  const { coreSchema } = await import('../src/config/core-schema.js');
  const generated = (await import('../generated/validators.cjs' as string)) as {
    default: { validators: Record<string, unknown> };
  };
  t.equal(await validatorFor('core', coreSchema), generated.default.validators['core']);
  const changed = { ...coreSchema, required: ['provider'] };
  const fresh = await validatorFor('core', changed);
  t.not(fresh, generated.default.validators['core']);
  t.equal(fresh({ provider: { providerType: 'x' } }), true, 'the fresh validator follows the changed schema');
});

t.test('validate checks what worker-manager will check, and names the rule', async (t) => {
  const dir = tempDir(t);
  const staticProvider = (overrides: Record<string, unknown>) => ({
    providerType: 'static',
    rootURL: 'https://tc.example.com',
    providerID: 'static',
    workerPoolID: 'proj/pool',
    workerGroup: 'rack-1',
    workerID: 'host-1',
    staticSecret: STATIC_SECRET,
    ...overrides,
  });
  const cases: [Record<string, unknown>, RegExp][] = [
    [
      { staticSecret: 'short-secret' },
      /provider\.staticSecret: worker-manager requires 44 characters \(two slugids, e\.g\. from `slugid v4` twice\); this one has 12/,
    ],
    [
      { staticSecret: `${STATIC_SECRET.slice(0, 43)}!` },
      /provider\.staticSecret: worker-manager requires only letters, digits, '-' and '_'/,
    ],
    [{ workerPoolID: 'nopool' }, /provider\.workerPoolID: must be <provisionerId>\/<workerType>.*has no '\/'/],
    [
      { workerPoolID: 'proj/Upper' },
      /provider\.workerPoolID: the workerType after the '\/' \('Upper'\) must be 1 to 38 of lowercase letters/,
    ],
    [
      { workerPoolID: `${'p'.repeat(39)}/pool` },
      /provider\.workerPoolID \(the provisionerId before the '\/'\): at most 38 characters/,
    ],
    [
      { workerGroup: 'g'.repeat(39) },
      /provider\.workerGroup: at most 38 characters, as worker-manager requires \(this one has 39\)/,
    ],
    [{ workerID: 'host.example.com' }, /provider\.workerID: only letters, digits, '-' and '_'/],
  ];
  for (const [overrides, expected] of cases) {
    const path = writeConfig(dir, { provider: staticProvider(overrides), worker: { implementation: 'dummy' } });
    const result = await runCli(['validate', path]);
    t.equal(result.code, 1, JSON.stringify(overrides));
    t.match(result.stderr, expected);
    t.notMatch(result.stderr, 'short-secret', 'the secret itself is not quoted');
  }
  const good = writeConfig(dir, { provider: staticProvider({}), worker: { implementation: 'dummy' } });
  t.equal((await runCli(['validate', good])).stdout, 'ok\n');
});
