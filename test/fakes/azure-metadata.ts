/**
 * The Azure Instance Metadata Service on 127.0.0.1, as strict as the real
 * one about what start-worker sends: a request without `Metadata: true`, or
 * with X-Forwarded-For, or without a known `api-version` is refused with a
 * 400 and IMDS's error text. It serves instance data (with the tags
 * worker-manager sets), the attested document and Scheduled Events that a
 * test posts; it records acknowledgements, counts requests by path, and
 * injects faults (statuses, slow answers, dropped connections), once per
 * request or throughout a time window.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type Fault, LoopbackServer, readBody, sendJson } from './http.js';

type Json = Record<string, unknown>;

export const INSTANCE = '/metadata/instance';
export const ATTESTED = '/metadata/attested/document';
export const SCHEDULED_EVENTS = '/metadata/scheduledevents';

/** api-versions IMDS accepts (a subset of the real list; every one start-worker uses). */
const INSTANCE_VERSIONS = [
  '2019-08-15',
  '2020-09-01',
  '2021-02-01',
  '2021-12-13',
  '2023-07-01',
  '2024-03-15',
  '2025-04-07',
];
const SCHEDULED_EVENTS_VERSIONS = ['2017-11-01', '2019-01-01', '2019-08-01', '2020-07-01'];
const NEWEST_VERSIONS = INSTANCE_VERSIONS.slice(-3).reverse();

export interface ScheduledEventInput {
  EventId?: string;
  EventType: string;
  ResourceType?: string;
  Resources?: string[];
  EventStatus?: string;
  NotBefore?: string;
  Description?: string;
  EventSource?: string;
  DurationInSeconds?: number;
}

export type ScheduledEvent = Required<ScheduledEventInput>;

export interface RecordedRequest {
  time: number;
  method: string;
  path: string;
  apiVersion: string | null;
  /** The status answered; 'dropped' when the fake cut the connection, 'abandoned' when the client went away first. */
  outcome: number | 'dropped' | 'abandoned' | 'pending';
  /** When the answer was sent. */
  answeredAt?: number;
  /** The fault applied to this request, if any. */
  fault?: Fault['kind'];
}

export interface FakeAzureOptions {
  vmName?: string;
  location?: string;
  tags?: Record<string, string>;
  /** How long the first Scheduled Events call takes (it enables the service on a real VM). */
  firstScheduledEventsDelayMs?: number;
}

/** The tags worker-manager's azure provider sets on the VMs it creates. */
export function workerManagerTags(rootUrl: string, overrides: Record<string, string> = {}): Record<string, string> {
  return {
    'worker-pool-id': 'proj/azure-pool',
    'provider-id': 'azure-prov',
    'worker-group': 'westus2',
    'root-url': rootUrl,
    'created-by': 'taskcluster-wm-azure-prov',
    ...overrides,
  };
}

export class FakeAzureMetadata {
  /** Faults for the next requests, by path. */
  readonly faults = new Map<string, Fault[]>();
  readonly requests: RecordedRequest[] = [];
  /** EventIds of every acknowledgement (POST StartRequests), in order. */
  readonly acknowledgements: { time: number; eventIds: string[] }[] = [];
  /** The instance document served at /metadata/instance; tests may edit it. */
  instance: Json;
  attested: Json = {
    encoding: 'pkcs7',
    signature: `MIIL${Buffer.from(randomUUID()).toString('base64')}attested-signature`,
  };
  events: ScheduledEvent[] = [];
  incarnation = 1;
  endpoint = '';
  private http: LoopbackServer | undefined;
  private failureWindow: { until: number; faults: Fault[]; next: number } | undefined;

