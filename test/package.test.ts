import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  realpathSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, posix, relative } from 'node:path';
import t, { type Test } from 'tap';
import { repoRoot, tempDir } from './helpers.js';

const version = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;
const nodeDir = dirname(process.execPath);
const hasNpm = spawnSync('npm', ['--version'], { encoding: 'utf8' }).status === 0;

/** npm as a user would run it: none of the npm_* settings of the `npm test` around us, a cache of its own, no network. */
function npmEnv(cache: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value !== undefined && !/^npm_/i.test(key) && key !== 'NODE_OPTIONS') env[key] = value;
  }
  return {
    ...env,
    PATH: `${nodeDir}:${env.PATH ?? ''}`,
    npm_config_cache: cache,
    npm_config_update_notifier: 'false',
    npm_config_audit: 'false',
    npm_config_fund: 'false',
  };
}

/**
 * Run a command as a user would: through env(1), because tap instruments every
 * child it spawns by forcing NODE_OPTIONS.
 */
function run(
  command: string,
  args: string[],
  options: { cwd: string; env: Record<string, string>; timeout?: number },
): SpawnSyncReturns<string> {
  return spawnSync('/usr/bin/env', ['-u', 'NODE_OPTIONS', command, ...args], {
    ...options,
    encoding: 'utf8',
    timeout: options.timeout ?? 60_000,
  });
}

function check(t: Test, what: string, result: SpawnSyncReturns<string>): string {
  if (result.error) throw result.error;
  t.equal(result.status, 0, `${what} exits 0`, { stdout: result.stdout, stderr: result.stderr });
  return result.stdout;
}

/** The relative .d.ts files a declaration file imports. */
function declarationImports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const specifiers = [...text.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*)['"]([^'"]+)['"]/g)].map((match) => match[1]!);
  return specifiers
    .filter((spec) => spec.startsWith('.'))
    .map((spec) => join(dirname(file), spec.replace(/\.js$/, '.d.ts')));
}

