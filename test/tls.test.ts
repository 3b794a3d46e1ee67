import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { FakeAwsSecretsManager } from './fakes/aws-secrets-manager.js';
import { FakeTaskcluster } from './fakes/taskcluster.js';
import { recordingShutdown, runCli, standaloneProvider, STATIC_SECRET, tempDir, writeConfig } from './helpers.js';

/** A CA made for this test, a server certificate for 127.0.0.1, and a client certificate with an encrypted key. */
function makeCertificates(dir: string) {
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  openssl(
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
    '-days',
    '2',
    '-subj',
    '/CN=start-worker test CA',
  );
  writeFileSync(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  openssl(
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    'server.key',
    '-out',
    'server.csr',
    '-subj',
    '/CN=127.0.0.1',
  );
  openssl(
    'x509',
    '-req',
    '-in',
    'server.csr',
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    'server.pem',
    '-days',
    '2',
    '-extfile',
    'server.ext',
  );
  writeFileSync(join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\n');
  openssl(
    'req',
    '-newkey',
    'rsa:2048',
    '-passout',
    'pass:client-key-passphrase',
    '-keyout',
    'client.key',
    '-out',
    'client.csr',
    '-subj',
    '/CN=worker',
  );
  openssl(
    'x509',
    '-req',
    '-in',
    'client.csr',
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    'client.pem',
    '-days',
    '2',
    '-extfile',
    'client.ext',
  );
  const read = (name: string) => readFileSync(join(dir, name), 'utf8');
  return {
    ca: join(dir, 'ca.pem'),
    caPem: read('ca.pem'),
    serverKey: read('server.key'),
    serverCert: read('server.pem'),
    clientCert: join(dir, 'client.pem'),
    clientKey: join(dir, 'client.key'),
  };
}

async function httpsSetup(t: { teardown(fn: () => void | Promise<void>): void }, requestCert: boolean) {
  const dir = tempDir(t);
  const certs = makeCertificates(dir);
  const fake = await new FakeTaskcluster({
    tls: { key: certs.serverKey, cert: certs.serverCert, ca: certs.caPem, requestCert },
  }).start();
  t.teardown(() => fake.stop());
  fake.addWorkerPool('proj/tls', 'static-prov');
  fake.addStaticWorker('proj/tls', 'g', 'w', STATIC_SECRET);
  const config = writeConfig(dir, {
    provider: {
      providerType: 'static',
      rootURL: fake.rootUrl,
      providerID: 'static-prov',
      workerPoolID: 'proj/tls',
      workerGroup: 'g',
      workerID: 'w',
      staticSecret: STATIC_SECRET,
    },
    worker: { implementation: 'dummy' },
    shutdownCommand: recordingShutdown(dir).command,
    startupRetryWindow: 0,
  });
  return { certs, fake, config };
}

t.test('an HTTPS Taskcluster with its own CA: refused by default, accepted with --ca-cert', async (t) => {
  const { certs, fake, config } = await httpsSetup(t, false);
  t.match(fake.rootUrl, /^https:/);
  const untrusted = await runCli([config]);
  t.equal(untrusted.code, 1);
  t.match(untrusted.stderr, /registerWorker failed \((SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE)\)/);
  const trusted = await runCli(['--ca-cert', certs.ca, config]);
  t.equal(trusted.code, 0, trusted.stderr);
  t.equal(fake.callsTo('getSecret').length, 2, 'the secrets calls used the CA too');
  const fromEnv = await runCli([config], { env: { START_WORKER_CA_CERT: certs.ca } });
  t.equal(fromEnv.code, 0, fromEnv.stderr);
});

t.test('--no-verify-certs: accepted, with a loud warning', async (t) => {
  const { config } = await httpsSetup(t, false);
  const result = await runCli(['--no-verify-certs', config]);
  t.equal(result.code, 0, result.stderr);
  t.match(result.stderr, /warning: TLS CERTIFICATES ARE NOT VERIFIED \(--no-verify-certs\)/);
});

t.test('mTLS: a proxy that requires a client certificate; the key passphrase stays secret', async (t) => {
  const { certs, config } = await httpsSetup(t, true);
  const without = await runCli(['--ca-cert', certs.ca, config]);
  t.equal(without.code, 1, 'no client certificate: refused');
  const withCert = await runCli(
    ['--ca-cert', certs.ca, '--cert', certs.clientCert, '--cert-key', certs.clientKey, config],
    {
      env: { START_WORKER_CERT_KEY_PASS: 'client-key-passphrase' },
    },
  );
  t.equal(withCert.code, 0, withCert.stderr);
  t.notMatch(withCert.stderr + withCert.stdout, 'client-key-passphrase');
  const wrongPass = await runCli([
    '--ca-cert',
    certs.ca,
    '--cert',
    certs.clientCert,
    '--cert-key',
    certs.clientKey,
    '--cert-key-pass',
    'wrong',
    config,
  ]);
  t.equal(wrongPass.code, 1);
  const missing = await runCli(['--ca-cert', join(certs.ca, 'nope'), config]);
  t.match(missing.stderr, /--ca-cert .*nope: cannot read it: ENOTDIR/);
  const half = await runCli(['--cert', certs.clientCert, config]);
  t.match(half.stderr, /--cert and --cert-key go together/);
});

t.test('the TLS settings apply to AWS Secrets Manager too', async (t) => {
  const dir = tempDir(t);
  const certs = makeCertificates(dir);
  const credentials = { accessKeyId: 'AKIAFAKEFAKEFAKE', secretAccessKey: 'fake-secret-access-key-0123456789' };
  const fake = await new FakeAwsSecretsManager(credentials, { key: certs.serverKey, cert: certs.serverCert }).start();
  t.teardown(() => fake.stop());
  fake.secrets.set('over-tls', '{"viaTls": true}');
  const config = writeConfig(dir, {
    provider: standaloneProvider(),
    worker: { implementation: 'dummy' },
    getSecrets: false,
    startupRetryWindow: 0,
    secrets: [{ source: 'aws-secrets-manager', secretId: 'over-tls', region: 'us-east-1', endpoint: fake.endpoint }],
  });
  const env = {
    AWS_ACCESS_KEY_ID: credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
    AWS_EC2_METADATA_DISABLED: 'true',
  };
  const untrusted = await runCli([config], { env });
  t.equal(untrusted.code, 1);
  t.equal(fake.calls.length, 0, 'the TLS handshake failed before any request');
  const trusted = await runCli(['--ca-cert', certs.ca, config], { env });
  t.equal(trusted.code, 0, trusted.stderr);
  t.match(trusted.stdout, /viaTls: <redacted>/, 'the secret was read (and its value redacted in the dump)');
  t.equal(fake.calls.length, 1);
});
