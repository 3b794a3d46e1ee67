import { StartWorkerError, errorMessage } from '../src/errors.js';
import { isJsonObject, presentEntries, type JsonObject, type JsonValue } from '../src/json.js';
import type { Logger } from '../src/logging/logger.js';
import type {
  IdentityProof,
  Provider,
  ProviderPlugin,
  TerminationRequester,
  TerminationRequest,
} from '../src/plugin.js';
import type { JsonSchema } from '../src/schema.js';
import type { RunState } from '../src/state.js';
import { withRetries } from '../src/util/backoff.js';
import {
  checkMetadataEndpoint,
  describeEndpointProblem,
  endpointSource,
  metadataEndpointSchema,
  resolveMetadataEndpoint,
  type EndpointProblem,
  type EndpointSettings,
} from './metadata/endpoint.js';
import { isTransientMetadataError, MetadataPermanentError } from './metadata/errors.js';
import { METADATA_TIMEOUT_MS, MetadataService, type StatusFailure } from './metadata/request.js';
import { StartupRetries } from './metadata/startup-retry.js';
import { applyUserData } from './metadata/user-data.js';
import { TerminationWatcher, terminationPollIntervalSchema } from './metadata/watcher.js';

interface AzureConfig {
  metadataEndpoint?: string;
  terminationPollInterval: number;
  acknowledgeEvents: boolean;
}

const ENDPOINT: EndpointSettings = {
  default: 'http://169.254.169.254',
  variable: 'AZURE_IMDS_ENDPOINT',
  describe: describeAzureEndpointProblem,
};

/** The api-versions Taskcluster's worker-runner uses; Scheduled Events needs its own. */
const INSTANCE_API_VERSION = '2025-04-07';
const SCHEDULED_EVENTS_API_VERSION = '2020-07-01';

const INSTANCE_PATH = '/metadata/instance';
const ATTESTED_DOCUMENT_PATH = '/metadata/attested/document';
const SCHEDULED_EVENTS_PATH = '/metadata/scheduledevents';

/**
 * The first Scheduled Events call enables the service for the VM and may
 * take up to two minutes (Azure's docs); it runs while the worker works.
 */
const FIRST_EVENTS_CALL_TIMEOUT_MS = 180_000;
const ACKNOWLEDGE_ATTEMPTS = 3;

/** The VM tags worker-manager sets, and what they become. */
const TAGS = {
  rootUrl: 'root-url',
  providerId: 'provider-id',
  workerPoolId: 'worker-pool-id',
  workerGroup: 'worker-group',
} as const;

const NOT_IMDS_HINT = '; is the metadata endpoint an Azure Instance Metadata Service?';

const schema: JsonSchema = {
  type: 'object',
  properties: {
    metadataEndpoint: metadataEndpointSchema(
      ENDPOINT,
      'Base URL of the instance metadata service, without `/metadata`',
    ),
    terminationPollInterval: terminationPollIntervalSchema('polls of Scheduled Events'),
    acknowledgeEvents: {
      type: 'boolean',
      default: false,
      description:
        'When the worker has exited after a scheduled event, acknowledge the event so Azure proceeds at once instead of waiting out the notice.',
    },
  },
};

const usage = `The provider for workers on Azure VMs that worker-manager creates (a
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
notice.`;

class AzureProvider implements Provider {
  private client: AzureMetadataClient | undefined;
  private vmName = '';
  private readonly watcher: TerminationWatcher;
  /** Whether Scheduled Events has answered once (its first call is slow). */
  private eventsAnswered = false;
  private readonly seenEvents = new Set<string>();
  /** The events that concern this VM in the latest answer (what to acknowledge). */
  private currentEvents: ScheduledEvent[] = [];

  constructor(
    private readonly config: AzureConfig,
    private readonly log: Logger,
    private readonly startupRetryWindow: number,
  ) {
    this.watcher = new TerminationWatcher(
      [{ name: 'watching Azure scheduled events', check: (signal) => this.checkScheduledEvents(signal) }],
      {
        intervalMs: config.terminationPollInterval * 1000,
        // the latest list is what workerFinished acknowledges
        afterStopNow: 'keep-checking',
        log,
      },
    );
  }