  constructor(private readonly options: FakeAzureOptions = {}) {
    const vmName = options.vmName ?? 'vm-0123456789abcdef';
    const location = options.location ?? 'westus2';
    const tags = options.tags ?? workerManagerTags('https://tc.example.com');
    this.instance = {
      compute: {
        azEnvironment: 'AzurePublicCloud',
        location,
        name: vmName,
        offer: '0001-com-ubuntu-server-jammy',
        osType: 'Linux',
        provider: 'Microsoft.Compute',
        resourceGroupName: 'rg-workers',
        subscriptionId: '8d10da13-8125-4ba9-a717-bf7490507b3d',
        tags: Object.entries(tags)
          .map(([name, value]) => `${name}:${value}`)
          .join(';'),
        tagsList: Object.entries(tags).map(([name, value]) => ({ name, value })),
        vmId: '02aab8a4-74ef-476e-8182-f6d2ba4166a6',
        vmScaleSetName: '',
        vmSize: 'Standard_D4s_v5',
        zone: '',
      },
      network: {
        interface: [
          {
            ipv4: {
              ipAddress: [{ privateIpAddress: '10.144.133.132', publicIpAddress: '20.9.8.7' }],
              subnet: [{ address: '10.144.133.128', prefix: '26' }],
            },
            ipv6: { ipAddress: [] },
            macAddress: '0011AAFFBB22',
          },
        ],
      },
    };
  }

  get vmName(): string {
    return (this.instance['compute'] as Json)['name'] as string;
  }

  async start(): Promise<this> {
    this.http = await LoopbackServer.start((req, res) => void this.handle(req, res));
    this.endpoint = this.http.url;
    return this;
  }

  async stop(): Promise<void> {
    await this.http?.stop();
  }

  /** Set a VM tag (or remove it with undefined). */
  setTag(name: string, value: string | undefined): void {
    const compute = this.instance['compute'] as { tagsList: { name: string; value: string }[] };
    compute.tagsList = compute.tagsList.filter((tag) => tag.name !== name);
    if (value !== undefined) compute.tagsList.push({ name, value });
  }

  /** Announce an event, as Azure does: a new DocumentIncarnation. */
  postEvent(input: ScheduledEventInput): ScheduledEvent {
    const event: ScheduledEvent = {
      EventId: randomUUID().toUpperCase(),
      ResourceType: 'VirtualMachine',
      Resources: [this.vmName],
      EventStatus: 'Scheduled',
      NotBefore: new Date(Date.now() + 5 * 60_000).toUTCString(),
      Description: '',
      EventSource: 'Platform',
      DurationInSeconds: -1,
      ...input,
    };
    this.events.push(event);
    this.incarnation += 1;
    return event;
  }

  /** Apply `fault` to the next `count` requests to `path`. */
  inject(path: string, fault: Fault, count = 1): void {
    const queue = this.faults.get(path) ?? [];
    for (let i = 0; i < count; i++) queue.push(fault);
    this.faults.set(path, queue);
  }

  /** Answer every Scheduled Events GET with these faults in turn until `durationMs` from now. */
  failScheduledEvents(durationMs: number, faults: Fault[]): void {
    this.failureWindow = { until: Date.now() + durationMs, faults, next: 0 };
  }

  /** Requests to a path (refused ones included), optionally only those of one method. */
  requestsTo(path: string, method?: string): RecordedRequest[] {
    return this.requests.filter((r) => r.path === path && (method === undefined || r.method === method));
  }

