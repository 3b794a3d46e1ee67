import { parse as legacyParse } from 'node:url';
import t from 'tap';
import { parse } from '../scripts/shims/hawk-url.js';

// What hawk signs from a parsed URL: the resource (path and query), host and port.
const signed = (u: {
  pathname: string | null;
  search: string | null;
  hostname: string | null;
  port: string | null;
  protocol: string | null;
}) => ({
  resource: `${u.pathname}${u.search ?? ''}`,
  host: u.hostname,
  port: u.port || (u.protocol === 'http:' ? 80 : 443),
});

t.test("the bundled url.parse for hawk signs what Node's url.parse signs", async (t) => {
  for (const url of [
    'https://tc.example.com/api/worker-manager/v1/worker/register',
    'http://127.0.0.1:40123/api/secrets/v1/secret/worker-pool%3Aproj%2Fpool',
    'https://TC.Example.com:443/api/auth/v1/clients?continuationToken=abc&limit=10',
    'https://tc.example.com/api/queue/v1/task/abc?',
    'https://tc.example.com:8443/api/x#fragment',
    'http://[::1]:8080/api/worker-manager/v1/workers/a%2Fb:reregister',
  ]) {
    t.same(signed(parse(url)), signed(legacyParse(url)), url);
    t.equal(parse(url).path, legacyParse(url).path, `${url}: path`);
  }
});
