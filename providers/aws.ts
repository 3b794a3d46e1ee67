import { StartWorkerError, errorMessage } from '../src/errors.js';
import { isJsonObject, type JsonObject } from '../src/json.js';
import type { Logger } from '../src/logging/logger.js';
import type { IdentityProof, Provider, ProviderPlugin, TerminationControl } from '../src/plugin.js';
import { normalizeRootUrl, type RunState } from '../src/state.js';
import { Poller } from '../src/util/poller.js';
import {
  DEFAULT_METADATA_ENDPOINT,
  Ec2MetadataClient,
  endpointProblem,
  isTransientMetadataError,
  METADATA_ENDPOINT_VARIABLE,
  resolveMetadataEndpoint,
} from './aws-metadata.js';
import { startupDeadline, withStartupRetries } from './metadata/startup-retry.js';

interface AwsConfig {
  metadataEndpoint?: string;
  terminationPollInterval: number;
  rebalance: 'ignore' | 'graceful';
}

const PATHS = {
  userData: '/latest/user-data',
  identityDocument: '/latest/dynamic/instance-identity/document',
  identitySignature: '/latest/dynamic/instance-identity/signature',
  publicHostname: '/latest/meta-data/public-hostname',
  publicIpv4: '/latest/meta-data/public-ipv4',
  spotInstanceAction: '/latest/meta-data/spot/instance-action',
  spotTerminationTime: '/latest/meta-data/spot/termination-time',
  rebalanceRecommendation: '/latest/meta-data/events/recommendations/rebalance',
} as const;

/**
 * The longest pause of the watcher after repeated failures. AWS gives two
 * minutes' notice, so a watcher that recovers must notice soon.
 */
const WATCH_MAX_BACKOFF_MS = 10_000;

/** The fields of the user data worker-manager's aws provider writes. */
const USER_DATA_KEYS = ['workerPoolId', 'providerId', 'rootUrl', 'workerGroup'] as const;
type UserData = Record<(typeof USER_DATA_KEYS)[number], string>;

interface IdentityDocument {
  instanceId: string;
  region: string;
  availabilityZone: string;
  imageId?: string;
  instanceType?: string;
  privateIp?: string;
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

class AwsProvider implements Provider {
  private readonly metadata: Ec2MetadataClient;
  private poller: Poller | undefined;
  /** When startup requests stop retrying (set when startup begins). */
  private startupDeadline = 0;

  constructor(
    private readonly config: AwsConfig,
    private readonly log: Logger,
    private readonly startupRetryWindow: number,
  ) {
    this.metadata = new Ec2MetadataClient(resolveMetadataEndpoint(config.metadataEndpoint));
    if (this.metadata.endpoint !== DEFAULT_METADATA_ENDPOINT) log.info(`using the EC2 metadata service at ${this.metadata.endpoint}`);
  }

  async configureRun(state: RunState): Promise<IdentityProof> {
    this.startupDeadline = startupDeadline(this.startupRetryWindow);
    // Everything at once: the service answers in milliseconds, and boot time matters.
    const [notice, userDataText, documentText, signature, publicHostname, publicIpv4] = await Promise.allSettled([
      this.startupNotice(),
      this.fetchRequired(PATHS.userData),
      this.fetchRequired(PATHS.identityDocument),
      this.fetchRequired(PATHS.identitySignature),
      this.fetch(PATHS.publicHostname),
      this.fetch(PATHS.publicIpv4),
    ]);
    // Failures are reported in this order, whichever happened first.
    const announced = settled(notice);
    if (announced !== undefined) throw announcedInterruption(announced);
    const userData = this.parseUserData(settled(userDataText));
    const raw = settled(documentText);
    const document = this.parseIdentityDocument(raw);
    const proof = { document: raw, signature: settled(signature) };
    const hostname = settled(publicHostname);
    const ipv4 = settled(publicIpv4);

    state.rootUrl = normalizeRootUrl(userData.rootUrl);
    state.providerId = userData.providerId;
    state.workerPoolId = userData.workerPoolId;
    state.workerGroup = userData.workerGroup;
    state.workerId = document.instanceId;
    state.workerLocation = { cloud: 'aws', region: document.region, availabilityZone: document.availabilityZone };
    // A private instance has no public hostname or address (404): leave them out rather than fail.
    const providerMetadata: JsonObject = {
      'instance-id': document.instanceId,
      ...(document.imageId !== undefined ? { image: document.imageId } : {}),
      ...(document.instanceType !== undefined ? { 'instance-type': document.instanceType } : {}),
      region: document.region,
      'availability-zone': document.availabilityZone,
      ...(document.privateIp !== undefined ? { 'local-ipv4': document.privateIp } : {}),
      ...(hostname !== undefined && hostname.trim() !== '' ? { 'public-hostname': hostname.trim() } : {}),
      ...(ipv4 !== undefined && ipv4.trim() !== '' ? { 'public-ipv4': ipv4.trim() } : {}),
    };
    state.providerMetadata = providerMetadata;
    return proof;
  }