  async configureRun(state: RunState): Promise<IdentityProof> {
    const metadata = this.metadata();
    const startup = this.startupRetries();
    this.log.info(`reading instance metadata from ${metadata.endpoint}`);
    const instance = await startup.run(() => metadata.instance(), 'instance metadata');
    const tag = (name: string): string => {
      const value = instance.tags.get(name);
      if (value === undefined || value === '') {
        throw new StartWorkerError(
          `${INSTANCE_PATH}: the VM has no tag '${name}' in compute.tagsList; worker-manager tags the VMs it creates, so is this VM from an azure worker pool?`,
        );
      }
      return value;
    };
    const userData = {
      rootUrl: tag(TAGS.rootUrl),
      providerId: tag(TAGS.providerId),
      workerPoolId: tag(TAGS.workerPoolId),
      workerGroup: tag(TAGS.workerGroup),
    };
    // No Scheduled Events call here: the first one may take minutes.
    const document = await startup.run(() => metadata.attestedDocumentSignature(), 'attested document');

    // Identified only with the proof in hand: a VM that cannot prove who it is was never known to worker-manager.
    applyUserData(state, userData);
    state.workerId = instance.name;
    state.workerLocation = { cloud: 'azure', region: instance.location };
    state.providerMetadata = presentEntries({
      'vm-id': instance.vmId,
      'instance-type': instance.vmSize,
      region: instance.location,
      'local-ipv4': instance.privateIpAddress,
      'public-ipv4': instance.publicIpAddress,
    });
    this.vmName = instance.name;
    return { document };
  }

  async useCachedRun(state: RunState): Promise<void> {
    this.metadata();
    this.vmName = state.workerId;
  }

  workerStarted(control: TerminationRequester): void {
    this.watcher.start(control);
  }

  async workerFinished(): Promise<void> {
    await this.watcher.stop();
    // Events announced for this VM that have not started yet.
    const pending = this.currentEvents.filter((event) => event.EventStatus === 'Scheduled');
    if (!this.config.acknowledgeEvents || pending.length === 0) return;
    const ids = pending.map((event) => event.EventId);
    try {
      await withRetries(() => this.metadata().startEvents(ids), {
        maxAttempts: ACKNOWLEDGE_ATTEMPTS,
        initialDelayMs: 500,
        isTransient: isTransientMetadataError,
      });
      this.log.info(`acknowledged scheduled event(s) ${ids.join(', ')}: Azure may proceed`);
    } catch (err) {
      this.log.warn(
        `could not acknowledge scheduled event(s) ${ids.join(', ')}: ${errorMessage(err)}; Azure proceeds when the notice ends`,
      );
    }
  }

  /** Resolved when first needed, so a bad address is a startup error, not a crash in create(). */
  private metadata(): AzureMetadataClient {
    this.client ??= new AzureMetadataClient(resolveMetadataEndpoint(this.config.metadataEndpoint, ENDPOINT));
    return this.client;
  }

  private startupRetries(): StartupRetries {
    return new StartupRetries({
      windowSeconds: this.startupRetryWindow,
      log: this.log,
      hint: `is this an Azure VM with its metadata service at ${this.metadata().endpoint}? Elsewhere, set provider.metadataEndpoint or ${ENDPOINT.variable}`,
    });
  }

  /**
   * One Scheduled Events poll. Any event other than Freeze that concerns
   * this VM asks the worker to stop (the watcher passes on the first
   * request only). A failed poll is neither an event nor a reason to stop:
   * IMDS answers 502 at times.
   */
  private async checkScheduledEvents(signal: AbortSignal): Promise<TerminationRequest | undefined> {
    const timeoutMs = this.eventsAnswered ? METADATA_TIMEOUT_MS : FIRST_EVENTS_CALL_TIMEOUT_MS;
    const events = await this.metadata().scheduledEvents(timeoutMs, signal);
    this.eventsAnswered = true;
    const relevant = events.filter((event) => concernsVm(event, this.vmName));
    for (const event of relevant) {
      if (this.seenEvents.has(event.EventId)) continue;
      this.seenEvents.add(event.EventId);
      const when = event.NotBefore ? `not before ${event.NotBefore}` : 'started';
      if (event.EventType === 'Freeze')
        this.log.info(`Azure scheduled a Freeze (${event.EventId}, ${when}); the worker keeps running`);
      else
        this.log.warn(
          `Azure scheduled a ${event.EventType} of this VM (${event.EventId}, ${when}, ${event.EventStatus})`,
        );
    }
    this.currentEvents = relevant.filter((event) => event.EventType !== 'Freeze');
    if (this.currentEvents.length === 0) return undefined;
    const preempted = this.currentEvents.some((event) => event.EventType === 'Preempt');
    const deadline = earliestNotBefore(this.currentEvents);
    return { finishTasks: false, reason: preempted ? 'preemption' : 'maintenance', ...(deadline ? { deadline } : {}) };
  }
}

