/**
 * Writing the files that worker-manager and secrets hand over: plain files
 * and zip archives, often with secret content. Everything is decoded and
 * checked before the first byte is written, so a bad file leaves nothing of
 * its set behind; each file is written atomically.
 */
import { lstat, mkdir, realpath } from 'node:fs/promises';
import { dirname, isAbsolute, join, posix, relative, sep } from 'node:path';
import type AdmZip from 'adm-zip';
import { StartWorkerError, errorMessage } from './errors.js';
import type { Logger } from './logging/logger.js';
import type { FileDescriptor } from './state.js';
import { writeFileAtomic } from './util/atomic-write.js';
import { importCommonJs } from './util/import-cjs.js';

export interface FileLimits {
  /** Most entries a zip may have. */
  maxZipEntries: number;
  /** Most bytes a zip may expand to, all entries together. */
  maxZipBytes: number;
}

export const DEFAULT_FILE_LIMITS: FileLimits = { maxZipEntries: 100_000, maxZipBytes: 1024 ** 3 };

const DEFAULT_FILE_MODE = 0o600;
const DIRECTORY_MODE = 0o755;
const ZIP_FILE_MODE = 0o644;
const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;

interface ZipEntryPlan {
  /** Path relative to the target directory, '/'-separated, normalized. */
  name: string;
  directory: boolean;
  mode: number;
  entry: AdmZip.IZipEntry;
}

type PlannedFile =
  | { format: 'file'; label: string; path: string; bytes: Buffer; mode: number }
  | { format: 'zip'; label: string; path: string; entries: ZipEntryPlan[] };

/** "file 'description' (path)", the way errors name a file. */
function labelOf(file: FileDescriptor, index: number): string {
  const description =
    typeof file.description === 'string' && file.description !== '' ? `'${file.description}'` : `#${index + 1}`;
  return `file ${description} (${typeof file.path === 'string' ? file.path : 'no path'})`;
}

function decodeBase64(content: unknown, label: string): Buffer {
  if (typeof content !== 'string') throw new StartWorkerError(`${label}: content must be a string`);
  const compact = content.replace(/\s+/g, '');
  if (compact.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(compact)) {
    throw new StartWorkerError(`${label}: content is not valid base64`);
  }
  return Buffer.from(compact, 'base64');
}

function parseMode(mode: unknown, label: string): number {
  if (mode === undefined) return DEFAULT_FILE_MODE;
  if (typeof mode !== 'string' || !/^0?[0-7]{3,4}$/.test(mode)) {
    throw new StartWorkerError(`${label}: mode must be an octal string such as "0600"`);
  }
  const value = parseInt(mode, 8);
  if ((value & 0o7000) !== 0)
    throw new StartWorkerError(`${label}: mode ${mode} has setuid, setgid or sticky bits, which are not allowed`);
  return value;
}

/** Check a zip archive entry by entry (names, types, counts, sizes) and that every entry decompresses. */
async function planZip(bytes: Buffer, label: string, limits: FileLimits): Promise<ZipEntryPlan[]> {
  const AdmZipClass = (await importCommonJs(() => import('adm-zip'))) as unknown as typeof AdmZip;
  let entries: AdmZip.IZipEntry[];
  try {
    entries = new AdmZipClass(bytes).getEntries();
  } catch (err) {
    throw new StartWorkerError(`${label}: not a readable zip archive (${errorMessage(err)})`);
  }
  if (entries.length > limits.maxZipEntries) {
    throw new StartWorkerError(
      `${label}: the archive has ${entries.length} entries, more than the limit of ${limits.maxZipEntries} (fileLimits.maxZipEntries)`,
    );
  }
  let totalBytes = 0;
  const plans = entries.map((entry): ZipEntryPlan => {
    const rawName = entry.entryName;
    const name = rawName.replace(/\\/g, '/');
    if (name.includes('\0')) throw new StartWorkerError(`${label}: entry name contains a NUL byte`);
    if (name.startsWith('/') || /^[A-Za-z]:/.test(name))
      throw new StartWorkerError(`${label}: entry '${rawName}' has an absolute name`);
    const normalized = posix.normalize(name).replace(/\/+$/, '');
    if (normalized === '..' || normalized.startsWith('../')) {
      throw new StartWorkerError(`${label}: entry '${rawName}' would be written outside the target directory`);
    }
    // The upper 16 bits of the external attributes hold a Unix mode when the archive was made on Unix.
    const madeOnUnix = entry.header.made >> 8 === 3;
    const unixMode = madeOnUnix ? entry.header.attr >>> 16 : 0;
    const type = unixMode & S_IFMT;
    if (type !== 0 && type !== S_IFREG && type !== S_IFDIR) {
      throw new StartWorkerError(
        `${label}: entry '${rawName}' is a ${type === 0o120000 ? 'symbolic link' : 'device or other special file'}, which is not allowed`,
      );
    }
    const directory = entry.isDirectory || type === S_IFDIR;
    totalBytes += entry.header.size;
    if (totalBytes > limits.maxZipBytes) {
      throw new StartWorkerError(
        `${label}: the archive expands to more than ${limits.maxZipBytes} bytes (fileLimits.maxZipBytes)`,
      );
    }
    const permissions = unixMode & 0o777;
    const mode = permissions === 0 ? (directory ? DIRECTORY_MODE : ZIP_FILE_MODE) : permissions & ~0o022;
    return { name: normalized === '.' ? '' : normalized, directory, mode, entry };
  });
  // Decompress every entry once now (sizes are capped by the headers checked
  // above), so a corrupt entry is found before anything is written.
  for (const plan of plans) {
    if (plan.directory) continue;
    try {
      plan.entry.getData();
    } catch (err) {
      throw new StartWorkerError(`${label}: entry '${plan.entry.entryName}' is corrupt (${errorMessage(err)})`);
    }
  }
  return plans;
}

