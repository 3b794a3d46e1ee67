import { execFile, spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import AdmZip from 'adm-zip';
import t from 'tap';
import { FakeAwsSecretsManager } from './fakes/aws-secrets-manager.js';
import { FakeTaskcluster } from './fakes/taskcluster.js';
import {
  cleanEnv,
  recordingShutdown,
  repoRoot,
  standaloneProvider,
  STATIC_SECRET,
  tempDir,
  writeConfig,
} from './helpers.js';

const binary = join(repoRoot, 'dist', 'start-worker');
const version = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;

t.test(
  'the single executable runs without node_modules beside it',
  { skip: existsSync(binary) ? false : 'not built; run npm run build:binary' },
  async (t) => {
    // A directory of its own, far from the repository's node_modules.
    const dir = tempDir(t);
    const copy = join(dir, 'start-worker');
    copyFileSync(binary, copy);
    const run = (args: string[]) =>
      spawnSync(copy, args, { cwd: dir, env: cleanEnv({ NODE_PATH: undefined }), encoding: 'utf8', timeout: 60_000 });

    t.equal(run(['--version']).stdout, `start-worker ${version}\n`);
    const example = writeConfig(dir, readFileSync(join(repoRoot, 'examples', 'standalone-dummy.yaml'), 'utf8'), {
      name: 'example.yaml',
    });
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
  },
);

t.test(
  'the single executable signs Taskcluster calls without a Node warning (hawk bundled without url.parse)',
  { skip: existsSync(binary) ? false : 'not built; run npm run build:binary' },
  async (t) => {
    const fake = await new FakeTaskcluster().start();
    t.teardown(() => fake.stop());
    fake.addWorkerPool('proj/pool', 'static-prov');
    fake.addStaticWorker('proj/pool', 'rack-1', 'host-1', STATIC_SECRET);
    const dir = tempDir(t);
    const config = writeConfig(dir, {
      provider: {
        providerType: 'static',
        rootURL: fake.rootUrl,
        providerID: 'static-prov',
        workerPoolID: 'proj/pool',
        workerGroup: 'rack-1',
        workerID: 'host-1',
        staticSecret: STATIC_SECRET,
      },
      worker: { implementation: 'dummy' },
      getSecrets: true,
      shutdownCommand: recordingShutdown(dir).command,
    });
    const result = await new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
      execFile(
        binary,
        ['--log-format', 'json', config],
        { cwd: dir, env: cleanEnv(), timeout: 60_000 },
        (err, _stdout, stderr) =>
          err && typeof err.code !== 'number' ? reject(err) : resolve({ code: err ? (err.code as number) : 0, stderr }),
      );
    });
    t.equal(result.code, 0, result.stderr);
    t.ok(fake.callsTo('getSecret').length > 0, 'a signed call was made');
    for (const line of result.stderr.trimEnd().split('\n')) t.doesNotThrow(() => JSON.parse(line), line);
    t.notMatch(result.stderr, /DeprecationWarning|DEP0169/);
  },
);

t.test(
  'the single executable loads each of its lazily compiled dependencies: AWS SDK, adm-zip, ajv, execa',
  { skip: existsSync(binary) ? false : 'not built; run npm run build:binary' },
  async (t) => {
    const awsCredentials = { accessKeyId: 'AKIAFAKEFAKEFAKE', secretAccessKey: 'fake-secret-access-key-0123456789' };
    const secretsManager = await new FakeAwsSecretsManager(awsCredentials).start();
    t.teardown(() => secretsManager.stop());
    const dir = tempDir(t);
    const zip = new AdmZip();
    zip.addFile('hello.txt', Buffer.from('from a zip'));
    secretsManager.secrets.set(
      'workers/files',
      JSON.stringify({
        config: { fromAws: 'yes' },
        files: [
          {
            format: 'zip',
            encoding: 'base64',
            content: zip.toBuffer().toString('base64'),
            path: join(dir, 'unzipped'),
          },
        ],
      }),
    );
    const plugin = join(dir, 'plugin.mjs');
    writeFileSync(
      plugin,
      `export default { logging: [{ name: 'quiet', schema: { type: 'object', properties: { level: { enum: ['a', 'b'] } }, required: ['level'] }, usage: 'x', create: () => ({ write() {}, writeWorkerStderr() {}, flush() {} }) }] };\n`,
    );
    const config = writeConfig(dir, {
      plugins: [plugin],
      provider: standaloneProvider(),
      worker: { implementation: 'command', command: ['/bin/true'], configPath: join(dir, 'worker.json') },
      getSecrets: false,
      secrets: [
        {
          source: 'aws-secrets-manager',
          secretId: 'workers/files',
          region: 'eu-west-1',
          endpoint: secretsManager.endpoint,
        },
      ],
      logging: { implementation: 'quiet', level: 'a' },
    });
    const env = cleanEnv({
      AWS_ACCESS_KEY_ID: awsCredentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: awsCredentials.secretAccessKey,
      AWS_EC2_METADATA_DISABLED: 'true',
      AWS_CONFIG_FILE: '/nonexistent',
      AWS_SHARED_CREDENTIALS_FILE: '/nonexistent',
    });
    const run = (args: string[]) =>
      new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
        execFile(binary, args, { cwd: dir, env, timeout: 60_000 }, (err, _stdout, stderr) =>
          err && typeof err.code !== 'number' ? reject(err) : resolve({ code: err ? (err.code as number) : 0, stderr }),
        );
      });
    const result = await run([config]);
    t.equal(result.code, 0, result.stderr);
    t.equal(readFileSync(join(dir, 'unzipped', 'hello.txt'), 'utf8'), 'from a zip', 'adm-zip unpacked the archive');
    t.match(
      JSON.parse(readFileSync(join(dir, 'worker.json'), 'utf8')),
      { fromAws: 'yes' },
      'the AWS SDK read the secret',
    );
    const bad = writeConfig(
      dir,
      {
        plugins: [plugin],
        provider: standaloneProvider(),
        worker: { implementation: 'dummy' },
        logging: { implementation: 'quiet', level: 'c' },
      },
      { name: 'bad.yaml' },
    );
    const refused = await run(['validate', bad]);
    t.match(refused.stderr, /logging\.level: must be one of "a", "b"/, "ajv compiled the plugin's schema");
  },
);

t.test(
  "the single executable's last lines reach a reader of its stderr that falls behind",
  { skip: existsSync(binary) ? false : 'not built; run npm run build:binary' },
  async (t) => {
    const dir = tempDir(t);
    const config = writeConfig(dir, {
      provider: standaloneProvider(),
      worker: { implementation: 'command', command: ['/usr/bin/seq', '1', '20000'], passCredentials: 'none' },
      getSecrets: false,
    });
    const child = spawn(binary, [config], { cwd: dir, env: cleanEnv(), stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    // a pipe holds 64 KiB: the rest waits in the process until it is read
    child.stderr.pause();
    setTimeout(() => child.stderr.resume(), 3000);
    const code = await new Promise((resolve) => child.on('close', resolve));
    t.equal(code, 0, stderr.slice(-2000));
    t.equal(stderr.match(/Z \d+\n/g)?.length, 20000, 'every line of the worker');
    t.match(stderr, /worker exited with code 0\n$/, 'and the last one');
  },
);
