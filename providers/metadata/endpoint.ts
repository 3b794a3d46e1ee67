/**
 * Where a cloud's metadata service is: the provider's `metadataEndpoint`,
 * else the environment variable the cloud's own tools read, else the
 * cloud's address. Tests and proxies point it at another address.
 */
import { StartWorkerError } from '../../src/errors.js';
import type { JsonSchema } from '../../src/schema.js';

export interface EndpointSettings {
  /** The cloud's own address of the service. */
  default: string;
  /** The environment variable used when the provider has no `metadataEndpoint`. */
  variable: string;
  /** The URL a value of the variable stands for (default: the value; GCE_METADATA_HOST is host[:port]). */
  urlOfVariable?: (value: string) => string;
  /** A path the service adds itself, dropped from a value that ends with it (google: /computeMetadata/v1). */
  apiPrefix?: string;
  /** This cloud's words for a problem (default describeEndpointProblem). */
  describe?: (problem: EndpointProblem) => string;
}

export interface EndpointProblem {
  kind: 'not-a-url' | 'not-http' | 'query-or-fragment';
  /** As written. */
  value: string;
  from: 'config' | 'variable';
  settings: EndpointSettings;
}

/** The schema of `metadataEndpoint`; `what` says what the address is, in this cloud's words. */
export function metadataEndpointSchema(settings: EndpointSettings, what: string): JsonSchema {
  return {
    type: 'string',
    minLength: 1,
    description: `${what}. Wins over the environment variable \`${settings.variable}\`; the default is \`${settings.default}\`. For tests and proxies.`,
  };
}

/** `provider.metadataEndpoint` or `the environment variable NAME`. */
export function endpointSource(problem: EndpointProblem): string {
  return problem.from === 'config'
    ? 'provider.metadataEndpoint'
    : `the environment variable ${problem.settings.variable}`;
}

export function describeEndpointProblem(problem: EndpointProblem): string {
  const { kind, value, settings } = problem;
  const source = endpointSource(problem);
  if (kind === 'not-a-url') return `${source}: '${value}' is not a URL; use one such as ${settings.default}`;
  if (kind === 'not-http')
    return `${source}: '${value}' must be an http:// or https:// URL such as ${settings.default}`;
  return `${source}: '${value}' must not have a query or fragment`;
}

/** What is wrong with a configured `metadataEndpoint`, for a plugin's check(). */
export function checkMetadataEndpoint(value: string | undefined, settings: EndpointSettings): string[] {
  const parsed = value === undefined ? undefined : parseEndpoint(value, value, 'config', settings);
  return parsed === undefined || typeof parsed === 'string'
    ? []
    : [(settings.describe ?? describeEndpointProblem)(parsed)];
}

/** The base URL of the service (scheme, host, port and any path prefix, without a trailing slash). */
export function resolveMetadataEndpoint(
  configured: string | undefined,
  settings: EndpointSettings,
  env: NodeJS.ProcessEnv = process.env,
): string {
  const fromVariable = env[settings.variable];
  const parsed =
    configured !== undefined
      ? parseEndpoint(configured, configured, 'config', settings)
      : fromVariable !== undefined && fromVariable !== ''
        ? parseEndpoint(fromVariable, settings.urlOfVariable?.(fromVariable) ?? fromVariable, 'variable', settings)
        : settings.default;
  if (typeof parsed !== 'string') throw new StartWorkerError((settings.describe ?? describeEndpointProblem)(parsed));
  return parsed;
}

function parseEndpoint(
  value: string,
  address: string,
  from: EndpointProblem['from'],
  settings: EndpointSettings,
): string | EndpointProblem {
  let url: URL;
  try {
    url = new URL(address);
  } catch {
    return { kind: 'not-a-url', value, from, settings };
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return { kind: 'not-http', value, from, settings };
  if (url.search !== '' || url.hash !== '') return { kind: 'query-or-fragment', value, from, settings };
  let path = url.pathname.replace(/\/+$/, '');
  if (settings.apiPrefix !== undefined && path.endsWith(settings.apiPrefix))
    path = path.slice(0, -settings.apiPrefix.length);
  return `${url.origin}${path}`;
}