async function plan(files: FileDescriptor[], limits: FileLimits): Promise<PlannedFile[]> {
  const plans: PlannedFile[] = [];
  for (const [index, file] of files.entries()) {
    const label = labelOf(file, index);
    if (typeof file.path !== 'string' || !isAbsolute(file.path))
      throw new StartWorkerError(`${label}: path must be an absolute path`);
    if (file.encoding !== 'base64')
      throw new StartWorkerError(`${label}: encoding must be "base64", not ${JSON.stringify(file.encoding)}`);
    const bytes = decodeBase64(file.content, label);
    if (file.format === 'file') {
      plans.push({ format: 'file', label, path: file.path, bytes, mode: parseMode(file.mode, label) });
    } else if (file.format === 'zip') {
      plans.push({ format: 'zip', label, path: file.path, entries: await planZip(bytes, label, limits) });
    } else {
      throw new StartWorkerError(`${label}: format must be "file" or "zip", not ${JSON.stringify(file.format)}`);
    }
  }
  return plans;
}

/** Refuse to write through a symbolic link that already exists inside the target directory. */
async function assertInside(root: string, path: string, label: string): Promise<void> {
  const parent = await realpath(dirname(path));
  const rel = relative(root, parent);
  if (rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel)) {
    throw new StartWorkerError(
      `${label}: '${relative(root, path)}' would be written outside the target directory (through a symbolic link)`,
    );
  }
}

async function writeZip(planned: Extract<PlannedFile, { format: 'zip' }>): Promise<void> {
  await mkdir(planned.path, { recursive: true, mode: DIRECTORY_MODE });
  const root = await realpath(planned.path);
  for (const entry of planned.entries) {
    const target = join(root, entry.name);
    if (entry.directory) {
      await mkdir(target, { recursive: true, mode: entry.mode });
      continue;
    }
    await mkdir(dirname(target), { recursive: true, mode: DIRECTORY_MODE });
    await assertInside(root, target, planned.label);
    const existing = await lstat(target).catch(() => undefined);
    if (existing?.isSymbolicLink())
      throw new StartWorkerError(`${planned.label}: '${entry.name}' exists as a symbolic link; not writing through it`);
    await writeFileAtomic(target, entry.entry.getData(), entry.mode);
  }
}

/**
 * Decode and check every file, then write them: `file` atomically with its
 * mode (0600 by default), `zip` extracted into the directory `path`.
 */
export async function writeFiles(files: FileDescriptor[], limits: FileLimits, log: Logger): Promise<void> {
  if (files.length === 0) return;
  const plans = await plan(files, limits);
  for (const planned of plans) {
    try {
      if (planned.format === 'file') {
        await mkdir(dirname(planned.path), { recursive: true, mode: DIRECTORY_MODE });
        await writeFileAtomic(planned.path, planned.bytes, planned.mode);
      } else {
        await writeZip(planned);
      }
    } catch (err) {
      if (err instanceof StartWorkerError) throw err;
      throw new StartWorkerError(`${planned.label}: cannot write it: ${errorMessage(err)}`);
    }
    log.info(`wrote ${planned.label}`);
  }
}
