import type { JsonSchema } from '../schema.js';

export interface SecretSourceConfig {
  source: 'aws-secrets-manager';
  secretId: string;
  region?: string;
  endpoint?: string;
  optional: boolean;
}

export const secretSourcesSchema: JsonSchema = {
  type: 'array',
  default: [],
  description:
    'More secret sources, merged after the Taskcluster secrets in order (a later one wins). Each holds `{config, files}` or flat worker configuration, as JSON or YAML.',
  items: {
    type: 'object',
    required: ['source', 'secretId'],
    properties: {
      source: { enum: ['aws-secrets-manager'], description: 'Where the secret is: `aws-secrets-manager`.' },
      secretId: { type: 'string', minLength: 1, description: 'The secret name or ARN.' },
      region: {
        type: 'string',
        minLength: 1,
        description: "The AWS region; default: the aws provider's region, else the SDK's own resolution (AWS_REGION).",
      },
      endpoint: {
        type: 'string',
        minLength: 1,
        description: "The service endpoint; default: the SDK's (which honours AWS_ENDPOINT_URL_SECRETS_MANAGER).",
      },
      optional: { type: 'boolean', default: false, description: 'A missing secret is a warning instead of an error.' },
    },
  },
};
