import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  fakeWorkerSection,
  readJsonLines,
  recordingShutdown,
  startCli,
  waitFor,
  writeConfig,
} from '../test/helpers.js';

export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
/** Preloaded into measured node processes: reports peak RSS (KiB) on fd 3 at exit. */
const rssReporter = fileURLToPath(new URL('./rss-reporter.cjs', import.meta.url));

export interface Sample {
  wallMs: number;
  peakRssKiB: number;
}

/** Run a node program once; measure wall time and its peak RSS. */
export function measureNode(args: string[], options: { cwd?: string } = {}): Promise<Sample> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, ['--require', rssReporter, ...args], {
      cwd: options.cwd ?? repoRoot,
      stdio: ['ignore', 'ignore', 'ignore', 'pipe'],
    });
    let report = '';
    const fd3 = child.stdio[3] as NodeJS.ReadableStream;
    fd3.on('data', (chunk: Buffer) => (report += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      const wallMs = performance.now() - started;
      if (code !== 0) reject(new Error(`node ${args.join(' ')} exited with ${code}`));
      else resolve({ wallMs, peakRssKiB: Number(report.trim()) });
    });
  });
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

interface Recorded {
  time: number;
  message?: { type?: string };
}

/**
 * start-worker (the real CLI) with the protocol test worker, which exits on
 * graceful-termination: what the interruption benchmarks measure. `dir`
 * must be fresh for each run.
 */
export function startInterruptibleRun(
  dir: string,
  provider: Record<string, unknown>,
  env: Record<string, string | undefined> = {},
) {
  const record = join(dir, 'record.jsonl');
  const config = writeConfig(dir, {
    provider,
    worker: fakeWorkerSection(),
    getSecrets: false,
    shutdownCommand: recordingShutdown(dir).command,
  });
  const run = startCli([config], {
    env: {
      FAKE_WORKER: JSON.stringify({ capabilities: ['graceful-termination'], onGracefulTermination: { exit: 0 } }),
      FAKE_WORKER_RECORD: record,
      ...env,
    },
    timeoutMs: 180_000,
  });
  return {
    run,
    saidHello: () => waitFor('the worker to say hello', () => run.stderr().includes('worker capabilities'), 30_000),
    /** When the worker received graceful-termination (ms since the epoch), once the run has ended. */
    async terminationReceivedAt(): Promise<number> {
      const result = await run.done;
      if (result.code !== 0) throw new Error(`start-worker exited with ${result.code}:\n${result.stderr}`);
      const received = readJsonLines<Recorded>(record).find((r) => r.message?.type === 'graceful-termination');
      if (received === undefined) throw new Error(`the worker never received graceful-termination:\n${result.stderr}`);
      return received.time;
    },
  };
}