/** What start-worker needs from `/metadata/instance`. */
interface AzureInstance {
  name: string;
  location: string;
  vmId: string;
  vmSize: string;
  tags: Map<string, string>;
  /** Addresses of the only address of the only interface, when there is exactly one. */
  privateIpAddress?: string;
  publicIpAddress?: string;
}

/** The fields of a scheduled event that decide what start-worker does. */
interface ScheduledEvent {
  EventId: string;
  EventType: string;
  Resources: string[];
  EventStatus: string;
  /** RFC 1123 date; blank once the event has started. */
  NotBefore: string;
}

/** IMDS: every request carries `Metadata: true` and an `api-version`, as IMDS requires. */
class AzureMetadataClient {
  private readonly service: MetadataService;

  /** @param endpoint base URL without `/metadata`, e.g. http://169.254.169.254 */
  constructor(readonly endpoint: string) {
    // 410 too, as the IMDS docs advise
    this.service = new MetadataService(endpoint, {
      headers: { Metadata: 'true' },
      transientStatuses: [410],
      describe: describeAzureFailure,
    });
  }

  async instance(): Promise<AzureInstance> {
    return parseInstance(await this.getJson(INSTANCE_PATH, INSTANCE_API_VERSION));
  }

  /** The `signature` of the attested document: the identity proof worker-manager checks. */
  async attestedDocumentSignature(): Promise<string> {
    const document = await this.getJson(ATTESTED_DOCUMENT_PATH, INSTANCE_API_VERSION);
    const where = ATTESTED_DOCUMENT_PATH;
    if (!isJsonObject(document)) throw invalid(where, 'the answer is not a JSON object');
    if (document['encoding'] !== 'pkcs7') {
      throw new MetadataPermanentError(
        `${where}: expected an attested document with encoding pkcs7, got ${JSON.stringify(document['encoding'] ?? null)}; worker-manager accepts only pkcs7 documents`,
      );
    }
    const signature = document['signature'];
    if (typeof signature !== 'string' || signature === '') throw missing(where, 'signature');
    return signature;
  }

  async scheduledEvents(timeoutMs: number, signal: AbortSignal): Promise<ScheduledEvent[]> {
    return parseScheduledEvents(
      await this.getJson(SCHEDULED_EVENTS_PATH, SCHEDULED_EVENTS_API_VERSION, timeoutMs, signal),
    );
  }

  /** Tell Azure it may start these events now instead of waiting out their notice. */
  async startEvents(eventIds: string[]): Promise<void> {
    await this.service.request({
      method: 'POST',
      path: SCHEDULED_EVENTS_PATH,
      query: { 'api-version': SCHEDULED_EVENTS_API_VERSION },
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ StartRequests: eventIds.map((EventId) => ({ EventId })) }),
    });
  }

  private async getJson(
    path: string,
    apiVersion: string,
    timeoutMs?: number,
    signal?: AbortSignal,
  ): Promise<JsonValue> {
    const { body } = await this.service.request({ path, query: { 'api-version': apiVersion }, timeoutMs, signal });
    try {
      return JSON.parse(body) as JsonValue;
    } catch (err) {
      throw invalid(path, `the answer is not JSON (${errorMessage(err)})`);
    }
  }
}

/** Messages name the path, without the api-version. */
function describeAzureFailure({ method, path, status, summary, transient }: StatusFailure): string {
  return `${method} ${path}: HTTP ${status}${summary === '' ? '' : `: ${summary}`}${transient ? '' : NOT_IMDS_HINT}`;
}

