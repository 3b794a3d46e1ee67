import type { Writable } from 'node:stream';
import { errorMessage } from '../errors.js';
import { isJsonObject, type JsonObject } from '../json.js';
import type { Logger } from '../logging/logger.js';
import { DEFAULT_MAX_LINE_BYTES, LineSplitter } from './framing.js';
import {
  checkRunnerMessage,
  isCapability,
  MESSAGE_CAPABILITY,
  parseErrorReport,
  RUNNER_CAPABILITIES,
  type Capability,
  type ErrorReport,
  type RunnerMessage,
} from './messages.js';

export interface ProtocolHandlers {
  /** A valid error-report from the worker. */
  errorReport?: (report: ErrorReport) => void;
  /** The worker asked for the machine to be shut down. */
  shutdown?: () => void;
}

export interface ProtocolOptions {
  log: Logger;
  /** The worker's stdin, or null for a worker that does not speak the protocol. */
  toWorker: Writable | null;
  maxLineBytes?: number;
  /** False when the worker's stdout is plain log output, not the protocol. */
  speaksProtocol?: boolean;
}

/**
 * The runner's side of the worker protocol: `~{json}` lines on the worker's
 * stdout and stdin. It negotiates capabilities, forwards `log` messages and
 * plain lines to the logger, hands error reports and shutdown requests to
 * their handlers, and sends only messages of agreed capabilities.
 */
export class WorkerProtocol {
  private readonly log: Logger;
  private readonly toWorker: Writable | null;
  private readonly protocolEnabled: boolean;
  private readonly splitter: LineSplitter;
  private readonly handlers: ProtocolHandlers = {};
  private agreed = new Set<Capability>();
  private helloReceived = false;
  private resolveInitialized!: () => void;
  private resolveEof!: () => void;
  private writable: boolean;
  private waitingForDrain: string[] | undefined;

  /** Resolves when the worker said hello. */
  readonly initialized: Promise<void>;
  /** Resolves when the worker's stdout has been read to the end. */
  readonly eof: Promise<void>;

  constructor(options: ProtocolOptions) {
    this.log = options.log;
    this.toWorker = options.toWorker;
    this.protocolEnabled = options.speaksProtocol ?? true;
    this.writable = this.toWorker !== null;
    this.initialized = new Promise((resolve) => (this.resolveInitialized = resolve));
    this.eof = new Promise((resolve) => (this.resolveEof = resolve));
    const maxLineBytes = options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
    this.splitter = new LineSplitter(
      maxLineBytes,
      (line) => this.receiveLine(line),
      (bytes) =>
        this.log.warn(
          `worker wrote a line of ${bytes} bytes, longer than the limit of ${maxLineBytes} (worker.maxLineBytes); dropped it`,
        ),
    );
    this.toWorker?.on('error', (err) => {
      // The worker closed its stdin or exited: nothing more can be sent.
      this.writable = false;
      this.log.debug(`cannot write to the worker's stdin any more: ${errorMessage(err)}`);
    });
  }

  setHandlers(handlers: ProtocolHandlers): void {
    Object.assign(this.handlers, handlers);
  }

  /** Begin the negotiation: tell the worker what the runner supports. */
  start(): void {
    if (this.protocolEnabled) this.send({ type: 'welcome', capabilities: [...RUNNER_CAPABILITIES] });
  }

  /** Whether the capability was agreed. False until the worker says hello. */
  capable(capability: Capability): boolean {
    return this.agreed.has(capability);
  }

  get capabilities(): Capability[] {
    return [...this.agreed].sort();
  }

  /** False for a worker whose stdout is plain output (it can never say hello). */
  get speaksProtocol(): boolean {
    return this.protocolEnabled;
  }

  get saidHello(): boolean {
    return this.helloReceived;
  }

  /** Bytes from the worker's stdout. */
  receive(chunk: Buffer): void {
    this.splitter.push(chunk);
  }

  /** The worker's stdout has ended. */
  end(): void {
    this.splitter.end();
    this.resolveEof();
  }

  /**
   * Send a message if its capability was agreed (welcome needs none).
   * Returns false when it was not sent.
   */
  send(message: RunnerMessage): boolean {
    const capability = MESSAGE_CAPABILITY[message.type];
    if (capability !== undefined && !this.agreed.has(capability)) return false;
    const problem = checkRunnerMessage(message);
    if (problem !== undefined) {
      this.log.error(`not sending an invalid ${message.type} message to the worker: ${problem}`);
      return false;
    }
    if (!this.writable || this.toWorker === null) return false;
    if (this.log.isEnabled('debug')) this.log.debug(`protocol → worker: ${describeMessage(message)}`);
    this.write(`~${JSON.stringify(message)}\n`);
    return true;
  }

  private write(line: string): void {
    const toWorker = this.toWorker!;
    if (this.waitingForDrain !== undefined) {
      this.waitingForDrain.push(line);
      return;
    }
    if (toWorker.write(line)) return;
    // The pipe is full: hold further messages until the worker reads.
    this.waitingForDrain = [];
    toWorker.once('drain', () => {
      const queued = this.waitingForDrain ?? [];
      this.waitingForDrain = undefined;
      for (const next of queued) if (this.writable) this.write(next);
    });
  }

  /**
   * As Taskcluster's reader does: a line that, trimmed, has the form
   * `~{...}` and parses to an object with a string `type` is a message;
   * every other line, however it starts, is the worker's text output.
   */
  private receiveLine(line: string): void {
    const body = this.agreed.has('log') ? logBody(line) : undefined;
    if (body !== undefined) {
      this.log.worker(body, line);
      return;
    }
    const message = this.protocolEnabled ? this.parseMessage(line) : undefined;
    if (message === undefined) this.log.worker({ textPayload: line }, line);
    else this.dispatch(message, line);
  }

