/**
 * A small client for the Azure Instance Metadata Service (IMDS): instance
 * data, the attested document, and Scheduled Events. Every request carries
 * `Metadata: true` and an `api-version`, as IMDS requires.
 */
import { StartWorkerError, errorMessage } from '../src/errors.js';
import { isJsonObject, type JsonObject, type JsonValue } from '../src/json.js';
import { HttpRequestError, httpRequest } from '../src/util/http.js';

export const DEFAULT_AZURE_METADATA_ENDPOINT = 'http://169.254.169.254';

/** The api-versions Taskcluster's worker-runner uses; Scheduled Events needs its own. */
export const INSTANCE_API_VERSION = '2025-04-07';
export const SCHEDULED_EVENTS_API_VERSION = '2020-07-01';

export const INSTANCE_PATH = '/metadata/instance';
export const ATTESTED_DOCUMENT_PATH = '/metadata/attested/document';
export const SCHEDULED_EVENTS_PATH = '/metadata/scheduledevents';

/** A metadata request that failed; `transient` says whether another attempt may succeed. */
export class AzureMetadataError extends StartWorkerError {
  constructor(
    message: string,
    readonly transient: boolean,
  ) {
    super(message);
    this.name = 'AzureMetadataError';
  }
}

/** No answer (timeout, refused, reset), 5xx, 410 and 429 are worth retrying, as the IMDS docs advise. */
export function isTransientMetadataError(err: unknown): boolean {
  if (err instanceof AzureMetadataError) return err.transient;
  return err instanceof HttpRequestError;
}

/** What start-worker needs from `/metadata/instance`. */
export interface AzureInstance {
  name: string;
  location: string;
  vmId: string;
  vmSize: string;
  tags: Map<string, string>;
  /** Addresses of the only address of the only interface, when there is exactly one. */
  privateIpAddress?: string;
  publicIpAddress?: string;
}

export interface ScheduledEvent {
  EventId: string;
  EventType: string;
  ResourceType: string;
  Resources: string[];
  EventStatus: string;
  /** RFC 1123 date; blank once the event has started. */
  NotBefore: string;
  Description: string;
  EventSource: string;
  DurationInSeconds: number;
}

export interface ScheduledEvents {
  DocumentIncarnation: number;
  Events: ScheduledEvent[];
}

export interface RequestOptions {
  timeoutMs: number;
  signal?: AbortSignal;
}

export class AzureMetadataClient {
  /** @param endpoint base URL without `/metadata`, e.g. http://169.254.169.254 */
  constructor(readonly endpoint: string) {}

  async instance(options: RequestOptions): Promise<AzureInstance> {
    return parseInstance(await this.getJson(INSTANCE_PATH, INSTANCE_API_VERSION, options));
  }

  /** The `signature` of the attested document: the identity proof worker-manager checks. */
  async attestedDocumentSignature(options: RequestOptions): Promise<string> {
    const document = await this.getJson(ATTESTED_DOCUMENT_PATH, INSTANCE_API_VERSION, options);
    const where = ATTESTED_DOCUMENT_PATH;
    if (!isJsonObject(document)) throw invalid(where, 'the answer is not a JSON object');
    if (document['encoding'] !== 'pkcs7') {
      throw new AzureMetadataError(
        `${where}: expected an attested document with encoding pkcs7, got ${JSON.stringify(document['encoding'] ?? null)}; worker-manager accepts only pkcs7 documents`,
        false,
      );
    }
    const signature = document['signature'];
    if (typeof signature !== 'string' || signature === '') throw missing(where, 'signature');
    return signature;
  }

  async scheduledEvents(options: RequestOptions): Promise<ScheduledEvents> {
    return parseScheduledEvents(await this.getJson(SCHEDULED_EVENTS_PATH, SCHEDULED_EVENTS_API_VERSION, options));
  }

  /** Tell Azure it may start these events now instead of waiting out their notice. */
  async startEvents(eventIds: string[], options: RequestOptions): Promise<void> {
    const body = JSON.stringify({ StartRequests: eventIds.map((EventId) => ({ EventId })) });
    const url = this.url(SCHEDULED_EVENTS_PATH, SCHEDULED_EVENTS_API_VERSION);
    const result = await httpRequest(url, { ...options, method: 'POST', headers: { Metadata: 'true', 'content-type': 'application/json' }, body });
    if (result.status < 200 || result.status > 299) throw statusError(`POST ${SCHEDULED_EVENTS_PATH}`, result.status, result.body);
  }

  private url(path: string, apiVersion: string): string {
    return `${this.endpoint}${path}?api-version=${apiVersion}`;
  }

  private async getJson(path: string, apiVersion: string, options: RequestOptions): Promise<JsonValue> {
    const result = await httpRequest(this.url(path, apiVersion), { ...options, headers: { Metadata: 'true' } });
    if (result.status !== 200) throw statusError(`GET ${path}`, result.status, result.body);
    try {
      return JSON.parse(result.body) as JsonValue;
    } catch (err) {
      throw invalid(path, `the answer is not JSON (${errorMessage(err)})`);
    }
  }
}

function statusError(what: string, status: number, body: string): AzureMetadataError {
  let detail = body.trim().slice(0, 300);
  try {
    const parsed = JSON.parse(body) as JsonValue;
    if (isJsonObject(parsed) && typeof parsed['error'] === 'string') detail = parsed['error'];
  } catch {
    // not JSON: keep the text
  }
  const transient = status >= 500 || status === 410 || status === 429;
  const hint = transient ? '' : '; is the metadata endpoint an Azure Instance Metadata Service?';
  return new AzureMetadataError(`${what}: HTTP ${status}${detail ? `: ${detail}` : ''}${hint}`, transient);
}

function invalid(path: string, what: string): AzureMetadataError {
  return new AzureMetadataError(`${path}: ${what}; is the metadata endpoint an Azure Instance Metadata Service?`, false);
}

function missing(path: string, field: string): AzureMetadataError {
  return new AzureMetadataError(`${path}: ${field} is missing or empty; this must run on an Azure VM (or point metadataEndpoint at a complete metadata service)`, false);
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
    if (isJsonObject(tag) && typeof tag['name'] === 'string' && typeof tag['value'] === 'string') tags.set(tag['name'], tag['value']);
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

function parseScheduledEvents(data: JsonValue): ScheduledEvents {
  const path = SCHEDULED_EVENTS_PATH;
  if (!isJsonObject(data) || !Array.isArray(data['Events'])) throw invalid(path, 'the answer has no Events list');
  const events = data['Events'].map((event, index): ScheduledEvent => {
    if (!isJsonObject(event) || typeof event['EventId'] !== 'string' || typeof event['EventType'] !== 'string') {
      throw invalid(path, `Events[${index}] has no EventId or EventType`);
    }
    const text = (key: string): string => (typeof event[key] === 'string' ? event[key] : '');
    const resources = Array.isArray(event['Resources']) ? event['Resources'].filter((r): r is string => typeof r === 'string') : [];
    return {
      EventId: event['EventId'],
      EventType: event['EventType'],
      ResourceType: text('ResourceType'),
      Resources: resources,
      EventStatus: text('EventStatus'),
      NotBefore: text('NotBefore'),
      Description: text('Description'),
      EventSource: text('EventSource'),
      DurationInSeconds: typeof event['DurationInSeconds'] === 'number' ? event['DurationInSeconds'] : -1,
    };
  });
  const incarnation = data['DocumentIncarnation'];
  return { DocumentIncarnation: typeof incarnation === 'number' ? incarnation : 0, Events: events };
}
