import { execFile, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { FakeTaskcluster } from './fakes/taskcluster.js';
import { cleanEnv, recordingShutdown, repoRoot, standaloneProvider, STATIC_SECRET, tempDir, writeConfig } from './helpers.js';

const binary = join(repoRoot, 'dist', 'start-worker');
const version = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;

t.test('the single executable runs without node_modules beside it', { skip: existsSync(binary) ? false : 'not built; run npm run build:binary' }, async (t) => {
  // A directory of its own, far from the repository's node_modules.
  const dir = tempDir(t);
  const copy = join(dir, 'start-worker');
  copyFileSync(binary, copy);
  const run = (args: string[]) => spawnSync(copy, args, { cwd: dir, env: cleanEnv({ NODE_PATH: undefined }), encoding: 'utf8', timeout: 60_000 });

  t.equal(run(['--version']).stdout, `start-worker ${version}\n`);
  const example = writeConfig(dir, readFileSync(join(repoRoot, 'examples', 'standalone-dummy.yaml'), 'utf8'), { name: 'example.yaml' });
  const result = run([example]);
  t.equal(result.status, 0, result.stderr);
  t.match(result.stdout, /workerId: example-1/);
  t.match(result.stdout, /accessToken: <redacted>/);

  const command = writeConfig(dir, {
    provider: standaloneProvider(),
    worker: { implementation: 'command', command: ['/bin/echo', 'hello from a worker'], passCredentials: 'none' },
    getSecrets: false,
  });
  const worker = run([command]);
  t.equal(worker.status, 0, worker.stderr);
  t.match(worker.stderr, /Z hello from a worker\n/);
  t.equal(run(['validate', command]).stdout, 'ok\n');
});

t.test('the single executable signs Taskcluster calls without a Node warning (hawk bundled without url.parse)', { skip: existsSync(binary) ? false : 'not built; run npm run build:binary' }, async (t) => {
  const fake = await new FakeTaskcluster().start();
  t.teardown(() => fake.stop());
  fake.addWorkerPool('proj/pool', 'static-prov');
  fake.addStaticWorker('proj/pool', 'rack-1', 'host-1', STATIC_SECRET);
  const dir = tempDir(t);
  const config = writeConfig(dir, {
    provider: { providerType: 'static', rootURL: fake.rootUrl, providerID: 'static-prov', workerPoolID: 'proj/pool', workerGroup: 'rack-1', workerID: 'host-1', staticSecret: STATIC_SECRET },
    worker: { implementation: 'dummy' },
    getSecrets: true,
    shutdownCommand: recordingShutdown(dir).command,
  });
  const result = await new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
    execFile(binary, ['--log-format', 'json', config], { cwd: dir, env: cleanEnv(), timeout: 60_000 }, (err, _stdout, stderr) =>
      err && typeof err.code !== 'number' ? reject(err) : resolve({ code: err ? (err.code as number) : 0, stderr }),
    );
  });
  t.equal(result.code, 0, result.stderr);
  t.ok(fake.callsTo('getSecret').length > 0, 'a signed call was made');
  for (const line of result.stderr.trimEnd().split('\n')) t.doesNotThrow(() => JSON.parse(line), line);
  t.notMatch(result.stderr, /DeprecationWarning|DEP0169/);
});
