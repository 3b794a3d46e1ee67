import type { ErrorObject } from 'ajv';
import { StartWorkerError, errorMessage } from '../errors.js';
import type { JsonSchema } from '../schema.js';
import { importCommonJs } from '../util/import-cjs.js';

export type Validator = ((data: unknown) => boolean) & { errors?: ErrorObject[] | null };

interface PrecompiledModule {
  validators: Record<string, Validator>;
  fingerprints: Record<string, string>;
}

/** Identifies a schema's exact content, so a stale precompiled validator is never used. */
export function schemaFingerprint(schema: JsonSchema): string {
  return JSON.stringify(schema);
}

export const AJV_OPTIONS = { allErrors: true, useDefaults: true, strict: true } as const;

let precompiled: Promise<PrecompiledModule | undefined> | undefined;

/**
 * The validator for a schema. The build compiles the built-in schemas ahead
 * of time (compiling with ajv at startup costs more than the rest of a run);
 * other schemas, such as those of external plugins, are compiled here.
 */
export async function validatorFor(key: string, schema: JsonSchema): Promise<Validator> {
  precompiled ??= import('../../generated/validators.cjs' as string).then(
    (module: { default: PrecompiledModule }) => module.default,
    () => undefined,
  );
  const built = await precompiled;
  const candidate = built?.validators[key];
  if (candidate !== undefined && built?.fingerprints[key] === schemaFingerprint(schema)) return candidate;
  const { Ajv } = await importCommonJs(() => import('ajv'));
  try {
    return new Ajv(AJV_OPTIONS).compile(schema);
  } catch (err) {
    throw new StartWorkerError(`the config schema '${key}' is not a valid JSON schema: ${errorMessage(err)}`);
  }
}
