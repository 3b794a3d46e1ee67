import { StartWorkerError } from './errors.js';
import type { LoggingPlugin, PluginDescriptor, ProviderPlugin, WorkerPlugin } from './plugin.js';
import type { JsonSchema } from './schema.js';

export type PluginKind = 'provider' | 'worker' | 'logging';

/** Plugins as the registry holds them: each validates and types its own section. */
export interface PluginByKind {
  provider: ProviderPlugin<object>;
  worker: WorkerPlugin<object>;
  logging: LoggingPlugin<object>;
}

type AnyPlugin = PluginDescriptor<unknown, object>;

/** The config section and selector key of each kind of plugin. */
export const PLUGIN_SECTIONS: Record<PluginKind, { section: string; selector: string; title: string }> = {
  provider: { section: 'provider', selector: 'providerType', title: 'provider type' },
  worker: { section: 'worker', selector: 'implementation', title: 'worker implementation' },
  logging: { section: 'logging', selector: 'implementation', title: 'logging implementation' },
};

/** The plugins that come with start-worker, by kind and name (the table is builtins.ts). */
export type BuiltinPlugins = { [K in PluginKind]: PluginByKind[K][] };

/** Finds providers, worker implementations and log destinations by name. */
export class PluginRegistry {
  private readonly plugins: { [K in PluginKind]: Map<string, PluginByKind[K]> };
  private readonly builtinNames: Set<string>;

  constructor(builtins: BuiltinPlugins) {
    this.plugins = {
      provider: new Map(builtins.provider.map((plugin) => [plugin.name, plugin])),
      worker: new Map(builtins.worker.map((plugin) => [plugin.name, plugin])),
      logging: new Map(builtins.logging.map((plugin) => [plugin.name, plugin])),
    };
    this.builtinNames = new Set(
      (Object.keys(builtins) as PluginKind[]).flatMap((kind) =>
        builtins[kind].map((plugin) => `${kind}:${plugin.name}`),
      ),
    );
  }

  names(kind: PluginKind): string[] {
    return [...this.plugins[kind].keys()].sort();
  }

  has(kind: PluginKind, name: string): boolean {
    return this.plugins[kind].has(name);
  }

  isBuiltin(kind: PluginKind, name: string): boolean {
    return this.builtinNames.has(`${kind}:${name}`);
  }

  /** Every plugin this registry knows, loaded (for docs and build-time schema compilation). */
  async all(): Promise<{ kind: PluginKind; plugin: PluginByKind[PluginKind] }[]> {
    const kinds = Object.keys(this.plugins) as PluginKind[];
    const entries = kinds.flatMap((kind) => this.names(kind).map((name) => ({ kind, name })));
    return Promise.all(entries.map(async ({ kind, name }) => ({ kind, plugin: await this.get(kind, name) })));
  }

  /** A plugin by name; an unknown name is an error listing the known ones. */
  async get<K extends PluginKind>(kind: K, name: string): Promise<PluginByKind[K]> {
    const plugin = this.plugins[kind].get(name);
    if (plugin === undefined) throw new StartWorkerError(this.unknownMessage(kind, name));
    return plugin;
  }

  unknownMessage(kind: PluginKind, name: string): string {
    const { section, selector, title } = PLUGIN_SECTIONS[kind];
    return `${section}.${selector}: unknown ${title} '${name}'; known: ${this.names(kind).join(', ')}`;
  }

  /** Register a plugin from an external module; a name already taken is an error. */
  add<K extends PluginKind>(kind: K, plugin: PluginByKind[K], origin: string): void {
    if (this.plugins[kind].has(plugin.name)) {
      const owner = this.isBuiltin(kind, plugin.name) ? 'a built-in' : 'another plugin';
      throw new StartWorkerError(
        `plugin ${origin}: ${PLUGIN_SECTIONS[kind].title} '${plugin.name}' is already provided by ${owner}`,
      );
    }
    this.plugins[kind].set(plugin.name, plugin);
  }
}

/**
 * The complete schema of a plugin's config section: the plugin's own keys
 * plus the selector key (`providerType` / `implementation`) naming it.
 */
export function sectionSchema(kind: PluginKind, plugin: AnyPlugin): JsonSchema {
  const { selector } = PLUGIN_SECTIONS[kind];
  return {
    ...plugin.schema,
    type: 'object',
    required: [selector, ...(plugin.schema.required ?? [])],
    properties: {
      [selector]: { type: 'string', const: plugin.name },
      ...(kind === 'worker' ? COMMON_WORKER_PROPERTIES : {}),
      ...plugin.schema.properties,
    },
  };
}

/** Keys every worker implementation accepts; the supervisor applies them. */
export const COMMON_WORKER_PROPERTIES: Record<string, JsonSchema> = {
  gracePeriod: {
    type: 'number',
    minimum: 0,
    description:
      "Seconds a worker asked to stop may take before its whole process group is killed. Defaults to the implementation's own (30 for `command`; no limit for `generic-worker` and `docker-worker`, which manage their own graceful shutdown).",
  },
  maxLineBytes: {
    type: 'integer',
    minimum: 1024,
    description:
      'The longest line (in bytes, without the newline) accepted from the worker; longer lines are dropped with a warning.',
    default: 1048576,
  },
};
