/**
 * Build step: bundle the CLI (the tsc output) into dist/bundle/ with
 * esbuild. Loading one file instead of a hundred small modules is most of
 * start-worker's startup time on a slow boot disk. The built-in plugins are
 * in the main chunk; the heavy libraries (taskcluster-client, the AWS SDK, adm-zip,
 * execa) stay separate chunks, loaded only when used. The precompiled
 * validators and the version are bundled in. The dependencies are all bundled: the npm package
 * needs nothing installed beside it, and carries their notices
 * (dist/bundle/THIRD-PARTY-NOTICES.txt).
 */
import { readFileSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { hawkWithoutUrlParse } from './esbuild-plugins.js';
import { writeThirdPartyNotices } from './third-party.js';

const root = new URL('../../', import.meta.url);
const { version } = JSON.parse(readFileSync(new URL('package.json', root), 'utf8')) as { version: string };

// chunk names change with their content: start empty, so no stale chunk is left behind (or packed)
rmSync(new URL('dist/bundle/', root), { recursive: true, force: true });

const { metafile } = await build({
  absWorkingDir: fileURLToPath(root),
  metafile: true,
  entryPoints: { 'start-worker': new URL('dist/main.js', root).pathname },
  outdir: new URL('dist/bundle/', root).pathname,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20.19',
  sourcemap: true,
  // Less to parse at every boot; names are kept, so stack traces stay readable.
  minifyWhitespace: true,
  minifySyntax: true,
  logLevel: 'warning',
  define: { START_WORKER_VERSION: JSON.stringify(version) },
  plugins: [hawkWithoutUrlParse],
  // Bundled CommonJS (the validators, some dependencies) calls require().
  banner: {
    js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);",
  },
});
writeThirdPartyNotices(
  [metafile],
  fileURLToPath(root),
  new URL('dist/bundle/THIRD-PARTY-NOTICES.txt', root).pathname,
  `start-worker ${version} bundles code from these npm packages, under their licenses.`,
);