function describeAzureEndpointProblem(problem: EndpointProblem): string {
  if (problem.kind === 'query-or-fragment') return describeEndpointProblem(problem);
  return `${endpointSource(problem)}: '${problem.value}' is not an http(s) URL; use a base URL such as ${ENDPOINT.default}`;
}

function invalid(path: string, what: string): MetadataPermanentError {
  return new MetadataPermanentError(`${path}: ${what}${NOT_IMDS_HINT}`);
}

function missing(path: string, field: string): MetadataPermanentError {
  return new MetadataPermanentError(
    `${path}: ${field} is missing or empty; this must run on an Azure VM (or point metadataEndpoint at a complete metadata service)`,
  );
}

function requiredString(object: JsonObject, key: string, path: string, prefix: string): string {
  const value = object[key];
  if (typeof value !== 'string' || value === '') throw missing(path, `${prefix}${key}`);
  return value;
}

function parseInstance(data: JsonValue): AzureInstance {
  const path = INSTANCE_PATH;
  if (!isJsonObject(data)) throw invalid(path, 'the answer is not a JSON object');
  const compute = data['compute'];
  if (!isJsonObject(compute)) throw missing(path, 'compute');
  const tagsList = compute['tagsList'];
  if (!Array.isArray(tagsList)) throw missing(path, 'compute.tagsList');
  const tags = new Map<string, string>();
  for (const tag of tagsList) {
    if (isJsonObject(tag) && typeof tag['name'] === 'string' && typeof tag['value'] === 'string')
      tags.set(tag['name'], tag['value']);
  }
  const instance: AzureInstance = {
    name: requiredString(compute, 'name', path, 'compute.'),
    location: requiredString(compute, 'location', path, 'compute.'),
    vmId: requiredString(compute, 'vmId', path, 'compute.'),
    vmSize: requiredString(compute, 'vmSize', path, 'compute.'),
    tags,
  };
  // Only an unambiguous address is worth reporting, as Taskcluster does.
  const interfaces = isJsonObject(data['network']) ? data['network']['interface'] : undefined;
  if (Array.isArray(interfaces) && interfaces.length === 1 && isJsonObject(interfaces[0])) {
    const ipv4 = interfaces[0]['ipv4'];
    const addresses = isJsonObject(ipv4) ? ipv4['ipAddress'] : undefined;
    if (Array.isArray(addresses) && addresses.length === 1 && isJsonObject(addresses[0])) {
      const { privateIpAddress, publicIpAddress } = addresses[0];
      if (typeof privateIpAddress === 'string' && privateIpAddress !== '') instance.privateIpAddress = privateIpAddress;
      if (typeof publicIpAddress === 'string' && publicIpAddress !== '') instance.publicIpAddress = publicIpAddress;
    }
  }
  return instance;
}

function parseScheduledEvents(data: JsonValue): ScheduledEvent[] {
  const path = SCHEDULED_EVENTS_PATH;
  if (!isJsonObject(data) || !Array.isArray(data['Events'])) throw invalid(path, 'the answer has no Events list');
  return data['Events'].map((event, index): ScheduledEvent => {
    if (!isJsonObject(event) || typeof event['EventId'] !== 'string' || typeof event['EventType'] !== 'string') {
      throw invalid(path, `Events[${index}] has no EventId or EventType`);
    }
    const text = (key: string): string => (typeof event[key] === 'string' ? event[key] : '');
    const resources = Array.isArray(event['Resources'])
      ? event['Resources'].filter((r): r is string => typeof r === 'string')
      : [];
    return {
      EventId: event['EventId'],
      EventType: event['EventType'],
      Resources: resources,
      EventStatus: text('EventStatus'),
      NotBefore: text('NotBefore'),
    };
  });
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

const plugin: ProviderPlugin<AzureConfig> = {
  name: 'azure',
  dynamic: true,
  schema,
  usage,
  check: (config) => checkMetadataEndpoint(config.metadataEndpoint, ENDPOINT),
  create(config, context) {
    return new AzureProvider(config, context.log, context.runnerConfig.startupRetryWindow);
  },
};

export default plugin;
