import { StartWorkerError, errorMessage } from '../src/errors.js';
import type { Logger } from '../src/logging/logger.js';
import type { ProviderPlugin, TerminationControl } from '../src/plugin.js';
import { normalizeRootUrl, type RunState } from '../src/state.js';
import { withRetries } from '../src/util/backoff.js';
import { Poller } from '../src/util/poller.js';
import {
  AzureMetadataClient,
  DEFAULT_AZURE_METADATA_ENDPOINT,
  INSTANCE_PATH,
  isTransientMetadataError,
  type ScheduledEvent,
} from './azure-metadata.js';
import { startupDeadline, withStartupRetries } from './metadata/startup-retry.js';

interface AzureConfig {
  metadataEndpoint?: string;
  terminationPollInterval: number;
  acknowledgeEvents: boolean;
}

export const ENDPOINT_ENV = 'AZURE_IMDS_ENDPOINT';
/** Every metadata request but the first Scheduled Events call. */
const REQUEST_TIMEOUT_MS = 2000;
/**
 * The first Scheduled Events call enables the service for the VM and may
 * take up to two minutes (Azure's docs); it runs while the worker works.
 */
const FIRST_EVENTS_CALL_TIMEOUT_MS = 180_000;
/** The longest pause between watch attempts while IMDS keeps failing (Preempt gives 30 s notice). */
const WATCH_MAX_BACKOFF_MS = 10_000;
const ACKNOWLEDGE_ATTEMPTS = 3;

/** The VM tags worker-manager sets, and what they become. */
const TAGS = { rootUrl: 'root-url', providerId: 'provider-id', workerPoolId: 'worker-pool-id', workerGroup: 'worker-group' } as const;

function endpointFrom(config: AzureConfig): string {
  const fromEnv = process.env[ENDPOINT_ENV];
  const [endpoint, source] =
    config.metadataEndpoint !== undefined
      ? [config.metadataEndpoint, 'provider.metadataEndpoint']
      : fromEnv !== undefined && fromEnv !== ''
        ? [fromEnv, `the environment variable ${ENDPOINT_ENV}`]
        : [DEFAULT_AZURE_METADATA_ENDPOINT, 'the default'];
  if (!isHttpUrl(endpoint)) throw new StartWorkerError(`${source}: '${endpoint}' is not an http(s) URL; use a base URL such as ${DEFAULT_AZURE_METADATA_ENDPOINT}`);
  return endpoint.replace(/\/+$/, '');
}

function isHttpUrl(text: string): boolean {
  try {
    return ['http:', 'https:'].includes(new URL(text).protocol);
  } catch {
    return false;
  }
}

/**
 * Whether an event is about this VM: Resources lists VM names (which Azure
 * treats case-insensitively), and an empty list means every VM.
 */
function concernsVm(event: ScheduledEvent, vmName: string): boolean {
  const name = vmName.toLowerCase();
  return event.Resources.length === 0 || event.Resources.some((resource) => resource.toLowerCase() === name);
}

/** The earliest NotBefore, unless an event has started (NotBefore blank) or a date cannot be read. */
function earliestNotBefore(events: ScheduledEvent[]): Date | undefined {
  let earliest: number | undefined;
  for (const event of events) {
    const time = Date.parse(event.NotBefore);
    if (Number.isNaN(time)) return undefined;
    earliest = earliest === undefined ? time : Math.min(earliest, time);
  }
  return earliest === undefined ? undefined : new Date(earliest);
}

/**
 * Watches Scheduled Events while the worker runs. Any event other than
 * Freeze that concerns this VM asks the worker to stop, once. A failed poll
 * is neither an event nor a reason to stop: IMDS answers 502 at times.
 */
class ScheduledEventsWatcher {
  private readonly poller: Poller;
  private answered = false;
  private terminationRequested = false;
  private readonly seen = new Set<string>();
  /** The events that concern this VM in the latest answer (what to acknowledge). */
  private current: ScheduledEvent[] = [];

  constructor(
    private readonly client: AzureMetadataClient,
    private readonly vmName: string,
    private readonly control: TerminationControl,
    intervalMs: number,
    private readonly log: Logger,
  ) {
    this.poller = new Poller((signal) => this.poll(signal), {
      name: 'watching Azure scheduled events',
      intervalMs,
      maxBackoffMs: Math.max(WATCH_MAX_BACKOFF_MS, intervalMs),
      log,
    });
  }

