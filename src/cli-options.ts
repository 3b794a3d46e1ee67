/**
 * Command-line options. Every option `--some-option` can also be set by the
 * environment variable `START_WORKER_SOME_OPTION` (booleans `true`/`false`,
 * lists space-separated); the command line wins. `--help`, `--version` and
 * `--short-version` are actions rather than settings, so they have no
 * variable: a stray one in a unit file must not stop a worker from running.
 */
import { parseArgs } from 'node:util';
import { StartWorkerError } from './errors.js';

interface OptionSpec {
  name: string;
  short?: string;
  type: 'boolean' | 'string' | 'list';
  /** Placeholder for the value in --help. */
  value?: string;
  description: string;
  /** Whether the environment may set it. */
  fromEnvironment: boolean;
}

export const OPTIONS: OptionSpec[] = [
  { name: 'help', short: 'h', type: 'boolean', description: 'Print this help and exit.', fromEnvironment: false },
  { name: 'version', type: 'boolean', description: 'Print "start-worker <version>" and exit.', fromEnvironment: false },
  { name: 'short-version', type: 'boolean', description: 'Print the bare version and exit.', fromEnvironment: false },
  {
    name: 'verbose',
    short: 'v',
    type: 'boolean',
    description: 'Log debug messages; print stack traces of errors.',
    fromEnvironment: true,
  },
  {
    name: 'quiet',
    type: 'boolean',
    description: "Log only errors of start-worker's own (the worker's output is still forwarded).",
    fromEnvironment: true,
  },
  {
    name: 'log-format',
    type: 'string',
    value: 'text|json',
    description: 'Log as text lines (stdio) or JSON lines (json), whatever the runner config says.',
    fromEnvironment: true,
  },
  {
    name: 'override',
    type: 'list',
    value: 'KEY=VALUE',
    description: 'Set a dotted path of the runner config before validation (VALUE is a YAML scalar); repeatable.',
    fromEnvironment: true,
  },
  {
    name: 'ca-cert',
    type: 'string',
    value: 'FILE',
    description: 'Extra CA certificates (PEM) for Taskcluster and secret-store calls.',
    fromEnvironment: true,
  },
  {
    name: 'cert',
    type: 'string',
    value: 'FILE',
    description: 'Client certificate (PEM) for Taskcluster and secret-store calls (mTLS).',
    fromEnvironment: true,
  },
  {
    name: 'cert-key',
    type: 'string',
    value: 'FILE',
    description: 'Private key (PEM) of --cert.',
    fromEnvironment: true,
  },
  {
    name: 'cert-key-pass',
    type: 'string',
    value: 'PASS',
    description: 'Passphrase of --cert-key.',
    fromEnvironment: true,
  },
  {
    name: 'no-verify-certs',
    type: 'boolean',
    description: 'Do not verify TLS certificates of Taskcluster and secret stores (dangerous).',
    fromEnvironment: true,
  },
];

export interface CliOptions {
  help: boolean;
  version: boolean;
  shortVersion: boolean;
  verbose: boolean;
  quiet: boolean;
  logFormat?: 'text' | 'json';
  overrides: string[];
  caCert?: string;
  cert?: string;
  certKey?: string;
  certKeyPass?: string;
  noVerifyCerts: boolean;
  positionals: string[];
  /** Where each option given came from, for --verbose (values of secret options left out). */
  sources: string[];
}

/** Options whose value is a secret: their source is shown, never their value. */
const SECRET_OPTIONS = new Set(['cert-key-pass']);

/**
 * An option's value as --verbose shows it. An override may set a secret
 * (`provider.staticSecret=…`) before the config says which keys are secret,
 * so only the keys it sets are shown.
 */
function shownValue(name: string, value: string | boolean | string[]): string {
  if (SECRET_OPTIONS.has(name)) return '(secret)';
  if (name === 'override') return `for ${(value as string[]).map((o) => o.split('=')[0]).join(', ')}`;
  return JSON.stringify(value);
}

/** `--some-option` → `START_WORKER_SOME_OPTION`. */
export function environmentVariable(name: string): string {
  return `START_WORKER_${name.toUpperCase().replace(/-/g, '_')}`;
}

export const CONFIG_VARIABLE = 'START_WORKER_CONFIG';

function fromEnvironment(spec: OptionSpec, env: NodeJS.ProcessEnv): string | boolean | string[] | undefined {
  const variable = environmentVariable(spec.name);
  const raw = env[variable];
  if (!spec.fromEnvironment || raw === undefined || raw === '') return undefined;
  if (spec.type === 'boolean') {
    if (raw === 'true') return true;
    if (raw === 'false') return false;
    throw new StartWorkerError(`${variable} must be true or false, not ${JSON.stringify(raw)}`);
  }
  if (spec.type === 'list') return raw.split(/\s+/).filter(Boolean);
  return raw;
}

/** Parse the command line, with the environment filling in what it does not say. */
export function parseCliOptions(argv: string[], env: NodeJS.ProcessEnv): CliOptions {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: Object.fromEntries(
      OPTIONS.map((o) => [
        o.name,
        {
          type: o.type === 'boolean' ? ('boolean' as const) : ('string' as const),
          ...(o.short ? { short: o.short } : {}),
          ...(o.type === 'list' ? { multiple: true } : {}),
        },
      ]),
    ),
  });
  const sources: string[] = [];
  const value = (name: string): string | boolean | string[] | undefined => {
    const spec = OPTIONS.find((o) => o.name === name)!;
    const given = values[name] as string | boolean | string[] | undefined;
    const result = given ?? fromEnvironment(spec, env);
    if (result !== undefined && result !== false) {
      sources.push(
        `option --${name} ${shownValue(name, result)} from ${given !== undefined ? 'the command line' : `the environment variable ${environmentVariable(name)}`}`,
      );
    }
    return result;
  };
  const logFormat = value('log-format');
  if (logFormat !== undefined && logFormat !== 'text' && logFormat !== 'json') {
    throw new StartWorkerError(`--log-format must be text or json, not ${JSON.stringify(logFormat)}`);
  }
  const options: CliOptions = {
    help: value('help') === true,
    version: value('version') === true,
    shortVersion: value('short-version') === true,
    verbose: value('verbose') === true,
    quiet: value('quiet') === true,
    ...(logFormat !== undefined ? { logFormat } : {}),
    overrides: (value('override') as string[] | undefined) ?? [],
    noVerifyCerts: value('no-verify-certs') === true,
    positionals,
    sources,
  };
  for (const [key, name] of [
    ['caCert', 'ca-cert'],
    ['cert', 'cert'],
    ['certKey', 'cert-key'],
    ['certKeyPass', 'cert-key-pass'],
  ] as const) {
    const setting = value(name);
    if (typeof setting === 'string') options[key] = setting;
  }
  if (options.verbose && options.quiet) throw new StartWorkerError('--verbose and --quiet cannot be used together');
  return options;
}

export function optionsHelp(): string[] {
  return OPTIONS.map((option) => {
    const flags = `${option.short ? `-${option.short}, ` : '    '}--${option.name}${option.value ? ` ${option.value}` : ''}`;
    const variable = option.fromEnvironment ? `\n${' '.repeat(31)}(env ${environmentVariable(option.name)})` : '';
    return `  ${flags.padEnd(28)} ${option.description}${variable}`;
  });
}
