import { isJsonObject, type JsonObject } from '../json.js';

/** Every capability start-worker supports, sorted (the order of the welcome message). */
export const RUNNER_CAPABILITIES = [
  'error-report',
  'graceful-termination',
  'log',
  'new-credentials',
  'shutdown',
] as const;

export type Capability = (typeof RUNNER_CAPABILITIES)[number];

export function isCapability(value: unknown): value is Capability {
  return (RUNNER_CAPABILITIES as readonly unknown[]).includes(value);
}

/** Why the runner asks the worker to stop (our addition to graceful-termination). */
export type TerminationReason =
  'spot-interruption' | 'preemption' | 'maintenance' | 'credentials-expiring' | 'signal' | 'drain' | 'rebalance';

export interface TerminationRequest {
  /** True: finish running tasks first. False: stop now. */
  finishTasks: boolean;
  reason: TerminationReason;
  /** When the machine is expected to go away, if the cloud said. */
  deadline?: Date;
}

export interface ErrorReport {
  kind: string;
  title: string;
  description: string;
  extra: JsonObject;
}

/** Messages the runner sends, as they appear on the wire. */
export type RunnerMessage =
  | { type: 'welcome'; capabilities: string[] }
  | { type: 'graceful-termination'; 'finish-tasks': boolean; reason?: TerminationReason; deadline?: string }
  | { type: 'new-credentials'; 'client-id': string; 'access-token': string; certificate?: string };

/** The capability a message type belongs to; welcome and hello belong to none. */
export const MESSAGE_CAPABILITY: Record<string, Capability | undefined> = {
  log: 'log',
  'error-report': 'error-report',
  shutdown: 'shutdown',
  'graceful-termination': 'graceful-termination',
  'new-credentials': 'new-credentials',
};

/**
 * Check a message the runner is about to send. generic-worker type-asserts
 * these fields and crashes on a missing or mistyped one, so a malformed
 * message must never leave the runner.
 */
export function checkRunnerMessage(message: RunnerMessage): string | undefined {
  switch (message.type) {
    case 'welcome':
      return Array.isArray(message.capabilities) && message.capabilities.every((c) => typeof c === 'string')
        ? undefined
        : 'welcome.capabilities must be an array of strings';
    case 'graceful-termination':
      if (typeof message['finish-tasks'] !== 'boolean') return 'graceful-termination.finish-tasks must be a boolean';
      if (message.deadline !== undefined && Number.isNaN(Date.parse(message.deadline))) {
        return 'graceful-termination.deadline must be an ISO-8601 time';
      }
      return undefined;
    case 'new-credentials':
      if (typeof message['client-id'] !== 'string' || message['client-id'] === '') {
        return 'new-credentials.client-id must be a non-empty string';
      }
      if (typeof message['access-token'] !== 'string' || message['access-token'] === '') {
        return 'new-credentials.access-token must be a non-empty string';
      }
      if ('certificate' in message && typeof message.certificate !== 'string') {
        return 'new-credentials.certificate must be a string when present';
      }
      return undefined;
    default:
      return `unknown message type ${(message as { type: unknown }).type as string}`;
  }
}

/** Parse an error-report message from the worker, or say what is wrong with it. */
export function parseErrorReport(message: JsonObject): ErrorReport | string {
  const { kind, title, description, extra } = message;
  if (typeof kind !== 'string') return 'kind must be a string';
  if (typeof title !== 'string') return 'title must be a string';
  if (typeof description !== 'string') return 'description must be a string';
  if (extra !== undefined && !isJsonObject(extra)) return 'extra must be an object';
  return { kind, title, description, extra: extra ?? {} };
}
