/**
 * Lifecycle hooks (runner config `hooks`): commands run before and after
 * each step of startup, on a termination notice and when the worker exits.
 * They get the step and, once known, the worker's identity in their
 * environment, never credentials.
 */
import { spawn } from 'node:child_process';
import { StartWorkerError, errorMessage } from './errors.js';
import type { Logger } from './logging/logger.js';
import { readLines } from './protocol/framing.js';
import type { JsonSchema } from './schema.js';
import type { RunState } from './state.js';
import { endedOrStopReading, pacedByLog } from './util/output-drain.js';
import { identityEnvironment } from './worker-config.js';

export const HOOK_STEPS = [
  'pre-configure',
  'post-configure',
  'pre-register',
  'post-register',
  'pre-secrets',
  'post-secrets',
  'pre-files',
  'post-files',
  'pre-start',
  'post-start',
  'termination-notice',
  'worker-exit',
] as const;

export type HookStep = (typeof HOOK_STEPS)[number];
export type HookSpec = string[] | { command: string[]; timeout?: number };
export type HooksConfig = Partial<Record<HookStep, HookSpec[]>>;

const DEFAULT_TIMEOUT_SECONDS = 60;
/** After a timed-out hook is sent SIGTERM, how long before SIGKILL. */
const HOOK_KILL_AFTER_MS = 5000;
/** How long a hook's output is still read after it exited (what it wrote last may be in flight). */
const HOOK_OUTPUT_AFTER_EXIT_MS = 1000;
/** Never handed to a hook, even when start-worker's own environment has them. */
const WITHHELD_VARIABLES = [
  'TASKCLUSTER_CLIENT_ID',
  'TASKCLUSTER_ACCESS_TOKEN',
  'TASKCLUSTER_CERTIFICATE',
  'START_WORKER_CERT_KEY_PASS',
];

const HOOK_DESCRIPTIONS: Record<HookStep, string> = {
  'pre-configure': 'Before the provider finds out who this worker is (no identity in the environment yet).',
  'post-configure': 'After the provider step.',
  'pre-register': 'Before registering with worker-manager (providers with an identity proof).',
  'post-register': 'After registering.',
  'pre-secrets': 'Before reading secrets (when any are configured).',
  'post-secrets': 'After reading secrets.',
  'pre-files': 'Before the worker implementation configures the run, the state is cached and the files are written.',
  'post-files': 'After the files are written.',
  'pre-start': 'Before the worker is spawned.',
  'post-start': 'After the worker is spawned; a failure kills it.',
  'termination-notice':
    'When the worker is asked to stop (an interruption, expiring credentials, a signal); with START_WORKER_TERMINATION_REASON and START_WORKER_TERMINATION_DEADLINE. Failures are logged.',
  'worker-exit': 'After the worker exited; with START_WORKER_EXIT_CODE. Failures are logged.',
};

const argv: JsonSchema = { type: 'array', minItems: 1, items: { type: 'string' } };
const hookEntry: JsonSchema = {
  description: 'an argv list, or {command: [argv], timeout: seconds}',
  anyOf: [
    argv,
    {
      type: 'object',
      required: ['command'],
      properties: { command: argv, timeout: { type: 'number', exclusiveMinimum: 0 } },
    },
  ],
};

export const hooksSchema: JsonSchema = {
  type: 'object',
  description:
    'Commands to run at each step: `pre-`/`post-` `configure` (the provider), `register`, `secrets`, `files` (the worker implementation configures the run, the state is cached, files are written), `start` (spawning the worker), and `termination-notice` and `worker-exit`. Each entry is an argv list or `{command: [argv], timeout: seconds}` (default 60). A failing `pre-`/`post-` hook stops startup. A hook is done when its process exits: a daemon it starts in the background keeps running.',
  properties: Object.fromEntries(
    HOOK_STEPS.map((step) => [step, { type: 'array', items: hookEntry, description: HOOK_DESCRIPTIONS[step] }]),
  ),
};

export class Hooks {
  /** Hooks started by runInBackground and not finished yet. */
  private readonly background = new Set<Promise<void>>();

  constructor(
    private readonly config: HooksConfig,
    private readonly log: Logger,
  ) {}

