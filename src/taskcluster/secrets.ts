/** Worker configuration and files from the Taskcluster secrets service. */
import { StartWorkerError } from '../errors.js';
import type { JsonValue } from '../json.js';
import type { Logger } from '../logging/logger.js';
import { applySecret, parseSecretValue } from '../secret-value.js';
import type { RunState } from '../state.js';
import { getSecretCall, TaskclusterCallError, type CallSettings } from './client.js';
import { withStartupRetries } from './startup-retry.js';

/**
 * Read `worker-type:<pool>` (legacy; 404 and 403 are fine) and then
 * `worker-pool:<pool>` (404 and 410 are fine, with a warning); the later one
 * wins on merge.
 */
export async function readTaskclusterSecrets(state: RunState, settings: CallSettings, log: Logger): Promise<void> {
  const target = { ...settings, rootUrl: state.rootUrl, credentials: state.credentials };
  const sources = [
    { name: `worker-type:${state.workerPoolId}`, absent: [404, 403] },
    { name: `worker-pool:${state.workerPoolId}`, absent: [404, 410] },
  ];
  let found = 0;
  for (const { name, absent } of sources) {
    let value: JsonValue;
    try {
      value = await withStartupRetries(`reading secret ${name}`, settings, log, () => getSecretCall(target, name));
    } catch (err) {
      if (err instanceof TaskclusterCallError && err.statusCode !== undefined && absent.includes(err.statusCode)) {
        if (err.statusCode === 410) log.warn(`secret ${name} has expired; ignoring it`);
        else log.debug(`no secret ${name} (HTTP ${err.statusCode})`);
        continue;
      }
      throw new StartWorkerError(`cannot read worker secrets: ${(err as Error).message}`);
    }
    applySecret(state, parseSecretValue(value, `secret ${name}`));
    found += 1;
    log.info(`read worker configuration from secret ${name}`);
  }
  if (found === 0) log.warn(`no worker secrets for worker pool ${state.workerPoolId}`);
}
