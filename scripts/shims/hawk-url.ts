/**
 * What hawk (taskcluster-client's request signing) takes from `node:url`,
 * with `parse` built on the WHATWG URL parser. Bundled in place of
 * `node:url` for hawk only: Node 24 warns (DEP0169) about url.parse() in
 * code outside node_modules, and a bundle is such code.
 */
import { URL } from 'node:url';

export { URL };

export interface ParsedUrl {
  protocol: string;
  hostname: string;
  port: string;
  pathname: string;
  search: string;
  /** pathname and search, as url.parse() gives it. */
  path: string;
}

/** The fields hawk signs, as url.parse() gives them for the absolute URLs taskcluster-client makes. */
export function parse(text: string): ParsedUrl {
  const url = new URL(text);
  // url.parse() keeps a bare trailing '?', which hawk signs; WHATWG drops it.
  const search = url.search !== '' ? url.search : text.split('#')[0]!.endsWith('?') ? '?' : '';
  const hostname = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  return {
    protocol: url.protocol,
    hostname,
    port: url.port,
    pathname: url.pathname,
    search,
    path: url.pathname + search,
  };
}
