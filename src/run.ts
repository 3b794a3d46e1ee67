/**
 * The run sequence: everything start-worker does, top to bottom.
 */
import { loadRunnerConfig } from './config/load.js';
import type { RunnerConfig } from './config/types.js';
import { errorMessage } from './errors.js';
import { ExitManager } from './exit.js';
import type { Logger } from './logging/logger.js';
import type { PluginContext, Provider, ProviderPlugin, RunningWorker, WorkerImplementation, WorkerSpawner } from './plugin.js';
import { PluginRegistry } from './registry.js';
import { checkProviderResults, emptyRunState, type RunState } from './state.js';
import { exitStatusCode } from './supervisor/exit-status.js';
import { TerminationController } from './supervisor/termination.js';
import { ErrorReporter } from './taskcluster/error-report.js';
import { registerWorker, type StartupCallSettings } from './taskcluster/registration.js';
import { CredentialRenewal } from './taskcluster/renewal.js';
import { readTaskclusterSecrets } from './taskcluster/secrets.js';

export interface RunOptions {
  configPath: string;
  log: Logger;
  registry?: PluginRegistry;
}

/** How long to wait for error reports still in flight when the worker has exited. */
const REPORT_FLUSH_MS = 30_000;

/** Run the worker described by the runner config; resolves to the runner's exit code. */
export async function runWorker(options: RunOptions): Promise<number> {
  const { log } = options;
  const registry = options.registry ?? new PluginRegistry();

  // Load and validate the runner config, then log where it says.
  const { config, warnings } = await loadRunnerConfig(options.configPath, { tighten: true, registry });
  const context: PluginContext = { log, runnerConfig: config };
  const logging = await registry.get('logging', config.logging.implementation);
  log.setDestination(logging.create(config.logging, context));
  for (const warning of warnings) log.warn(warning);

  const providerPlugin = await registry.get('provider', config.provider.providerType);
  protectConfigSecrets(config, providerPlugin, log);
  const provider = providerPlugin.create(config.provider, context);
  const workerImplementation = (await registry.get('worker', config.worker.implementation)).create(config.worker, context);
  const settings = startupCallSettings(config);

  // The provider says who this worker is.
  const state = emptyRunState(config.workerConfig);
  log.info(`configuring with provider ${config.provider.providerType}`);
  const identityProof = await provider.configureRun(state);
  protectStateSecrets(state, log);

  // From here on a failure happens to a known machine: a dynamically
  // provisioned one reports it and goes away instead of idling.
  const exit = new ExitManager({ state, dynamic: providerPlugin.dynamic, shutdownCommand: config.shutdownCommand, settings, log });
  let worker: RunningWorker;
  try {
    if (identityProof !== undefined) {
      await registerWorker(state, identityProof, config.worker.implementation, settings, log);
      protectStateSecrets(state, log);
    }
    checkProviderResults(state, config.provider.providerType);
    log.info(`identified as worker ${state.workerGroup}/${state.workerId} in pool ${state.workerPoolId}`);
    if (config.getSecrets) await readTaskclusterSecrets(state, settings, log);
    log.info(`configuring worker implementation ${config.worker.implementation}`);
    await workerImplementation.configureRun(state);
    if (state.files.length > 0) {
      throw new Error('writing files is not supported by this build yet');
    }
    log.info(`starting worker (${config.worker.implementation})`);
    worker = await workerImplementation.startWorker(state, workerSpawner(config, log));
  } catch (err) {
    if (providerPlugin.dynamic && (config.shutdownOnStartupFailure ?? true)) {
      log.error(`startup failed: ${errorMessage(err)}`);
      const reporter = state.credentials.clientId === '' ? undefined : new ErrorReporter(state, settings, log);
      await exit.startupFailed(err, reporter);
    }
    throw err;
  }

  return supervise(worker, state, { provider, workerImplementation, exit, settings, log });
}

interface SuperviseParts {
  provider: Provider;
  workerImplementation: WorkerImplementation;
  exit: ExitManager;
  settings: StartupCallSettings;
  log: Logger;
}

/** Supervise the running worker until it exits, then finish the run. */
async function supervise(worker: RunningWorker, state: RunState, parts: SuperviseParts): Promise<number> {
  const { provider, workerImplementation, exit, settings, log } = parts;
  const termination = new TerminationController(worker, log);
  termination.handleSignals();
  const reporter = new ErrorReporter(state, settings, log);
  worker.protocol.setHandlers({
    errorReport: (report) => reporter.report(report),
    shutdown: () => exit.shutdownRequested(),
  });
  const renewal = new CredentialRenewal({ state, protocol: worker.protocol, termination, settings, log });
  renewal.start();
  provider.workerStarted(termination);

  const status = await worker.exited;
  renewal.stop();
  const code = exitStatusCode(status);
  log.info(`worker exited with ${status.signal ? `signal ${status.signal}` : `code ${status.code}`}`);
  await provider.workerFinished(state);
  await reporter.flush(REPORT_FLUSH_MS);
  const rebootRequested = workerImplementation.rebootRequested?.(code) ?? false;
  if (rebootRequested) log.info(`the worker asked for a reboot (exit code ${code}); leaving it registered`);
  await exit.workerExited(rebootRequested);
  return code;
}

function startupCallSettings(config: RunnerConfig): StartupCallSettings {
  return { requestTimeoutMs: config.requestTimeout * 1000, retryWindowMs: config.startupRetryWindow * 1000 };
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
