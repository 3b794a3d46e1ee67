/**
 * The run sequence: everything start-worker does, top to bottom. Startup is
 * the table STARTUP_STEPS; each step's hooks (`pre-<name>`, `post-<name>`)
 * run around it.
 */
import type { AgentOptions } from 'node:https';
import { uptime } from 'node:os';
import { performance } from 'node:perf_hooks';
import { loadRunnerConfig } from './config/load.js';
import type { Override } from './config/overrides.js';
import type { RunnerConfig } from './config/types.js';
import { StartWorkerError, errorMessage } from './errors.js';
import { Decommissioner } from './decommission.js';
import { writeFiles } from './files.js';
import { Hooks, type HookStep } from './hooks.js';
import type { Logger } from './logging/logger.js';
import type {
  IdentityProof,
  PluginContext,
  Provider,
  ProviderPlugin,
  Worker,
  WorkerPlugin,
  WorkerProcess,
  WorkerSpawner,
} from './plugin.js';
import type { PluginRegistry } from './registry.js';
import { readSecretSources } from './secret-sources/index.js';
import { applySecrets } from './secret-value.js';
import { readStateCache, writeStateCache } from './state-cache.js';
import { checkProviderResults, emptyRunState, secretKeepingRunState, type RunState } from './state.js';
import { exitStatusCode } from './supervisor/exit-status.js';
import { StartupInterrupted, StartupSignals } from './supervisor/startup-signals.js';
import { TerminationController } from './supervisor/termination.js';
import { ErrorReporter } from './taskcluster/error-report.js';
import { allowConcurrentTaskclusterCalls, preloadTaskclusterClient, type CallSettings } from './taskcluster/client.js';
import { registerWorker } from './taskcluster/registration.js';
import { CredentialRenewal } from './taskcluster/renewal.js';
import { readTaskclusterSecrets } from './taskcluster/secrets.js';

export interface RunOptions {
  configPath: string;
  log: Logger;
  /** The plugins: the built-ins, to which the runner config's are added. */
  registry: PluginRegistry;
  overrides?: Override[];
  logFormat?: 'text' | 'json';
  /** TLS settings for Taskcluster and secret-store calls. */
  tls?: AgentOptions;
  /** Called once the worker has started (bin/start-worker saves its code cache then). */
  afterStartup?: () => void;
}

/** Everything the steps share; each step fills in its part. */
interface Run {
  config: RunnerConfig;
  providerPlugin: ProviderPlugin<object>;
  provider: Provider;
  workerPlugin: WorkerPlugin<object>;
  workerImplementation: Worker;
  settings: CallSettings;
  hooks: Hooks;
  log: Logger;
  state: RunState;
  /** True for a run restored from `cacheOverRestarts`. */
  cached: boolean;
  /** True once the provider step has succeeded: from then on the machine is known to worker-manager's side. */
  identified: boolean;
  identityProof?: IdentityProof;
  worker?: WorkerProcess;
  termination?: TerminationController;
  /** When the worker was spawned: seconds since the machine booted, ms since start-worker started. */
  spawned?: { uptimeSeconds: number; sinceProcessStartMs: number };
  signals: StartupSignals;
}

interface StartupStep {
  /** Also its hooks: `pre-<name>` and `post-<name>` (none for a step without hooks). */
  name: string;
  hooks: boolean;
  /** What a run restored from the cache does with the step. */
  cached: 'run' | 'skip' | 'only';
  /** Whether the step has anything to do in this run (default: always). */
  applies?: (run: Run) => boolean;
  /**
   * The step that spawns the worker: from then on the termination controller
   * answers signals, not startup, and a failing post-hook kills the worker.
   */
  spawnsWorker?: true;
  run: (run: Run) => Promise<void>;
}

/** Startup, in order. */
const STARTUP_STEPS: readonly StartupStep[] = [
  { name: 'configure', hooks: true, cached: 'skip', run: configureProvider },
  { name: 'restore', hooks: false, cached: 'only', run: restoreCachedRun },
  { name: 'register', hooks: true, cached: 'skip', applies: (run) => run.identityProof !== undefined, run: register },
  { name: 'identify', hooks: false, cached: 'run', run: identify },
  {
    name: 'secrets',
    hooks: true,
    cached: 'skip',
    applies: (run) => run.config.getSecrets || run.config.secrets.length > 0,
    run: readSecrets,
  },
  { name: 'files', hooks: true, cached: 'skip', run: configureWorkerAndWriteFiles },
  { name: 'start', hooks: true, cached: 'run', spawnsWorker: true, run: startWorker },
];

