/**
 * The run state cached over restarts (`cacheOverRestarts`): credentials and
 * the registration secret included, so the file is private from its first
 * byte and is never trusted unless it is still private and ours.
 */
import { constants } from 'node:fs';
import { lstat, open } from 'node:fs/promises';
import { StartWorkerError, errorMessage } from './errors.js';
import { isJsonObject, type JsonValue } from './json.js';
import type { RunState } from './state.js';
import { writeFileAtomic } from './util/atomic-write.js';

/** Write the state: JSON, mode 0600, atomically. */
export async function writeStateCache(path: string, state: RunState): Promise<void> {
  try {
    await writeFileAtomic(path, `${JSON.stringify(state)}\n`, 0o600);
  } catch (err) {
    throw new StartWorkerError(`cannot write the state cache ${path}: ${errorMessage(err)}; check cacheOverRestarts`);
  }
}

const REQUIRED_STRINGS = ['rootUrl', 'workerPoolId', 'workerGroup', 'workerId', 'providerId'] as const;

function corrupt(path: string, why: string): StartWorkerError {
  return new StartWorkerError(`state cache ${path} is corrupt or truncated (${why}); delete it to start a fresh run`);
}

/** Check that parsed JSON has the shape of a run state. */
function parseState(value: JsonValue, path: string): RunState {
  if (!isJsonObject(value)) throw corrupt(path, 'not a JSON object');
  // Taskcluster's worker-runner writes Go field names (RootURL, WorkerPoolID, Credentials.ClientID).
  if (!('rootUrl' in value) && ('RootURL' in value || 'WorkerPoolID' in value)) {
    throw new StartWorkerError(
      `state cache ${path} was written by another runner version (Taskcluster's worker-runner); delete it, and start-worker starts a fresh run`,
    );
  }
  for (const key of REQUIRED_STRINGS) if (typeof value[key] !== 'string') throw corrupt(path, `${key} is missing`);
  const credentials = value['credentials'];
  if (
    !isJsonObject(credentials) ||
    typeof credentials['clientId'] !== 'string' ||
    typeof credentials['accessToken'] !== 'string'
  ) {
    throw corrupt(path, 'credentials are missing');
  }
  if (
    !isJsonObject(value['workerConfig']) ||
    !isJsonObject(value['providerMetadata']) ||
    !isJsonObject(value['workerLocation'])
  ) {
    throw corrupt(path, 'workerConfig, providerMetadata or workerLocation is missing');
  }
  if (!Array.isArray(value['files']) || !Array.isArray(value['secretConfigPaths']))
    throw corrupt(path, 'files are missing');
  if (value['credentialsExpire'] !== undefined && Number.isNaN(Date.parse(String(value['credentialsExpire'])))) {
    throw corrupt(path, 'credentialsExpire is not a time');
  }
  return value as unknown as RunState;
}

/**
 * Read a cached state, or undefined when there is none. The file must be a
 * regular file (not a link) owned by this user with no group or other
 * permissions; anything else is refused, never loosened or followed.
 */
export async function readStateCache(path: string): Promise<RunState | undefined> {
  let info;
  try {
    info = await lstat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new StartWorkerError(`cannot read the state cache ${path}: ${errorMessage(err)}`);
  }
  const uid = process.getuid?.();
  if (!info.isFile())
    throw new StartWorkerError(
      `state cache ${path} is not a regular file (a link, directory or device); refusing to use it`,
    );
  if (uid !== undefined && info.uid !== uid) {
    throw new StartWorkerError(
      `state cache ${path} is owned by uid ${info.uid}, not by this user (uid ${uid}); refusing to use it`,
    );
  }
  if ((info.mode & 0o077) !== 0) {
    throw new StartWorkerError(
      `state cache ${path} may be read or changed by group or others (mode 0${(info.mode & 0o777).toString(8)}); refusing to use it. Delete it to start a fresh run.`,
    );
  }
  // O_NOFOLLOW and a second check on the open descriptor: the file cannot be swapped for a link in between.
  const handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const opened = await handle.stat();
    if (opened.ino !== info.ino || opened.dev !== info.dev)
      throw new StartWorkerError(`state cache ${path} changed while it was being opened; refusing to use it`);
    const text = await handle.readFile('utf8');
    let value: JsonValue;
    try {
      value = JSON.parse(text) as JsonValue;
    } catch (err) {
      throw corrupt(path, errorMessage(err));
    }
    return parseState(value, path);
  } finally {
    await handle.close();
  }
}
