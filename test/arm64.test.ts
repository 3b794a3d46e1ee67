import { copyFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { repoRoot, tempDir, writeConfig } from './helpers.js';
import { arm64Unavailable, checkDebianPackage, executables, hasCommand, runArm64, version } from './packaging.js';

const notBuilt = existsSync(executables.arm64)
  ? false
  : 'dist/start-worker-linux-arm64 is not built; run npm run build:binary -- --arch arm64';

t.test(
  'the linux-arm64 single executable runs the example under qemu',
  { skip: notBuilt || arm64Unavailable() },
  async (t) => {
    const dir = tempDir(t);
    const copy = join(dir, 'start-worker');
    copyFileSync(executables.arm64, copy);
    const startWorker = (args: string[]) => runArm64(copy, args, { cwd: dir });
    t.equal(startWorker(['--version']).stdout, `start-worker ${version}\n`);
    const example = writeConfig(dir, readFileSync(join(repoRoot, 'examples', 'standalone-dummy.yaml'), 'utf8'), {
      name: 'example.yaml',
    });
    t.equal(startWorker(['validate', example]).stdout, 'ok\n');
    const result = startWorker([example]);
    t.equal(result.status, 0, result.stderr);
    t.match(result.stdout, /workerId: example-1/);
    t.match(result.stdout, /accessToken: <redacted>/);
  },
);

t.test(
  'the arm64 Debian package: fields, files and modes, the unit, lintian; its executable runs under qemu',
  { skip: notBuilt || (!hasCommand('dpkg-deb') && 'dpkg-deb is missing (Debian package dpkg)') },
  async (t) => {
    const unavailable = arm64Unavailable();
    checkDebianPackage(
      t,
      tempDir(t),
      'arm64',
      unavailable === false ? (executable, args, cwd) => runArm64(executable, args, { cwd }) : unavailable,
    );
  },
);
