/**
 * Node's own warnings (MaxListenersExceededWarning, DeprecationWarning,
 * ExperimentalWarning, anything a dependency emits with
 * process.emitWarning) go through our logger instead of raw to stderr, so
 * they are redacted and every line of `--log-format json` parses.
 */
import type { Logger } from './logger.js';

/**
 * Deprecations known to come from a dependency's code and to be harmless
 * for us: logged at debug. Every other warning is logged at warn.
 */
const KNOWN_DEPENDENCY_DEPRECATIONS: ReadonlySet<string> = new Set([
  // url.parse() in hawk's request signing (inside taskcluster-client); Node
  // exempts node_modules, but not the same code bundled into our file.
  'DEP0169',
]);

export function routeProcessWarnings(log: Logger): void {
  // Node's default handler writes to stderr; it is the only other listener.
  process.removeAllListeners('warning');
  process.on('warning', (warning: Error & { code?: string }) => {
    const code = typeof warning.code === 'string' ? ` [${warning.code}]` : '';
    const line = `Node.js ${warning.name}${code}: ${warning.message}`;
    const known =
      warning.name === 'DeprecationWarning' &&
      warning.code !== undefined &&
      KNOWN_DEPENDENCY_DEPRECATIONS.has(warning.code);
    if (known) log.debug(`${line} (from a dependency; harmless)`);
    else log.warn(line);
    if (log.isEnabled('debug') && warning.stack) log.debug(warning.stack);
  });
}
