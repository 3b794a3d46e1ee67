/**
 * The types a start-worker plugin implements. A plugin module's default
 * export is `{providers?, workers?, logging?}`, each a list of plugins.
 */
export type {
  IdentityProof,
  LoggingPlugin,
  PluginContext,
  PluginDescriptor,
  Provider,
  ProviderPlugin,
  TerminationRequest,
  TerminationRequester,
  Worker,
  WorkerExit,
  WorkerLaunch,
  WorkerPlugin,
  WorkerProcess,
  WorkerSpawner,
} from './plugin.js';
export type { LogDestination, Logger, LogLevel, LogSource } from './logging/logger.js';
export type { Credentials, FileDescriptor, RunState } from './state.js';
export type { JsonObject, JsonValue } from './json.js';
export type { JsonSchema } from './schema.js';
export type { RunnerConfig } from './config/types.js';

/** The shape of a plugin module's default export. */
export interface PluginModule {
  providers?: import('./plugin.js').ProviderPlugin<object>[];
  workers?: import('./plugin.js').WorkerPlugin<object>[];
  logging?: import('./plugin.js').LoggingPlugin<object>[];
}
