import { fileURLToPath } from 'node:url';
import type { Plugin } from 'esbuild';

const hawkUrlShim = fileURLToPath(new URL('./shims/hawk-url.js', import.meta.url));

/** hawk gets our WHATWG-based `url` module (see scripts/shims/hawk-url.ts). */
export const hawkWithoutUrlParse: Plugin = {
  name: 'hawk-without-url-parse',
  setup(build) {
    build.onResolve({ filter: /^(node:)?url$/ }, (args) =>
      /[\\/]node_modules[\\/]hawk[\\/]/.test(args.importer) ? { path: hawkUrlShim } : undefined,
    );
  },
};

/** The large dependencies only some runs need: each is bundled on its own and compiled when first imported. */
export const LAZY_PACKAGES = ['taskcluster-client', '@aws-sdk/client-secrets-manager', 'execa', 'ajv', 'adm-zip'];

/** The file (or single-executable asset) a lazy package is bundled into. */
export const lazyPackageFile = (pkg: string): string => `${pkg.replace(/[@/]/g, '_')}.cjs`;

/**
 * In the main script, a lazy package is a stub whose exports are those of
 * `loadExpression(file)`, an expression that loads the package's own bundle.
 */
export function lazyPackages(loadExpression: (file: string) => string): Plugin {
  return {
    name: 'lazy-packages',
    setup(build) {
      const names = new RegExp(`^(${LAZY_PACKAGES.map((pkg) => pkg.replace(/[/]/g, '\\/')).join('|')})$`);
      build.onResolve({ filter: names }, (args) => ({ path: args.path, namespace: 'lazy-package' }));
      // An ES module's namespace comes out of its bundle as CommonJS exports. Our code imports such
      // packages in Node's way (a default export is `.default`; an import of CommonJS gets
      // module.exports as `.default`), so a package with a default export is re-exported as it.
      build.onLoad({ filter: /.*/, namespace: 'lazy-package' }, (args) => ({
        contents: `const namespace = ${loadExpression(lazyPackageFile(args.path))};\nmodule.exports = namespace.__esModule && namespace.default !== undefined ? namespace.default : namespace;`,
        loader: 'js',
      }));
    },
  };
}
