/**
 * The run sequence: everything start-worker does, top to bottom.
 */
import type { AgentOptions } from 'node:https';
import { loadRunnerConfig } from './config/load.js';
import type { Override } from './config/overrides.js';
import type { RunnerConfig } from './config/types.js';
import { StartWorkerError, errorMessage } from './errors.js';
import { ExitManager } from './exit.js';
import { writeFiles } from './files.js';
import { Hooks } from './hooks.js';
import type { Logger } from './logging/logger.js';
import type { IdentityProof, PluginContext, Provider, ProviderPlugin, RunningWorker, WorkerImplementation, WorkerSpawner } from './plugin.js';
import { PluginRegistry } from './registry.js';
import { readSecretSources } from './secret-sources/index.js';
import { readStateCache, writeStateCache } from './state-cache.js';
import { checkProviderResults, emptyRunState, type RunState } from './state.js';
import { exitStatusCode } from './supervisor/exit-status.js';
import { DRAIN_SIGNAL, TerminationController } from './supervisor/termination.js';
import { ErrorReporter } from './taskcluster/error-report.js';
import { registerWorker, type StartupCallSettings } from './taskcluster/registration.js';
import { CredentialRenewal } from './taskcluster/renewal.js';
import { protectRestoredSecrets, readTaskclusterSecrets } from './taskcluster/secrets.js';

export interface RunOptions {
  configPath: string;
  log: Logger;
  registry?: PluginRegistry;
  overrides?: Override[];
  logFormat?: 'text' | 'json';
  /** TLS settings for Taskcluster and secret-store calls. */
  tls?: AgentOptions;
}

/** How long to wait for error reports still in flight when the worker has exited. */
const REPORT_FLUSH_MS = 30_000;

/** Run the worker described by the runner config; resolves to the runner's exit code. */
export async function runWorker(options: RunOptions): Promise<number> {
  const { log } = options;
  const registry = options.registry ?? new PluginRegistry();

  // Load and validate the runner config, then log where it says.
  const loaded = await loadRunnerConfig(options.configPath, { tighten: true, registry, overrides: options.overrides, logFormat: options.logFormat });
  const { config } = loaded;
  for (const secret of loaded.secrets) log.redactor.add(secret);
  const context: PluginContext = { log, runnerConfig: config };
  const logging = await registry.get('logging', config.logging.implementation);
  log.setDestination(logging.create(config.logging, context));
  for (const warning of loaded.warnings) log.warn(warning);
  if (options.tls?.rejectUnauthorized === false) {
    log.warn('TLS CERTIFICATES ARE NOT VERIFIED (--no-verify-certs): anyone on the network path can impersonate Taskcluster and the secret stores');
  }

  const providerPlugin = await registry.get('provider', config.provider.providerType);
  protectConfigSecrets(config, providerPlugin, log);
  const provider = providerPlugin.create(config.provider, context);
  const workerImplementation = (await registry.get('worker', config.worker.implementation)).create(config.worker, context);
  const settings: StartupCallSettings = {
    requestTimeoutMs: config.requestTimeout * 1000,
    retryWindowMs: config.startupRetryWindow * 1000,
    ...(options.tls ? { tls: options.tls } : {}),
  };
  const hooks = new Hooks(config.hooks ?? {}, log);
  // Until there is a worker to stop, SIGTERM/SIGINT simply end startup; a drain waits for the worker.
  const startupSignals = handleSignalsDuringStartup(log);

  // A restart continues the cached run; otherwise the provider says who this worker is.
  const cached = config.cacheOverRestarts === undefined ? undefined : await restoreCachedRun(config.cacheOverRestarts, providerPlugin, log);
  const state = cached ?? emptyRunState(config.workerConfig);
  let identityProof: IdentityProof | undefined;
  if (cached) {
    log.info(`continuing the run cached in ${config.cacheOverRestarts}`);
    protectStateSecrets(state, log);
    protectRestoredSecrets(state, log);
    await provider.useCachedRun(state);
    await workerImplementation.useCachedRun(state);
  } else {
    await hooks.run('pre-configure', undefined);
    log.info(`configuring with provider ${config.provider.providerType}`);
    identityProof = await provider.configureRun(state);
    protectStateSecrets(state, log);
    await hooks.run('post-configure', state);
  }

  // From here on a failure happens to a known machine: a dynamically
  // provisioned one reports it and goes away instead of idling.
  const exit = new ExitManager({ state, dynamic: providerPlugin.dynamic, shutdownCommand: config.shutdownCommand, settings, log });
  let worker: RunningWorker;
  let termination: TerminationController;
  /** termination-notice hooks run while the worker stops; the run waits for them before finishing. */
  const noticeHooks: Promise<void>[] = [];
  try {
    if (identityProof !== undefined) {
      await hooks.run('pre-register', state);
      await registerWorker(state, identityProof, config.worker.implementation, settings, log);
      protectStateSecrets(state, log);
      await hooks.run('post-register', state);
    }
    checkProviderResults(state, config.provider.providerType);
    log.info(`identified as worker ${state.workerGroup}/${state.workerId} in pool ${state.workerPoolId}`);
    if (!cached && (config.getSecrets || config.secrets.length > 0)) {
      await hooks.run('pre-secrets', state);
      if (config.getSecrets) await readTaskclusterSecrets(state, settings, log);
      await readSecretSources(config.secrets, state, { ...settings, awsRegion: awsRegion(config, state) }, log);
      await hooks.run('post-secrets', state);
    }
    await hooks.run('pre-start', state);
    if (!cached) {
      log.info(`configuring worker implementation ${config.worker.implementation}`);
      await workerImplementation.configureRun(state);
      if (config.cacheOverRestarts !== undefined) await writeStateCache(config.cacheOverRestarts, state);
      await hooks.run('pre-files', state);
      await writeFiles(state.files, config.fileLimits, log);
      await hooks.run('post-files', state);
    }
    log.info(`starting worker (${config.worker.implementation})`);
    worker = await workerImplementation.startWorker(state, workerSpawner(config, log));
    termination = new TerminationController(worker, log, (request) =>
      noticeHooks.push(
        hooks.runLogged('termination-notice', state, {
          START_WORKER_TERMINATION_REASON: request.reason,
          START_WORKER_TERMINATION_DEADLINE: request.deadline?.toISOString() ?? '',
        }),
      ),
    );
    termination.handleSignals();
    if (startupSignals.stop().drainRequested) termination.requestTermination({ finishTasks: true, reason: 'drain' });
    await hooks.run('post-start', state).catch((err: unknown) => {
      worker.kill();
      throw err;
    });
  } catch (err) {
    if (providerPlugin.dynamic && (config.shutdownOnStartupFailure ?? true)) {
      log.error(`startup failed: ${errorMessage(err)}`);
      const reporter = state.credentials.clientId === '' ? undefined : new ErrorReporter(state, settings, log);
      await exit.startupFailed(err, reporter);
    }
    throw err;
  }

  const onRenewed = config.cacheOverRestarts === undefined ? undefined : (renewed: RunState) => writeStateCache(config.cacheOverRestarts!, renewed);
  return supervise(worker, termination, state, { provider, workerImplementation, exit, hooks, noticeHooks, settings, log, onRenewed });
}