  /** Requests IMDS refused for a missing header or api-version. */
  refused(): RecordedRequest[] {
    return this.requests.filter((r) => r.outcome === 400);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://imds');
    const entry: RecordedRequest = {
      time: Date.now(),
      method: req.method ?? '',
      path: url.pathname,
      apiVersion: url.searchParams.get('api-version'),
      outcome: 'pending',
    };
    this.requests.push(entry);
    let clientGone = false;
    res.on('close', () => (clientGone = !res.writableFinished));
    const answer = (status: number, body: unknown): void => {
      if (clientGone) {
        entry.outcome = 'abandoned';
        return;
      }
      entry.outcome = status;
      entry.answeredAt = Date.now();
      sendJson(res, status, body);
    };
    const text = await readBody(req);

    if (req.headers['metadata'] !== 'true' || req.headers['x-forwarded-for'] !== undefined) {
      return answer(400, { error: 'Bad request. Required metadata header not specified' });
    }
    const versions = url.pathname === SCHEDULED_EVENTS ? SCHEDULED_EVENTS_VERSIONS : INSTANCE_VERSIONS;
    if (entry.apiVersion === null) {
      return answer(400, {
        error:
          'Bad request. api-version was not specified in the request. For more information refer to aka.ms/azureimds',
        'newest-versions': NEWEST_VERSIONS,
      });
    }
    if (!versions.includes(entry.apiVersion)) {
      return answer(400, {
        error:
          'Bad request. api-version is invalid or was not specified in the request. For more information refer to aka.ms/azureimds',
        'newest-versions': NEWEST_VERSIONS,
      });
    }

    const fault = this.windowFault(url.pathname, req.method) ?? this.faults.get(url.pathname)?.shift();
    entry.fault = fault?.kind;
    if (fault?.kind === 'drop') {
      entry.outcome = 'dropped';
      res.socket?.destroy();
      return;
    }
    if (fault?.kind === 'status')
      return answer(
        fault.status,
        fault.body ?? { error: fault.status === 502 ? 'Bad Gateway' : 'Internal Server Error' },
      );
    if (fault?.kind === 'delay') await new Promise((resolve) => setTimeout(resolve, fault.ms));

    if (
      url.pathname === SCHEDULED_EVENTS &&
      req.method === 'GET' &&
      this.options.firstScheduledEventsDelayMs !== undefined &&
      this.requestsTo(SCHEDULED_EVENTS, 'GET').length === 1
    ) {
      await new Promise((resolve) => setTimeout(resolve, this.options.firstScheduledEventsDelayMs));
    }

    switch (`${req.method} ${url.pathname}`) {
      case `GET ${INSTANCE}`:
        return answer(200, this.instance);
      case `GET ${ATTESTED}`:
        return answer(200, this.attested);
      case `GET ${SCHEDULED_EVENTS}`:
        return answer(200, { DocumentIncarnation: this.incarnation, Events: this.events });
      case `POST ${SCHEDULED_EVENTS}`:
        return this.acknowledge(text, answer);
      default:
        if ([INSTANCE, ATTESTED, SCHEDULED_EVENTS].includes(url.pathname))
          return answer(405, { error: 'Method not allowed' });
        return answer(404, { error: 'Not found' });
    }
  }

  /** Acknowledging starts the events: they show as Started, without NotBefore. */
  private acknowledge(text: string, answer: (status: number, body: unknown) => void): void {
    let body: { StartRequests?: { EventId?: unknown }[] };
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      return answer(400, { error: 'Bad request. The request body is not valid JSON' });
    }
    const ids = Array.isArray(body.StartRequests) ? body.StartRequests.map((r) => r.EventId) : [];
    if (
      ids.length === 0 ||
      !ids.every((id): id is string => typeof id === 'string' && this.events.some((e) => e.EventId === id))
    ) {
      return answer(400, { error: 'Bad request. StartRequests must list EventIds of current events' });
    }
    this.acknowledgements.push({ time: Date.now(), eventIds: ids });
    for (const event of this.events) {
      if (ids.includes(event.EventId)) Object.assign(event, { EventStatus: 'Started', NotBefore: '' });
    }
    this.incarnation += 1;
    answer(200, {});
  }

  private windowFault(path: string, method: string | undefined): Fault | undefined {
    const window = this.failureWindow;
    if (window === undefined || path !== SCHEDULED_EVENTS || method !== 'GET') return undefined;
    if (Date.now() >= window.until) {
      this.failureWindow = undefined;
      return undefined;
    }
    const fault = window.faults[window.next % window.faults.length]!;
    window.next += 1;
    return fault;
  }
}
