import { StartWorkerError } from '../src/errors.js';
import { isJsonObject, type JsonObject } from '../src/json.js';
import type { Logger } from '../src/logging/logger.js';
import type { Provider, ProviderPlugin, TerminationControl, TerminationRequest } from '../src/plugin.js';
import { normalizeRootUrl, type RunState } from '../src/state.js';
import { Poller } from '../src/util/poller.js';
import {
  DEFAULT_METADATA_ENDPOINT,
  GoogleMetadataClient,
  METADATA_HOST_VARIABLE,
  MetadataNotFoundError,
  isTransientMetadataError,
  metadataBaseUrl,
  type MetadataAnswer,
} from './google-metadata.js';
import { startupDeadline, withStartupRetries } from './metadata/startup-retry.js';

interface GoogleConfig {
  metadataEndpoint?: string;
  terminationPollInterval: number;
}

/** What worker-manager writes into the `taskcluster` instance attribute. */
interface UserData {
  workerPoolId: string;
  providerId: string;
  workerGroup: string;
  rootUrl: string;
}

const USER_DATA_PATH = 'instance/attributes/taskcluster';
const INSTANCE_ID_PATH = 'instance/id';
const PUBLIC_IPV4_PATH = 'instance/network-interfaces/0/access-configs/0/external-ip';

/** Provider metadata read as they are (the zone and machine type are shortened below). */
const METADATA_PATHS = {
  'project-id': 'project/project-id',
  image: 'instance/image',
  'public-hostname': 'instance/hostname',
  'local-ipv4': 'instance/network-interfaces/0/ip',
  machineType: 'instance/machine-type',
  zone: 'instance/zone',
} as const;

/** A metadata value that announces the VM is going away. */
interface Notice {
  path: string;
  announced(value: string): boolean;
  reason: TerminationRequest['reason'];
  what: string;
}

const NOTICES: readonly Notice[] = [
  { path: 'instance/preempted', announced: (value) => value.trim() === 'TRUE', reason: 'preemption', what: 'the VM is being preempted' },
  {
    path: 'instance/maintenance-event',
    announced: (value) => value.trim() === 'TERMINATE_ON_HOST_MAINTENANCE',
    reason: 'maintenance',
    what: 'host maintenance will terminate the VM',
  },
];

const MISSING_HINT = 'is this a Compute Engine VM created by worker-manager?';

/** How long the server may hold a long-poll; the client waits a little longer. */
const LONG_POLL_SECONDS = 60;
/**
 * A long-poll that comes back unchanged sooner than this was not held by
 * the server: treated as a failure so the watcher backs off instead of
 * spinning.
 */
const MIN_UNCHANGED_HOLD_MS = 1000;

const plugin: ProviderPlugin<GoogleConfig> = {
  name: 'google',
  dynamic: true,
  schema: {
    type: 'object',
    properties: {
      metadataEndpoint: {
        type: 'string',
        pattern: '^https?://[^/]',
        description: `Address of the metadata server, such as \`http://127.0.0.1:8080\` (\`/computeMetadata/v1\` is added). Wins over the environment variable \`${METADATA_HOST_VARIABLE}\` (\`host[:port]\`); the default is \`${DEFAULT_METADATA_ENDPOINT}\`. For tests and unusual networks.`,
      },
      terminationPollInterval: {
        type: 'number',
        exclusiveMinimum: 0,
        default: 1,
        description:
          'Seconds to pause before watching preemption and maintenance events again after the metadata server failed; each further failure doubles the pause, up to ten times this value. While the server works the watch is a long-poll with no pause.',
      },
    },
  },
  usage: `The provider for workers on Google Compute Engine VMs created by a
worker-manager provider of type \`google\`. Everything comes from the
metadata server (requests carry \`Metadata-Flavor: Google\`): the root URL,
provider, worker pool and worker group from the \`taskcluster\` instance
attribute that worker-manager sets, the worker ID from the instance ID, and
an identity token for the root URL as the proof of identity.

\`\`\`yaml
provider:
  providerType: google
  metadataEndpoint: http://127.0.0.1:8080   # optional; tests and unusual networks
  terminationPollInterval: 1                # optional; seconds, the pause after errors
\`\`\`

The worker location is \`{cloud: google, region, zone}\`. The provider
metadata has \`instance-id\`, \`project-id\`, \`image\`, \`instance-type\`
(such as \`n2-standard-4\`), \`zone\`, \`region\`, \`public-hostname\`,
\`local-ipv4\` and, when the VM has an external address, \`public-ipv4\`.

While the worker runs, \`instance/preempted\` and \`instance/maintenance-event\`
are long-polled (\`wait_for_change\`, resuming from the last ETag, so no change
is missed between two polls). When the VM is preempted (reason
\`preemption\`) or host maintenance will terminate it
(\`TERMINATE_ON_HOST_MAINTENANCE\`, reason \`maintenance\`), the worker gets
graceful-termination with \`finish-tasks: false\` (or its termination
signal); Compute Engine gives no deadline. start-worker refuses to start on a
VM that is already being preempted or terminated for maintenance.

Metadata requests time out after 2 s (long-polls after 65 s); at startup a
failed request is retried with backoff within \`startupRetryWindow\`. A missing value is an error naming its metadata
path. The identity token is never logged. A run restarted from
\`cacheOverRestarts\` reads only the preemption and maintenance values
before the worker starts, and refuses to start it on a VM going away.`,
  create(config, context) {
    return new GoogleProvider(config, context.log, context.runnerConfig.startupRetryWindow);
  },
};

