import { StartWorkerError } from '../src/errors.js';
import { presentEntries, type JsonObject } from '../src/json.js';
import type { Logger } from '../src/logging/logger.js';
import type { Provider, ProviderPlugin, TerminationRequester, TerminationRequest } from '../src/plugin.js';
import type { JsonSchema } from '../src/schema.js';
import type { RunState } from '../src/state.js';
import { settledInOrder } from '../src/util/in-order.js';
import { HttpRequestError, type HttpResult } from '../src/util/http.js';
import {
  checkMetadataEndpoint,
  metadataEndpointSchema,
  resolveMetadataEndpoint,
  type EndpointProblem,
  type EndpointSettings,
} from './metadata/endpoint.js';
import { MetadataNotFoundError, MetadataPermanentError } from './metadata/errors.js';
import { MetadataService, type StatusFailure } from './metadata/request.js';
import { StartupRetries } from './metadata/startup-retry.js';
import { applyUserData, parseUserData } from './metadata/user-data.js';
import {
  TerminationWatcher,
  terminationPollIntervalSchema,
  WATCH_FIRST_ERROR_DELAY_MS,
  WATCH_MAX_BACKOFF_MS,
} from './metadata/watcher.js';

interface GoogleConfig {
  metadataEndpoint?: string;
  terminationPollInterval: number;
}

/** GCE_METADATA_HOST is gcp-metadata's variable: `host[:port]` of the metadata server. */
const ENDPOINT: EndpointSettings = {
  default: 'http://metadata.google.internal',
  variable: 'GCE_METADATA_HOST',
  // a URL is accepted too
  urlOfVariable: (host) => (host.includes('://') ? host : `http://${host}`),
  apiPrefix: '/computeMetadata/v1',
  describe: describeGoogleEndpointProblem,
};

const USER_DATA_PATH = 'instance/attributes/taskcluster';
const INSTANCE_ID_PATH = 'instance/id';
const PUBLIC_IPV4_PATH = 'instance/network-interfaces/0/access-configs/0/external-ip';
const IDENTITY_PATH = 'instance/service-accounts/default/identity';

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
  {
    path: 'instance/preempted',
    announced: (value) => value.trim() === 'TRUE',
    reason: 'preemption',
    what: 'the VM is being preempted',
  },
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
/** How much longer than its `timeout_sec` a long-poll may take before we give up on it. */
const LONG_POLL_GRACE_MS = 5000;
/**
 * A long-poll that comes back unchanged sooner than this was not held by
 * the server (a proxy in the way, say): treated as a failure, so the
 * watcher backs off.
 */
const MIN_UNCHANGED_HOLD_MS = 1000;

const schema: JsonSchema = {
  type: 'object',
  properties: {
    metadataEndpoint: {
      ...metadataEndpointSchema(
        ENDPOINT,
        `Address of the metadata server, such as \`http://127.0.0.1:8080\` (\`/computeMetadata/v1\` is added; \`${ENDPOINT.variable}\` is \`host[:port]\`)`,
      ),
      pattern: '^https?://[^/]',
    },
    terminationPollInterval: terminationPollIntervalSchema(
      'the pause between two long-polls of the preemption and maintenance values (a change during the pause is still seen: the next long-poll resumes from the last ETag and is answered at once)',
    ),
  },
};

