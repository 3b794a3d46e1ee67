/**
 * The reading side of test/fixtures/soak-probe.cts, shared by the soak test
 * and bench/soak.ts: how to preload the probe, its samples, slopes over
 * polls, and Node's own warnings in a stderr text.
 */
import { join } from 'node:path';
import { readJsonLines, testBuildDir } from './helpers.js';

export const soakProbe = join(testBuildDir, 'fixtures', 'soak-probe.cjs');

/** Node arguments that load the probe (with a GC it can force). */
export const probeNodeArgs = ['--expose-gc', '--require', soakProbe];

/** Environment for a probed process: where to write, how often to sample. */
export function probeEnv(file: string, intervalMs: number): Record<string, string> {
  return { SOAK_PROBE_FILE: file, SOAK_PROBE_INTERVAL_MS: String(intervalMs) };
}

export interface ProbeSample {
  kind: 'sample';
  t: number;
  final: boolean;
  /** Whether a GC could be forced (--expose-gc); without it heapUsed means little. */
  gc: boolean;
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  /** User + system CPU so far (µs). */
  cpuUs: number;
  /** How long the forced GCs took (ms, wall time: more than their CPU on a busy machine). */
  gcMs: number;
  /** The CPU the forced GCs took (µs), part of cpuUs. */
  gcCpuUs: number;
  timers: number;
  targetListenersLive: number;
  emitterListenersLive: number;
  targetListenersEver: number;
  emitterListenersEver: number;
  worst: string;
  watched: number;
  /** The most signals made by AbortSignal.any that one input links to (null: none seen, or Node keeps no such link). */
  anyDependantsMax: number | null;
}

export interface ProbeWarning {
  kind: 'warning';
  t: number;
  name: string;
  message: string;
}

export function readProbe(file: string): { samples: ProbeSample[]; warnings: ProbeWarning[] } {
  const lines = readJsonLines<ProbeSample | ProbeWarning>(file);
  return {
    samples: lines.filter((line): line is ProbeSample => line.kind === 'sample'),
    warnings: lines.filter((line): line is ProbeWarning => line.kind === 'warning'),
  };
}

/** Least-squares slope of y over x, with its standard error. */
export function slope(xs: number[], ys: number[]): { slope: number; standardError: number } {
  const n = xs.length;
  if (n < 3) return { slope: NaN, standardError: NaN };
  const meanX = xs.reduce((a, b) => a + b, 0) / n;
  const meanY = ys.reduce((a, b) => a + b, 0) / n;
  let sxx = 0;
  let sxy = 0;
  for (let i = 0; i < n; i++) {
    sxx += (xs[i]! - meanX) ** 2;
    sxy += (xs[i]! - meanX) * (ys[i]! - meanY);
  }
  if (sxx === 0) return { slope: NaN, standardError: NaN };
  const b = sxy / sxx;
  const a = meanY - b * meanX;
  let residuals = 0;
  for (let i = 0; i < n; i++) residuals += (ys[i]! - (a + b * xs[i]!)) ** 2;
  return { slope: b, standardError: Math.sqrt(residuals / (n - 2) / sxx) };
}

/** How many of the sorted times are at or before `t`. */
export function countUpTo(sortedTimes: number[], t: number): number {
  let low = 0;
  let high = sortedTimes.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (sortedTimes[middle]! <= t) low = middle + 1;
    else high = middle;
  }
  return low;
}

/**
 * Lines of a stderr text that Node wrote about itself: `(node:PID) ...`
 * warnings (MaxListenersExceededWarning, DeprecationWarning,
 * ExperimentalWarning...) and the `(Use \`node --trace-warnings ...\`)` hint.
 */
export function nodeWarningLines(stderr: string): string[] {
  return stderr
    .split('\n')
    .filter(
      (line) =>
        /^\(node:\d+\) /.test(line) || /^[A-Za-z]*Warning: /.test(line) || line.startsWith('(Use `node --trace-'),
    );
}

export interface WindowFigures {
  samples: number;
  polls: number;
  rssStart: number;
  rssEnd: number;
  /** Bytes of RSS per poll (least squares). */
  rssPerPoll: number;
  heapStart: number;
  heapEnd: number;
  /** Bytes of heap used after a full GC, per poll (least squares), and its standard error. */
  heapPerPoll: number;
  heapPerPollError: number;
  /** CPU µs per poll, without the probe's forced GCs. */
  cpuUsPerPoll: number;
  /** The most listeners one target held for one type, at any sample of the window. */
  listenersLive: number;
  listenersWorst: string;
  timersMax: number;
  /** The most AbortSignal.any dependants of one input at any sample (null when never seen). */
  anyDependants: number | null;
}

/**
 * Figures over the samples taken between `from` and `to` (ms since the
 * epoch), against the number of polls made by each sample's time.
 */
export function windowFigures(allSamples: ProbeSample[], pollTimes: number[], from: number, to: number): WindowFigures {
  const times = [...pollTimes].sort((a, b) => a - b);
  const samples = allSamples.filter((s) => !s.final && s.t >= from && s.t <= to);
  const polls = samples.map((s) => countUpTo(times, s.t));
  const first = samples[0];
  const last = samples[samples.length - 1];
  const pollsInWindow = first && last ? polls[polls.length - 1]! - polls[0]! : 0;
  const heap = slope(
    polls,
    samples.map((s) => s.heapUsed),
  );
  const cpuUs = first && last ? last.cpuUs - first.cpuUs - (last.gcCpuUs - first.gcCpuUs) : NaN;
  let worst = '';
  let live = 0;
  for (const s of samples) {
    const most = Math.max(s.targetListenersLive, s.emitterListenersLive);
    if (most > live) {
      live = most;
      worst = s.worst;
    }
  }
  return {
    samples: samples.length,
    polls: pollsInWindow,
    rssStart: first?.rss ?? NaN,
    rssEnd: last?.rss ?? NaN,
    rssPerPoll: slope(
      polls,
      samples.map((s) => s.rss),
    ).slope,
    heapStart: first?.heapUsed ?? NaN,
    heapEnd: last?.heapUsed ?? NaN,
    heapPerPoll: heap.slope,
    heapPerPollError: heap.standardError,
    cpuUsPerPoll: pollsInWindow > 0 ? cpuUs / pollsInWindow : NaN,
    listenersLive: live,
    listenersWorst: worst,
    timersMax: Math.max(0, ...samples.map((s) => s.timers)),
    anyDependants: samples.reduce<number | null>(
      (most, s) =>
        s.anyDependantsMax === null || s.anyDependantsMax === undefined
          ? most
          : Math.max(most ?? 0, s.anyDependantsMax),
      null,
    ),
  };
}
