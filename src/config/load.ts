import { dirname, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import { StartWorkerError } from '../errors.js';
import { isJsonObject, type JsonValue } from '../json.js';
import { loadPlugins } from '../plugin-loader.js';
import type { PluginRegistry } from '../registry.js';
import type { Redactor } from '../logging/redact.js';
import type { RunnerConfig } from './types.js';
import { decodeUtf8, readPrivateFile } from './file.js';
import { resolveIndirections } from './indirection.js';
import { applyOverrides, type Override } from './overrides.js';
import { validateRunnerConfig } from './validate.js';

const WHAT = 'runner config';

/** Parse YAML text into plain JSON data; a syntax error names line and column. */
export function parseYaml(text: string, source: string): JsonValue {
  const document = parseDocument(text, { uniqueKeys: true, prettyErrors: false });
  const [error] = document.errors;
  if (error !== undefined) {
    const position = error.linePos?.[0] ?? lineAndColumn(text, error.pos[0]);
    const where = `:${position.line}:${position.col}`;
    const message = error.message.replace(/ at line \d+, column \d+:?[\s\S]*$/, '');
    throw new StartWorkerError(`${source}${where}: invalid YAML: ${message}`);
  }
  // Aliases are expanded with a limit, so a "billion laughs" file cannot exhaust memory.
  const data: unknown = document.toJS({ maxAliasCount: 100 });
  return checkJson(data, source);
}

function lineAndColumn(text: string, offset: number): { line: number; col: number } {
  const before = text.slice(0, offset);
  const lineStart = before.lastIndexOf('\n') + 1;
  return { line: before.split('\n').length, col: offset - lineStart + 1 };
}

/** YAML can express more than JSON (binary, dates, non-string keys); the config must be JSON. */
function checkJson(value: unknown, source: string): JsonValue {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new StartWorkerError(`${source}: numbers must be finite (found ${value})`);
    return value;
  }
  if (Array.isArray(value)) {
    for (const item of value) checkJson(item, source);
    return value as JsonValue;
  }
  if (typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    for (const item of Object.values(value)) checkJson(item, source);
    return value as JsonValue;
  }
  throw new StartWorkerError(
    `${source}: unsupported YAML value (${Object.prototype.toString.call(value)}); use plain strings, numbers, lists and mappings`,
  );
}

/** A config that failed validation: every problem, each with its location. */
export class ConfigProblems extends StartWorkerError {
  constructor(
    readonly path: string,
    readonly problems: string[],
    readonly warnings: string[],
  ) {
    super(`${path}: ${problems.join('; ')}`);
  }
}

export interface LoadOptions {
  /** Make a group/other-readable file owner-only (false for `validate`, which changes nothing). */
  tighten: boolean;
  registry: PluginRegistry;
  /** `--override KEY=VALUE`s, applied before validation. */
  overrides?: Override[];
  /** `--log-format`: replaces the logging section. */
  logFormat?: 'text' | 'json';
  /** Where `{env: NAME}` indirections are looked up. */
  env?: NodeJS.ProcessEnv;
  /** Gets the config's secrets (indirected values, the provider's secret keys) as they are read. */
  redactor: Redactor;
}

export interface LoadedConfig {
  config: RunnerConfig;
  warnings: string[];
  /** Where values came from besides the file (overrides, --log-format, indirections), for --verbose. */
  sources: string[];
}

/**
 * Read, parse and validate a runner config file: overrides and
 * `--log-format` applied, secret indirections in the provider section
 * resolved, the plugins it names loaded (their schemas take part).
 */
export async function loadRunnerConfig(path: string, options: LoadOptions): Promise<LoadedConfig> {
  const { bytes, warnings } = await readPrivateFile(path, WHAT, options.tighten);
  const overrides = options.overrides ?? [];
  let raw = applyOverrides(parseYaml(decodeUtf8(bytes, path, WHAT), path), overrides);
  const sources = [`runner config read from ${path}; values not listed here come from it or are defaults`];
  for (const override of overrides) sources.push(`${override.path}: set by --override`);
  if (options.logFormat !== undefined && isJsonObject(raw)) {
    raw = { ...raw, logging: { implementation: options.logFormat === 'json' ? 'json' : 'stdio' } };
    sources.push(`logging: set by --log-format ${options.logFormat}`);
  }
  if (isJsonObject(raw)) {
    const plugins = raw['plugins'];
    if (Array.isArray(plugins) && plugins.every((p) => typeof p === 'string'))
      await loadPlugins(plugins, path, options.registry);
    if (raw['provider'] !== undefined) {
      const resolved = await resolveIndirections(
        raw['provider'],
        ['provider'],
        options.env ?? process.env,
        dirname(resolve(path)),
      );
      raw = { ...raw, provider: resolved.value };
      for (const secret of resolved.secrets) options.redactor.add(secret);
      sources.push(...resolved.sources);
    }
  }
  const result = await validateRunnerConfig(raw, options.registry);
  const allWarnings = [...warnings, ...result.warnings.map((w) => `${path}: ${w}`)];
  if (result.config === undefined) throw new ConfigProblems(path, result.problems, allWarnings);
  const provider = await options.registry.get('provider', result.config.provider.providerType);
  for (const key of provider.secretKeys ?? []) {
    const value = result.config.provider[key];
    if (typeof value === 'string') options.redactor.add(value);
  }
  return { config: result.config, warnings: allWarnings, sources };
}
