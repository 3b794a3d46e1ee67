import { StartWorkerError, errorMessage } from '../src/errors.js';
import { isJsonObject, presentEntries, type JsonObject } from '../src/json.js';
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
import { HttpRequestError } from '../src/util/http.js';
import { settledInOrder } from '../src/util/in-order.js';
import {
  checkMetadataEndpoint,
  metadataEndpointSchema,
  resolveMetadataEndpoint,
  type EndpointSettings,
} from './metadata/endpoint.js';
import { MetadataError, MetadataPermanentError } from './metadata/errors.js';
import { describeFailure, MetadataService, type StatusFailure } from './metadata/request.js';
import { StartupRetries } from './metadata/startup-retry.js';
import { applyUserData, parseJsonObject, parseUserData } from './metadata/user-data.js';
import { TerminationWatcher, terminationPollIntervalSchema } from './metadata/watcher.js';

interface AwsConfig {
  metadataEndpoint?: string;
  terminationPollInterval: number;
  rebalance: 'ignore' | 'graceful';
}

/** The variable is the AWS SDKs' own. */
const ENDPOINT: EndpointSettings = { default: 'http://169.254.169.254', variable: 'AWS_EC2_METADATA_SERVICE_ENDPOINT' };

const PATHS = {
  token: '/latest/api/token',
  userData: '/latest/user-data',
  identityDocument: '/latest/dynamic/instance-identity/document',
  identitySignature: '/latest/dynamic/instance-identity/signature',
  publicHostname: '/latest/meta-data/public-hostname',
  publicIpv4: '/latest/meta-data/public-ipv4',
  spotInstanceAction: '/latest/meta-data/spot/instance-action',
  spotTerminationTime: '/latest/meta-data/spot/termination-time',
  rebalanceRecommendation: '/latest/meta-data/events/recommendations/rebalance',
} as const;

/** The requests configureRun makes at once once it has a token: the spot notice (two paths) and five more. */
const CONFIGURE_REQUESTS = 7;

const TOKEN_HEADER = 'X-aws-ec2-metadata-token';
/** The longest session token lifetime IMDSv2 grants (6 hours). */
const TOKEN_TTL_SECONDS = 21600;
/** Get a new token this long before the old one expires, so none expires in flight. */
const TOKEN_REFRESH_MARGIN_MS = 5 * 60_000;

const schema: JsonSchema = {
  type: 'object',
  properties: {
    metadataEndpoint: metadataEndpointSchema(ENDPOINT, 'Address of the EC2 instance metadata service'),
    terminationPollInterval: terminationPollIntervalSchema(
      'checks for a spot interruption notice (and a rebalance recommendation, when watched)',
      0.05,
    ),
    rebalance: {
      enum: ['ignore', 'graceful'],
      default: 'ignore',
      description:
        'What to do on an EC2 rebalance recommendation (an early sign of a spot interruption): `ignore` it, or ask the worker to finish its running tasks and stop (`graceful`, reason `rebalance`).',
    },
  },
};

const usage = `The provider for workers on EC2 instances that worker-manager created
with a provider of type \`aws\`. It reads the worker pool, provider, root URL
and worker group from the user data worker-manager wrote, proves the
instance's identity with the signed instance identity document, and uses the
instance ID as worker ID. It speaks IMDSv2 only (a session token, reused until
shortly before it expires).

\`\`\`yaml
provider:
  providerType: aws
  terminationPollInterval: 1   # optional, seconds
  rebalance: ignore            # optional: ignore | graceful
\`\`\`

The worker location is \`{cloud: aws, region, availabilityZone}\`. The provider
metadata has \`instance-id\`, \`image\`, \`instance-type\`, \`region\`,
\`availability-zone\`, \`local-ipv4\`, and \`public-hostname\` and \`public-ipv4\`
when the instance has them.

start-worker refuses to start when a spot interruption is already announced,
on a restart from \`cacheOverRestarts\` too.
While the worker runs, it checks \`spot/instance-action\` every
\`terminationPollInterval\` seconds; on a notice the worker gets
graceful-termination (finish-tasks false, reason \`spot-interruption\`, the
notice's time as deadline), or its termination signal. With
\`rebalance: graceful\` it also checks \`events/recommendations/rebalance\`,
and on a recommendation asks the worker to finish its tasks and stop (reason
\`rebalance\`). When the worker exits, it is removed from worker-manager; if
that fails, the machine is powered off with \`shutdownCommand\`.

The metadata service is \`${ENDPOINT.default}\` unless
\`${ENDPOINT.variable}\` or \`metadataEndpoint\` (which wins) says
otherwise.`;

