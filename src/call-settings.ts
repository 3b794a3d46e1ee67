import type { AgentOptions } from 'node:https';

/** The settings of every call to Taskcluster and the secret stores. */
export interface CallSettings {
  /** Timeout of one request (ms). */
  requestTimeoutMs: number;
  /** How long (ms) startup calls retry transient failures (startupRetryWindow). */
  startupRetryWindowMs: number;
  /** TLS settings for the Taskcluster and secret-store endpoints. */
  tls?: AgentOptions;
}