  async useCachedRun(): Promise<void> {
    // The cached state has the identity; only an announced interruption matters.
    this.startupDeadline = startupDeadline(this.startupRetryWindow);
    const announced = await this.startupNotice();
    if (announced !== undefined) throw announcedInterruption(announced);
  }

  workerStarted(control: TerminationControl): void {
    if (this.poller !== undefined) return;
    let rebalanceSeen = false;
    this.poller = new Poller(
      async (signal) => {
        const spot = await this.metadata.get(PATHS.spotInstanceAction, { signal });
        if (spot !== undefined) {
          const notice = parseSpotNotice(spot);
          this.log.warn(`EC2 spot interruption notice (${PATHS.spotInstanceAction}): ${describeNotice(notice)}`);
          control.requestTermination({ finishTasks: false, reason: 'spot-interruption', ...(notice.time ? { deadline: notice.time } : {}) });
          return true;
        }
        if (this.config.rebalance === 'graceful' && !rebalanceSeen) {
          const recommendation = await this.metadata.get(PATHS.rebalanceRecommendation, { signal });
          if (recommendation !== undefined) {
            rebalanceSeen = true;
            this.log.warn(`EC2 rebalance recommendation (${PATHS.rebalanceRecommendation}): ${recommendation.trim().slice(0, 200)}; asking the worker to finish its tasks and stop`);
            control.requestTermination({ finishTasks: true, reason: 'rebalance' });
          }
        }
        // Keep watching: a spot notice after a rebalance recommendation means stop now.
        return false;
      },
      {
        name: 'EC2 spot interruption watch',
        intervalMs: this.config.terminationPollInterval * 1000,
        maxBackoffMs: WATCH_MAX_BACKOFF_MS,
        log: this.log,
      },
    );
    this.poller.start();
  }

  async workerFinished(): Promise<void> {
    await this.poller?.stop();
  }

  /** A metadata path, with retries of transient failures; undefined when it does not exist. */
  private fetch(path: string): Promise<string | undefined> {
    return withStartupRetries(() => this.metadata.get(path), {
      deadline: this.startupDeadline,
      windowSeconds: this.startupRetryWindow,
      isTransient: isTransientMetadataError,
      log: this.log,
      hint: `is this an EC2 instance, with its metadata service at ${this.metadata.endpoint}? Elsewhere, set provider.metadataEndpoint or ${METADATA_ENDPOINT_VARIABLE}`,
    }, 'EC2 metadata');
  }

  private async fetchRequired(path: string): Promise<string> {
    const value = await this.fetch(path);
    if (value === undefined || value.trim() === '') {
      throw new StartWorkerError(
        `GET ${this.metadata.url(path)}: ${value === undefined ? 'not found (HTTP 404)' : 'empty'}; start-worker's aws provider needs it, so run it on an EC2 instance created by worker-manager's aws provider`,
      );
    }
    return value;
  }

  /**
   * A description of the spot interruption already announced, if any. A
   * failed check does not stop the worker: the watcher will see the notice.
   */
  private async startupNotice(): Promise<string | undefined> {
    try {
      const [action, terminationTime] = await Promise.all([this.fetch(PATHS.spotInstanceAction), this.fetch(PATHS.spotTerminationTime)]);
      if (action !== undefined) return `${PATHS.spotInstanceAction}: ${describeNotice(parseSpotNotice(action))}`;
      if (terminationTime !== undefined) {
        const time = parseTimestamp(terminationTime);
        if (time !== undefined) return `${PATHS.spotTerminationTime}: ${time.toISOString()}`;
        this.log.debug(`${PATHS.spotTerminationTime} is not a timestamp ('${terminationTime.slice(0, 50)}'); not a notice`);
      }
    } catch (err) {
      this.log.warn(`could not check for a spot interruption notice: ${errorMessage(err)}; starting anyway, the watcher will see one`);
    }
    return undefined;
  }

