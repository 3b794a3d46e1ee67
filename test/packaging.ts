/** What the packaging tests (.deb, linux-arm64) need from the machine, and how to run it. */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './helpers.js';

export const version = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string })
  .version;
export const debianVersion = version.replace('-', '~');
export const executables = {
  amd64: join(repoRoot, 'dist', 'start-worker'),
  arm64: join(repoRoot, 'dist', 'start-worker-linux-arm64'),
};

/** Whether a command is on PATH. */
export function hasCommand(command: string): boolean {
  return spawnSync('/bin/sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
}

/**
 * Run a command without the test runner's instrumentation: tap forces
 * NODE_OPTIONS on every child it sees, and env(1) takes it off again.
 */
export function run(
  command: string,
  args: string[],
  options: { cwd?: string; timeout?: number; env?: Record<string, string> } = {},
): SpawnSyncReturns<string> {
  return spawnSync('/usr/bin/env', ['-u', 'NODE_OPTIONS', command, ...args], {
    cwd: options.cwd ?? repoRoot,
    env: options.env ?? process.env,
    encoding: 'utf8',
    timeout: options.timeout ?? 120_000,
    maxBuffer: 64 * 1024 * 1024,
  });
}

/** Where the aarch64 loader and libraries are (Debian's libc6-arm64-cross, libstdc++6-arm64-cross). */
export const AARCH64_ROOT = '/usr/aarch64-linux-gnu';

/** Why an aarch64 executable cannot run here, or false when qemu-aarch64-static and the libraries are there. */
export function arm64Unavailable(): string | false {
  if (!hasCommand('qemu-aarch64-static')) return 'qemu-aarch64-static is missing (Debian package qemu-user-static)';
  if (!existsSync(join(AARCH64_ROOT, 'lib', 'ld-linux-aarch64.so.1')))
    return `${AARCH64_ROOT}/lib/ld-linux-aarch64.so.1 is missing (Debian package libc6-arm64-cross)`;
  if (!existsSync(join(AARCH64_ROOT, 'lib', 'libstdc++.so.6')))
    return `${AARCH64_ROOT}/lib/libstdc++.so.6 is missing (Debian package libstdc++6-arm64-cross)`;
  return false;
}

/**
 * Run an aarch64 executable under user-mode qemu, called explicitly (a
 * container may have no binfmt handler), its loader and libraries from the
 * cross packages.
 */
export function runArm64(
  executable: string,
  args: string[],
  options: { cwd?: string; timeout?: number } = {},
): SpawnSyncReturns<string> {
  return run('qemu-aarch64-static', ['-L', AARCH64_ROOT, executable, ...args], { timeout: 120_000, ...options });
}

type Test = import('tap').Test;

/** A .deb's files as `dpkg-deb -c` lists them. */
interface DebEntry {
  mode: string;
  owner: string;
  path: string;
}

function debContents(deb: string): DebEntry[] {
  const listing = run('dpkg-deb', ['-c', deb]).stdout;
  return listing
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => {
      const [mode = '', owner = '', , , , ...path] = line.split(/\s+/);
      return { mode, owner, path: path.join(' ').replace(/^\.\//, '/') };
    });
}

/** The files of the package and their modes; directories end with a slash. */
const EXPECTED_FILES: Record<string, string> = {
  '/usr/bin/start-worker': '-rwxr-xr-x',
  '/lib/systemd/system/start-worker.service': '-rw-r--r--',
  '/etc/start-worker/': 'drwx------',
  '/usr/share/doc/start-worker/copyright': '-rw-r--r--',
  '/usr/share/doc/start-worker/changelog.gz': '-rw-r--r--',
  '/usr/share/doc/start-worker/README.md.gz': '-rw-r--r--',
  '/usr/share/doc/start-worker/THIRD-PARTY-NOTICES.txt.gz': '-rw-r--r--',
  '/usr/share/doc/start-worker/nodejs-LICENSE.gz': '-rw-r--r--',
  '/usr/share/doc/start-worker/examples/standalone-dummy.yaml': '-rw-r--r--',
  '/usr/share/man/man1/start-worker.1.gz': '-rw-r--r--',
  '/usr/share/lintian/overrides/start-worker': '-rw-r--r--',
};

/**
 * Build the package for `arch` (uncompressed: the content is that of the
 * real one), check its fields, files, modes and maintainer scripts, extract
 * it and run the extracted executable on the example config with `exec`.
 */
export function checkDebianPackage(
  t: Test,
  dir: string,
  arch: 'amd64' | 'arm64',
  exec: ((executable: string, args: string[], cwd: string) => SpawnSyncReturns<string>) | string,
): void {
  const built = run(process.execPath, [
    join(repoRoot, 'dist', 'scripts', 'build-deb.js'),
    '--arch',
    arch,
    '--out',
    dir,
    '--uncompressed',
  ]);
  t.equal(built.status, 0, 'build-deb.js builds it', { stdout: built.stdout, stderr: built.stderr });
  const deb = join(dir, `start-worker_${debianVersion}_${arch}.deb`);
  if (!t.ok(existsSync(deb), `it is start-worker_${debianVersion}_${arch}.deb`)) return;

  const field = (name: string) => run('dpkg-deb', ['-f', deb, name]).stdout.trim();
  t.equal(field('Package'), 'start-worker');
  t.equal(field('Version'), debianVersion);
  t.equal(field('Architecture'), arch);
  t.match(
    field('Depends'),
    /^libc6 \(>= [\d.]+\), libgcc-s1 \(>= [\d.]+\), libstdc\+\+6 \(>= [\d.]+\)$/,
    'Depends names what the executable links against',
  );
  t.match(field('Maintainer'), /^.+ <.+@.+>$/);
  t.equal(field('Section'), 'admin');
  t.equal(field('Priority'), 'optional');
  t.match(field('Description'), /^\S.{0,78}\n .+/s, 'a short and a long description');
  t.match(field('Installed-Size'), /^\d+$/);

  const entries = debContents(deb);
  t.same(
    entries.filter((entry) => entry.owner !== 'root/root'),
    [],
    'everything is owned by root/root',
  );
  const files = Object.fromEntries(
    entries
      .filter((entry) => !entry.mode.startsWith('d') || entry.path === '/etc/start-worker/')
      .map((entry) => [entry.path, entry.mode]),
  );
  t.same(files, EXPECTED_FILES, 'the files and their modes (/etc/start-worker 0700)');
  t.same(
    entries.filter(
      (entry) => entry.mode.startsWith('d') && entry.path !== '/etc/start-worker/' && entry.mode !== 'drwxr-xr-x',
    ),
    [],
    'other directories are 0755',
  );

  const control = join(dir, 'control');
  run('dpkg-deb', ['-e', deb, control]);
  const postinst = readFileSync(join(control, 'postinst'), 'utf8');
  t.notMatch(
    postinst,
    /systemctl\s+(--\S+\s+)*(enable|start|restart)|deb-systemd-(helper|invoke)/,
    'postinst does not enable or start the unit (the image decides)',
  );
  t.match(postinst, /daemon-reload/);

  const root = join(dir, 'root');
  const extracted = run('dpkg-deb', ['-x', deb, root]);
  t.equal(extracted.status, 0, 'dpkg-deb -x', { stderr: extracted.stderr });
  const sums = readFileSync(join(control, 'md5sums'), 'utf8');
  const md5 = createHash('md5')
    .update(readFileSync(join(root, 'usr/bin/start-worker')))
    .digest('hex');
  t.match(sums, `${md5}  usr/bin/start-worker\n`, 'md5sums lists the executable');
  t.equal(
    sums.trimEnd().split('\n').length,
    Object.keys(EXPECTED_FILES).filter((path) => !path.endsWith('/')).length,
    'md5sums lists every file',
  );
  const unit = readFileSync(join(root, 'lib/systemd/system/start-worker.service'), 'utf8');
  t.match(
    unit,
    /^ExecStart=\/usr\/bin\/start-worker \/etc\/start-worker\/runner\.yaml$/m,
    'the unit runs the packaged executable on /etc/start-worker/runner.yaml',
  );
  t.match(unit, /^WantedBy=multi-user\.target$/m);
  t.notMatch(unit, /\/usr\/local\//);

  if (typeof exec === 'string') {
    t.test(`the extracted ${arch} executable runs`, { skip: exec }, () => {});
  } else {
    const executable = join(root, 'usr/bin/start-worker');
    const versionRun = exec(executable, ['--version'], dir);
    t.equal(versionRun.stdout, `start-worker ${version}\n`, 'the extracted executable runs', {
      stderr: versionRun.stderr,
    });
    const example = join(root, 'usr/share/doc/start-worker/examples/standalone-dummy.yaml');
    const exampleRun = exec(executable, [example], dir);
    t.equal(exampleRun.status, 0, 'it runs the packaged example config', { stderr: exampleRun.stderr });
    t.match(exampleRun.stdout, /workerId: example-1/);
  }

  if (!hasCommand('lintian')) {
    t.test('lintian reports no errors or warnings', { skip: 'lintian is missing (Debian package lintian)' }, () => {});
  } else {
    // Errors and warnings fail; the tags the package overrides are explained in its overrides file.
    // This build is uncompressed on purpose (npm run build:deb uses xz): those two tags are expected.
    const uncompressed = 'uses-no-compression-for-control-tarball,uses-no-compression-for-data-tarball';
    const lint = run('lintian', ['--fail-on', 'error,warning', '--suppress-tags', uncompressed, deb], {
      timeout: 170_000,
    });
    t.equal(lint.status, 0, 'lintian reports no errors or warnings', { stdout: lint.stdout, stderr: lint.stderr });
  }
}