interface SuperviseParts {
  provider: Provider;
  workerImplementation: WorkerImplementation;
  exit: ExitManager;
  hooks: Hooks;
  noticeHooks: Promise<void>[];
  settings: StartupCallSettings;
  log: Logger;
  /** Called after each credential renewal (to rewrite the state cache). */
  onRenewed: ((state: RunState) => Promise<void>) | undefined;
}

/** Supervise the running worker until it exits, then finish the run. */
async function supervise(worker: RunningWorker, termination: TerminationController, state: RunState, parts: SuperviseParts): Promise<number> {
  const { provider, workerImplementation, exit, hooks, noticeHooks, settings, log, onRenewed } = parts;
  const reporter = new ErrorReporter(state, settings, log);
  worker.protocol.setHandlers({
    errorReport: (report) => reporter.report(report),
    shutdown: () => {
      if (!exit.shutdownRequested()) termination.shutdownNotPossible();
    },
  });
  const renewal = new CredentialRenewal({ state, protocol: worker.protocol, termination, settings, log, onRenewed });
  renewal.start();
  provider.workerStarted(termination);

  const status = await worker.exited;
  await renewal.stop();
  const code = exitStatusCode(status);
  log.info(`worker exited with ${status.signal ? `signal ${status.signal}` : `code ${status.code}`}`);
  await provider.workerFinished(state);
  await Promise.all(noticeHooks);
  await hooks.runLogged('worker-exit', state, { START_WORKER_EXIT_CODE: String(code) });
  await reporter.flush(REPORT_FLUSH_MS);
  const rebootRequested = workerImplementation.rebootRequested?.(code) ?? false;
  if (rebootRequested) log.info(`the worker asked for a reboot (exit code ${code}); leaving it registered`);
  await exit.workerExited(rebootRequested);
  return code;
}

/**
 * During startup SIGTERM/SIGINT end the run at once (files are written
 * atomically; there is no worker yet). A drain is remembered and handed to
 * the worker once it runs: with no tasks yet, it simply exits.
 */
function handleSignalsDuringStartup(log: Logger): { stop(): { drainRequested: boolean } } {
  let drainRequested = false;
  const exit = (signal: NodeJS.Signals): void => {
    log.warn(`received ${signal} during startup; exiting`);
    log.flush();
    process.exit(128 + (signal === 'SIGINT' ? 2 : 15));
  };
  const drain = (signal: NodeJS.Signals): void => {
    log.info(`received ${signal} during startup; the worker will be asked to finish and exit once it runs`);
    drainRequested = true;
  };
  process.on('SIGTERM', exit);
  process.on('SIGINT', exit);
  process.on(DRAIN_SIGNAL, drain);
  return {
    stop() {
      process.removeListener('SIGTERM', exit);
      process.removeListener('SIGINT', exit);
      process.removeListener(DRAIN_SIGNAL, drain);
      return { drainRequested };
    },
  };
}

/**
 * The cached run state, if there is one and it can still be used. Expired
 * credentials are an error for a provider that cannot register again (the
 * instance should be replaced); for one that can, a fresh run.
 */
async function restoreCachedRun(path: string, plugin: ProviderPlugin<object>, log: Logger): Promise<RunState | undefined> {
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

/** The region of the aws provider, the default region for AWS secret sources. */
function awsRegion(config: RunnerConfig, state: RunState): string | undefined {
  return config.provider.providerType === 'aws' ? state.workerLocation['region'] : undefined;
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

/** Secrets in the provider section (static secret, access token) are redacted from every log line. */
function protectConfigSecrets(config: RunnerConfig, plugin: ProviderPlugin<object>, log: Logger): void {
  for (const key of plugin.secretKeys ?? []) {
    const value = config.provider[key];
    if (typeof value === 'string') log.redactor.add(value);
  }
}

/** Credentials and the registration secret are redacted from every log line. */
function protectStateSecrets(state: RunState, log: Logger): void {
  log.redactor.add(state.credentials.accessToken);
  log.redactor.add(state.credentials.certificate);
  log.redactor.add(state.registrationSecret);
}
