/**
 * Build step: bundle the CLI (the tsc output) into dist/bundle/ with
 * esbuild, as CommonJS that bin/start-worker runs through its code-cache
 * loader (src/code-cache.cts, built into dist/bundle/code-cache.cjs): one
 * main script holding our code, the built-in plugins and the precompiled
 * validators, and one file per large library only some runs need
 * (taskcluster-client, the AWS SDK, execa, ajv, adm-zip), loaded when first
 * imported. The dependencies are all bundled: the npm package needs nothing
 * installed beside it, and carries their notices
 * (dist/bundle/THIRD-PARTY-NOTICES.txt).
 */
import { readFileSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { build, type BuildOptions, type Plugin } from 'esbuild';
import { LAZY_PACKAGES, hawkWithoutUrlParse, lazyPackageFile, lazyPackages } from './esbuild-plugins.js';
import { writeThirdPartyNotices } from './third-party.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const out = `${root}dist/bundle`;
const { version } = JSON.parse(readFileSync(`${root}package.json`, 'utf8')) as { version: string };

// file names are fixed: start empty, so no file of an earlier layout is left behind (or packed)
rmSync(out, { recursive: true, force: true });

const common: BuildOptions = {
  absWorkingDir: root.replace(/\/$/, ''),
  metafile: true,
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20.19',
  sourcemap: true,
  // Less to parse at every boot; names are kept, so stack traces stay readable.
  minifyWhitespace: true,
  minifySyntax: true,
  logLevel: 'warning',
  define: { START_WORKER_VERSION: JSON.stringify(version), 'import.meta.url': 'undefined' },
  plugins: [hawkWithoutUrlParse],
};

/** The main script reaches the loader that runs it, and imports plugins through it (see src/util/import-module.ts). */
const throughLoader: Plugin = {
  name: 'through-the-loader',
  setup(build) {
    const toLoader = () => ({ path: './code-cache.cjs', external: true });
    build.onResolve({ filter: /[\\/]import-module\.js$/ }, toLoader);
    build.onResolve({ filter: /^\.\/code-cache\.cjs$/ }, toLoader);
  },
};

// The loader keeps its import(): it is how the bundle imports ES module plugins.
const loader = await build({
  ...common,
  entryPoints: [`${root}dist/src/code-cache.cjs`],
  outfile: `${out}/code-cache.cjs`,
});
// Code run by vm.Script has no import() (without an experimental option): the bundles require Node's built-ins instead.
const noImport: BuildOptions = { ...common, supported: { 'dynamic-import': false } };
const main = await build({
  ...noImport,
  entryPoints: [`${root}dist/main.js`],
  outfile: `${out}/start-worker.cjs`,
  plugins: [
    ...common.plugins!,
    throughLoader,
    lazyPackages(
      (file) => `require('./code-cache.cjs').load(require('node:path').join(__dirname, ${JSON.stringify(file)}))`,
    ),
  ],
});
const metafiles = [loader.metafile!, main.metafile!];
for (const pkg of LAZY_PACKAGES) {
  const bundle = await build({
    ...noImport,
    stdin: { contents: `module.exports = require(${JSON.stringify(pkg)});`, resolveDir: root, sourcefile: `${pkg}.js` },
    outfile: `${out}/${lazyPackageFile(pkg)}`,
  });
  metafiles.push(bundle.metafile!);
}
writeThirdPartyNotices(
  metafiles,
  root,
  `${out}/THIRD-PARTY-NOTICES.txt`,
  `start-worker ${version} bundles code from these npm packages, under their licenses.`,
);