/** Run the worker described by the runner config; resolves to the runner's exit code. */
export async function runWorker(options: RunOptions): Promise<number> {
  const run = await prepareRun(options);
  const decommissioner = new Decommissioner({
    state: run.state,
    dynamic: run.providerPlugin.dynamic,
    shutdownCommand: run.config.shutdownCommand,
    settings: run.settings,
    log: run.log,
  });
  try {
    await runStartupSteps(run);
    options.afterStartup?.();
  } catch (err) {
    run.signals.handOver();
    if (err instanceof StartupInterrupted) return err.exitCode;
    await startupFailed(run, decommissioner, err);
    throw err;
  }
  return supervise(run, run.worker!, run.termination!, decommissioner);
}

/** Load and validate the runner config, then log where it says; create the plugins and restore a cached run. */
async function prepareRun(options: RunOptions): Promise<Run> {
  const { log } = options;
  const { registry } = options;
  const loaded = await loadRunnerConfig(options.configPath, {
    tighten: true,
    registry,
    overrides: options.overrides,
    logFormat: options.logFormat,
    redactor: log.redactor,
  });
  const { config } = loaded;
  const context: PluginContext = { log, runnerConfig: config };
  const logging = await registry.get('logging', config.logging.implementation);
  log.setDestination(logging.create(config.logging, context));
  for (const warning of loaded.warnings) log.warn(warning);
  for (const source of loaded.sources) log.debug(source);
  if (options.tls?.rejectUnauthorized === false) {
    log.warn(
      'TLS CERTIFICATES ARE NOT VERIFIED (--no-verify-certs): anyone on the network path can impersonate Taskcluster and the secret stores',
    );
  }
  const providerPlugin = await registry.get('provider', config.provider.providerType);
  const workerPlugin = await registry.get('worker', config.worker.implementation);
  const cached =
    config.cacheOverRestarts === undefined
      ? undefined
      : await readCachedRun(config.cacheOverRestarts, providerPlugin, log);
  return {
    config,
    providerPlugin,
    provider: providerPlugin.create(config.provider, context),
    workerPlugin,
    workerImplementation: workerPlugin.create(config.worker, context),
    settings: {
      requestTimeoutMs: config.requestTimeout * 1000,
      startupRetryWindowMs: config.startupRetryWindow * 1000,
      ...(options.tls ? { tls: options.tls } : {}),
    },
    hooks: new Hooks(config.hooks ?? {}, log),
    log,
    state: secretKeepingRunState(cached ?? emptyRunState(config.workerConfig), log.redactor),
    cached: cached !== undefined,
    identified: false,
    // last: nothing after it can fail and leave its signal handlers installed
    signals: new StartupSignals(log),
  };
}

/**
 * Run the steps that apply, each between its hooks, timing each one. A
 * SIGTERM or SIGINT before the worker runs ends startup (StartupInterrupted).
 */
async function runStartupSteps(run: Run): Promise<void> {
  preloadLaterSteps(run);
  const durations: [string, number][] = [];
  for (const step of STARTUP_STEPS) {
    if (run.cached ? step.cached === 'skip' : step.cached === 'only') continue;
    if (step.applies && !step.applies(run)) continue;
    const stepStarted = Date.now();
    // no identity before the provider step
    if (step.hooks)
      await run.signals.unlessInterrupted(
        run.hooks.run(`pre-${step.name}` as HookStep, run.identified ? run.state : undefined),
      );
    await (step.spawnsWorker ? step.run(run) : run.signals.unlessInterrupted(step.run(run)));
    if (step.hooks) await runPostHooks(run, step);
    durations.push([step.name, Date.now() - stepStarted]);
    run.log.debug(`step ${step.name} took ${Date.now() - stepStarted} ms`);
  }
  if (run.spawned) logBootSummary(run.log, run.spawned, durations);
}

