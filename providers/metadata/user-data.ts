/**
 * Who the instance works for, as worker-manager tells the instances it
 * creates: a JSON object with workerPoolId, providerId, rootUrl and
 * workerGroup (aws user data, google's `taskcluster` attribute; azure
 * writes the same four as tags).
 */
import { StartWorkerError, errorMessage } from '../../src/errors.js';
import { isJsonObject, type JsonObject } from '../../src/json.js';
import { normalizeRootUrl, type RunState } from '../../src/state.js';

const USER_DATA_KEYS = ['workerPoolId', 'providerId', 'rootUrl', 'workerGroup'] as const;
export type WorkerManagerUserData = Record<(typeof USER_DATA_KEYS)[number], string>;

/**
 * Parse the user data; `where` names it in messages (with its metadata
 * path), `hint` says where it should come from.
 */
export function parseUserData(text: string, where: string, hint: string): WorkerManagerUserData {
  const parsed = parseJsonObject(text, where, hint);
  const missing = USER_DATA_KEYS.filter((key) => typeof parsed[key] !== 'string' || parsed[key] === '');
  if (missing.length > 0) throw new StartWorkerError(`${where} has no ${missing.join(', ')}; ${hint}`);
  return Object.fromEntries(USER_DATA_KEYS.map((key) => [key, parsed[key] as string])) as WorkerManagerUserData;
}

/** A JSON object from the metadata service; `hint`, when given, ends the message. */
export function parseJsonObject(text: string, where: string, hint?: string): JsonObject {
  const advice = hint === undefined ? '' : `; ${hint}`;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new StartWorkerError(`${where} is not JSON (${errorMessage(err)})${advice}`);
  }
  if (!isJsonObject(parsed)) throw new StartWorkerError(`${where} is not a JSON object${advice}`);
  return parsed;
}

/** The run state's part that worker-manager decided. */
export function applyUserData(state: RunState, userData: WorkerManagerUserData): void {
  state.rootUrl = normalizeRootUrl(userData.rootUrl);
  state.providerId = userData.providerId;
  state.workerPoolId = userData.workerPoolId;
  state.workerGroup = userData.workerGroup;
}
