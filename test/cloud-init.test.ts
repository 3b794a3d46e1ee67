import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parse } from 'yaml';
import { repoRoot, runCli, tempDir, writeConfig } from './helpers.js';

interface WriteFile {
  path: string;
  permissions?: string;
  owner?: string;
  content?: string;
}

const text = readFileSync(join(repoRoot, 'examples', 'cloud-init.yaml'), 'utf8');
const cloudConfig = parse(text) as { write_files?: WriteFile[]; runcmd?: unknown[] };

t.test('examples/cloud-init.yaml is cloud-config YAML', async (t) => {
  t.match(text, /^#cloud-config\n/, 'cloud-init reads user data as cloud-config only after this first line');
  t.type(cloudConfig, 'object');
  t.ok(Array.isArray(cloudConfig.write_files) && Array.isArray(cloudConfig.runcmd));
});

t.test('it writes /etc/start-worker/runner.yaml owner-only, and that config validates', async (t) => {
  const entry = cloudConfig.write_files?.find((file) => file.path === '/etc/start-worker/runner.yaml');
  if (entry === undefined) return t.fail('a write_files entry for /etc/start-worker/runner.yaml');
  t.equal(entry.permissions, '0600');
  t.equal(entry.owner, 'root:root');
  t.type(entry.content, 'string');
  t.match(
    parse(entry.content!),
    { provider: { providerType: 'aws' } },
    "the aws provider, which reads the rest from worker-manager's user data",
  );

  const dir = tempDir(t);
  const config = writeConfig(dir, entry.content!);
  const result = await runCli(['validate', config], { t });
  t.equal(result.code, 0, result.stderr);
  t.equal(result.stdout, 'ok\n');
  t.equal(result.stderr, '', 'no warnings either');
});

t.test('it installs the .deb from a placeholder the user edits, and enables the unit', async (t) => {
  const script = JSON.stringify(cloudConfig.runcmd);
  t.match(script, /REPLACE-ME/, 'the .deb location is a marked placeholder');
  t.match(script, /apt-get install[^"]*\\"\$deb\\"/, 'apt-get installs the .deb (and its Depends)');
  t.match(script, /systemctl enable start-worker\.service/);
  t.match(script, /chmod 0700 \/etc\/start-worker/);
});
