/**
 * A worker for tests, speaking the protocol as generic-worker does. Its
 * behaviour comes from the JSON in FAKE_WORKER (see WorkerScript); what it
 * receives is appended as JSON lines to FAKE_WORKER_RECORD.
 */
import { spawn } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

interface WorkerScript {
  /** Capabilities to say hello with; null never says hello. */
  capabilities?: string[] | null;
  /** How long after welcome to say hello (a worker that is slow to start). */
  helloDelayMs?: number;
  /** Lines written to stdout after hello (protocol messages or plain text). */
  output?: string[];
  /** Write this many log messages as fast as possible. */
  flood?: number;
  /** What to do on graceful-termination: exit with this code, or ignore it. */
  onGracefulTermination?: { exit: number } | 'ignore';
  /** Exit with this code once the output is written (omit to keep running). */
  exitAfterOutput?: number;
  /** Die of this signal after this many milliseconds. */
  crash?: { afterMs: number; signal: NodeJS.Signals };
  /** Ignore SIGTERM (for the forced path). */
  ignoreSigterm?: boolean;
  /**
   * As docker-worker does on SIGTERM: send shutdown and wait to be powered
   * off. A later SIGTERM then exits (code 0) or, with 'ignore', is ignored.
   */
  shutdownOnSigterm?: 'exit-next' | 'ignore';
  /** Start a long-lived child in the same process group (for orphan checks). */
  spawnChild?: boolean;
  /** Lines written to stderr at start. */
  stderr?: string[];
  /** Exit with the given code on these signals. */
  signals?: Record<string, number>;
  /** How long stopping takes after one of `signals` (default: at once). */
  stopDelayMs?: number;
  /** Exit with this code after receiving new-credentials this many times. */
  exitAfterCredentials?: { count: number; code: number };
}

const script = JSON.parse(process.env['FAKE_WORKER'] ?? '{}') as WorkerScript;
const recordFile = process.env['FAKE_WORKER_RECORD'];

function record(entry: Record<string, unknown>): void {
  if (recordFile) appendFileSync(recordFile, `${JSON.stringify({ time: Date.now(), ...entry })}\n`);
}

function send(message: Record<string, unknown>): void {
  process.stdout.write(`~${JSON.stringify(message)}\n`);
}

/**
 * Exit once everything written to stdout is out: stdout is a non-blocking
 * pipe, and process.exit() would drop what is still queued.
 */
function exit(code: number): void {
  process.stdout.write('', () => process.exit(code));
}

if (script.shutdownOnSigterm) {
  let sigterms = 0;
  process.on('SIGTERM', () => {
    sigterms += 1;
    record({ event: 'sigterm' });
    if (sigterms === 1) send({ type: 'shutdown' });
    else if (script.shutdownOnSigterm === 'exit-next') exit(0);
  });
} else if (script.ignoreSigterm) process.on('SIGTERM', () => record({ event: 'sigterm-ignored' }));
else if (script.signals?.['SIGTERM'] === undefined) {
  process.on('SIGTERM', () => {
    record({ event: 'sigterm' });
    exit(143);
  });
}

for (const [signal, code] of Object.entries(script.signals ?? {})) {
  process.on(signal, () => {
    record({ event: 'signal', signal });
    setTimeout(() => exit(code), script.stopDelayMs ?? 0);
  });
}
for (const line of script.stderr ?? []) process.stderr.write(`${line}\n`);

let child: ReturnType<typeof spawn> | undefined;
if (script.spawnChild) {
  child = spawn('sleep', ['1000'], { stdio: 'ignore' });
}
record({
  event: 'started',
  pid: process.pid,
  childPid: child?.pid,
  argv: process.argv.slice(2),
  env: process.env,
  cwd: process.cwd(),
});

let credentialsReceived = 0;
const input = createInterface({ input: process.stdin });
input.on('line', (line) => {
  if (!line.startsWith('~')) return;
  const message = JSON.parse(line.slice(1)) as Record<string, unknown>;
  record({ event: 'message', message });
  if (message['type'] === 'welcome' && script.capabilities !== null) {
    setTimeout(() => {
      send({ type: 'hello', capabilities: script.capabilities ?? [] });
      record({ event: 'hello' });
      afterHello();
    }, script.helloDelayMs ?? 0);
  }
  if (
    message['type'] === 'graceful-termination' &&
    script.onGracefulTermination &&
    script.onGracefulTermination !== 'ignore'
  ) {
    exit(script.onGracefulTermination.exit);
  }
  if (message['type'] === 'new-credentials' && script.exitAfterCredentials) {
    credentialsReceived += 1;
    if (credentialsReceived >= script.exitAfterCredentials.count) exit(script.exitAfterCredentials.code);
  }
});
// start-worker never closes a worker's stdin, so this is start-worker gone
// (a failing test's teardown SIGKILLs it): a worker left running would
// outlive the suite. 86 is a code nothing else here exits with.
input.on('close', () => {
  record({ event: 'stdin-closed' });
  process.exit(86);
});

if (script.capabilities === null) afterHello();

function afterHello(): void {
  for (const line of script.output ?? []) process.stdout.write(`${line}\n`);
  if (script.flood) flood(script.flood);
  else finish();
}

function flood(count: number): void {
  let sent = 0;
  const write = (): void => {
    while (sent < count) {
      sent += 1;
      const ok = process.stdout.write(
        `~{"type":"log","body":{"textPayload":"flood message number ${sent}","n":${sent}}}\n`,
      );
      if (!ok) {
        process.stdout.once('drain', write);
        return;
      }
    }
    record({ event: 'flooded' });
    finish();
  };
  write();
}

function finish(): void {
  if (script.crash) {
    setTimeout(() => process.kill(process.pid, script.crash!.signal), script.crash.afterMs);
  }
  if (script.exitAfterOutput !== undefined) {
    exit(script.exitAfterOutput);
  }
}

// Stay alive until told otherwise.
setInterval(() => undefined, 1 << 30);