export default plugin;

class GoogleProvider implements Provider {
  private client: GoogleMetadataClient | undefined;
  /** The last answers for the notice paths (first from the startup check): long-polls resume from their ETags. */
  private readonly noticeBaselines = new Map<string, MetadataAnswer>();
  private readonly pollers: Poller[] = [];
  private terminationRequested = false;

  constructor(
    private readonly config: GoogleConfig,
    private readonly log: Logger,
    private readonly startupRetryWindow: number,
  ) {}

  /** Resolved when first needed, so a bad address is a startup error, not a crash in create(). */
  private metadata(): GoogleMetadataClient {
    this.client ??= new GoogleMetadataClient(metadataBaseUrl(this.config.metadataEndpoint));
    return this.client;
  }

  async configureRun(state: RunState): Promise<JsonObject> {
    const metadata = this.metadata();
    this.log.info(`reading instance metadata from ${metadata.base}`);
    const deadline = startupDeadline(this.startupRetryWindow);
    const read = (path: string) => this.withStartupRetries(deadline, () => metadata.get(path));
    await this.refuseAnnouncedNotice(deadline);

    const [userDataAnswer, instanceId, publicIpv4, ...values] = await Promise.all([
      read(USER_DATA_PATH),
      read(INSTANCE_ID_PATH),
      this.withStartupRetries(deadline, () => metadata.getOptional(PUBLIC_IPV4_PATH)),
      ...Object.values(METADATA_PATHS).map((path) => read(path)),
    ]);
    const userData = parseUserData(userDataAnswer.value);
    const workerId = required(INSTANCE_ID_PATH, instanceId.value);
    const value = Object.fromEntries(
      Object.entries(METADATA_PATHS).map(([name, path], index) => [name, required(path, values[index]!.value)]),
    ) as Record<keyof typeof METADATA_PATHS, string>;
    const zone = lastSegment(value.zone);
    const region = regionOf(zone);

    state.rootUrl = normalizeRootUrl(userData.rootUrl);
    state.providerId = userData.providerId;
    state.workerPoolId = userData.workerPoolId;
    state.workerGroup = userData.workerGroup;
    // exact text: instance ids exceed 2^53
    state.workerId = workerId;
    state.workerLocation = { cloud: 'google', region, zone };
    const external = publicIpv4?.value.trim();
    state.providerMetadata = {
      'instance-id': workerId,
      'project-id': value['project-id'],
      image: value.image,
      'instance-type': lastSegment(value.machineType),
      zone,
      region,
      'public-hostname': value['public-hostname'],
      ...(external ? { 'public-ipv4': external } : {}),
      'local-ipv4': value['local-ipv4'],
    };

    // worker-manager checks that the token was made for its root URL.
    const identityPath = 'instance/service-accounts/default/identity';
    const identity = await this.withStartupRetries(
      deadline,
      () => metadata.get(identityPath, { query: { audience: userData.rootUrl, format: 'full' } }),
      'the VM needs a service account to prove its identity to worker-manager',
    );
    const token = required(identityPath, identity.value);
    this.log.redactor.add(token);
    return { token };
  }

  async useCachedRun(): Promise<void> {
    // A restart, as a first start, must not run a worker on a VM going away.
    await this.refuseAnnouncedNotice(startupDeadline(this.startupRetryWindow));
  }

  /**
   * Refuse a VM that is already going away (Taskcluster checks preemption
   * only); the answers are the baselines the watchers' long-polls resume from.
   */
  private async refuseAnnouncedNotice(deadline: number): Promise<void> {
    const metadata = this.metadata();
    const answers = await Promise.all(NOTICES.map((notice) => this.withStartupRetries(deadline, () => metadata.get(notice.path))));
    NOTICES.forEach((notice, index) => {
      const answer = answers[index]!;
      if (notice.announced(answer.value)) {
        throw new StartWorkerError(`Google metadata ${notice.path} is ${answer.value.trim()}: ${notice.what}, so the worker is not started`);
      }
      this.noticeBaselines.set(notice.path, answer);
    });
  }

