import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { errorMessage, StartWorkerError } from '../errors.js';
import type { Logger } from '../logging/logger.js';
import { DEFAULT_MAX_LINE_BYTES, readLines } from '../protocol/framing.js';
import { WorkerProtocol } from '../protocol/protocol.js';
import { endedOrStopReading, pacedByLog, settlesWithin } from '../util/output-drain.js';
import type { WorkerProcess, WorkerExit, WorkerLaunch } from './types.js';

/** How long to wait for the worker's output to end after it exited, before killing what holds it open. */
const OUTPUT_DRAIN_MS = 5000;
/** How long the output may stay open after the worker's process group was killed. */
const OUTPUT_AFTER_KILL_MS = 2000;

export interface SpawnOptions {
  log: Logger;
  maxLineBytes?: number;
}

/**
 * Start a worker process with the protocol on its stdin/stdout. The worker
 * leads its own process group, so a forced stop, and the clean-up after it
 * exits, reach everything it started.
 */
export async function spawnWorker(launch: WorkerLaunch, options: SpawnOptions): Promise<WorkerProcess> {
  const { log } = options;
  const { subprocess } = await launchProcess(launch, log);
  const pid = subprocess.pid!;
  const killGroup = (): void => {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // the group is already gone
    }
  };
  const protocol = new WorkerProtocol({
    log,
    toWorker: subprocess.stdin,
    maxLineBytes: options.maxLineBytes,
    speaksProtocol: launch.protocol ?? true,
  });
  const output = wireOutput(subprocess, protocol, options);
  const exited = awaitExit(subprocess, output, killGroup, log);

  await setOomScoreAdj(pid, log);
  protocol.start();
  return {
    protocol,
    exited,
    terminationSignal: launch.terminationSignal ?? 'SIGTERM',
    gracePeriodSeconds: launch.gracePeriodSeconds,
    honoursOnlyFirstTermination: launch.honoursOnlyFirstTermination ?? false,
    signal(signal) {
      try {
        process.kill(pid, signal);
      } catch {
        // already exited
      }
    },
    kill: killGroup,
  };
}

/**
 * The started process, in its own group, with the environment the launch
 * asks for, once it has spawned. node:child_process rather than execa: the
 * worker's streams are used raw, and loading execa was the longest wait
 * between the last startup step and the worker's spawn.
 */
async function launchProcess(launch: WorkerLaunch, log: Logger): Promise<{ subprocess: ChildWorker }> {
  const inherited: Record<string, string | undefined> = { ...process.env };
  for (const name of launch.removeEnv ?? []) delete inherited[name];
  const environment = { ...inherited, ...launch.env };
  // values are not shown: any of them may be a credential
  log.debug(
    `spawning ${JSON.stringify([launch.file, ...launch.args])}${launch.cwd ? ` in ${launch.cwd}` : ''}; environment: ${Object.keys(environment).sort().join(' ')}`,
  );
  const subprocess = spawn(launch.file, launch.args, {
    env: environment,
    cwd: launch.cwd,
    stdio: 'pipe',
    detached: true,
  });
  try {
    await new Promise<void>((resolve, reject) => {
      subprocess.once('spawn', resolve);
      subprocess.once('error', reject);
    });
  } catch (err) {
    throw new StartWorkerError(`cannot start worker ${launch.file}: ${errorMessage(err)}`);
  }
  // a failure after the spawn (a pipe error) is reported through the exit status
  subprocess.on('error', (err) => log.debug(`worker process: ${errorMessage(err)}`));
  return { subprocess };
}

type ChildWorker = ChildProcessWithoutNullStreams;

interface WorkerOutput {
  /** Resolved when stdout and stderr have both ended. */
  done: Promise<void>;
  /** Read on whatever the log's pace (see pacedByLog). */
  stopPacing: () => void;
}

/** stdout to the protocol, stderr line by line to the log, both at the pace the log can take. */
function wireOutput(subprocess: ChildWorker, protocol: WorkerProtocol, options: SpawnOptions): WorkerOutput {
  const { log } = options;
  // a read error ends the stream like its close; it is no reason to crash
  for (const [name, stream] of [
    ['stdout', subprocess.stdout],
    ['stderr', subprocess.stderr],
  ] as const)
    stream.on('error', (err) => log.warn(`reading the worker's ${name}: ${errorMessage(err)}`));
  subprocess.stdout.on('data', (chunk: Buffer) => protocol.receive(chunk));
  subprocess.stdout.once('close', () => protocol.end());
  const stderrDone = readLines(
    subprocess.stderr,
    options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES,
    (line) => log.workerStderr(line),
    (bytes) => log.warn(`worker wrote a stderr line of ${bytes} bytes, longer than the limit; dropped it`),
  );
  return {
    done: Promise.all([protocol.eof, stderrDone]).then(() => undefined),
    stopPacing: pacedByLog([subprocess.stdout, subprocess.stderr], log),
  };
}

/**
 * The worker's exit, acted on only once its output has been read to the
 * end, so the last messages are not lost; a leftover child holding the
 * output open gets a few seconds. Whatever the worker left in its group is
 * killed, and so is the group if the runner itself goes away. A process
 * that left the group (setsid) cannot be killed with it: if it still holds
 * the output open, start-worker stops reading rather than wait for it.
 */
async function awaitExit(
  subprocess: ChildWorker,
  output: WorkerOutput,
  killGroup: () => void,
  log: Logger,
): Promise<WorkerExit> {
  process.once('exit', killGroup);
  const status = await new Promise<WorkerExit>((resolve) =>
    subprocess.once('exit', (code, signal) => resolve({ code, signal })),
  );
  // what is left fits in the pipes, and a slow log must not look like output held open
  output.stopPacing();
  if (!(await settlesWithin(output.done, OUTPUT_DRAIN_MS)))
    log.warn('worker exited but something it started still holds its output open; killing its process group');
  killGroup();
  if (!(await endedOrStopReading(output.done, [subprocess.stdout, subprocess.stderr], OUTPUT_AFTER_KILL_MS)))
    log.warn(
      "a process the worker started outside its process group (setsid?) still holds the worker's output open; no longer reading it",
    );
  await output.done;
  process.removeListener('exit', killGroup);
  return status;
}

let runnerOomAdjusted = false;

/**
 * Make the OOM killer prefer tasks over the runner and the worker, as
 * Taskcluster does. Lowering the score needs privileges; without them, warn.
 */
async function setOomScoreAdj(pid: number, log: Logger): Promise<void> {
  if (process.platform !== 'linux') return;
  const targets = runnerOomAdjusted ? [String(pid)] : ['self', String(pid)];
  for (const target of targets) {
    try {
      await writeFile(`/proc/${target}/oom_score_adj`, '-1000');
      if (target === 'self') runnerOomAdjusted = true;
    } catch (err) {
      log.warn(
        `could not set oom_score_adj of ${target === 'self' ? 'start-worker' : 'the worker'} to -1000 (${errorMessage(err)}); the OOM killer may choose it over a task`,
      );
      return;
    }
  }
}
