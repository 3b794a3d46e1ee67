/**
 * The floor of the soak benchmark: the least a poller can do, with no
 * start-worker around it. `node soak-floor.js <fetch|agent> <imds endpoint>
 * <interval ms>` gets one IMDSv2 token, then polls the spot notice path
 * until SIGTERM: one request at a time, a timeout on each, a pause after
 * each answer. `fetch` is global fetch with AbortSignal.timeout per request
 * (what start-worker uses); `agent` is node:http with a keep-alive agent
 * and a socket timeout per request.
 */
import { Agent, request } from 'node:http';

const [mode, endpoint, intervalText] = process.argv.slice(2);
const intervalMs = Number(intervalText);
const TIMEOUT_MS = 2000;
const SPOT = '/latest/meta-data/spot/instance-action';
if ((mode !== 'fetch' && mode !== 'agent') || endpoint === undefined || !(intervalMs > 0)) {
  console.error('usage: soak-floor <fetch|agent> <endpoint> <interval ms>');
  process.exit(2);
}

const agent = new Agent({ keepAlive: true, maxSockets: 1 });

function viaAgent(
  method: string,
  path: string,
  headers: Record<string, string>,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`${endpoint}${path}`, { method, headers, agent, timeout: TIMEOUT_MS }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

async function viaFetch(
  method: string,
  path: string,
  headers: Record<string, string>,
): Promise<{ status: number; body: string }> {
  const response = await fetch(`${endpoint}${path}`, { method, headers, signal: AbortSignal.timeout(TIMEOUT_MS) });
  return { status: response.status, body: await response.text() };
}

const send = mode === 'fetch' ? viaFetch : viaAgent;
let stopping = false;
process.on('SIGTERM', () => {
  stopping = true;
});

async function token(): Promise<string> {
  const answer = await send('PUT', '/latest/api/token', { 'X-aws-ec2-metadata-token-ttl-seconds': '21600' });
  if (answer.status !== 200) throw new Error(`token: HTTP ${answer.status}`);
  return answer.body.trim();
}

let current = await token();
while (!stopping) {
  try {
    const answer = await send('GET', SPOT, { 'X-aws-ec2-metadata-token': current });
    if (answer.status === 401) current = await token();
  } catch {
    // a floor does not retry cleverly: it waits and polls again
  }
  await new Promise((resolve) => setTimeout(resolve, intervalMs));
}
agent.destroy();
process.exit(0);
