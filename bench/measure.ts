import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

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