  private parseMessage(line: string): (JsonObject & { type: string }) | undefined {
    // the common case, a line as a worker writes it, needs no trimming
    const text =
      line.charCodeAt(0) === 0x7e /* ~ */ && line.charCodeAt(line.length - 1) === 0x7d /* } */ ? line : line.trim();
    if (
      text.charCodeAt(0) !== 0x7e ||
      text.charCodeAt(1) !== 0x7b /* { */ ||
      text.charCodeAt(text.length - 1) !== 0x7d
    ) {
      if (text.charCodeAt(0) === 0x7e)
        this.log.debug('worker wrote a line starting with ~ that is not of the form ~{...}; logged it as text');
      return undefined;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text.slice(1));
    } catch (err) {
      this.log.debug(`worker wrote a ~{...} line that is not valid JSON (${errorMessage(err)}); logged it as text`);
      return undefined;
    }
    if (!isJsonObject(parsed) || typeof parsed['type'] !== 'string') {
      this.log.debug('worker wrote a ~{...} line without a string "type"; logged it as text');
      return undefined;
    }
    return parsed as JsonObject & { type: string };
  }

  /** `line`: the text the message was parsed from, for redaction (see Logger.worker). */
  private dispatch(message: JsonObject & { type: string }, line: string): void {
    const { type } = message;
    // log messages are forwarded as they are: a debug line for each would only repeat them
    if (type !== 'log' && this.log.isEnabled('debug')) this.log.debug(`protocol ← worker: ${describeMessage(message)}`);
    if (type === 'hello') {
      this.receiveHello(message);
      return;
    }
    const capability = MESSAGE_CAPABILITY[type];
    if (capability === undefined || type === 'graceful-termination' || type === 'new-credentials') {
      this.log.warn(`worker sent a message of unknown type "${type}"; ignored it`);
      return;
    }
    if (!this.agreed.has(capability)) {
      this.log.warn(`worker sent a "${type}" message, but capability "${capability}" was not agreed; ignored it`);
      return;
    }
    switch (type) {
      case 'log': {
        const body = message['body'];
        if (isJsonObject(body)) this.log.worker(body, line);
        else this.log.warn('worker sent a log message whose body is not an object; ignored it');
        return;
      }
      case 'error-report': {
        const report = parseErrorReport(message);
        if (typeof report === 'string') this.log.warn(`worker sent an invalid error-report (${report}); dropped it`);
        else this.handlers.errorReport?.(report);
        return;
      }
      case 'shutdown':
        this.handlers.shutdown?.();
        return;
    }
  }

  private receiveHello(message: JsonObject): void {
    const offered = message['capabilities'];
    if (!Array.isArray(offered)) {
      this.log.warn('worker sent hello without a capabilities array; running with no capabilities');
    }
    const theirs = Array.isArray(offered) ? offered : [];
    const unknown = theirs.filter((c) => !isCapability(c));
    if (unknown.length > 0) {
      this.log.warn(`worker offered capabilities start-worker does not support: ${unknown.map(String).join(', ')}`);
    }
    if (this.helloReceived) this.log.warn('worker said hello again; using its latest capabilities');
    this.agreed = new Set(theirs.filter(isCapability));
    this.helloReceived = true;
    this.log.info(`worker capabilities: ${this.capabilities.join(', ') || '(none)'}`);
    this.resolveInitialized();
  }
}

/** How the two kinds of worker write a log message: JavaScript's JSON.stringify (type first) and Go's encoding/json (keys sorted). */
const LOG_HEAD = '~{"type":"log","body":';
const SORTED_LOG_HEAD = '~{"body":';
const SORTED_LOG_TAIL = ',"type":"log"}';

/**
 * The body of a log message written exactly as workers write one, parsing
 * only the body: JSON.parse then builds one object, not two, and skips the
 * envelope, a quarter of the cost of each line. The line is that message
 * exactly when the body parses (a second "type", for one, makes it fail).
 * Anything else, undefined, is parsed in full.
 */
function logBody(line: string): JsonObject | undefined {
  let body: string;
  if (line.startsWith(LOG_HEAD) && line.charCodeAt(line.length - 1) === 0x7d /* } */) {
    body = line.slice(LOG_HEAD.length, -1);
  } else if (line.startsWith(SORTED_LOG_HEAD) && line.endsWith(SORTED_LOG_TAIL)) {
    body = line.slice(SORTED_LOG_HEAD.length, -SORTED_LOG_TAIL.length);
  } else {
    return undefined;
  }
  if (body.charCodeAt(0) !== 0x7b /* { */) return undefined;
  try {
    const value: unknown = JSON.parse(body);
    return isJsonObject(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

/** Fields whose values are credentials: never shown, even at debug level. */
const SECRET_FIELDS = new Set(['access-token', 'certificate']);

/** A message for a debug line: its type and fields, secrets left out, long values cut. */
function describeMessage(message: JsonObject | RunnerMessage): string {
  const fields = Object.entries(message)
    .filter(([key]) => key !== 'type')
    .map(([key, value]) => {
      if (SECRET_FIELDS.has(key)) return `${key}: (secret)`;
      const text = JSON.stringify(value) ?? 'undefined';
      return `${key}: ${text.length > 200 ? `${text.slice(0, 200)}...` : text}`;
    });
  return `${String(message.type)}${fields.length > 0 ? ` {${fields.join(', ')}}` : ''}`;
}
