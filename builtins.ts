/**
 * The plugins that come with start-worker. They are plain modules; the SDKs
 * some of them use are loaded only when needed, so a standalone run never
 * loads a cloud SDK.
 */
import loggingJson from './loggers/json.js';
import loggingStdio from './loggers/stdio.js';
import aws from './providers/aws.js';
import azure from './providers/azure.js';
import google from './providers/google.js';
import standalone from './providers/standalone.js';
import staticProvider from './providers/static.js';
import { PluginRegistry, type BuiltinPlugins } from './src/registry.js';
import command from './workers/command.js';
import dockerWorker from './workers/docker-worker.js';
import dummy from './workers/dummy.js';
import genericWorker from './workers/generic-worker.js';

const BUILTIN_PLUGINS: BuiltinPlugins = {
  provider: [aws, azure, google, standalone, staticProvider],
  worker: [command, dockerWorker, dummy, genericWorker],
  logging: [loggingJson, loggingStdio],
};

/** A registry of the built-in plugins, to which a runner config's plugins are added. */
export function builtinRegistry(): PluginRegistry {
  return new PluginRegistry(BUILTIN_PLUGINS);
}
