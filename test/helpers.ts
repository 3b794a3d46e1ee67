import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';

/** The repository root (tests run from dist/test). */
export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
export const startWorkerBin = join(repoRoot, 'bin', 'start-worker');
/** Compiled test programs (fake workers and the like). */
export const testBuildDir = fileURLToPath(new URL('./', import.meta.url));

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

/** Run start-worker as a real subprocess. */
export function runCli(
  args: string[],
  options: { env?: Record<string, string | undefined>; cwd?: string; timeoutMs?: number; nodeArgs?: string[] } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    // Through env(1): tap instruments every child it sees by forcing
    // NODE_OPTIONS, and start-worker must run as it does in production.
    const child = spawn('/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, ...(options.nodeArgs ?? []), startWorkerBin, ...args], {
      cwd: options.cwd ?? repoRoot,
      env: cleanEnv(options.env),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`start-worker ${args.join(' ')} did not finish in time; stderr so far:\n${stderr}`));
    }, options.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** A standalone provider section for tests. */
export function standaloneProvider(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    providerType: 'standalone',
    rootURL: 'https://tc.example.com',
    clientID: 'test/client',
    accessToken: 'SECRET-access-token-0123456789',
    workerPoolID: 'proj/pool',
    workerGroup: 'group',
    workerID: 'worker-1',
    ...overrides,
  };
}