const usage = `The provider for workers on Google Compute Engine VMs created by a
worker-manager provider of type \`google\`. Everything comes from the
metadata server (requests carry \`Metadata-Flavor: Google\`): the root URL,
provider, worker pool and worker group from the \`taskcluster\` instance
attribute that worker-manager sets, the worker ID from the instance ID, and
an identity token for the root URL as the proof of identity.

\`\`\`yaml
provider:
  providerType: google
  metadataEndpoint: http://127.0.0.1:8080   # optional; tests and unusual networks
  terminationPollInterval: 1                # optional; seconds between two long-polls
\`\`\`

The worker location is \`{cloud: google, region, zone}\`. The provider
metadata has \`instance-id\`, \`project-id\`, \`image\`, \`instance-type\`
(such as \`n2-standard-4\`), \`zone\`, \`region\`, \`public-hostname\`,
\`local-ipv4\` and, when the VM has an external address, \`public-ipv4\`.

While the worker runs, \`instance/preempted\` and \`instance/maintenance-event\`
are long-polled (\`wait_for_change\`, resuming from the last ETag, so no change
is missed between two polls), with a pause of \`terminationPollInterval\`
seconds between two long-polls. When the VM is preempted (reason
\`preemption\`) or host maintenance will terminate it
(\`TERMINATE_ON_HOST_MAINTENANCE\`, reason \`maintenance\`), the worker gets
graceful-termination with \`finish-tasks: false\` (or its termination
signal); Compute Engine gives no deadline. start-worker refuses to start on a
VM that is already being preempted or terminated for maintenance.

A failed long-poll is logged and retried after a pause that doubles with
each failure, from \`terminationPollInterval\` (at least ${WATCH_FIRST_ERROR_DELAY_MS / 1000} s) up to ${WATCH_MAX_BACKOFF_MS / 1000} s
(or \`terminationPollInterval\`, if longer); it never stops the worker.

Metadata requests time out after 2 s (long-polls after ${LONG_POLL_SECONDS + LONG_POLL_GRACE_MS / 1000} s); at startup a
failed request is retried with backoff within \`startupRetryWindow\`. A missing value is an error naming its metadata
path. The identity token is never logged. A run restarted from
\`cacheOverRestarts\` reads only the preemption and maintenance values
before the worker starts, and refuses to start it on a VM going away.`;

class GoogleProvider implements Provider {
  private client: GoogleMetadataClient | undefined;
  /** The last answers for the notice paths (first from the startup check): long-polls resume from their ETags. */
  private readonly noticeBaselines = new Map<string, MetadataAnswer>();
  private readonly watcher: TerminationWatcher;

  constructor(
    private readonly config: GoogleConfig,
    private readonly log: Logger,
    private readonly startupRetryWindow: number,
  ) {
    const checks = NOTICES.map((notice) => ({
      name: `watching Google metadata ${notice.path}`,
      check: (signal: AbortSignal) => this.checkNotice(notice, signal),
    }));
    // one preemption or maintenance notice is the last word
    this.watcher = new TerminationWatcher(checks, {
      intervalMs: config.terminationPollInterval * 1000,
      afterStopNow: 'stop',
      log,
    });
  }

  async configureRun(state: RunState): Promise<JsonObject> {
    const metadata = this.metadata();
    this.log.info(`reading instance metadata from ${metadata.base}`);
    const startup = this.startupRetries();
    const read = (path: string) => this.startupRead(startup, () => metadata.get(path));
    // Everything at once, and the identity token as soon as the user data names its audience
    // (worker-manager checks that the token was made for its root URL): boot time matters.
    const userDataRead = read(USER_DATA_PATH).then((answer) =>
      parseUserData(answer.value, `Google metadata ${USER_DATA_PATH}`, 'worker-manager sets it on the VMs it creates'),
    );
    const identityRead = userDataRead.then((userData) =>
      this.startupRead(
        startup,
        () => metadata.get(IDENTITY_PATH, { query: { audience: userData.rootUrl, format: 'full' } }),
        'the VM needs a service account to prove its identity to worker-manager',
      ),
    );
    const [userData, instanceId, publicIpv4, identity, ...values] = await settledInOrder([
      // a VM already going away is refused first, whatever else failed
      this.refuseAnnouncedNotice(startup).then(() => userDataRead),
      read(INSTANCE_ID_PATH),
      this.startupRead(startup, () => metadata.getOptional(PUBLIC_IPV4_PATH)),
      identityRead,
      ...Object.values(METADATA_PATHS).map((path) => read(path)),
    ]);
    const workerId = required(INSTANCE_ID_PATH, instanceId.value);
    const value = Object.fromEntries(
      Object.entries(METADATA_PATHS).map(([name, path], index) => [name, required(path, values[index]!.value)]),
    ) as Record<keyof typeof METADATA_PATHS, string>;
    const zone = lastSegment(value.zone);
    const region = regionOf(zone);

    applyUserData(state, userData);
    // exact text: instance ids exceed 2^53
    state.workerId = workerId;
    state.workerLocation = { cloud: 'google', region, zone };
    state.providerMetadata = presentEntries({
      'instance-id': workerId,
      'project-id': value['project-id'],
      image: value.image,
      'instance-type': lastSegment(value.machineType),
      zone,
      region,
      'public-hostname': value['public-hostname'],
      'public-ipv4': publicIpv4?.value.trim(),
      'local-ipv4': value['local-ipv4'],
    });

    return { token: required(IDENTITY_PATH, identity.value) };
  }

