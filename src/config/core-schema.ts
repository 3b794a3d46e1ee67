import type { JsonSchema } from '../schema.js';
import { hooksSchema } from '../hooks.js';
import { secretSourcesSchema } from '../secret-sources/schema.js';

/**
 * The top level of the runner configuration. The provider, worker and
 * logging sections are completed by the schema of the plugin their
 * `providerType` / `implementation` selects.
 */
export const coreSchema: JsonSchema = {
  type: 'object',
  required: ['provider', 'worker'],
  properties: {
    provider: {
      type: 'object',
      description:
        'How this worker learns who it is. `providerType` selects a provider; its other keys are described under Providers.',
      required: ['providerType'],
      properties: { providerType: { type: 'string', description: 'The provider to use.' } },
      additionalProperties: true,
    },
    worker: {
      type: 'object',
      description:
        'The worker to run. `implementation` selects a worker implementation; its other keys are described under Worker implementations.',
      required: ['implementation'],
      properties: { implementation: { type: 'string', description: 'The worker implementation to use.' } },
      additionalProperties: true,
    },
    workerConfig: {
      type: 'object',
      description:
        'Worker configuration with the lowest precedence: configuration from worker-manager, then secrets, are merged over it (objects merge, arrays concatenate, other values are replaced).',
      default: {},
      additionalProperties: true,
    },
    logging: {
      type: 'object',
      description: 'Where start-worker and the worker log. `implementation` selects a log destination.',
      default: { implementation: 'stdio' },
      required: ['implementation'],
      properties: { implementation: { type: 'string', description: 'The log destination to use.', default: 'stdio' } },
      additionalProperties: true,
    },
    getSecrets: {
      type: 'boolean',
      description: 'Read worker configuration and files from the Taskcluster secrets service.',
      default: true,
    },
    startupRetryWindow: {
      type: 'number',
      minimum: 0,
      default: 300,
      description:
        'Seconds during which each startup call (cloud metadata, registerWorker, secrets) retries transient failures (5xx, 429, timeouts, connection errors) with jittered backoff, honouring Retry-After. A 4xx other than 429 is never retried.',
    },
    requestTimeout: {
      type: 'number',
      exclusiveMinimum: 0,
      default: 30,
      description: 'Seconds one request to Taskcluster or a secret store may take.',
    },
    shutdownCommand: {
      type: 'array',
      minItems: 1,
      items: { type: 'string', minLength: 1 },
      default: ['shutdown', '-h', 'now'],
      description:
        'The command (argv) that powers the machine off when a dynamically provisioned worker cannot be removed from worker-manager.',
    },
    shutdownOnStartupFailure: {
      type: 'boolean',
      description:
        'When startup fails after the provider step, report the error, then remove the worker or power off, so a broken image does not leave machines idling. Default: true for dynamically provisioned providers (aws, azure, google); set false to debug an image.',
    },
    secrets: secretSourcesSchema,
    fileLimits: {
      type: 'object',
      description: 'Limits on zip archives among the files from worker-manager and secrets.',
      default: {},
      properties: {
        maxZipEntries: {
          type: 'integer',
          minimum: 1,
          default: 100000,
          description: 'The most entries an archive may have.',
        },
        maxZipBytes: {
          type: 'integer',
          minimum: 1,
          default: 1073741824,
          description: 'The most bytes an archive may expand to.',
        },
      },
    },
    hooks: hooksSchema,
    plugins: {
      type: 'array',
      items: { type: 'string', minLength: 1 },
      description:
        'Modules adding providers, worker implementations or log destinations: package names, or paths relative to this file. See "Writing a plugin".',
    },
    cacheOverRestarts: {
      type: 'string',
      minLength: 1,
      description:
        'A file in which to cache the run state (including credentials), so that a worker that restarts (for example after a reboot) continues the same run instead of registering again.',
    },
  },
};
