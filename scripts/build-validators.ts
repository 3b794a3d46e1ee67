/**
 * Build step: compile the built-in config schemas into standalone validator
 * code (dist/generated/validators.cjs), so start-worker does not load and run
 * the ajv compiler at every boot. CommonJS because ajv's standalone output
 * requires its small runtime helpers.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { Ajv } from 'ajv';
import standalone from 'ajv/dist/standalone/index.js';
import { coreSchema } from '../src/config/core-schema.js';
import { validatorKey } from '../src/config/validate.js';
import { AJV_OPTIONS, schemaFingerprint } from '../src/config/validators.js';
import { builtinRegistry } from '../builtins.js';
import { sectionSchema } from '../src/registry.js';
import type { JsonSchema } from '../src/schema.js';

const schemas: Record<string, JsonSchema> = { core: coreSchema };
for (const { kind, plugin } of await builtinRegistry().all()) {
  schemas[validatorKey(kind, plugin.name)] = sectionSchema(kind, plugin);
}

const ajv = new Ajv({ ...AJV_OPTIONS, code: { source: true } });
const exportNames: Record<string, string> = {};
const fingerprints: Record<string, string> = {};
Object.entries(schemas).forEach(([key, schema], index) => {
  ajv.addSchema(schema, key);
  exportNames[`v${index}`] = key;
  fingerprints[key] = schemaFingerprint(schema);
});

const code = standalone.default(ajv, exportNames);
const byKey = Object.entries(exportNames)
  .map(([exportName, key]) => `${JSON.stringify(key)}: exports.${exportName}`)
  .join(',\n    ');
const outputDir = new URL('../generated/', import.meta.url);
mkdirSync(outputDir, { recursive: true });
writeFileSync(
  new URL('validators.cjs', outputDir),
  `${code}\nmodule.exports.validators = {\n    ${byKey}\n};\nmodule.exports.fingerprints = ${JSON.stringify(fingerprints)};\n`,
);