class AwsProvider implements Provider {
  private metadata: Imdsv2Client | undefined;
  private readonly watcher: TerminationWatcher;
  private rebalanceSeen = false;

  constructor(
    private readonly config: AwsConfig,
    private readonly log: Logger,
    private readonly startupRetryWindow: number,
  ) {
    this.watcher = new TerminationWatcher(
      [{ name: 'EC2 spot interruption watch', check: (signal) => this.checkInterruption(signal) }],
      {
        intervalMs: config.terminationPollInterval * 1000,
        // a spot notice is the last word
        afterStopNow: 'stop',
        log,
      },
    );
  }

  async configureRun(state: RunState): Promise<IdentityProof> {
    const startup = this.startupRetries();
    // Everything at once, on connections opened while the session token is
    // fetched: the service answers in milliseconds, and boot time matters.
    await this.imds().preconnect(CONFIGURE_REQUESTS);
    const [, userDataText, raw, signature, hostname, ipv4] = await settledInOrder([
      // an instance already going away is refused first, whatever else failed
      this.startupNotice(startup).then((announced) => {
        if (announced !== undefined) throw announcedInterruption(announced);
      }),
      this.fetchRequired(startup, PATHS.userData),
      this.fetchRequired(startup, PATHS.identityDocument),
      this.fetchRequired(startup, PATHS.identitySignature),
      this.fetch(startup, PATHS.publicHostname),
      this.fetch(startup, PATHS.publicIpv4),
    ]);
    const userData = parseUserData(
      userDataText,
      `the user data (GET ${this.imds().url(PATHS.userData)})`,
      "worker-manager's aws provider writes workerPoolId, providerId, rootUrl and workerGroup there: start this instance from worker-manager",
    );
    const document = this.parseIdentityDocument(raw);
    const proof = { document: raw, signature };

    applyUserData(state, userData);
    state.workerId = document.instanceId;
    state.workerLocation = { cloud: 'aws', region: document.region, availabilityZone: document.availabilityZone };
    // A private instance has no public hostname or address (404): leave them out rather than fail.
    state.providerMetadata = presentEntries({
      'instance-id': document.instanceId,
      image: document.imageId,
      'instance-type': document.instanceType,
      region: document.region,
      'availability-zone': document.availabilityZone,
      'local-ipv4': document.privateIp,
      'public-hostname': hostname?.trim(),
      'public-ipv4': ipv4?.trim(),
    });
    return proof;
  }

  async useCachedRun(): Promise<void> {
    // The cached state has the identity; only an announced interruption matters.
    const announced = await this.startupNotice(this.startupRetries());
    if (announced !== undefined) throw announcedInterruption(announced);
  }

  workerStarted(control: TerminationRequester): void {
    this.watcher.start(control);
  }

  workerFinished(): Promise<void> {
    return this.watcher.stop();
  }

  awsRegion(state: RunState): string | undefined {
    return state.workerLocation['region'];
  }

  /** Resolved when first needed, so a bad address is a startup error, not a crash in create(). */
  private imds(): Imdsv2Client {
    if (this.metadata === undefined) {
      this.metadata = new Imdsv2Client(resolveMetadataEndpoint(this.config.metadataEndpoint, ENDPOINT));
      if (this.metadata.endpoint !== ENDPOINT.default)
        this.log.info(`using the EC2 metadata service at ${this.metadata.endpoint}`);
    }
    return this.metadata;
  }

  private startupRetries(): StartupRetries {
    return new StartupRetries({
      windowSeconds: this.startupRetryWindow,
      log: this.log,
      hint: `is this an EC2 instance, with its metadata service at ${this.imds().endpoint}? Elsewhere, set provider.metadataEndpoint or ${ENDPOINT.variable}`,
    });
  }

  /** One look for a spot notice (and a rebalance recommendation, once, when watched). */
  private async checkInterruption(signal: AbortSignal): Promise<TerminationRequest | undefined> {
    const spot = await this.imds().get(PATHS.spotInstanceAction, signal);
    if (spot !== undefined) {
      const notice = parseSpotNotice(spot);
      this.log.warn(`EC2 spot interruption notice (${PATHS.spotInstanceAction}): ${describeNotice(notice)}`);
      return { finishTasks: false, reason: 'spot-interruption', ...(notice.time ? { deadline: notice.time } : {}) };
    }
    if (this.config.rebalance !== 'graceful' || this.rebalanceSeen) return undefined;
    const recommendation = await this.imds().get(PATHS.rebalanceRecommendation, signal);
    if (recommendation === undefined) return undefined;
    // Acted on once; a spot notice after it means stop now.
    this.rebalanceSeen = true;
    this.log.warn(
      `EC2 rebalance recommendation (${PATHS.rebalanceRecommendation}): ${recommendation.trim().slice(0, 200)}; asking the worker to finish its tasks and stop`,
    );
    return { finishTasks: true, reason: 'rebalance' };
  }

