import { writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import t from 'tap';
import { parse } from 'yaml';
import { FakeTaskcluster } from './fakes/taskcluster.js';
import {
  recordingShutdown,
  repoRoot,
  runCli,
  standaloneProvider,
  STATIC_SECRET,
  tempDir,
  writeConfig,
} from './helpers.js';

const examplePlugin = join(repoRoot, 'examples', 'plugins', 'file-identity', 'index.mjs');

/** A Taskcluster fake that knows the worker of the example plugin, and its identity file. */
async function fileIdentitySetup(
  t: { teardown(fn: () => void | Promise<void>): void },
  options: { credentialLifetimeSeconds?: number } = {},
) {
  const fake = await new FakeTaskcluster(options).start();
  t.teardown(() => fake.stop());
  fake.addWorkerPool('proj/from-file', 'datacenter');
  fake.addStaticWorker('proj/from-file', 'rack-9', 'host-9', STATIC_SECRET);
  const dir = tempDir(t);
  const identityFile = join(dir, 'identity.json');
  const identity = {
    rootUrl: fake.rootUrl,
    providerId: 'datacenter',
    workerPoolId: 'proj/from-file',
    workerGroup: 'rack-9',
    workerId: 'host-9',
    staticSecret: STATIC_SECRET,
  };
  writeFileSync(identityFile, JSON.stringify(identity), { mode: 0o600 });
  return { fake, dir, identityFile };
}

t.test('the example plugin (examples/plugins/file-identity), end to end', async (t) => {
  const { fake, dir, identityFile } = await fileIdentitySetup(t);
  const config = writeConfig(dir, {
    plugins: [
      relative(dir, examplePlugin).startsWith('.') ? relative(dir, examplePlugin) : `./${relative(dir, examplePlugin)}`,
    ],
    provider: { providerType: 'file-identity', identityFile },
    worker: { implementation: 'dummy' },
    getSecrets: false,
    shutdownCommand: recordingShutdown(dir).command,
  });
  const validated = await runCli(['validate', config]);
  t.equal(validated.code, 0, validated.stderr);
  const result = await runCli([config]);
  t.equal(result.code, 0, result.stderr);
  t.match(fake.callsTo('registerWorker')[0]?.body, {
    workerPoolId: 'proj/from-file',
    providerId: 'datacenter',
    workerIdentityProof: { staticSecret: STATIC_SECRET },
  });
  const dump = parse(result.stdout) as Record<string, unknown>;
  t.match(dump, {
    workerId: 'host-9',
    workerLocation: { cloud: 'file-identity' },
    providerMetadata: { 'identity-file': identityFile },
  });
  t.notMatch(result.stdout + result.stderr, STATIC_SECRET);

  const docs = await runCli(['docs', config]);
  t.match(docs.stdout, /#### `provider.providerType: file-identity`/);
  t.match(docs.stdout, /`provider.identityFile`/);
  const missing = await runCli([
    'validate',
    writeConfig(
      dir,
      { plugins: [examplePlugin], provider: { providerType: 'file-identity' }, worker: { implementation: 'dummy' } },
      { name: 'missing.yaml' },
    ),
  ]);
  t.match(missing.stderr, /provider\.identityFile: required/, "the plugin's schema validates its section");
});

/** Write a plugin module into `dir`. */
function pluginModule(dir: string, name: string, source: string): string {
  const path = join(dir, name);
  writeFileSync(path, source);
  return path;
}

t.test('worker and logging plugins, from a package-less path', async (t) => {
  const dir = tempDir(t);
  const module = pluginModule(
    dir,
    'extras.mjs',
    `export default {
      workers: [{
        name: 'hello',
        schema: { type: 'object', properties: { greeting: { type: 'string', default: 'hello' } } },
        usage: 'Says hello.',
        create: (config) => ({
          async configureRun() {},
          async useCachedRun() {},
          async startWorker(state, spawn) {
            return spawn({ file: process.execPath, args: ['-e', 'console.log(process.argv.slice(1).join(" "))', config.greeting, state.workerId], protocol: false });
          },
        }),
      }],
      logging: [{
        name: 'prefixed',
        schema: { type: 'object', properties: { prefix: { type: 'string' } }, required: ['prefix'] },
        usage: 'Prefixes every line.',
        create: (config) => ({
          write: (level, source, message) => process.stderr.write(config.prefix + ' ' + (typeof message === 'string' ? message : JSON.stringify(message)) + '\\n'),
          writeWorkerStderr: (line) => process.stderr.write(config.prefix + ' ' + line + '\\n'),
          flush() {},
        }),
      }],
    };`,
  );
  const result = await runCli([
    writeConfig(dir, {
      plugins: [module],
      provider: standaloneProvider(),
      worker: { implementation: 'hello', greeting: 'bonjour' },
      logging: { implementation: 'prefixed', prefix: '>>' },
      getSecrets: false,
    }),
  ]);
  t.equal(result.code, 0, result.stderr);
  t.match(result.stderr, />> \{"textPayload":"bonjour worker-1"\}/);
  t.match(result.stderr, />> starting worker \(hello\)/);
});

t.test('a plugin name that is taken, or a malformed plugin, is a clear error', async (t) => {
  const dir = tempDir(t);
  const provider = (name: string) =>
    `{ name: '${name}', dynamic: false, schema: { type: 'object' }, usage: 'x', create: () => ({}) }`;
  const clashBuiltin = pluginModule(dir, 'clash.mjs', `export default { providers: [${provider('static')}] };`);
  const one = pluginModule(dir, 'one.mjs', `export default { providers: [${provider('mine')}] };`);
  const two = pluginModule(dir, 'two.mjs', `export default { providers: [${provider('mine')}] };`);
  const noDynamic = pluginModule(
    dir,
    'nodynamic.mjs',
    `export default { providers: [{ name: 'x', schema: {}, usage: '', create() {} }] };`,
  );
  const wrongKey = pluginModule(dir, 'wrongkey.mjs', `export default { gadgets: [] };`);
  const run = (plugins: string[]) =>
    runCli([
      'validate',
      writeConfig(dir, { plugins, provider: standaloneProvider(), worker: { implementation: 'dummy' } }),
    ]);
  t.match(
    (await run([clashBuiltin])).stderr,
    /plugin .*clash\.mjs: provider type 'static' is already provided by a built-in/,
  );
  t.match(
    (await run([one, two])).stderr,
    /plugin .*two\.mjs: provider type 'mine' is already provided by another plugin/,
  );
  t.match((await run([noDynamic])).stderr, /must say whether it is dynamically provisioned/);
  t.match((await run([wrongKey])).stderr, /unknown export key 'gadgets'/);
  t.match((await run([join(dir, 'absent.mjs')])).stderr, /plugin .*absent\.mjs: cannot load it/);
  t.equal((await run([clashBuiltin])).code, 1);
});

t.test('a provider that can register again starts a fresh run when the cached credentials expired', async (t) => {
  const { fake, dir, identityFile } = await fileIdentitySetup(t, { credentialLifetimeSeconds: 3600 });
  const cachePath = join(dir, 'state.json');
  const config = writeConfig(dir, {
    plugins: [examplePlugin],
    provider: { providerType: 'file-identity', identityFile },
    worker: { implementation: 'dummy' },
    getSecrets: false,
    cacheOverRestarts: cachePath,
    shutdownCommand: recordingShutdown(dir).command,
  });
  t.equal((await runCli([config])).code, 0);
  const { readFileSync } = await import('node:fs');
  const cached = JSON.parse(readFileSync(cachePath, 'utf8')) as Record<string, unknown>;
  writeFileSync(
    cachePath,
    JSON.stringify({ ...cached, credentialsExpire: new Date(Date.now() - 1000).toISOString() }),
    { mode: 0o600 },
  );
  const result = await runCli([config]);
  t.equal(result.code, 0, result.stderr);
  t.match(result.stderr, /expired at .*; starting a fresh run/);
  t.equal(fake.callsTo('registerWorker').length, 2, 'registered again');
});

t.test('a renewal rewrites the state cache with the new credentials', async (t) => {
  const { fake, dir, identityFile } = await fileIdentitySetup(t, { credentialLifetimeSeconds: 40 });
  const cachePath = join(dir, 'state.json');
  const { fakeWorkerSection } = await import('./helpers.js');
  const config = writeConfig(dir, {
    plugins: [examplePlugin],
    provider: { providerType: 'file-identity', identityFile },
    worker: fakeWorkerSection(),
    getSecrets: false,
    cacheOverRestarts: cachePath,
    shutdownCommand: recordingShutdown(dir).command,
  });
  const result = await runCli([config], {
    env: {
      FAKE_WORKER: JSON.stringify({ capabilities: ['new-credentials'], exitAfterCredentials: { count: 1, code: 0 } }),
    },
    timeoutMs: 90_000,
  });
  t.equal(result.code, 0, result.stderr);
  const { readFileSync, statSync } = await import('node:fs');
  const cached = JSON.parse(readFileSync(cachePath, 'utf8')) as {
    credentials: { clientId: string; accessToken: string };
    registrationSecret: string;
  };
  const current = [...fake.credentials.values()].find(
    (c) => c.current && c.workerKey === 'proj/from-file/rack-9/host-9',
  )!;
  t.equal(fake.callsTo('reregisterWorker').length, 1);
  t.equal(cached.credentials.clientId, current.clientId, 'the cache holds the renewed credentials');
  t.equal(cached.credentials.accessToken, current.accessToken);
  t.equal(
    cached.registrationSecret,
    fake.workers.get('proj/from-file/rack-9/host-9')!.secret,
    'and the new registration secret',
  );
  t.equal(statSync(cachePath).mode & 0o777, 0o600);
});
