/** Schema pieces and checks shared by the providers whose identity is written in the config (static, standalone). */
import type { JsonSchema } from '../src/schema.js';
import { identifierProblem, workerPoolIdProblem } from '../src/taskcluster/identifiers.js';

export const requiredString = (description: string): JsonSchema => ({ type: 'string', minLength: 1, description });

export const providerMetadataSchema: JsonSchema = {
  type: 'object',
  description: 'Extra provider metadata passed to the worker.',
  additionalProperties: true,
};

export const workerLocationSchema: JsonSchema = {
  type: 'object',
  description: 'Extra worker location entries (string values), added to `cloud`.',
  additionalProperties: { type: 'string' },
};

/** What worker-manager would refuse in a configured identity, before a boot finds out. */
export function identityProblems(config: { workerPoolID: string; workerGroup: string; workerID: string }): string[] {
  return [
    workerPoolIdProblem(config.workerPoolID, 'provider.workerPoolID'),
    identifierProblem(config.workerGroup, 'provider.workerGroup'),
    identifierProblem(config.workerID, 'provider.workerID'),
  ].filter((problem): problem is string => problem !== undefined);
}