  /** A metadata path, with retries of transient failures; undefined when it does not exist. */
  private fetch(startup: StartupRetries, path: string): Promise<string | undefined> {
    return startup.run(() => this.imds().get(path), 'EC2 metadata');
  }

  private async fetchRequired(startup: StartupRetries, path: string): Promise<string> {
    const value = await this.fetch(startup, path);
    if (value === undefined || value.trim() === '') {
      throw new StartWorkerError(
        `GET ${this.imds().url(path)}: ${value === undefined ? 'not found (HTTP 404)' : 'empty'}; start-worker's aws provider needs it, so run it on an EC2 instance created by worker-manager's aws provider`,
      );
    }
    return value;
  }

  /**
   * A description of the spot interruption already announced, if any. A
   * failed check does not stop the worker: the watcher will see the notice.
   */
  private async startupNotice(startup: StartupRetries): Promise<string | undefined> {
    try {
      const [action, terminationTime] = await Promise.all([
        this.fetch(startup, PATHS.spotInstanceAction),
        this.fetch(startup, PATHS.spotTerminationTime),
      ]);
      if (action !== undefined) return `${PATHS.spotInstanceAction}: ${describeNotice(parseSpotNotice(action))}`;
      if (terminationTime !== undefined) {
        const time = parseTimestamp(terminationTime);
        if (time !== undefined) return `${PATHS.spotTerminationTime}: ${time.toISOString()}`;
        this.log.debug(
          `${PATHS.spotTerminationTime} is not a timestamp ('${terminationTime.slice(0, 50)}'); not a notice`,
        );
      }
    } catch (err) {
      this.log.warn(
        `could not check for a spot interruption notice: ${errorMessage(err)}; starting anyway, the watcher will see one`,
      );
    }
    return undefined;
  }

  private parseIdentityDocument(text: string): IdentityDocument {
    const where = `the instance identity document (GET ${this.imds().url(PATHS.identityDocument)})`;
    const parsed = parseJsonObject(text, where);
    const string = (key: string): string | undefined =>
      typeof parsed[key] === 'string' && parsed[key] !== '' ? (parsed[key] as string) : undefined;
    const instanceId = string('instanceId');
    const region = string('region');
    const availabilityZone = string('availabilityZone');
    if (instanceId === undefined || region === undefined || availabilityZone === undefined) {
      const missing = [
        instanceId === undefined && 'instanceId',
        region === undefined && 'region',
        availabilityZone === undefined && 'availabilityZone',
      ].filter(Boolean);
      throw new StartWorkerError(
        `${where} has no ${missing.join(', ')}; is ${this.imds().endpoint} really the EC2 metadata service?`,
      );
    }
    return {
      instanceId,
      region,
      availabilityZone,
      imageId: string('imageId'),
      instanceType: string('instanceType'),
      privateIp: string('privateIp'),
    };
  }
}

/**
 * IMDSv2, the EC2 instance metadata service with session tokens.
 *
 * Not `@aws-sdk/ec2-metadata-service`: it PUTs a new session token before
 * every request, has no default timeout and silently falls back to IMDSv1,
 * so it cannot serve a once-a-second spot poll. This client keeps one token
 * until shortly before it expires, gets a fresh one once when a request is
 * refused with 401, and never falls back to IMDSv1.
 */
class Imdsv2Client {
  private readonly service: MetadataService;
  private token:
    { value: string; /** Wall-clock time (ms) after which a new token is fetched. */ refreshAt: number } | undefined;
  /** The token request in flight, shared by concurrent callers. */
  private tokenRequest: Promise<string> | undefined;

  constructor(readonly endpoint: string) {
    this.service = new MetadataService(endpoint, { describe: describeImdsFailure });
  }

  url(path: string): string {
    return this.service.url(path);
  }

  /** Connections for `count` requests made at once; the token request, made next, takes one. */
  preconnect(count: number): Promise<void> {
    // a connection that cannot be opened is the requests' to report
    return this.service.preconnect(count).catch(() => undefined);
  }

