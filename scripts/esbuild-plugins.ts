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