  async useCachedRun(): Promise<void> {
    // A restart, as a first start, must not run a worker on a VM going away.
    await this.refuseAnnouncedNotice(this.startupRetries());
  }

  workerStarted(control: TerminationRequester): void {
    this.watcher.start(control);
    this.log.info(`watching ${NOTICES.map((notice) => notice.path).join(' and ')} for the VM going away`);
  }

  workerFinished(): Promise<void> {
    return this.watcher.stop();
  }

  /** Resolved when first needed, so a bad address is a startup error, not a crash in create(). */
  private metadata(): GoogleMetadataClient {
    this.client ??= new GoogleMetadataClient(resolveMetadataEndpoint(this.config.metadataEndpoint, ENDPOINT));
    return this.client;
  }

  private startupRetries(): StartupRetries {
    return new StartupRetries({
      windowSeconds: this.startupRetryWindow,
      log: this.log,
      hint: `check that this is a Compute Engine VM, or where metadataEndpoint / ${ENDPOINT.variable} point`,
    });
  }

  /** A startup request, retried while it fails transiently; a missing value is an error naming its path. */
  private async startupRead<T>(
    startup: StartupRetries,
    operation: () => Promise<T>,
    missingHint = MISSING_HINT,
  ): Promise<T> {
    try {
      return await startup.run(operation);
    } catch (err) {
      if (err instanceof MetadataNotFoundError)
        throw new StartWorkerError(`${err.message}; it is required: ${missingHint}`, { cause: err });
      throw err;
    }
  }

  /**
   * Refuse a VM that is already going away (Taskcluster checks preemption
   * only); the answers are the baselines the watchers' long-polls resume from.
   */
  private async refuseAnnouncedNotice(startup: StartupRetries): Promise<void> {
    const metadata = this.metadata();
    const answers = await Promise.all(
      NOTICES.map((notice) => this.startupRead(startup, () => metadata.get(notice.path))),
    );
    NOTICES.forEach((notice, index) => {
      const answer = answers[index]!;
      if (notice.announced(answer.value)) {
        throw new StartWorkerError(
          `Google metadata ${notice.path} is ${answer.value.trim()}: ${notice.what}, so the worker is not started`,
        );
      }
      this.noticeBaselines.set(notice.path, answer);
    });
  }

  /** One long-poll of a notice path. */
  private async checkNotice(notice: Notice, signal: AbortSignal): Promise<TerminationRequest | undefined> {
    // configureRun or useCachedRun read every notice path first
    const baseline = this.noticeBaselines.get(notice.path)!;
    const started = Date.now();
    const answer = await this.metadata().waitForChange(notice.path, {
      lastEtag: baseline.etag,
      timeoutSec: LONG_POLL_SECONDS,
      signal,
    });
    const unchanged = answer.etag === baseline.etag && answer.value === baseline.value;
    if (unchanged && Date.now() - started < MIN_UNCHANGED_HOLD_MS && !notice.announced(answer.value)) {
      throw new MetadataPermanentError(
        `Google metadata ${notice.path}: the server answered a wait_for_change request at once without a change`,
      );
    }
    this.noticeBaselines.set(notice.path, answer);
    if (notice.announced(answer.value)) {
      this.log.warn(
        `Google metadata ${notice.path} is ${answer.value.trim()}: ${notice.what}; asking the worker to stop now`,
      );
      return { finishTasks: false, reason: notice.reason };
    }
    if (answer.value !== baseline.value) this.log.info(`Google metadata ${notice.path} is now ${answer.value.trim()}`);
    return undefined;
  }
}

/** A metadata value and the ETag it came with (absent only from a non-conforming server). */
interface MetadataAnswer {
  value: string;
  etag: string | undefined;
}

/**
 * The Compute Engine metadata server.
 *
 * Not the official gcp-metadata package: it hides the ETag of an answer
 * (and with it the `last_etag` a wait_for_change long-poll must pass so a
 * change between two polls is not missed), gives up on long-polls after 3 s
 * when it thinks it is not on GCP, and turns large numbers in JSON answers
 * into BigNumber objects, while instance ids (above 2^53) must stay the
 * exact text the server sent.
 */
class GoogleMetadataClient {
  private readonly service: MetadataService;

