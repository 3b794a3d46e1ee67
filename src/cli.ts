import { parseArgs } from 'node:util';
import { ConfigProblems, loadRunnerConfig } from './config/load.js';
import { errorMessage, StartWorkerError } from './errors.js';
import { Logger } from './logging/logger.js';
import { StdioDestination } from './logging/stdio.js';
import { PluginRegistry } from './registry.js';
import { runWorker } from './run.js';
import { VERSION } from './version.js';

interface OptionSpec {
  name: string;
  short?: string;
  type: 'boolean' | 'string';
  description: string;
}

const OPTIONS: OptionSpec[] = [
  { name: 'help', short: 'h', type: 'boolean', description: 'Print this help and exit.' },
  { name: 'version', type: 'boolean', description: 'Print "start-worker <version>" and exit.' },
  { name: 'short-version', type: 'boolean', description: 'Print the bare version and exit.' },
  { name: 'verbose', short: 'v', type: 'boolean', description: 'Log debug messages; print stack traces of errors.' },
];

const COMMANDS = [
  ['start-worker [options] <runnerConfig>', 'Run the worker described by the runner config (YAML).'],
  ['start-worker validate [options] <runnerConfig>', 'Check the runner config without network access; print "ok" or every problem.'],
];

export function usage(): string {
  const optionLines = OPTIONS.map((option) => {
    const flags = `${option.short ? `-${option.short}, ` : '    '}--${option.name}`;
    return `  ${flags.padEnd(22)} ${option.description}`;
  });
  const commandLines = COMMANDS.map(([command, description]) => `  ${command}\n      ${description}`);
  return [
    `start-worker ${VERSION}: boots and supervises a Taskcluster worker.`,
    '',
    'Usage:',
    ...commandLines,
    '',
    'Options:',
    ...optionLines,
    '',
    'Exit status: the worker\'s exit code; 128+N when it died of signal N; 1 when start-worker itself fails.',
    '',
  ].join('\n');
}

/** The command line entry point; resolves to the process exit code. */
export async function main(argv: string[]): Promise<number> {
  const log = new Logger(new StdioDestination());
  let verbose = argv.includes('--verbose') || argv.includes('-v');
  const onFatal = (err: unknown): void => {
    reportError(err, log, verbose);
    log.flush();
    process.exit(1);
  };
  process.on('uncaughtException', onFatal);
  process.on('unhandledRejection', onFatal);
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: Object.fromEntries(
        OPTIONS.map((o) => [o.name, o.short ? { type: o.type, short: o.short } : { type: o.type }]),
      ),
    });
    verbose = values['verbose'] === true;
    if (values['help']) {
      process.stdout.write(usage());
      return 0;
    }
    if (values['version']) {
      process.stdout.write(`start-worker ${VERSION}\n`);
      return 0;
    }
    if (values['short-version']) {
      process.stdout.write(`${VERSION}\n`);
      return 0;
    }
    if (verbose) log.setLevel('debug');

    const [first, ...rest] = positionals;
    if (first === 'validate') return await validate(onlyConfigPath(rest), log);
    return await runWorker({ configPath: onlyConfigPath(positionals), log });
  } catch (err) {
    reportError(err, log, verbose);
    return 1;
  } finally {
    log.flush();
  }
}

function onlyConfigPath(positionals: string[]): string {
  if (positionals.length === 0) throw new StartWorkerError('missing the runner config file argument (see start-worker --help)');
  if (positionals.length > 1) {
    throw new StartWorkerError(`expected one runner config file, got ${positionals.length}: ${positionals.join(' ')} (see start-worker --help)`);
  }
  return positionals[0]!;
}

/** `start-worker validate`: every problem on its own line, no network, nothing changed on disk. */
async function validate(path: string, log: Logger): Promise<number> {
  try {
    const { warnings } = await loadRunnerConfig(path, { tighten: false, registry: new PluginRegistry() });
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

/** One line for the operator; the stack only when asked for, or when the error is a bug. */
function reportError(err: unknown, log: Logger, verbose: boolean): void {
  if (err instanceof StartWorkerError || isArgumentError(err)) {
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
