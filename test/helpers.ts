import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';

/** The repository root (tests run from dist/test). */
export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
export const startWorkerBin = join(repoRoot, 'bin', 'start-worker');
/** Compiled test programs (fake workers and the like). */
export const testBuildDir = fileURLToPath(new URL('./', import.meta.url));
/** Preloaded into every start-worker under test: nothing but loopback can be reached. */
export const networkGuard = join(testBuildDir, 'fixtures', 'no-network.cjs');

interface Teardown {
  teardown(fn: () => void | Promise<void>): void;
}

/** A fresh directory removed when the test ends. */
export function tempDir(t: Teardown): string {
  const dir = mkdtempSync(join(tmpdir(), 'start-worker-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Write a runner config (an object as YAML, or raw text), owner-only unless a mode is given. */
export function writeConfig(dir: string, config: unknown, options: { name?: string; mode?: number } = {}): string {
  const path = join(dir, options.name ?? 'runner.yaml');
  writeFileSync(path, typeof config === 'string' || Buffer.isBuffer(config) ? config : stringify(config));
  chmodSync(path, options.mode ?? 0o600);
  return path;
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * The environment for a subprocess under test: ours without the test
 * runner's instrumentation (NODE_OPTIONS), plus overrides (undefined deletes).
 */
export function cleanEnv(overrides: Record<string, string | undefined> = {}): Record<string, string> {
  const env: Record<string, string | undefined> = { ...process.env, NODE_OPTIONS: undefined, ...overrides };
  return Object.fromEntries(Object.entries(env).filter((entry): entry is [string, string] => entry[1] !== undefined));
}

export interface CliOptions {
  /** Kill the subprocess when this test ends, whatever happened. */
  t?: Teardown;
  env?: Record<string, string | undefined>;
  cwd?: string;
  timeoutMs?: number;
  nodeArgs?: string[];
  /** Leave start-worker's stderr unread this long (a reader that falls behind, as journald can). */
  readStderrAfterMs?: number;
  /** Send start-worker's stderr to this file instead of a pipe; the result's stderr is read from it. */
  stderrFile?: string;
}

/** Run start-worker as a real subprocess and wait for it. */
export function runCli(args: string[], options: CliOptions = {}): Promise<CliResult> {
  return startCli(args, options).done;
}

/** Start start-worker as a real subprocess; `done` resolves when it exits. */
export function startCli(
  args: string[],
  options: CliOptions = {},
): { child: ChildProcess; done: Promise<CliResult>; stderr: () => string } {
  let stderrSoFar = '';
  let childProcess!: ChildProcess;
  const done = new Promise<CliResult>((resolve, reject) => {
    // Through env(1): tap instruments every child it sees by forcing
    // NODE_OPTIONS, and start-worker must run as it does in production.
    const stderrFd = options.stderrFile === undefined ? undefined : openSync(options.stderrFile, 'w');
    const child = spawn(
      '/usr/bin/env',
      [
        '-u',
        'NODE_OPTIONS',
        process.execPath,
        '--require',
        networkGuard,
        ...(options.nodeArgs ?? []),
        startWorkerBin,
        ...args,
      ],
      {
        cwd: options.cwd ?? repoRoot,
        env: cleanEnv(options.env),
        stdio: ['ignore', 'pipe', stderrFd ?? 'pipe'],
      },
    );
    if (stderrFd !== undefined) closeSync(stderrFd);
    childProcess = child;
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      stderrSoFar = stderr;
    });
    if (options.readStderrAfterMs !== undefined) {
      child.stderr?.pause();
      setTimeout(() => child.stderr?.resume(), options.readStderrAfterMs);
    }
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`start-worker ${args.join(' ')} did not finish in time; stderr so far:\n${stderr}`));
    }, options.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (options.stderrFile !== undefined) stderr = readFileSync(options.stderrFile, 'utf8');
      resolve({ code, signal, stdout, stderr });
    });
  });
  options.t?.teardown(() => {
    if (childProcess.exitCode === null && childProcess.signalCode === null) childProcess.kill('SIGKILL');
  });
  return { child: childProcess, done, stderr: () => stderrSoFar };
}

/** Wait until `check` returns a value other than undefined/false (polling), or fail after the timeout. */
export async function waitFor<T>(what: string, check: () => T | undefined | false, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const result = check();
    if (result !== undefined && result !== false) return result;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Lines of a JSON-lines file, or [] when it does not exist yet. */
export function readJsonLines<T = Record<string, unknown>>(path: string): T[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as T);
}

export const protocolWorkerPath = join(testBuildDir, 'workers', 'protocol-worker.js');

/** A `command` worker section running the test worker with the given script. */
export function fakeWorkerSection(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    implementation: 'command',
    command: [process.execPath, protocolWorkerPath],
    passCredentials: 'none',
    ...extra,
  };
}

/** Whether a process exists. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A standalone provider section for tests. */
export function standaloneProvider(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    providerType: 'standalone',
    // loopback, and nothing listens there: a call made by mistake fails at once
    rootURL: 'http://127.0.0.1:9',
    clientID: 'test/client',
    accessToken: 'SECRET-access-token-0123456789',
    workerPoolID: 'proj/pool',
    workerGroup: 'group',
    workerID: 'worker-1',
    ...overrides,
  };
}

/**
 * A stand-in for `shutdown -h now` that only records that it was called.
 * Every test that can reach the exit path uses one.
 */
export function recordingShutdown(dir: string): { command: string[]; calls: () => string[] } {
  const log = join(dir, 'shutdown-calls.log');
  const script = join(dir, 'record-shutdown.sh');
  writeFileSync(script, `#!/bin/sh\necho "shutdown $*" >> "${log}"\n`);
  chmodSync(script, 0o755);
  return {
    command: [script, '-h', 'now'],
    calls: () => (existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter(Boolean) : []),
  };
}

/** A static secret in the form worker-manager requires (44 characters of [a-zA-Z0-9_-]). */
export const STATIC_SECRET = 'static-secret-0123456789abcdefghijklmnopqrst';

/** The secrets (shortened, for the failure message) that appear in the text. */
export function leakedSecrets(text: string, secrets: string[]): string[] {
  if (secrets.length === 0) throw new Error('no secrets to look for: the check would prove nothing');
  return secrets.filter((secret) => text.includes(secret)).map((secret) => `${secret.slice(0, 8)}...`);
}