t.test(
  'npm pack makes a package that installs offline, without dependencies, and runs',
  { skip: hasNpm ? false : 'npm is not on PATH' },
  async (t) => {
    const dir = tempDir(t);
    // npm pack runs prepack (a full build) in a copy: the tests running beside this one keep their dist/.
    const source = join(dir, 'source');
    const skip = new Set(['dist', 'node_modules', '.git', '.tap', 'coverage', join('sea', 'node_modules')]);
    cpSync(repoRoot, source, { recursive: true, filter: (path) => !skip.has(relative(repoRoot, path)) });
    symlinkSync(realpathSync(join(repoRoot, 'node_modules')), join(source, 'node_modules'));
    const cache = join(dir, 'npm-cache');
    mkdirSync(cache);
    const env = npmEnv(cache);
    const packed = join(dir, 'packed');
    mkdirSync(packed);
    check(t, 'npm pack', run('npm', ['pack', '--pack-destination', packed], { cwd: source, env, timeout: 150_000 }));
    const tarball = join(packed, `start-worker-${version}.tgz`);
    t.ok(existsSync(tarball), `npm pack wrote start-worker-${version}.tgz`);

    t.test('the tarball holds the bundle, the plugin types, the example and the docs, and nothing else', async (t) => {
      const files = check(t, 'tar -tzf', run('tar', ['-tzf', tarball], { cwd: dir, env }))
        .split('\n')
        .filter((line) => line !== '' && !line.endsWith('/'))
        .map((line) => line.replace(/^package\//, ''));
      const fixed = [
        'package.json',
        'README.md',
        'protocol.md',
        'bin/start-worker',
        'bin/package.json',
        'examples/standalone-dummy.yaml',
        'dist/bundle/code-cache.cjs',
        'dist/bundle/start-worker.cjs',
        'dist/bundle/THIRD-PARTY-NOTICES.txt',
        'dist/src/index.js',
        'dist/src/index.d.ts',
      ];
      for (const file of fixed) t.ok(files.includes(file), `${file} is packed`);
      // npm adds a LICENSE file of the root by itself (the project has none yet).
      const allowed = [/^dist\/bundle\/[\w-]+\.cjs$/, /^dist\/src\/.+\.d\.ts$/, /^(LICEN[CS]E|COPYING)(\.\w+)?$/];
      const unexpected = files.filter(
        (file) => !fixed.includes(file) && !allowed.some((pattern) => pattern.test(file)),
      );
      t.same(unexpected, [], 'nothing outside the allow-list (no tests, bench, scripts, source maps, tsc output)');

      const unpacked = join(dir, 'unpacked');
      mkdirSync(unpacked);
      check(t, 'tar -xzf', run('tar', ['-xzf', tarball, '-C', unpacked], { cwd: dir, env }));
      const at = (file: string) => join(unpacked, 'package', file);

      // The types: index.d.ts and exactly what it reaches (package.json "files" lists them one by one).
      const reached = new Set<string>();
      const pending = [at('dist/src/index.d.ts')];
      while (pending.length > 0) {
        const file = pending.pop()!;
        if (reached.has(file)) continue;
        reached.add(file);
        const missing = declarationImports(file).filter((imported) => !existsSync(imported));
        t.same(
          missing.map((imported) => relative(at(''), imported)),
          [],
          `everything ${relative(at(''), file)} imports is packed (add it to "files" in package.json)`,
        );
        pending.push(...declarationImports(file).filter((imported) => existsSync(imported)));
      }
      const declarations = files.filter((file) => file.endsWith('.d.ts')).map(at);
      t.same(
        declarations.filter((file) => !reached.has(file)).map((file) => relative(at(''), file)),
        [],
        'every packed .d.ts is reached from index.d.ts (drop the others from "files")',
      );

      // The bundle: every file a bundle file requires, or has the loader load, is packed.
      for (const bundle of readdirSync(at('dist/bundle')).filter((file) => file.endsWith('.cjs'))) {
        const text = readFileSync(at(`dist/bundle/${bundle}`), 'utf8');
        const reachedFiles = [...text.matchAll(/\brequire\(["'](\.\/[^"']+)["']\)|__dirname,\s*"([^"]+\.cjs)"/g)].map(
          (match) => posix.join('dist/bundle', match[1] ?? match[2]!),
        );
        t.same(
          reachedFiles.filter((file) => !files.includes(file)),
          [],
          `the files ${bundle} reaches are packed`,
        );
      }
      t.ok(
        readFileSync(at('dist/bundle/start-worker.cjs'), 'utf8').includes('__dirname,"taskcluster-client.cjs"'),
        'the main bundle loads taskcluster-client from its own file (the check above sees the stubs)',
      );

      const manifest = JSON.parse(readFileSync(at('package.json'), 'utf8')) as Record<string, unknown>;
      t.same(
        manifest.dependencies ?? {},
        {},
        'no runtime dependencies: the bundle carries them all (a new one belongs in devDependencies)',
      );
      t.notOk(manifest.bundleDependencies ?? manifest.bundledDependencies, 'no bundled node_modules');
      t.same(manifest.bin, { 'start-worker': 'bin/start-worker' });
    });

    t.test('npm install -g from the tarball, offline; the command runs from the prefix', async (t) => {
      const prefix = join(dir, 'prefix');
      check(
        t,
        'npm install -g',
        run('npm', ['install', '-g', '--prefix', prefix, '--offline', '--no-audit', '--no-fund', tarball], {
          cwd: dir,
          env,
        }),
      );
      const installed = join(prefix, 'lib', 'node_modules', 'start-worker');
      t.notOk(existsSync(join(installed, 'node_modules')), 'nothing was installed beside it');
      const bin = join(prefix, 'bin', 'start-worker');
      const startWorker = (args: string[]) => run(bin, args, { cwd: dir, env });

      t.equal(check(t, 'start-worker --version', startWorker(['--version'])), `start-worker ${version}\n`);
      const example = join(installed, 'examples', 'standalone-dummy.yaml');
      t.equal(check(t, 'start-worker validate', startWorker(['validate', example])), 'ok\n');
      // The installed example is 0644: start-worker tightens it (and says so) before running it.
      const result = startWorker([example]);
      check(t, 'start-worker examples/standalone-dummy.yaml', result);
      t.match(result.stdout, /workerId: example-1/);
      t.match(result.stdout, /accessToken: <redacted>/);
      t.match(result.stderr, /tightened it to 0?600/);

      // A plugin written against the package's types type-checks with them: the example plugin (JSDoc types).
      const plugin = join(dir, 'plugin');
      mkdirSync(join(plugin, 'node_modules', '@types'), { recursive: true });
      cpSync(join(repoRoot, 'examples', 'plugins', 'file-identity', 'index.mjs'), join(plugin, 'index.mjs'));
      symlinkSync(installed, join(plugin, 'node_modules', 'start-worker'));
      symlinkSync(
        realpathSync(join(repoRoot, 'node_modules', '@types', 'node')),
        join(plugin, 'node_modules', '@types', 'node'),
      );
      writeFileSync(
        join(plugin, 'tsconfig.json'),
        JSON.stringify({
          compilerOptions: {
            module: 'nodenext',
            moduleResolution: 'nodenext',
            target: 'es2022',
            allowJs: true,
            checkJs: true,
            noEmit: true,
            types: ['node'],
          },
          files: ['index.mjs'],
        }),
      );
      const tsc = join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc');
      check(
        t,
        'tsc on the example plugin against the installed types',
        run(process.execPath, [tsc, '-p', plugin], { cwd: plugin, env }),
      );
    });
  },
);