  /** GET a metadata path: its text, or undefined when the path does not exist (404). */
  async get(path: string, signal?: AbortSignal): Promise<string | undefined> {
    const token = await this.sessionToken(signal);
    const get = (value: string) => this.service.find({ path, headers: { [TOKEN_HEADER]: value }, signal });
    try {
      return (await get(token))?.body;
    } catch (err) {
      if (!(err instanceof MetadataError && err.status === 401)) throw err;
      // The token was refused before its time (the service restarted, the
      // clock jumped): one fresh token, one more try.
      if (this.token?.value === token) this.token = undefined;
      return (await get(await this.sessionToken(signal)))?.body;
    }
  }

  private async sessionToken(signal: AbortSignal | undefined): Promise<string> {
    if (this.token !== undefined && Date.now() < this.token.refreshAt) return this.token.value;
    this.tokenRequest ??= this.requestToken(signal).finally(() => {
      this.tokenRequest = undefined;
    });
    return this.tokenRequest;
  }

  private async requestToken(signal: AbortSignal | undefined): Promise<string> {
    const requestedAt = Date.now();
    let body;
    try {
      ({ body } = await this.service.request({
        method: 'PUT',
        path: PATHS.token,
        headers: { 'X-aws-ec2-metadata-token-ttl-seconds': String(TOKEN_TTL_SECONDS) },
        signal,
      }));
    } catch (err) {
      if (!(err instanceof HttpRequestError)) throw err;
      // A PUT that never gets an answer from inside a container is the
      // classic symptom of the response hop limit.
      throw new HttpRequestError(
        `${err.message}; cannot get an IMDSv2 session token: is this an EC2 instance? (In a container, the instance's HttpPutResponseHopLimit may be too low.)`,
      );
    }
    const value = body.trim();
    if (value === '') throw new MetadataPermanentError(`PUT ${this.url(PATHS.token)}: HTTP 200 with an empty token`);
    this.token = { value, refreshAt: requestedAt + TOKEN_TTL_SECONDS * 1000 - TOKEN_REFRESH_MARGIN_MS };
    return value;
  }
}

/** A refused token request says why IMDSv2 is out of reach. */
function describeImdsFailure(failure: StatusFailure): string {
  const hint =
    failure.method !== 'PUT'
      ? ''
      : failure.status === 403
        ? '; the instance metadata service is disabled for this instance (enable HttpEndpoint)'
        : failure.status === 404 || failure.status === 405
          ? '; this metadata service does not support IMDSv2 session tokens'
          : '';
  return `${describeFailure(failure)}${hint}`;
}

interface IdentityDocument {
  instanceId: string;
  region: string;
  availabilityZone: string;
  imageId: string | undefined;
  instanceType: string | undefined;
  privateIp: string | undefined;
}

/** A spot instance-action notice: `{"action": "terminate" | "stop" | "hibernate", "time": "<RFC 3339>"}`. */
interface SpotNotice {
  action: string;
  time?: Date;
}

/** Parse an instance-action body; one AWS did not write as documented is still a notice. */
function parseSpotNotice(body: string): SpotNotice {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return { action: 'unknown' };
  }
  if (!isJsonObject(parsed)) return { action: 'unknown' };
  const action = typeof parsed['action'] === 'string' ? parsed['action'] : 'unknown';
  const time = parseTimestamp(parsed['time']);
  return time === undefined ? { action } : { action, time };
}

const RFC3339 = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/i;

/** An RFC 3339 timestamp, or undefined for anything else. */
function parseTimestamp(value: unknown): Date | undefined {
  if (typeof value !== 'string' || !RFC3339.test(value.trim())) return undefined;
  const time = Date.parse(value.trim());
  return Number.isNaN(time) ? undefined : new Date(time);
}

function describeNotice(notice: SpotNotice): string {
  return `${notice.action}${notice.time ? ` at ${notice.time.toISOString()}` : ''}`;
}

function announcedInterruption(notice: string): StartWorkerError {
  return new StartWorkerError(
    `the EC2 metadata service announces a spot interruption (${notice}); not starting a worker on an instance about to go away`,
  );
}

const plugin: ProviderPlugin<AwsConfig> = {
  name: 'aws',
  dynamic: true,
  schema,
  usage,
  check: (config) => checkMetadataEndpoint(config.metadataEndpoint, ENDPOINT),
  create(config, context) {
    return new AwsProvider(config, context.log, context.runnerConfig.startupRetryWindow);
  },
};

export default plugin;
