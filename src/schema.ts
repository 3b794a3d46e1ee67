import type { JsonValue } from './json.js';

/** The subset of JSON Schema (draft-07) that start-worker's config schemas use. */
export interface JsonSchema {
  type?: 'object' | 'array' | 'string' | 'number' | 'integer' | 'boolean' | 'null';
  description?: string;
  default?: JsonValue;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  /** `true` or a schema: keys outside `properties` are expected, and never warned about. */
  additionalProperties?: boolean | JsonSchema;
  items?: JsonSchema;
  minItems?: number;
  enum?: JsonValue[];
  const?: JsonValue;
  pattern?: string;
  minLength?: number;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  oneOf?: JsonSchema[];
  anyOf?: JsonSchema[];
}