/** Start loading what later steps need while the provider's metadata requests are in flight. */
function preloadLaterSteps(run: Run): void {
  const { config, providerPlugin, workerPlugin, settings } = run;
  if (config.getSecrets || providerPlugin.registers !== false || providerPlugin.dynamic)
    preloadTaskclusterClient(settings.tls);
  if (workerPlugin.spawnsProcess !== false) void import('./supervisor/spawn.js').catch(() => undefined);
}

async function runPostHooks(run: Run, step: StartupStep): Promise<void> {
  const hooks = run.hooks.run(`post-${step.name}` as HookStep, run.state);
  if (!step.spawnsWorker) return run.signals.unlessInterrupted(hooks);
  await hooks.catch((err: unknown) => {
    run.worker!.kill();
    throw err;
  });
}

/** How long the boot took, for operators tuning images: from the machine's boot and from start-worker's own start to the spawn. */
function logBootSummary(
  log: Logger,
  spawned: { uptimeSeconds: number; sinceProcessStartMs: number },
  durations: [string, number][],
): void {
  const [slowest, slowestMs] = durations.reduce((a, b) => (b[1] > a[1] ? b : a));
  log.info(
    `boot summary: the worker started ${spawned.uptimeSeconds.toFixed(1)}s after the machine booted and ${(spawned.sinceProcessStartMs / 1000).toFixed(2)}s after start-worker started; the slowest step was ${slowest} (${(slowestMs / 1000).toFixed(2)}s)`,
  );
}

// ---- the steps ----

/** The provider says who this worker is (and how to prove it to worker-manager). */
async function configureProvider(run: Run): Promise<void> {
  run.log.info(`configuring with provider ${run.config.provider.providerType}`);
  run.identityProof = await run.provider.configureRun(run.state);
  run.identified = true;
}

/** A restart continues the cached run: the provider and worker pick it up. */
async function restoreCachedRun(run: Run): Promise<void> {
  run.log.info(`continuing the run cached in ${run.config.cacheOverRestarts}`);
  await run.provider.useCachedRun(run.state);
  await run.workerImplementation.useCachedRun(run.state);
  run.identified = true;
}

/** worker-manager: credentials, their expiry, worker configuration and files. */
async function register(run: Run): Promise<void> {
  await registerWorker(run.state, run.identityProof!, run.config.worker.implementation, run.settings, run.log);
}

async function identify(run: Run): Promise<void> {
  checkProviderResults(run.state, run.config.provider.providerType);
  const { state } = run;
  run.log.info(`identified as worker ${state.workerGroup}/${state.workerId} in pool ${state.workerPoolId}`);
}

/** The Taskcluster secrets, then the other secret sources, in order. */
async function readSecrets(run: Run): Promise<void> {
  const { config, state, settings, log } = run;
  // independent reads go out together; their order decides the merge
  const [taskcluster, sources] = await Promise.all([
    config.getSecrets ? readTaskclusterSecrets(state, settings, log) : [],
    readSecretSources(config.secrets, { ...settings, awsRegion: run.provider.awsRegion?.(state) }, log),
  ]);
  applySecrets(state, [...taskcluster, ...sources], log);
}

/** The worker implementation configures the run; the state is cached; the files are written. */
async function configureWorkerAndWriteFiles(run: Run): Promise<void> {
  const { config, state, log } = run;
  log.info(`configuring worker implementation ${config.worker.implementation}`);
  await run.workerImplementation.configureRun(state);
  if (config.cacheOverRestarts !== undefined) await writeStateCache(config.cacheOverRestarts, state);
  await writeFiles(state.files, config.fileLimits, log);
}

/** Spawn the worker; from then on the termination controller decides how it stops. */
async function startWorker(run: Run): Promise<void> {
  const { config, state, log, hooks } = run;
  log.info(`starting worker (${config.worker.implementation})`);
  const worker = await run.signals.unlessInterrupted(
    run.workerImplementation.startWorker(state, workerSpawner(config, log)),
  );
  const termination = new TerminationController(worker, log, (request) =>
    hooks.runInBackground('termination-notice', state, {
      START_WORKER_TERMINATION_REASON: request.reason,
      START_WORKER_TERMINATION_DEADLINE: request.deadline?.toISOString() ?? '',
    }),
  );
  run.worker = worker;
  run.termination = termination;
  run.spawned = { uptimeSeconds: uptime(), sinceProcessStartMs: Date.now() - performance.timeOrigin };
  termination.handleSignals();
  if (run.signals.handOver().drainRequested) termination.requestTermination({ finishTasks: true, reason: 'drain' });
}

