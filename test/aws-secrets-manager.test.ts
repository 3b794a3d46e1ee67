import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { FAKE_AWS_CREDENTIALS, FAKE_AWS_ENV, FakeAwsSecretsManager } from './fakes/aws-secrets-manager.js';
import { FakeTaskcluster } from './fakes/taskcluster.js';
import { leakedSecrets, runCli, standaloneProvider, tempDir, writeConfig } from './helpers.js';

async function setup(t: { teardown(fn: () => Promise<void> | void): void }) {
  const fake = await new FakeAwsSecretsManager(FAKE_AWS_CREDENTIALS).start();
  t.teardown(() => fake.stop());
  const dir = tempDir(t);
  const configPath = join(dir, 'worker.json');
  const run = async (
    secrets: unknown[],
    extra: Record<string, unknown> = {},
    env: Record<string, string | undefined> = {},
  ) => {
    const result = await runCli(
      [
        writeConfig(dir, {
          provider: standaloneProvider(),
          worker: {
            implementation: 'command',
            command: [process.execPath, '-e', ''],
            configPath,
            passCredentials: 'none',
          },
          getSecrets: false,
          startupRetryWindow: 10,
          secrets,
          ...extra,
        }),
      ],
      { env: { ...FAKE_AWS_ENV, ...env } },
    );
    const config =
      result.code === 0 ? (JSON.parse(readFileSync(configPath, 'utf8')) as Record<string, unknown>) : undefined;
    return { result, config };
  };
  return { fake, dir, run };
}

t.test('a secret in the {config, files} form, read with the real SDK, merged into the worker config', async (t) => {
  const { fake, dir, run } = await setup(t);
  fake.secrets.set(
    'workers/config',
    JSON.stringify({ config: { dbPassword: 'correct-horse-battery-staple', nested: { a: 1 } }, files: [] }),
  );
  const { result, config } = await run([
    { source: 'aws-secrets-manager', secretId: 'workers/config', region: 'eu-west-1', endpoint: fake.endpoint },
  ]);
  t.equal(result.code, 0, result.stderr);
  t.match(config, { dbPassword: 'correct-horse-battery-staple', nested: { a: 1 } });
  t.match(fake.calls[0], {
    target: 'secretsmanager.GetSecretValue',
    secretId: 'workers/config',
    region: 'eu-west-1',
    accessKeyId: FAKE_AWS_CREDENTIALS.accessKeyId,
  });
  t.same(
    leakedSecrets(result.stdout + result.stderr, [
      'correct-horse-battery-staple',
      FAKE_AWS_CREDENTIALS.secretAccessKey,
    ]),
    [],
  );
  t.ok(dir);
});

t.test('YAML content, the endpoint from AWS_ENDPOINT_URL_SECRETS_MANAGER, the region from AWS_REGION', async (t) => {
  const { fake, run } = await setup(t);
  fake.secrets.set('yaml-secret', 'flat: from-yaml\nlist: [1, 2]\n');
  const { result, config } = await run(
    [{ source: 'aws-secrets-manager', secretId: 'yaml-secret' }],
    {},
    { AWS_ENDPOINT_URL_SECRETS_MANAGER: fake.endpoint, AWS_REGION: 'ap-south-1' },
  );
  t.equal(result.code, 0, result.stderr);
  t.match(config, { flat: 'from-yaml', list: [1, 2] });
  t.equal(fake.calls[0]?.region, 'ap-south-1');
});

t.test('not found: an error, unless optional', async (t) => {
  const { fake, run } = await setup(t);
  const source = { source: 'aws-secrets-manager', secretId: 'missing', region: 'us-east-1', endpoint: fake.endpoint };
  const missing = await run([source]);
  t.equal(missing.result.code, 1);
  t.match(missing.result.stderr, /error: AWS Secrets Manager secret 'missing' does not exist\n/);
  const optional = await run([{ ...source, optional: true }]);
  t.equal(optional.result.code, 0, optional.result.stderr);
  t.match(optional.result.stderr, /secret 'missing' does not exist; it is optional/);
});

t.test('access denied, a wrong signature, malformed content: clear errors that never show the value', async (t) => {
  const { fake, run } = await setup(t);
  const source = (secretId: string) => ({
    source: 'aws-secrets-manager',
    secretId,
    region: 'us-east-1',
    endpoint: fake.endpoint,
  });
  fake.secrets.set('denied', { error: 'AccessDeniedException' });
  const denied = await run([source('denied')]);
  t.equal(denied.result.code, 1);
  t.match(
    denied.result.stderr,
    /AWS Secrets Manager secret 'denied': access denied; grant secretsmanager:GetSecretValue/,
  );

  fake.secrets.set('not-an-object', JSON.stringify(['topsecret-list-value']));
  const list = await run([source('not-an-object')]);
  t.match(list.result.stderr, /AWS Secrets Manager secret 'not-an-object': the secret must be an object/);
  t.notMatch(list.result.stderr, 'topsecret-list-value');

  fake.secrets.set('garbage', '{"unterminated": "topsecret-garbage-value');
  const garbage = await run([source('garbage')]);
  t.match(garbage.result.stderr, /AWS Secrets Manager secret 'garbage': its content is neither JSON nor YAML/);
  t.notMatch(garbage.result.stderr, 'topsecret-garbage-value');

  fake.secrets.set('fine', '{}');
  const badKey = await run([source('fine')], {}, { AWS_SECRET_ACCESS_KEY: 'wrong-secret-key' });
  t.equal(badKey.result.code, 1);
  t.match(badKey.result.stderr, /InvalidSignatureException/, 'the fake verifies SigV4 signatures');
});

t.test('a transient failure is retried within the startup window', async (t) => {
  const { fake, run } = await setup(t);
  fake.secrets.set('flaky', '{"ok": true}');
  fake.inject({ kind: 'status', status: 500 }, 2);
  const { result, config } = await run([
    { source: 'aws-secrets-manager', secretId: 'flaky', region: 'us-east-1', endpoint: fake.endpoint },
  ]);
  t.equal(result.code, 0, result.stderr);
  t.match(config, { ok: true });
  t.equal(fake.calls.length, 3);
});

t.test('precedence: after the Taskcluster secrets, in order', async (t) => {
  const { fake, run } = await setup(t);
  const taskcluster = await new FakeTaskcluster().start();
  t.teardown(() => taskcluster.stop());
  taskcluster.addPermanentCredentials('test/client', 'SECRET-access-token-0123456789');
  taskcluster.secrets.set('worker-pool:proj/pool', {
    config: { a: 'taskcluster', b: 'taskcluster', c: 'taskcluster' },
  });
  fake.secrets.set('first', JSON.stringify({ b: 'first', c: 'first' }));
  fake.secrets.set('second', JSON.stringify({ config: { c: 'second' } }));
  const { result, config } = await run(
    [
      { source: 'aws-secrets-manager', secretId: 'first', region: 'us-east-1', endpoint: fake.endpoint },
      { source: 'aws-secrets-manager', secretId: 'second', region: 'us-east-1', endpoint: fake.endpoint },
    ],
    { getSecrets: true, provider: standaloneProvider({ rootURL: taskcluster.rootUrl }) },
  );
  t.equal(result.code, 0, result.stderr);
  t.match(config, { a: 'taskcluster', b: 'first', c: 'second' });
});
