/** Worker configuration and files from the Taskcluster secrets service. */
import { StartWorkerError, errorMessage } from '../errors.js';
import type { Logger } from '../logging/logger.js';
import type { SecretRead } from '../secret-value.js';
import { settledInOrder } from '../util/in-order.js';
import type { RunState } from '../state.js';
import { getSecretCall, TaskclusterCallError, type CallSettings } from './client.js';
import { withStartupRetries } from './startup-retry.js';

/**
 * Read `worker-type:<pool>` (legacy; 404 and 403 are fine) and
 * `worker-pool:<pool>` (404 and 410 are fine, with a warning) at once; the
 * secrets found, in that order (the later one wins on merge).
 */
export async function readTaskclusterSecrets(
  state: RunState,
  settings: CallSettings,
  log: Logger,
): Promise<SecretRead[]> {
  const target = { ...settings, rootUrl: state.rootUrl, credentials: state.credentials };
  const sources = [
    { name: `worker-type:${state.workerPoolId}`, absent: [404, 403] },
    { name: `worker-pool:${state.workerPoolId}`, absent: [404, 410] },
  ];
  const reads = await settledInOrder(
    sources.map(async ({ name, absent }): Promise<SecretRead | undefined> => {
      try {
        return {
          source: `secret ${name}`,
          value: await withStartupRetries(`reading secret ${name}`, settings, log, () => getSecretCall(target, name)),
        };
      } catch (err) {
        if (err instanceof TaskclusterCallError && err.statusCode !== undefined && absent.includes(err.statusCode)) {
          if (err.statusCode === 410) log.warn(`secret ${name} has expired; ignoring it`);
          else log.debug(`no secret ${name} (HTTP ${err.statusCode})`);
          return undefined;
        }
        throw new StartWorkerError(`cannot read worker secrets: ${errorMessage(err)}`, { cause: err });
      }
    }),
  );
  const found = reads.filter((read): read is SecretRead => read !== undefined);
  if (found.length === 0) log.warn(`no worker secrets for worker pool ${state.workerPoolId}`);
  return found;
}