/**
 * Startup failed after the provider step, so the machine is known: a
 * dynamically provisioned one reports the failure and goes away instead of
 * idling.
 */
async function startupFailed(run: Run, decommissioner: Decommissioner, err: unknown): Promise<void> {
  const { providerPlugin, config, state, settings, log } = run;
  if (!run.identified || !providerPlugin.dynamic || !(config.shutdownOnStartupFailure ?? true)) return;
  log.error(`startup failed: ${errorMessage(err)}`);
  const reporter = state.credentials.clientId === '' ? undefined : new ErrorReporter(state, settings, log);
  await decommissioner.startupFailed(err, reporter);
}

/** Supervise the running worker until it exits, then finish the run. */
async function supervise(
  run: Run,
  worker: WorkerProcess,
  termination: TerminationController,
  decommissioner: Decommissioner,
): Promise<number> {
  const { provider, workerImplementation, hooks, state, settings, log, config } = run;
  allowConcurrentTaskclusterCalls();
  const reporter = new ErrorReporter(state, settings, log);
  worker.protocol.setHandlers({
    errorReport: (report) => reporter.report(report),
    shutdown: () => {
      if (!decommissioner.shutdownRequested()) termination.shutdownNotPossible();
    },
  });
  const onRenewed =
    config.cacheOverRestarts === undefined
      ? undefined
      : (renewed: RunState) => writeStateCache(config.cacheOverRestarts!, renewed);
  const renewal = new CredentialRenewal({ state, protocol: worker.protocol, termination, settings, log, onRenewed });
  renewal.start();
  provider.workerStarted(termination);

  const status = await worker.exited;
  await renewal.stop();
  const code = exitStatusCode(status);
  log.info(`worker exited with ${status.signal ? `signal ${status.signal}` : `code ${status.code}`}`);
  await provider.workerFinished(state);
  await hooks.backgroundDone();
  await hooks.runLogged('worker-exit', state, { START_WORKER_EXIT_CODE: String(code) });
  await reporter.flush();
  const rebootRequested = workerImplementation.rebootRequested?.(code) ?? false;
  if (rebootRequested) log.info(`the worker asked for a reboot (exit code ${code}); leaving it registered`);
  await decommissioner.workerExited(rebootRequested);
  return code;
}

/**
 * The cached run state, if there is one and it can still be used. Expired
 * credentials are an error for a provider that cannot register again (the
 * instance should be replaced); for one that can, a fresh run.
 */
async function readCachedRun(path: string, plugin: ProviderPlugin<object>, log: Logger): Promise<RunState | undefined> {
  const cached = await readStateCache(path);
  if (cached?.credentialsExpire === undefined || Date.parse(cached.credentialsExpire) > Date.now()) return cached;
  if (plugin.canRegisterAgain) {
    log.warn(`the credentials cached in ${path} expired at ${cached.credentialsExpire}; starting a fresh run`);
    return undefined;
  }
  throw new StartWorkerError(
    `the credentials cached in ${path} expired at ${cached.credentialsExpire}; this worker cannot register again, so the instance should be replaced`,
  );
}

/**
 * Spawns worker processes with the supervisor settings of the worker
 * section; the supervisor module is loaded only when a process is spawned
 * (the dummy worker never needs it).
 */
function workerSpawner(config: RunnerConfig, log: Logger): WorkerSpawner {
  const { gracePeriod, maxLineBytes } = config.worker;
  return async (launch) => {
    const { spawnWorker } = await import('./supervisor/spawn.js');
    return spawnWorker(
      { ...launch, ...(typeof gracePeriod === 'number' ? { gracePeriodSeconds: gracePeriod } : {}) },
      { log, ...(typeof maxLineBytes === 'number' ? { maxLineBytes } : {}) },
    );
  };
}
