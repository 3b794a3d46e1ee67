/**
 * libfaketime (Debian's `faketime` package) for tests that move a process's
 * realtime clock while it runs, as a host that hibernates does: Date.now()
 * jumps, Node's timers (monotonic clock) do not.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, renameSync, writeFileSync } from 'node:fs';

/** Where Debian, Ubuntu and other distributions put the library. */
const KNOWN_PATHS = [
  '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1',
  '/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1',
  '/usr/lib/arm-linux-gnueabihf/faketime/libfaketime.so.1',
  '/usr/lib64/faketime/libfaketime.so.1',
  '/usr/lib/faketime/libfaketime.so.1',
  '/usr/local/lib/faketime/libfaketime.so.1',
];

export const FAKETIME_MISSING =
  'libfaketime is not installed (Debian/Ubuntu package `faketime`: apt-get install faketime)';

/** The path of libfaketime.so.1, or undefined when it is not installed. */
export function findLibfaketime(): string | undefined {
  const known = KNOWN_PATHS.find((path) => existsSync(path));
  if (known !== undefined) return known;
  try {
    const listed = execFileSync('dpkg', ['-L', 'libfaketime'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    return listed.split('\n').find((path) => path.endsWith('/libfaketime.so.1') && existsSync(path));
  } catch {
    return undefined; // no dpkg, or the package is not installed
  }
}

/**
 * The environment that puts a process (and its children, which inherit it)
 * under libfaketime, reading its offset from `offsetFile` on every clock
 * read (FAKETIME_NO_CACHE: the default caches it for 10 s) and leaving the
 * monotonic clock alone (a suspended host's CLOCK_MONOTONIC does not advance).
 */
export function faketimeEnv(library: string, offsetFile: string): Record<string, string> {
  return {
    LD_PRELOAD: library,
    FAKETIME_TIMESTAMP_FILE: offsetFile,
    FAKETIME_NO_CACHE: '1',
    FAKETIME_DONT_FAKE_MONOTONIC: '1',
  };
}

/**
 * Set the offset, such as `+0` or `+10m`. Written to a new file and renamed
 * over the old one: libfaketime rereads the file on every clock read and
 * must never see it half-written.
 */
export function setClockOffset(offsetFile: string, offset: string): void {
  const next = `${offsetFile}.next`;
  writeFileSync(next, `${offset}\n`);
  renameSync(next, offsetFile);
}