  private parseUserData(text: string): UserData {
    const where = `the user data (GET ${this.metadata.url(PATHS.userData)})`;
    const parsed = parseJson(text, where);
    const missing = USER_DATA_KEYS.filter((key) => typeof parsed[key] !== 'string' || parsed[key] === '');
    if (missing.length > 0) {
      throw new StartWorkerError(
        `${where} has no ${missing.join(', ')}; worker-manager's aws provider writes workerPoolId, providerId, rootUrl and workerGroup there: start this instance from worker-manager`,
      );
    }
    return Object.fromEntries(USER_DATA_KEYS.map((key) => [key, parsed[key] as string])) as UserData;
  }

  private parseIdentityDocument(text: string): IdentityDocument {
    const where = `the instance identity document (GET ${this.metadata.url(PATHS.identityDocument)})`;
    const parsed = parseJson(text, where);
    const string = (key: string): string | undefined => (typeof parsed[key] === 'string' && parsed[key] !== '' ? (parsed[key] as string) : undefined);
    const instanceId = string('instanceId');
    const region = string('region');
    const availabilityZone = string('availabilityZone');
    if (instanceId === undefined || region === undefined || availabilityZone === undefined) {
      const missing = [instanceId === undefined && 'instanceId', region === undefined && 'region', availabilityZone === undefined && 'availabilityZone'].filter(Boolean);
      throw new StartWorkerError(`${where} has no ${missing.join(', ')}; is ${this.metadata.endpoint} really the EC2 metadata service?`);
    }
    const optional = (key: string, value: string | undefined) => (value === undefined ? {} : { [key]: value });
    return {
      instanceId,
      region,
      availabilityZone,
      ...optional('imageId', string('imageId')),
      ...optional('instanceType', string('instanceType')),
      ...optional('privateIp', string('privateIp')),
    };
  }
}

function announcedInterruption(notice: string): StartWorkerError {
  return new StartWorkerError(`the EC2 metadata service announces a spot interruption (${notice}); not starting a worker on an instance about to go away`);
}

function settled<T>(result: PromiseSettledResult<T>): T {
  if (result.status === 'rejected') throw result.reason;
  return result.value;
}

function parseJson(text: string, where: string): JsonObject {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new StartWorkerError(`${where} is not JSON (${errorMessage(err)})`);
  }
  if (!isJsonObject(parsed)) throw new StartWorkerError(`${where} is not a JSON object`);
  return parsed;
}

const plugin: ProviderPlugin<AwsConfig> = {
  name: 'aws',
  dynamic: true,
  schema: {
    type: 'object',
    properties: {
      metadataEndpoint: {
        type: 'string',
        minLength: 1,
        description: `The EC2 instance metadata service (default ${DEFAULT_METADATA_ENDPOINT}, or the environment variable \`${METADATA_ENDPOINT_VARIABLE}\`, which this key overrides). For tests and proxies.`,
      },
      terminationPollInterval: {
        type: 'number',
        minimum: 0.05,
        default: 1,
        description: 'Seconds between two checks for a spot interruption notice (and a rebalance recommendation, when watched); fractions are allowed, down to 0.05.',
      },
      rebalance: {
        enum: ['ignore', 'graceful'],
        default: 'ignore',
        description:
          'What to do on an EC2 rebalance recommendation (an early sign of a spot interruption): `ignore` it, or ask the worker to finish its running tasks and stop (`graceful`, reason `rebalance`).',
      },
    },
  },
  usage: `The provider for workers on EC2 instances that worker-manager created
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

The metadata service is \`${DEFAULT_METADATA_ENDPOINT}\` unless
\`${METADATA_ENDPOINT_VARIABLE}\` or \`metadataEndpoint\` (which wins) says
otherwise.`,
  check(config) {
    if (config.metadataEndpoint === undefined) return [];
    const problem = endpointProblem(config.metadataEndpoint, 'provider.metadataEndpoint');
    return problem === undefined ? [] : [problem];
  },
  create(config, context) {
    return new AwsProvider(config, context.log, context.runnerConfig.startupRetryWindow);
  },
};

export default plugin;
