import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { errorMessage, StartWorkerError } from '../errors.js';

/** A runner config larger than this is certainly a mistake. */
const MAX_CONFIG_BYTES = 16 * 1024 * 1024;

export interface PrivateFileRead {
  bytes: Buffer;
  warnings: string[];
}

function octal(mode: number): string {
  return `0${(mode & 0o777).toString(8).padStart(3, '0')}`;
}

function fileKind(stat: {
  isDirectory(): boolean;
  isFIFO(): boolean;
  isCharacterDevice(): boolean;
  isBlockDevice(): boolean;
  isSocket(): boolean;
}): string {
  if (stat.isDirectory()) return 'a directory';
  if (stat.isFIFO()) return 'a FIFO';
  if (stat.isCharacterDevice() || stat.isBlockDevice()) return 'a device';
  if (stat.isSocket()) return 'a socket';
  return 'not a regular file';
}

/**
 * Read a file that may hold secrets (the runner config holds the static
 * secret or an access token). It must be a regular file its owner can read.
 * When group or others may read it, `tighten` makes it owner-only (with a
 * warning); otherwise the looseness is only reported. The checks and the
 * read use one open descriptor, so the file cannot be swapped in between.
 */
export async function readPrivateFile(path: string, what: string, tighten: boolean): Promise<PrivateFileRead> {
  let handle: FileHandle;
  try {
    // O_NONBLOCK: opening a FIFO must not hang waiting for a writer.
    handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new StartWorkerError(`${what} ${path}: no such file`);
    if (code === 'EACCES')
      throw new StartWorkerError(`${what} ${path}: permission denied; run start-worker as the file's owner`);
    throw new StartWorkerError(`${what} ${path}: cannot open: ${errorMessage(err)}`);
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) {
      throw new StartWorkerError(`${what} ${path}: is ${fileKind(stat)}; it must be a regular file`);
    }
    if ((stat.mode & 0o400) === 0) {
      throw new StartWorkerError(
        `${what} ${path}: its owner cannot read it (mode ${octal(stat.mode)}); run chmod 600 ${path}`,
      );
    }
    if (stat.size > MAX_CONFIG_BYTES) {
      throw new StartWorkerError(
        `${what} ${path}: is ${stat.size} bytes, larger than the limit of ${MAX_CONFIG_BYTES}`,
      );
    }
    const warnings: string[] = [];
    if ((stat.mode & 0o077) !== 0) {
      const mode = octal(stat.mode);
      if (tighten) {
        const tightened = stat.mode & 0o700;
        try {
          await handle.chmod(tightened);
        } catch (err) {
          throw new StartWorkerError(
            `${what} ${path}: group or others may read it (mode ${mode}) and it cannot be made private (${errorMessage(err)}); run chmod 600 ${path}`,
          );
        }
        warnings.push(
          `${what} ${path} was readable by group or others (mode ${mode}); tightened it to ${octal(tightened)}. Create it owner-only in your image.`,
        );
      } else {
        warnings.push(
          `${what} ${path} is readable by group or others (mode ${mode}); start-worker will tighten it to owner-only when it runs`,
        );
      }
    }
    const bytes = await handle.readFile();
    return { bytes, warnings };
  } finally {
    await handle.close();
  }
}

/** Decode UTF-8 strictly (a leading BOM is dropped); invalid bytes are an error naming the line. */
export function decodeUtf8(bytes: Buffer, path: string, what: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    const lenient = bytes.toString('utf8');
    const line = lenient.slice(0, lenient.indexOf('\uFFFD')).split('\n').length;
    throw new StartWorkerError(`${what} ${path}: line ${line}: not valid UTF-8; save the file as UTF-8`);
  }
}
