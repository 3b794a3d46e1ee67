/** Schema pieces shared by the providers whose identity is written in the config (static, standalone). */
import type { JsonSchema } from '../src/schema.js';

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
