/**
 * import() of a runner config plugin. The npm bundle runs under vm.Script,
 * whose own import() needs an experimental option, so scripts/bundle.ts puts
 * the code-cache loader's importModule in this module's place.
 */
export function importModule(specifier: string): Promise<unknown> {
  return import(specifier);
}
