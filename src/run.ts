/**
 * The run sequence: everything start-worker does, top to bottom.
 */
import { loadRunnerConfig } from './config/load.js';
import type { RunnerConfig } from './config/types.js';
import { StartWorkerError } from './errors.js';
import type { Logger } from './logging/logger.js';
import type { PluginContext, Provider, ProviderPlugin, WorkerImplementation, WorkerSpawner } from './plugin.js';
import { PluginRegistry } from './registry.js';
import { checkProviderResults, emptyRunState, type RunState } from './state.js';
import { exitStatusCode } from './supervisor/exit-status.js';
import { TerminationController } from './supervisor/termination.js';

export interface RunOptions {
  configPath: string;
  log: Logger;
  registry?: PluginRegistry;
}

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

  const state = await configureRun(config, provider, workerImplementation, log);

  // Start the worker and supervise it until it exits.
  log.info(`starting worker (${config.worker.implementation})`);
  const worker = await workerImplementation.startWorker(state, workerSpawner(config, log));
  const termination = new TerminationController(worker, log);
  termination.handleSignals();
  worker.protocol.setHandlers({
    errorReport: (report) => log.warn(`worker reported an error: ${report.kind}: ${report.title}: ${report.description}`),
    shutdown: () => log.info('worker asked for the machine to shut down'),
  });
  provider.workerStarted(termination);

  const exit = await worker.exited;
  const code = exitStatusCode(exit);
  log.info(`worker exited with ${exit.signal ? `signal ${exit.signal}` : `code ${exit.code}`}`);
  await provider.workerFinished(state);
  if (workerImplementation.rebootRequested?.(code)) {
    log.info(`the worker asked for a reboot (exit code ${code}); leaving it registered`);
  }
  return code;
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

/** Provider, registration, secrets, worker configuration and files: the run state the worker starts with. */
async function configureRun(
  config: RunnerConfig,
  provider: Provider,
  workerImplementation: WorkerImplementation,
  log: Logger,
): Promise<RunState> {
  const state = emptyRunState(config.workerConfig);
  log.info(`configuring with provider ${config.provider.providerType}`);
  const identityProof = await provider.configureRun(state);
  protectStateSecrets(state, log);
  if (identityProof !== undefined) {
    throw new StartWorkerError(`provider ${config.provider.providerType} requires registration with worker-manager, which this build does not support yet`);
  }
  checkProviderResults(state, config.provider.providerType);
  log.info(`identified as worker ${state.workerGroup}/${state.workerId} in pool ${state.workerPoolId}`);

  if (config.getSecrets) {
    throw new StartWorkerError('reading secrets is not supported by this build yet; set getSecrets: false');
  }

  log.info(`configuring worker implementation ${config.worker.implementation}`);
  await workerImplementation.configureRun(state);

  if (state.files.length > 0) {
    throw new StartWorkerError('writing files is not supported by this build yet');
  }
  return state;
}

/** Secrets in the provider section (static secret, access token) are redacted from every log line. */
function protectConfigSecrets(config: RunnerConfig, plugin: ProviderPlugin, log: Logger): void {
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
