import { coreSchema } from './config/core-schema.js';
import { COMMON_WORKER_PROPERTIES, PLUGIN_SECTIONS, type PluginKind, type PluginRegistry } from './registry.js';
import type { JsonSchema } from './schema.js';

const KIND_TITLES: Record<PluginKind, string> = {
  provider: 'Providers',
  worker: 'Worker implementations',
  logging: 'Logging',
};

function typeOf(schema: JsonSchema): string {
  if (schema.const !== undefined) return `\`${JSON.stringify(schema.const)}\``;
  if (schema.enum !== undefined) return schema.enum.map((v) => `\`${JSON.stringify(v)}\``).join(' \\| ');
  if (schema.oneOf ?? schema.anyOf) return (schema.oneOf ?? schema.anyOf)!.map(typeOf).join(' or ');
  if (schema.type === 'array' && schema.items) return `array of ${typeOf(schema.items)}`;
  if (schema.type === 'object' && typeof schema.additionalProperties === 'object') {
    return `map of ${typeOf(schema.additionalProperties)}`;
  }
  return schema.type ?? 'any';
}

function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n+/g, ' ');
}

/** Every key of a schema, nested ones too (`fileLimits.maxZipEntries`, `secrets[].secretId`), in order. */
export function schemaKeys(
  schema: JsonSchema,
  prefix: string,
): { path: string; property: JsonSchema; required: boolean }[] {
  const keys: { path: string; property: JsonSchema; required: boolean }[] = [];
  for (const [key, property] of Object.entries(schema.properties ?? {})) {
    const path = `${prefix}${key}`;
    keys.push({ path, property, required: schema.required?.includes(key) ?? false });
    if (property.properties) keys.push(...schemaKeys(property, `${path}.`));
    if (property.items?.properties) keys.push(...schemaKeys(property.items, `${path}[].`));
  }
  return keys;
}

/** A table of a schema's keys: name, type, whether required, default, description. */
function keyTable(schema: JsonSchema, prefix: string): string {
  const rows = schemaKeys(schema, prefix).map(({ path, property, required }) => {
    const defaultValue = property.default === undefined ? '' : `\`${JSON.stringify(property.default)}\``;
    return `| \`${path}\` | ${cell(typeOf(property))} | ${required ? 'yes' : ''} | ${defaultValue} | ${cell(property.description ?? '')} |`;
  });
  if (rows.length === 0) return '_No other keys._\n';
  return ['| Key | Type | Required | Default | Description |', '| --- | --- | --- | --- | --- |', ...rows, ''].join(
    '\n',
  );
}

/**
 * The runner configuration reference, generated from the schemas and usage
 * texts of the core and of every plugin the registry knows, so the docs
 * cannot drift from the code.
 */
export async function renderReference(registry: PluginRegistry): Promise<string> {
  const parts = ['### Top level', '', keyTable(coreSchema, '')];
  for (const kind of ['provider', 'worker', 'logging'] as PluginKind[]) {
    const { section, selector } = PLUGIN_SECTIONS[kind];
    parts.push(`### ${KIND_TITLES[kind]}`, '');
    if (kind === 'worker') {
      parts.push(
        'Every worker implementation also accepts:',
        '',
        keyTable({ properties: COMMON_WORKER_PROPERTIES }, 'worker.'),
      );
    }
    for (const name of registry.names(kind)) {
      const plugin = await registry.get(kind, name);
      parts.push(
        `#### \`${section}.${selector}: ${name}\``,
        '',
        plugin.usage.trim(),
        '',
        keyTable(plugin.schema, `${section}.`),
      );
    }
  }
  return parts.join('\n');
}
