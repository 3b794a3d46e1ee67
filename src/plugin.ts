/**
 * The interfaces a plugin implements: providers (who is this worker?),
 * worker implementations (how to run it) and log destinations. Built-in
 * plugins implement them exactly as external ones do.
 */
import type { JsonObject } from './json.js';
import type { LogDestination, Logger } from './logging/logger.js';
import type { RunnerConfig } from './config/types.js';
import type { JsonSchema } from './schema.js';
import type { RunState } from './state.js';
import type { WorkerProcess, WorkerSpawner } from './supervisor/types.js';
import type { TerminationRequest } from './protocol/messages.js';

export type { WorkerProcess, WorkerExit, WorkerSpawner, WorkerLaunch } from './supervisor/types.js';
export type { TerminationRequest } from './protocol/messages.js';

/** What every plugin module exports: a name, a schema for its config section, usage text and a factory. */
export interface PluginDescriptor<Instance, Config extends object> {
  /** The value of `providerType` / `implementation` that selects this plugin. */
  name: string;
  /** JSON Schema of the plugin's own keys in its section (the selector key is added by the registry). */
  schema: JsonSchema;
  /** Markdown describing the plugin, for generated docs and --help. */
  usage: string;
  /** Keys of its section whose values are secret: they are redacted from every log line. */
  secretKeys?: string[];
  /**
   * Checks that a schema cannot express (one key excludes another, a key
   * that depends on the platform...). Each problem is `path: what is wrong`.
   */
  check?(config: Config, runnerConfig: JsonObject): string[];
  create(config: Config, context: PluginContext): Instance;
}

export interface PluginContext {
  log: Logger;
  /** The whole validated runner config, for plugins that need a neighbouring section. */
  runnerConfig: RunnerConfig;
}

/** Data a worker-manager provider accepts as proof of this worker's identity. */
export type IdentityProof = JsonObject;

/** Lets providers and the renewal timer ask for the worker to stop. */
export interface TerminationRequester {
  /** Ask the worker to stop: a graceful-termination message when agreed, else its termination signal. */
  requestTermination(request: TerminationRequest): void;
}

export interface Provider {
  /**
   * Fill in the run state (root URL, identity, location, metadata). Return an
   * identity proof when the worker must register with worker-manager.
   */
  configureRun(state: RunState): Promise<IdentityProof | undefined>;
  /** Called instead of configureRun when the run state was restored from the cache. */
  useCachedRun(state: RunState): Promise<void>;
  /** The worker is running: start watching for the cloud taking the machine away. */
  workerStarted(control: TerminationRequester): void;
  /** The worker has exited: stop watching (and, for some clouds, acknowledge notices). */
  workerFinished(state: RunState): Promise<void>;
  /** The default region for AWS secret sources (the aws provider: the instance's region). */
  awsRegion?(state: RunState): string | undefined;
}

export interface ProviderPlugin<Config extends object = JsonObject> extends PluginDescriptor<
  Provider,
  Config & { providerType: string }
> {
  /**
   * True when worker-manager created this machine and owns its lifecycle
   * (the worker is removed when it finishes, or the machine powers off).
   */
  dynamic: boolean;
  /**
   * True when the provider can register again at any time: cached
   * credentials that have expired then mean a fresh run instead of an error.
   */
  canRegisterAgain?: boolean;
  /**
   * False when the provider never registers with worker-manager (its
   * configureRun returns no identity proof): start-worker then does not
   * load the Taskcluster client ahead of need. Default true.
   */
  registers?: boolean;
}

export interface Worker {
  /** Add the worker's configuration to the run state (config file contents, paths). */
  configureRun(state: RunState): Promise<void>;
  /** Called instead of configureRun when the run state was restored from the cache. */
  useCachedRun(state: RunState): Promise<void>;
  /** Start the worker; `spawn` runs a real process speaking the protocol. */
  startWorker(state: RunState, spawn: WorkerSpawner): Promise<WorkerProcess>;
  /** True when this exit means the worker asked for the machine to reboot (it stays registered). */
  rebootRequested?(exitCode: number): boolean;
}

export interface WorkerPlugin<Config extends object = JsonObject> extends PluginDescriptor<
  Worker,
  Config & { implementation: string }
> {
  /** False when the worker runs inside start-worker, with no process to spawn (dummy). Default true. */
  spawnsProcess?: boolean;
}

export type LoggingPlugin<Config extends object = JsonObject> = PluginDescriptor<
  LogDestination,
  Config & { implementation: string }
>;
