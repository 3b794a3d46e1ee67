import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { leakedSecrets, runCli, standaloneProvider, tempDir, writeConfig } from './helpers.js';

const SECRET = 'SECRET-access-token-0123456789';

/** A worker plugin whose start makes Node warn: a listener leak, a dependency deprecation, and a warning that quotes a secret. */
function warningPlugin(dir: string): string {
  const path = join(dir, 'warns.mjs');
  writeFileSync(
    path,
    `import { EventEmitter } from 'node:events';
    export default { workers: [{
      name: 'warns', schema: { type: 'object', properties: {} }, usage: 'Makes Node warn.',
      create: () => ({
        async configureRun() {}, async useCachedRun() {},
        async startWorker(state, spawn) {
          const emitter = new EventEmitter();
          for (let i = 0; i < 11; i++) emitter.on('poll', () => undefined);
          process.emitWarning('url.parse() is deprecated', { type: 'DeprecationWarning', code: 'DEP0169' });
          process.emitWarning('token ' + ${JSON.stringify(SECRET)} + ' seen');
          return spawn({ file: process.execPath, args: ['-e', 'setTimeout(() => {}, 100)'], protocol: false });
        },
      }),
    }] };\n`,
  );
  return path;
}

t.test(
  "Node's warnings go through the logger: json lines all parse, secrets redacted, known deprecations at debug",
  async (t) => {
    const dir = tempDir(t);
    const config = writeConfig(dir, {
      plugins: [warningPlugin(dir)],
      provider: standaloneProvider({ accessToken: SECRET }),
      worker: { implementation: 'warns' },
      getSecrets: false,
    });
    const result = await runCli(['--log-format', 'json', config]);
    t.equal(result.code, 0, result.stderr);
    const lines = result.stderr.trimEnd().split('\n');
    const parsed = lines.map((line) => {
      try {
        return JSON.parse(line) as { level: string; textPayload: string };
      } catch {
        t.fail(`not JSON: ${line}`);
        return { level: '', textPayload: '' };
      }
    });
    const warnings = parsed.filter((line) => line.textPayload.startsWith('Node.js '));
    t.match(warnings, [
      {
        level: 'warn',
        textPayload: /^Node\.js MaxListenersExceededWarning: Possible EventEmitter memory leak detected/,
      },
      { level: 'warn', textPayload: 'Node.js Warning: token <redacted> seen' },
    ]);
    t.equal(warnings.length, 2, 'the known deprecation is not shown at info level');
    t.same(leakedSecrets(result.stderr, [SECRET]), []);

    const verbose = await runCli(['--log-format', 'json', '-v', config]);
    t.match(
      verbose.stderr,
      /"level":"debug","source":"runner","textPayload":"Node\.js DeprecationWarning \[DEP0169\]: url\.parse\(\) is deprecated \(from a dependency; harmless\)"/,
    );
    t.same(leakedSecrets(verbose.stderr, [SECRET]), [], 'nor in the stack traces of -v');
  },
);