  /** Run a step's hooks without waiting for them (termination-notice, while the worker stops); failures are logged. */
  runInBackground(step: HookStep, state: RunState | undefined, extraEnv: Record<string, string> = {}): void {
    const running = this.runLogged(step, state, extraEnv).finally(() => this.background.delete(running));
    this.background.add(running);
  }

  /** Resolves when every hook started by runInBackground has finished. */
  async backgroundDone(): Promise<void> {
    await Promise.all([...this.background]);
  }

  /** Run a step's hooks in order; a failure or timeout is an error that stops startup. */
  async run(step: HookStep, state: RunState | undefined, extraEnv: Record<string, string> = {}): Promise<void> {
    for (const spec of this.config[step] ?? []) await this.runOne(step, spec, state, extraEnv);
  }

  /** Run a step's hooks, logging failures instead of stopping anything. */
  async runLogged(step: HookStep, state: RunState | undefined, extraEnv: Record<string, string> = {}): Promise<void> {
    try {
      await this.run(step, state, extraEnv);
    } catch (err) {
      this.log.error(errorMessage(err));
    }
  }

  private async runOne(
    step: HookStep,
    spec: HookSpec,
    state: RunState | undefined,
    extraEnv: Record<string, string>,
  ): Promise<void> {
    const [file, ...args] = Array.isArray(spec) ? spec : spec.command;
    const timeoutSeconds = (Array.isArray(spec) ? undefined : spec.timeout) ?? DEFAULT_TIMEOUT_SECONDS;
    const name = `hook ${step} [${file}]`;
    const env: Record<string, string | undefined> = { ...process.env };
    for (const variable of WITHHELD_VARIABLES) delete env[variable];
    Object.assign(env, state && state.workerId !== '' ? identityEnvironment(state) : {}, extraEnv, {
      START_WORKER_STEP: step,
    });

    this.log.debug(`${name}: running ${JSON.stringify([file, ...args])} (timeout ${timeoutSeconds}s)`);
    const started = Date.now();
    const outcome = await this.spawnHook(name, file!, args, env, timeoutSeconds);
    if ('error' in outcome) throw new StartWorkerError(`${name} could not be started: ${outcome.error.message}`);
    if (outcome.timedOut) throw new StartWorkerError(`${name} did not finish within ${timeoutSeconds}s`);
    if (outcome.code !== 0) {
      const why = outcome.code !== null ? `exited with code ${outcome.code}` : `died of ${outcome.signal}`;
      throw new StartWorkerError(`${name} ${why}`);
    }
    this.log.debug(`${name} exited with code 0 after ${Date.now() - started} ms`);
  }

  /**
   * A hook is done when its process exits. Its output is logged line by
   * line; a process it left running (a daemon it started) may keep the output
   * open, and is left running, but not waited for.
   */
  private async spawnHook(
    name: string,
    file: string,
    args: string[],
    env: Record<string, string | undefined>,
    timeoutSeconds: number,
  ): Promise<{ code: number | null; signal: NodeJS.Signals | null; timedOut: boolean } | { error: Error }> {
    const child = spawn(file, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const outputEnded = Promise.all(
      [child.stdout, child.stderr].map((stream) =>
        readLines(
          stream,
          65_536,
          (line) => this.log.info(`${name}: ${line}`),
          () => this.log.warn(`${name}: dropped an over-long output line`),
        ),
      ),
    );
    const stopPacing = pacedByLog([child.stdout, child.stderr], this.log);
    let timedOut = false;
    let forceKill: NodeJS.Timeout | undefined;
    const timeout = setTimeout(() => {
      timedOut = true;
      child.kill('SIGTERM');
      forceKill = setTimeout(() => child.kill('SIGKILL'), HOOK_KILL_AFTER_MS);
    }, timeoutSeconds * 1000);
    const outcome = await new Promise<{ code: number | null; signal: NodeJS.Signals | null } | { error: Error }>(
      (resolve) => {
        child.once('error', (error) => resolve({ error }));
        child.once('exit', (code, signal) => resolve({ code, signal }));
      },
    );
    clearTimeout(timeout);
    clearTimeout(forceKill);
    stopPacing();
    if (!(await endedOrStopReading(outputEnded, [child.stdout, child.stderr], HOOK_OUTPUT_AFTER_EXIT_MS)))
      this.log.info(`${name}: a process it started still holds its output open; no longer reading it`);
    await outputEnded;
    return 'error' in outcome ? outcome : { ...outcome, timedOut };
  }
}
