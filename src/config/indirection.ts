/**
 * Secret indirection: any string inside the `provider` section may be given
 * as `{env: NAME}` or `{file: PATH}`, so the static secret or an access
 * token need not sit in the YAML. Every value resolved this way is a secret.
 */
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { resolve } from 'node:path';
import { StartWorkerError, errorMessage } from '../errors.js';
import { isJsonObject, type JsonObject, type JsonValue } from '../json.js';
import { formatPath } from './validate.js';

/** `{env: NAME}` or `{file: PATH}` and nothing else. */
function indirection(value: JsonValue): { env: string } | { file: string } | undefined {
  if (!isJsonObject(value)) return undefined;
  const keys = Object.keys(value);
  if (keys.length !== 1) return undefined;
  if (keys[0] === 'env' && typeof value['env'] === 'string') return { env: value['env'] };
  if (keys[0] === 'file' && typeof value['file'] === 'string') return { file: value['file'] };
  return undefined;
}

async function readSecretFile(path: string, where: string): Promise<string> {
  let handle;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    throw new StartWorkerError(
      `${where}: cannot read secret file ${path}: ${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}`,
    );
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw new StartWorkerError(`${where}: secret file ${path} is not a regular file`);
    // Refused rather than tightened: the file may not be ours to change.
    if ((stat.mode & 0o077) !== 0) {
      throw new StartWorkerError(
        `${where}: secret file ${path} is readable by group or others (mode 0${(stat.mode & 0o777).toString(8)}); make it owner-only (chmod 600)`,
      );
    }
    const text = await handle.readFile('utf8');
    return text.endsWith('\r\n') ? text.slice(0, -2) : text.endsWith('\n') ? text.slice(0, -1) : text;
  } finally {
    await handle.close();
  }
}

/**
 * Replace every indirection inside `section` (recursively) by the value it
 * points to; relative file paths are relative to the config file's
 * directory. Returns the section, the secret values it now holds, and
 * where each came from (for --verbose; never the value).
 */
export async function resolveIndirections(
  section: JsonValue,
  path: string[],
  env: NodeJS.ProcessEnv,
  configDir: string,
): Promise<{ value: JsonValue; secrets: string[]; sources: string[] }> {
  const secrets: string[] = [];
  const sources: string[] = [];
  const visit = async (value: JsonValue, at: string[]): Promise<JsonValue> => {
    const reference = indirection(value);
    const where = formatPath(at);
    if (reference && 'env' in reference) {
      const resolved = env[reference.env];
      if (resolved === undefined)
        throw new StartWorkerError(`${where}: environment variable ${reference.env} is not set`);
      secrets.push(resolved);
      sources.push(`${where}: from the environment variable ${reference.env} (a secret; not shown)`);
      return resolved;
    }
    if (reference && 'file' in reference) {
      const resolved = await readSecretFile(resolve(configDir, reference.file), where);
      secrets.push(resolved);
      sources.push(`${where}: from the file ${resolve(configDir, reference.file)} (a secret; not shown)`);
      return resolved;
    }
    if (Array.isArray(value)) return Promise.all(value.map((item, index) => visit(item, [...at, String(index)])));
    if (isJsonObject(value)) {
      const result: JsonObject = {};
      for (const [key, item] of Object.entries(value)) {
        Object.defineProperty(result, key, {
          value: await visit(item, [...at, key]),
          enumerable: true,
          writable: true,
          configurable: true,
        });
      }
      return result;
    }
    return value;
  };
  return { value: await visit(section, path), secrets, sources };
}