  start(): void {
    this.poller.start();
  }

  stop(): Promise<void> {
    return this.poller.stop();
  }

  /** Events announced for this VM that have not started yet. */
  pendingEvents(): ScheduledEvent[] {
    return this.current.filter((event) => event.EventStatus === 'Scheduled');
  }

  private async poll(signal: AbortSignal): Promise<boolean> {
    const timeoutMs = this.answered ? REQUEST_TIMEOUT_MS : FIRST_EVENTS_CALL_TIMEOUT_MS;
    const { Events } = await this.client.scheduledEvents({ timeoutMs, signal });
    this.answered = true;
    const relevant = Events.filter((event) => concernsVm(event, this.vmName));
    for (const event of relevant) {
      if (this.seen.has(event.EventId)) continue;
      this.seen.add(event.EventId);
      const when = event.NotBefore ? `not before ${event.NotBefore}` : 'started';
      if (event.EventType === 'Freeze') this.log.info(`Azure scheduled a Freeze (${event.EventId}, ${when}); the worker keeps running`);
      else this.log.warn(`Azure scheduled a ${event.EventType} of this VM (${event.EventId}, ${when}, ${event.EventStatus})`);
    }
    this.current = relevant.filter((event) => event.EventType !== 'Freeze');
    if (this.current.length > 0 && !this.terminationRequested) {
      this.terminationRequested = true;
      const preempted = this.current.some((event) => event.EventType === 'Preempt');
      const deadline = earliestNotBefore(this.current);
      this.control.requestTermination({ finishTasks: false, reason: preempted ? 'preemption' : 'maintenance', ...(deadline ? { deadline } : {}) });
    }
    // Keep watching: the latest list is what workerFinished acknowledges.
    return false;
  }
}

