import { CONFIG_VARIABLE, environmentVariable, optionsHelp, parseCliOptions, type CliOptions } from './cli-options.js';
import { ConfigProblems, loadRunnerConfig } from './config/load.js';
import { parseOverride } from './config/overrides.js';
import { renderReference } from './docs.js';
import { errorMessage, StartWorkerError } from './errors.js';
import { JsonDestination } from './logging/json.js';
import { Logger } from './logging/logger.js';
import { Redactor } from './logging/redact.js';
import { logHttpRequests } from './logging/http-debug.js';
import { routeProcessWarnings } from './logging/process-warnings.js';
import { StdioDestination } from './logging/stdio.js';
import type { PluginRegistry } from './registry.js';
import { runWorker } from './run.js';
import { tlsAgentOptions } from './tls.js';
import { exitWhenWritten } from './util/exit.js';
import { VERSION } from './version.js';

const COMMANDS = [
  ['start-worker [options] <runnerConfig>', 'Run the worker described by the runner config (YAML).'],
  [
    'start-worker validate [options] <runnerConfig>',
    'Check the runner config without network access; print "ok" or every problem.',
  ],
  [
    'start-worker docs [options] [runnerConfig]',
    'Print the runner configuration reference, with the plugins the config loads.',
  ],
];

export function usage(): string {
  return [
    `start-worker ${VERSION}: boots and supervises a Taskcluster worker.`,
    '',
    'Usage:',
    ...COMMANDS.map(([command, description]) => `  ${command}\n      ${description}`),
    '',
    `The runner config may also be given as ${CONFIG_VARIABLE}.`,
    '',
    'Options (the command line wins over the environment):',
    ...optionsHelp(),
    '',
    "Exit status: the worker's exit code; 128+N when it died of signal N; 1 when start-worker itself fails.",
    '',
  ].join('\n');
}

/** What the program around the CLI wants to know. */
export interface MainOptions {
  /** Called once the worker has started. */
  afterStartup?: () => void;
}

/** The command line entry point; resolves to the process exit code. */
export async function main(
  argv: string[],
  env: NodeJS.ProcessEnv,
  newRegistry: () => PluginRegistry,
  { afterStartup }: MainOptions = {},
): Promise<number> {
  const log = new Logger(new StdioDestination());
  let verbose = argv.includes('--verbose') || argv.includes('-v') || env[environmentVariable('verbose')] === 'true';
  const onFatal = (err: unknown): void => {
    reportError(err, log, verbose);
    log.flush();
    exitWhenWritten(1);
  };
  process.on('uncaughtException', onFatal);
  process.on('unhandledRejection', onFatal);
  routeProcessWarnings(log);
  try {
    const options = parseCliOptions(argv, env);
    verbose = options.verbose;
    log.redactor.add(options.certKeyPass);
    if (options.help) return print(usage());
    if (options.version) return print(`start-worker ${VERSION}\n`);
    if (options.shortVersion) return print(`${VERSION}\n`);
    if (options.logFormat === 'json') log.setDestination(new JsonDestination());
    if (options.verbose) {
      log.setLevel('debug');
      logHttpRequests(log);
      for (const source of options.sources) log.debug(source);
    }
    if (options.quiet) log.setLevel('error');

    const [command, ...rest] = options.positionals;
    if (command === 'validate') return await validate(configPath(rest, env, true)!, options, log, newRegistry());
    if (command === 'docs') return await docs(configPath(rest, env, false), options, newRegistry());
    return await runWorker({
      registry: newRegistry(),
      configPath: configPath(options.positionals, env, true)!,
      log,
      overrides: options.overrides.map(parseOverride),
      ...(options.logFormat ? { logFormat: options.logFormat } : {}),
      ...(await tlsSettings(options)),
      afterStartup,
    });
  } catch (err) {
    reportError(err, log, verbose);
    return 1;
  } finally {
    log.flush();
  }
}

function print(text: string): number {
  process.stdout.write(text);
  return 0;
}

function configPath(positionals: string[], env: NodeJS.ProcessEnv, required: boolean): string | undefined {
  if (positionals.length > 1) {
    throw new StartWorkerError(
      `expected one runner config file, got ${positionals.length}: ${positionals.join(' ')} (see start-worker --help)`,
    );
  }
  const path = positionals[0] ?? env[CONFIG_VARIABLE];
  if (path === undefined && required) {
    throw new StartWorkerError(
      `missing the runner config file argument (or ${CONFIG_VARIABLE}; see start-worker --help)`,
    );
  }
  return path;
}

async function tlsSettings(options: CliOptions) {
  const tls = await tlsAgentOptions(options);
  return tls ? { tls } : {};
}

/** `start-worker validate`: every problem on its own line, no network, nothing changed on disk. */
async function validate(path: string, options: CliOptions, log: Logger, registry: PluginRegistry): Promise<number> {
  try {
    const { warnings } = await loadRunnerConfig(path, {
      tighten: false,
      registry,
      overrides: options.overrides.map(parseOverride),
      redactor: log.redactor,
    });
    for (const warning of warnings) process.stderr.write(`warning: ${log.redactor.redact(warning)}\n`);
    process.stdout.write('ok\n');
    return 0;
  } catch (err) {
    if (!(err instanceof ConfigProblems)) throw err;
    for (const warning of err.warnings) process.stderr.write(`warning: ${warning}\n`);
    for (const problem of err.problems) process.stderr.write(`${err.path}: ${problem}\n`);
    return 1;
  }
}

/** `start-worker docs`: the reference for the built-ins and, given a config, the plugins it loads. */
async function docs(path: string | undefined, options: CliOptions, registry: PluginRegistry): Promise<number> {
  if (path !== undefined)
    await loadRunnerConfig(path, {
      tighten: false,
      registry,
      overrides: options.overrides.map(parseOverride),
      redactor: new Redactor(),
    });
  return print(`${await renderReference(registry)}\n`);
}

/** One line for the operator; the stack only when asked for, or when the error is a bug. */
function reportError(err: unknown, log: Logger, verbose: boolean): void {
  // Plugins can make their own errors user-facing by naming them StartWorkerError.
  if (
    err instanceof StartWorkerError ||
    (err instanceof Error && err.name === 'StartWorkerError') ||
    isArgumentError(err)
  ) {
    log.error(errorMessage(err));
  } else {
    log.error(`internal error: ${errorMessage(err)}${verbose ? '' : ' (run with --verbose for the stack trace)'}`);
  }
  if (verbose && err instanceof Error && err.stack) log.error(err.stack);
}

function isArgumentError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS_');
}