  workerStarted(control: TerminationControl): void {
    const errorDelayMs = this.config.terminationPollInterval * 1000;
    for (const notice of NOTICES) {
      const poller = new Poller((signal) => this.pollNotice(notice, control, signal), {
        name: `watching Google metadata ${notice.path}`,
        intervalMs: 0, // a long-poll waits on the server
        errorDelayMs,
        maxBackoffMs: errorDelayMs * 10,
        log: this.log,
      });
      this.pollers.push(poller);
      poller.start();
    }
    this.log.info(`watching ${NOTICES.map((notice) => notice.path).join(' and ')} for the VM going away`);
  }

  /** One long-poll of a notice path; true (stop polling) once termination has been requested. */
  private async pollNotice(notice: Notice, control: TerminationControl, signal: AbortSignal): Promise<boolean> {
    if (this.terminationRequested) return true;
    // configureRun or useCachedRun read every notice path first
    const baseline = this.noticeBaselines.get(notice.path)!;
    const started = Date.now();
    const answer = await this.metadata().waitForChange(notice.path, { lastEtag: baseline.etag, timeoutSec: LONG_POLL_SECONDS, signal });
    const unchanged = answer.etag === baseline.etag && answer.value === baseline.value;
    if (unchanged && Date.now() - started < MIN_UNCHANGED_HOLD_MS && !notice.announced(answer.value)) {
      throw new StartWorkerError(`Google metadata ${notice.path}: the server answered a wait_for_change request at once without a change`);
    }
    this.noticeBaselines.set(notice.path, answer);
    if (notice.announced(answer.value)) {
      this.requestTermination(control, notice, answer.value);
      return true;
    }
    if (answer.value !== baseline.value) this.log.info(`Google metadata ${notice.path} is now ${answer.value.trim()}`);
    return false;
  }

  async workerFinished(): Promise<void> {
    await Promise.all(this.pollers.map((poller) => poller.stop()));
  }

  private requestTermination(control: TerminationControl, notice: Notice, value: string): void {
    if (this.terminationRequested) return;
    this.terminationRequested = true;
    this.log.warn(`Google metadata ${notice.path} is ${value.trim()}: ${notice.what}; asking the worker to stop now`);
    control.requestTermination({ finishTasks: false, reason: notice.reason });
  }

  /** Startup requests: retries of transient failures within the window; a missing value is an error naming its path. */
  private async withStartupRetries<T>(deadline: number, operation: () => Promise<T>, missingHint = MISSING_HINT): Promise<T> {
    try {
      return await withStartupRetries(operation, {
        deadline,
        windowSeconds: this.startupRetryWindow,
        isTransient: isTransientMetadataError,
        log: this.log,
        hint: `check that this is a Compute Engine VM, or where metadataEndpoint / ${METADATA_HOST_VARIABLE} point`,
      });
    } catch (err) {
      if (err instanceof MetadataNotFoundError) throw new StartWorkerError(`${err.message}; it is required: ${missingHint}`, { cause: err });
      throw err;
    }
  }

}

function required(path: string, value: string): string {
  const trimmed = value.trim();
  if (trimmed === '') throw new StartWorkerError(`Google metadata ${path} is empty; it is required`);
  return trimmed;
}

function lastSegment(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

/** `us-central1-a` → `us-central1`. */
function regionOf(zone: string): string {
  const dash = zone.lastIndexOf('-');
  if (dash <= 0) throw new StartWorkerError(`Google metadata instance/zone: '${zone}' is not a zone name such as us-central1-a`);
  return zone.slice(0, dash);
}

function parseUserData(text: string): UserData {
  const where = `Google metadata ${USER_DATA_PATH}`;
  const hint = 'worker-manager sets it on the VMs it creates';
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new StartWorkerError(`${where} is not JSON; ${hint}`);
  }
  if (!isJsonObject(parsed)) throw new StartWorkerError(`${where} must be a JSON object; ${hint}`);
  const field = (name: keyof UserData): string => {
    const value = parsed[name];
    if (typeof value !== 'string' || value === '') throw new StartWorkerError(`${where} has no ${name}; ${hint}`);
    return value;
  };
  return { workerPoolId: field('workerPoolId'), providerId: field('providerId'), workerGroup: field('workerGroup'), rootUrl: field('rootUrl') };
}
