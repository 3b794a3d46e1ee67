/**
 * Import a CommonJS package on demand. Under Node, `module.exports` is the
 * namespace's `default` (named exports are only detected on a best-effort
 * basis); in the esbuild bundle it is the only export. Reading `default`
 * works in both.
 */
export async function importCommonJs<T extends object>(load: () => Promise<T>): Promise<T> {
  const namespace = (await load()) as T & { default?: T };
  return namespace.default ?? namespace;
}
