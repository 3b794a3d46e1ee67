import type { JsonObject } from '../json.js';
import type { FileLimits } from '../files.js';
import type { HooksConfig } from '../hooks.js';
import type { SecretSourceConfig } from '../secret-sources/schema.js';

export interface ProviderSection extends JsonObject {
  providerType: string;
}

export interface WorkerSection extends JsonObject {
  implementation: string;
}

export interface LoggingSection extends JsonObject {
  implementation: string;
}

/** The runner configuration after validation, with defaults filled in. */
export interface RunnerConfig {
  provider: ProviderSection;
  worker: WorkerSection;
  /** Worker configuration with the lowest precedence (worker-manager and secrets override it). */
  workerConfig: JsonObject;
  logging: LoggingSection;
  getSecrets: boolean;
  /** Seconds startup calls retry transient failures. */
  startupRetryWindow: number;
  /** Seconds one request may take. */
  requestTimeout: number;
  shutdownCommand: string[];
  shutdownOnStartupFailure?: boolean;
  /** More secret sources, read after the Taskcluster secrets. */
  secrets: SecretSourceConfig[];
  fileLimits: FileLimits;
  hooks?: HooksConfig;
  plugins?: string[];
  /** Path of the file the run state is cached in over restarts. */
  cacheOverRestarts?: string;
}
