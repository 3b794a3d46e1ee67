/** External plugins (runner config `plugins`): modules whose default export lists providers, workers and log destinations. */
import { createRequire } from 'node:module';
import { dirname, isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { StartWorkerError, errorMessage } from './errors.js';
import { importModule } from './util/import-module.js';
import { PLUGIN_SECTIONS, type PluginByKind, type PluginKind, type PluginRegistry } from './registry.js';

const EXPORT_KEYS: Record<string, PluginKind> = { providers: 'provider', workers: 'worker', logging: 'logging' };

/** Where to import a plugin from: paths relative to the config file, or a package found from there. */
function moduleUrl(specifier: string, configPath: string): string {
  if (specifier.startsWith('./') || specifier.startsWith('../') || isAbsolute(specifier)) {
    return pathToFileURL(resolve(dirname(configPath), specifier)).href;
  }
  try {
    return pathToFileURL(createRequire(resolve(configPath)).resolve(specifier)).href;
  } catch {
    return specifier; // perhaps an ES-only package; let import() resolve it
  }
}

function checkPlugin(kind: PluginKind, value: unknown, origin: string): PluginByKind[PluginKind] {
  const plugin = value as Record<string, unknown>;
  const what = `plugin ${origin}: a ${PLUGIN_SECTIONS[kind].title}`;
  if (typeof plugin !== 'object' || plugin === null) throw new StartWorkerError(`${what} must be an object`);
  if (typeof plugin['name'] !== 'string' || plugin['name'] === '') throw new StartWorkerError(`${what} needs a name`);
  const named = `${what} '${plugin['name']}'`;
  if (typeof plugin['schema'] !== 'object' || plugin['schema'] === null)
    throw new StartWorkerError(`${named} needs a JSON schema`);
  if (typeof plugin['usage'] !== 'string') throw new StartWorkerError(`${named} needs a usage text`);
  if (typeof plugin['create'] !== 'function') throw new StartWorkerError(`${named} needs a create function`);
  if (kind === 'provider' && typeof plugin['dynamic'] !== 'boolean') {
    throw new StartWorkerError(`${named} must say whether it is dynamically provisioned (dynamic: true or false)`);
  }
  return plugin as unknown as PluginByKind[PluginKind];
}

/** Import each plugin module and add its plugins to the registry; a name already taken is an error. */
export async function loadPlugins(specifiers: string[], configPath: string, registry: PluginRegistry): Promise<void> {
  for (const specifier of specifiers) {
    let module: { default?: unknown };
    try {
      module = (await importModule(moduleUrl(specifier, configPath))) as { default?: unknown };
    } catch (err) {
      throw new StartWorkerError(`plugin ${specifier}: cannot load it: ${errorMessage(err)}`);
    }
    const exported = module.default;
    if (typeof exported !== 'object' || exported === null) {
      throw new StartWorkerError(
        `plugin ${specifier}: its default export must be an object with providers, workers and/or logging`,
      );
    }
    for (const [key, list] of Object.entries(exported)) {
      const kind = EXPORT_KEYS[key];
      if (kind === undefined)
        throw new StartWorkerError(
          `plugin ${specifier}: unknown export key '${key}'; expected providers, workers or logging`,
        );
      if (!Array.isArray(list)) throw new StartWorkerError(`plugin ${specifier}: ${key} must be a list`);
      for (const plugin of list) registry.add(kind, checkPlugin(kind, plugin, specifier), specifier);
    }
  }
}
