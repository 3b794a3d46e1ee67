/**
 * Loads start-worker's bundle (dist/bundle/*.cjs) with a V8 code cache made
 * after startup. Node's own compile cache (Node >= 22) is made when a file
 * is compiled, before it runs, so it holds only the top level: every
 * function the boot calls is still compiled at every start, which was about
 * 30% of a run's instructions. A cache made once startup is done
 * (`saveCodeCache`) holds those functions too, and works on Node 20 as well.
 *
 * A cache file is keyed by the bundle file's name, size and CRC-32, and by
 * the runtime (its version, CPU and V8's cache tag, which covers the V8
 * flags), so an upgrade or another Node.js never reads a stale one; V8
 * checks it once more and a rejected one is made again. The directory is
 * START_WORKER_CODE_CACHE (`off` turns caching off, as does
 * NODE_DISABLE_COMPILE_CACHE=1), else one per user in the temporary
 * directory. It is used only if it is a directory of this user that no one
 * else may write to: a cache is code this process runs.
 *
 * Caching is an optimisation and never a reason to fail: a directory that
 * cannot be made, a full disk or an unreadable file only means a slower
 * start.
 */
import {
  type Stats,
  lstatSync,
  mkdirSync,
  statSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { cachedDataVersionTag } from 'node:v8';
import { Script } from 'node:vm';
import { crc32 } from 'node:zlib';

interface Cached {
  /** The bundle file. */
  file: string;
  script: Script;
  cacheFile: string;
  /** The size of the cache on disk for this file: the one V8 accepted or the one this run wrote; 0 for none. */
  bytes: number;
  writtenByThisRun: boolean;
}

/** How much larger than the cache on disk a new one must be to replace it. */
const GROWTH_TO_REWRITE = 1.05;
/** When a run that started from a cache checks whether it has compiled notably more. */
const REFRESH_AFTER_MS = 10_000;

/** The runtime a cache is valid for: V8's tag covers its version and flags. */
const RUNTIME = `${process.version}-${process.arch}-${cachedDataVersionTag().toString(16)}`;

/** `<bundle file>.<size>-<CRC-32>.<runtime>.cache` */
const cacheFileName = (file: string, source: Buffer) =>
  `${basename(file)}.${source.length}-${crc32(source).toString(16)}.${RUNTIME}.cache`;

/** A cache of another version of the same bundle file, on this runtime: the new one replaces it. */
function olderVersion(name: string, { file, cacheFile }: Cached): boolean {
  return name !== basename(cacheFile) && name.startsWith(`${basename(file)}.`) && name.endsWith(`.${RUNTIME}.cache`);
}

const loaded = new Map<string, unknown>();
const cached: Cached[] = [];
let refreshTimer: NodeJS.Timeout | undefined;
let directory: string | null | undefined;

/** The cache directory, or null when caching is off or the directory cannot be trusted. */
function cacheDirectory(): string | null {
  if (directory !== undefined) return directory;
  const configured = process.env['START_WORKER_CODE_CACHE'];
  const uid = process.getuid?.() ?? -1;
  directory =
    configured === 'off' || process.env['NODE_DISABLE_COMPILE_CACHE'] === '1'
      ? null
      : configured
        ? trusted(configured, uid, statSync)
        : // in a directory anyone may write to, a symbolic link could be anyone's
          trusted(join(tmpdir(), `start-worker-code-cache-${uid}`), uid, lstatSync);
  return directory;
}

function trusted(dir: string, uid: number, statOf: (path: string) => Stats): string | null {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const stat = statOf(dir);
    const ours = uid === -1 || stat.uid === uid;
    return stat.isDirectory() && ours && (stat.mode & 0o022) === 0 ? dir : null;
  } catch {
    return null;
  }
}

/**
 * Run a CommonJS bundle file (an absolute path) and return its exports; a
 * file is run once, later calls return what it exported.
 */
export function load(file: string): unknown {
  if (loaded.has(file)) return loaded.get(file);
  const source = readFileSync(file);
  const dir = cacheDirectory();
  const cacheFile = dir && join(dir, cacheFileName(file, source));
  let cachedData: Buffer | undefined;
  try {
    if (cacheFile) cachedData = readFileSync(cacheFile);
  } catch {
    // none yet
  }
  // The same parameters as Node's own CommonJS wrapper; on one line, so line numbers in stack traces stay true.
  const script = new Script(
    `(function (exports, require, module, __filename, __dirname) {${source.toString('utf8')}\n})`,
    { filename: file, ...(cachedData ? { cachedData } : {}) },
  );
  if (cacheFile) {
    const bytes = cachedData && script.cachedDataRejected !== true ? cachedData.length : 0;
    cached.push({ file, script, cacheFile, bytes, writtenByThisRun: false });
  }
  const module = { exports: {} as unknown };
  (script.runInThisContext() as (...args: unknown[]) => void)(
    module.exports,
    createRequire(file),
    module,
    file,
    dirname(file),
  );
  loaded.set(file, module.exports);
  return module.exports;
}

/**
 * Call once startup is done: writes the cache of each file loaded without
 * one, with the functions compiled so far. A file that had one keeps it
 * unless, some seconds later, this run has compiled notably more (that
 * cache came from a run that did less, such as the embedded example): the
 * check costs a serialisation, so it waits until the worker is busy.
 */
export function saveCodeCache(): void {
  for (const file of cached) if (file.bytes === 0) write(file, file.script.createCachedData());
  refreshTimer ??= setTimeout(() => refresh(cached), REFRESH_AFTER_MS).unref();
}

/** Call before exiting: the caches this run wrote take in what it compiled since. */
export function saveCodeCacheBeforeExit(): void {
  refresh(cached.filter((file) => file.writtenByThisRun));
}

function refresh(files: Cached[]): void {
  for (const file of files) {
    const data = file.script.createCachedData();
    if (data.length > file.bytes * GROWTH_TO_REWRITE) write(file, data);
  }
}

/** Whole under a temporary name, then renamed: a reader (another runner on the machine) never sees part of one. */
function write(file: Cached, data: Buffer): void {
  const partial = `${file.cacheFile}.${process.pid}.tmp`;
  try {
    writeFileSync(partial, data, { mode: 0o600 });
    renameSync(partial, file.cacheFile);
    file.bytes = data.length;
    file.writtenByThisRun = true;
    const dir = dirname(file.cacheFile);
    for (const other of readdirSync(dir)) if (olderVersion(other, file)) rmSync(join(dir, other), { force: true });
  } catch {
    try {
      rmSync(partial, { force: true });
    } catch {
      // a slower start next time, nothing more
    }
  }
}

/**
 * import() for the bundle: code run by vm.Script cannot import an ES module
 * without an experimental option, so the bundle's own dynamic imports (of
 * runner config plugins) come here, to a file Node itself loaded.
 */
export function importModule(specifier: string): Promise<unknown> {
  return import(specifier);
}