  /** `base` is the server's address without /computeMetadata/v1. */
  constructor(readonly base: string) {
    this.service = new MetadataService(`${base}${ENDPOINT.apiPrefix}/`, {
      headers: { 'Metadata-Flavor': 'Google' },
      describe: describeGoogleFailure,
    });
  }

  /** A value such as `instance/id`; a 404 is a MetadataNotFoundError naming the path. */
  get(path: string, options: { query?: Record<string, string>; signal?: AbortSignal } = {}): Promise<MetadataAnswer> {
    return this.request(path, options.query ?? {}, undefined, options.signal);
  }

  /** A value, or undefined when the server has none (404). */
  async getOptional(path: string): Promise<MetadataAnswer | undefined> {
    const response = await this.exchange(path, () => this.service.find({ path }));
    return response && this.answer(path, {}, response);
  }

  /**
   * Long-poll a value: the server answers when it differs from the one with
   * `lastEtag` (at once if it already does), or after `timeoutSec` with the
   * unchanged value.
   */
  waitForChange(
    path: string,
    options: { lastEtag: string | undefined; timeoutSec: number; signal?: AbortSignal },
  ): Promise<MetadataAnswer> {
    const query: Record<string, string> = { wait_for_change: 'true', timeout_sec: String(options.timeoutSec) };
    if (options.lastEtag !== undefined) query['last_etag'] = options.lastEtag;
    return this.request(path, query, options.timeoutSec * 1000 + LONG_POLL_GRACE_MS, options.signal);
  }

  private async request(
    path: string,
    query: Record<string, string>,
    timeoutMs: number | undefined,
    signal: AbortSignal | undefined,
  ): Promise<MetadataAnswer> {
    const response = await this.exchange(path, () => this.service.request({ path, query, timeoutMs, signal }));
    return this.answer(path, query, response);
  }

  /** A request whose failure to get any answer names the value asked for. */
  private async exchange<T>(path: string, send: () => Promise<T>): Promise<T> {
    try {
      return await send();
    } catch (err) {
      if (err instanceof HttpRequestError) throw new HttpRequestError(`Google metadata ${path}: ${err.message}`);
      throw err;
    }
  }

  private answer(path: string, query: Record<string, string>, response: HttpResult): MetadataAnswer {
    // What gcp-metadata checks too: a proxy or captive portal answering for
    // metadata.google.internal is not the metadata server.
    if (response.headers.get('metadata-flavor') !== 'Google') {
      throw new MetadataPermanentError(
        `Google metadata ${path}: the answer from ${this.service.url(path, query)} lacks the header Metadata-Flavor: Google, so it is not from a metadata server; check metadataEndpoint / ${ENDPOINT.variable}`,
      );
    }
    return { value: response.body, etag: response.headers.get('etag') ?? undefined };
  }
}

/** Failures name the value, then the URL; a transient one's body says nothing useful. */
function describeGoogleFailure({ path, url, status, summary, transient }: StatusFailure): string {
  if (status === 404) return `Google metadata ${path} is missing (HTTP 404 from ${url})`;
  return `Google metadata ${path}: HTTP ${status} from ${url}${transient || summary === '' ? '' : `: ${summary}`}`;
}

function describeGoogleEndpointProblem({ kind, value, from }: EndpointProblem): string {
  const [source, expected] =
    from === 'config'
      ? ['provider.metadataEndpoint', 'a URL such as http://169.254.169.254']
      : [ENDPOINT.variable, 'host[:port], such as 169.254.169.254:80'];
  const problem =
    kind === 'not-a-url'
      ? 'is not a valid metadata server address'
      : kind === 'not-http'
        ? 'must be an http:// address'
        : 'must not have a query or fragment';
  return `${source} '${value}' ${problem}; expected ${expected}`;
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
  if (dash <= 0)
    throw new StartWorkerError(`Google metadata instance/zone: '${zone}' is not a zone name such as us-central1-a`);
  return zone.slice(0, dash);
}

const plugin: ProviderPlugin<GoogleConfig> = {
  name: 'google',
  dynamic: true,
  schema,
  usage,
  check: (config) => checkMetadataEndpoint(config.metadataEndpoint, ENDPOINT),
  create(config, context) {
    return new GoogleProvider(config, context.log, context.runnerConfig.startupRetryWindow);
  },
};

export default plugin;