const plugin: ProviderPlugin<AzureConfig> = {
  name: 'azure',
  dynamic: true,
  schema: {
    type: 'object',
    properties: {
      metadataEndpoint: {
        type: 'string',
        minLength: 1,
        description: `Base URL of the instance metadata service, without \`/metadata\`. Wins over the environment variable \`${ENDPOINT_ENV}\`; default \`${DEFAULT_AZURE_METADATA_ENDPOINT}\`.`,
      },
      terminationPollInterval: {
        type: 'number',
        exclusiveMinimum: 0,
        default: 1,
        description: 'Seconds between Scheduled Events polls while the worker runs (fractions allowed).',
      },
      acknowledgeEvents: {
        type: 'boolean',
        default: false,
        description:
          'When the worker has exited after a scheduled event, acknowledge the event so Azure proceeds at once instead of waiting out the notice.',
      },
    },
  },
  usage: `The provider for workers on Azure VMs that worker-manager creates (a
worker-manager provider of type \`azure\`). Everything comes from the Azure
Instance Metadata Service: the worker pool, provider, worker group and root
URL from the VM's tags \`worker-pool-id\`, \`provider-id\`, \`worker-group\` and
\`root-url\` (a missing tag is an error); the worker ID is the VM name; the
identity proof is the signature of the attested document.

\`\`\`yaml
provider:
  providerType: azure
  terminationPollInterval: 1   # optional, seconds
  acknowledgeEvents: false     # optional
  metadataEndpoint: http://169.254.169.254   # optional; or AZURE_IMDS_ENDPOINT
\`\`\`

The worker location is \`{cloud: azure, region}\`; the provider metadata is
\`vm-id\`, \`instance-type\`, \`region\`, and \`local-ipv4\` / \`public-ipv4\`
when the VM has exactly one interface with one address. Metadata requests
time out after 2 s and are retried with backoff within
\`startupRetryWindow\`.

While the worker runs, Scheduled Events are polled every
\`terminationPollInterval\` seconds. Any event other than \`Freeze\` for this
VM (its \`Resources\` name the VM, or are empty) sends the worker
\`graceful-termination\` with \`finish-tasks: false\`, \`reason: preemption\`
(\`Preempt\`) or \`maintenance\` (the rest), and the event's \`NotBefore\` as
\`deadline\` (none once the event has started). A failed poll is logged and
retried with backoff; it never stops the worker. The first Scheduled Events
call can take minutes on a real VM, so it is made only once the worker runs:
an event announced before then does not stop start-worker from starting the
worker, which is told as soon as the answer comes. With
\`acknowledgeEvents: true\`, the events that have not started yet are
acknowledged once the worker has exited, so Azure need not wait out the
notice.`,
  check(config) {
    if (config.metadataEndpoint !== undefined && !isHttpUrl(config.metadataEndpoint)) {
      return [`provider.metadataEndpoint: '${config.metadataEndpoint}' is not an http(s) URL`];
    }
    return [];
  },
  create(config, { log, runnerConfig }) {
    let client: AzureMetadataClient | undefined;
    let vmName = '';
    let watcher: ScheduledEventsWatcher | undefined;
    const metadataClient = (): AzureMetadataClient => (client ??= new AzureMetadataClient(endpointFrom(config)));

    let deadline = 0;
    /** One startup request, retried while it fails transiently, within the startup window. */
    const startupRequest = <T>(what: string, request: () => Promise<T>): Promise<T> =>
      withStartupRetries(request, {
        deadline,
        windowSeconds: runnerConfig.startupRetryWindow,
        isTransient: isTransientMetadataError,
        log,
        hint: `is this an Azure VM with its metadata service at ${metadataClient().endpoint}? Elsewhere, set provider.metadataEndpoint or ${ENDPOINT_ENV}`,
      }, what);

    return {
      async configureRun(state) {
        const metadata = metadataClient();
        deadline = startupDeadline(runnerConfig.startupRetryWindow);
        log.info(`reading instance metadata from ${metadata.endpoint}`);
        const instance = await startupRequest('instance metadata', () => metadata.instance({ timeoutMs: REQUEST_TIMEOUT_MS }));
        const tag = (name: string): string => {
          const value = instance.tags.get(name);
          if (value === undefined || value === '') {
            throw new StartWorkerError(
              `${INSTANCE_PATH}: the VM has no tag '${name}' in compute.tagsList; worker-manager tags the VMs it creates, so is this VM from an azure worker pool?`,
            );
          }
          return value;
        };
        state.rootUrl = normalizeRootUrl(tag(TAGS.rootUrl));
        state.providerId = tag(TAGS.providerId);
        state.workerPoolId = tag(TAGS.workerPoolId);
        state.workerGroup = tag(TAGS.workerGroup);
        state.workerId = instance.name;
        state.workerLocation = { cloud: 'azure', region: instance.location };
        state.providerMetadata = {
          'vm-id': instance.vmId,
          'instance-type': instance.vmSize,
          region: instance.location,
          ...(instance.privateIpAddress !== undefined ? { 'local-ipv4': instance.privateIpAddress } : {}),
          ...(instance.publicIpAddress !== undefined ? { 'public-ipv4': instance.publicIpAddress } : {}),
        };
        vmName = instance.name;
        const document = await startupRequest('attested document', () => metadata.attestedDocumentSignature({ timeoutMs: REQUEST_TIMEOUT_MS }));
        // No Scheduled Events call here: the first one may take minutes.
        return { document };
      },
      async useCachedRun(state: RunState) {
        metadataClient();
        vmName = state.workerId;
      },
      workerStarted(control) {
        const intervalMs = config.terminationPollInterval * 1000;
        watcher = new ScheduledEventsWatcher(metadataClient(), vmName, control, intervalMs, log);
        watcher.start();
      },
      async workerFinished() {
        if (watcher === undefined) return;
        await watcher.stop();
        const pending = watcher.pendingEvents();
        if (!config.acknowledgeEvents || pending.length === 0) return;
        const ids = pending.map((event) => event.EventId);
        try {
          await withRetries(() => metadataClient().startEvents(ids, { timeoutMs: REQUEST_TIMEOUT_MS }), {
            maxAttempts: ACKNOWLEDGE_ATTEMPTS,
            initialDelayMs: 500,
            isTransient: isTransientMetadataError,
          });
          log.info(`acknowledged scheduled event(s) ${ids.join(', ')}: Azure may proceed`);
        } catch (err) {
          log.warn(`could not acknowledge scheduled event(s) ${ids.join(', ')}: ${errorMessage(err)}; Azure proceeds when the notice ends`);
        }
      },
    };
  },
};

export default plugin;
