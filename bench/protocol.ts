/**
 * Log forwarding throughput: a worker writes 1,000,000 `log` messages
 * (~100 bytes each) as fast as it can; start-worker forwards them to the
 * stdio destination, redirected to /dev/null. The floors are minimal node
 * processes reading the same bytes through a pipe: one only splits lines,
 * the honest one also parses each line as JSON (the least a protocol reader
 * does; JSON.parse alone is close to half of the runner's time).
 * Targets: >= 600,000 messages/s, <= 1.5x the parsing floor, peak RSS < 100 MB.
 * Measured in a clean environment (NODE_EXTRA_CA_CERTS unset: it slows
 * every Node start, and the runner starts two processes one after the
 * other where the floor starts two at once), and as is when it is set.
 */
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { median, repoRoot } from './measure.js';

const COUNT = 1_000_000;
const LATE_READER_MS = 3000;
const floodWorker = fileURLToPath(new URL('./flood-worker.js', import.meta.url));
const lineFloor = fileURLToPath(new URL('./line-floor.js', import.meta.url));
const rssReporter = fileURLToPath(new URL('./rss-reporter.cjs', import.meta.url));

/** One run to /dev/null, or with `lateReaderMs`, to a pipe first read that long after the start (as journald can fall behind). */
function runnerOnce(
  config: string,
  env: NodeJS.ProcessEnv,
  lateReaderMs?: number,
): Promise<{ seconds: number; peakRssKiB: number }> {
  return new Promise((resolve, reject) => {
    const devNull = openSync('/dev/null', 'w');
    const started = performance.now();
    const child = spawn(process.execPath, ['--require', rssReporter, join(repoRoot, 'bin', 'start-worker'), config], {
      stdio: ['ignore', devNull, lateReaderMs === undefined ? devNull : 'pipe', 'pipe'],
      env: { ...env, FLOOD_COUNT: String(COUNT) },
    });
    if (child.stderr) {
      child.stderr.pause();
      setTimeout(() => child.stderr!.resume(), lateReaderMs);
    }
    let report = '';
    (child.stdio[3] as NodeJS.ReadableStream).on('data', (chunk: Buffer) => (report += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      const seconds = (performance.now() - started) / 1000;
      if (code !== 0) reject(new Error(`start-worker exited with ${code}`));
      else resolve({ seconds, peakRssKiB: Number(report.trim().split('\n')[0]) });
    });
  });
}

function floorOnce(parse: boolean, env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const producer = spawn(process.execPath, [floodWorker], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...env, FLOOD_COUNT: String(COUNT), FLOOD_NO_HANDSHAKE: '1' },
    });
    const consumer = spawn(process.execPath, [lineFloor], {
      stdio: ['pipe', 'ignore', 'pipe'],
      env: { ...env, ...(parse ? { FLOOR_PARSE: '1' } : {}) },
    });
    producer.stdout.pipe(consumer.stdin);
    let counted = '';
    consumer.stderr.on('data', (chunk: Buffer) => (counted += chunk.toString()));
    consumer.on('error', reject);
    consumer.on('close', () => {
      if (Number(counted.trim()) !== COUNT) reject(new Error(`floor counted ${counted.trim()} lines`));
      else resolve((performance.now() - started) / 1000);
    });
  });
}

export async function benchProtocol(repetitions = 5): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'start-worker-bench-'));
  try {
    const config = join(dir, 'runner.yaml');
    writeFileSync(
      config,
      stringify({
        provider: {
          providerType: 'standalone',
          rootURL: 'https://tc.example.com',
          clientID: 'bench',
          accessToken: 'bench-token-not-secret',
          workerPoolID: 'bench/flood',
          workerGroup: 'bench',
          workerID: 'bench-1',
        },
        worker: { implementation: 'command', command: [process.execPath, floodWorker], passCredentials: 'none' },
        getSecrets: false,
      }),
    );
    chmodSync(config, 0o600);
    const clean = { ...process.env };
    delete clean['NODE_EXTRA_CA_CERTS'];
    console.log(`protocol (${COUNT.toLocaleString('en')} log messages, ${repetitions} interleaved runs each, medians)`);
    console.log('  clean environment:');
    await measureProtocol(config, repetitions, clean);
    if (process.env['NODE_EXTRA_CA_CERTS'] !== undefined) {
      console.log(`  as is (NODE_EXTRA_CA_CERTS=${process.env['NODE_EXTRA_CA_CERTS']}):`);
      await measureProtocol(config, repetitions, process.env);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function measureProtocol(config: string, repetitions: number, env: NodeJS.ProcessEnv): Promise<void> {
  const runner: { seconds: number; peakRssKiB: number }[] = [];
  const floor: number[] = [];
  const parseFloor: number[] = [];
  for (let i = 0; i < repetitions; i++) {
    floor.push(await floorOnce(false, env));
    parseFloor.push(await floorOnce(true, env));
    runner.push(await runnerOnce(config, env));
  }
  const runnerSeconds = median(runner.map((r) => r.seconds));
  const floorSeconds = median(floor);
  const parseSeconds = median(parseFloor);
  const peak = Math.max(...runner.map((r) => r.peakRssKiB)) / 1024;
  console.log(
    `    floor (pipe + line split):           ${floorSeconds.toFixed(2)} s, ${Math.round(COUNT / floorSeconds).toLocaleString('en')} lines/s`,
  );
  console.log(
    `    floor (pipe + split + JSON.parse):   ${parseSeconds.toFixed(2)} s, ${Math.round(COUNT / parseSeconds).toLocaleString('en')} lines/s`,
  );
  console.log(
    `    start-worker -> stdio:               ${runnerSeconds.toFixed(2)} s, ${Math.round(COUNT / runnerSeconds).toLocaleString('en')} messages/s (target >= 600,000)`,
  );
  console.log(
    `    ratio ${(runnerSeconds / parseSeconds).toFixed(2)}x the parsing floor (target <= 1.5x), ${(runnerSeconds / floorSeconds).toFixed(2)}x the split-only floor; runner peak RSS ${peak.toFixed(1)} MB (target < 100 MB)`,
  );
  const late = await runnerOnce(config, env, LATE_READER_MS);
  console.log(
    `    to a pipe first read after ${LATE_READER_MS / 1000} s: ${late.seconds.toFixed(2)} s, peak RSS ${(late.peakRssKiB / 1024).toFixed(1)} MB (the worker waits; nothing piles up in start-worker)`,
  );
}
