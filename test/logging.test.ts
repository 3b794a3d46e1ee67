import { Writable } from 'node:stream';
import t from 'tap';
import { toUnstructured } from '../src/logging/format.js';
import { Logger } from '../src/logging/logger.js';
import { Redactor } from '../src/logging/redact.js';
import { StderrWriter } from '../src/logging/stderr.js';
import { StdioDestination } from '../src/logging/stdio.js';

function capture(): { stream: Writable; text: () => string } {
  let text = '';
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      text += chunk.toString();
      callback();
    },
  });
  return { stream, text: () => text };
}

t.test('toUnstructured renders as Taskcluster does', async (t) => {
  t.equal(toUnstructured({ textPayload: 'hello' }), 'hello');
  t.equal(toUnstructured({ textPayload: 'hello', level: 'info' }), 'hello; level: info', 'one key besides');
  t.equal(toUnstructured({ level: 'info' }), 'level: info');
  t.equal(toUnstructured({ textPayload: 'hello', b: 'two', a: 1 }), 'hello; a: 1; b: two');
  t.equal(toUnstructured({ z: { n: [1, 2] }, a: true }), 'a: true; z: {"n":[1,2]}');
  t.equal(toUnstructured({}), '{}');
  t.equal(toUnstructured({ textPayload: '' }), '{}', 'an empty textPayload alone is still never an empty line');
  t.equal(toUnstructured({ textPayload: 5 }), 'textPayload: 5', 'a non-string textPayload is an ordinary key');
});

t.test('stdio lines carry an ISO-8601 UTC timestamp; warnings and errors say so', async (t) => {
  const out = capture();
  const log = new Logger(new StdioDestination(new StderrWriter(out.stream)), { level: 'debug' });
  log.info('plain');
  log.warn('careful');
  log.error('broken');
  log.debug('detail');
  log.worker({ textPayload: 'from worker', code: 7 });
  log.workerStderr('raw stderr line');
  log.flush();
  const lines = out.text().trimEnd().split('\n');
  t.equal(lines.length, 6);
  const stamp = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z /;
  t.match(lines[0], stamp);
  t.match(lines[0], / plain$/);
  t.match(lines[1], / warning: careful$/);
  t.match(lines[2], / error: broken$/);
  t.match(lines[3], / debug: detail$/);
  t.match(lines[4], / from worker; code: 7$/);
  t.equal(lines[5], 'raw stderr line', 'worker stderr passes through unchanged');
});

t.test('levels filter the runner, not the worker', async (t) => {
  const out = capture();
  const log = new Logger(new StdioDestination(new StderrWriter(out.stream)), { level: 'error' });
  log.info('hidden');
  log.warn('hidden too');
  log.error('shown');
  log.worker({ textPayload: 'worker shown' });
  log.flush();
  t.notMatch(out.text(), 'hidden');
  t.match(out.text(), 'shown');
  t.match(out.text(), 'worker shown');
});

t.test('secrets are redacted from every kind of line', async (t) => {
  const out = capture();
  const redactor = new Redactor();
  const log = new Logger(new StdioDestination(new StderrWriter(out.stream)), { redactor });
  redactor.add('s3cr3t-token');
  redactor.add('{"version":1,"sig":"x"}');
  log.info('token is s3cr3t-token');
  log.worker({ textPayload: 'cert {"version":1,"sig":"x"}', nested: { list: ['s3cr3t-token'] }, 's3cr3t-token': 1 });
  log.workerStderr('stderr s3cr3t-token');
  log.flush();
  t.notMatch(out.text(), 's3cr3t-token');
  t.notMatch(out.text(), '"sig":"x"');
  t.equal(out.text().split('<redacted>').length - 1, 5);
});

t.test('Redactor ignores too-short strings and prefers the longest match', async (t) => {
  const redactor = new Redactor();
  redactor.add('abc');
  redactor.add(undefined);
  redactor.add('');
  t.equal(redactor.redact('abc'), 'abc');
  redactor.add('secret');
  redactor.add('secret-longer');
  t.equal(redactor.redact('x secret-longer y secret z'), 'x <redacted> y <redacted> z');
  redactor.add('a.b*c(d)');
  t.equal(redactor.redact('a.b*c(d) axb'), '<redacted> axb', 'regex characters are literal');
});

t.test(
  'a log whose reader is slow says so until it has caught up, with one listener however often it is asked',
  async (t) => {
    const written: (() => void)[] = [];
    // a reader that takes each write only when told: the stream fills up
    const slow = new Writable({
      highWaterMark: 64,
      write(_chunk, _encoding, callback) {
        written.push(callback);
      },
    });
    const log = new Logger(new StdioDestination(new StderrWriter(slow)));
    t.equal(log.behind(), undefined, 'an empty stream is not behind');
    log.info('x'.repeat(200));
    const caughtUp = log.behind();
    t.ok(caughtUp, 'behind once more than its buffer is queued');
    t.ok(
      Array.from({ length: 1000 }, () => log.behind()).every((p) => p === caughtUp),
      'the same promise however often it is asked',
    );
    t.equal(slow.listenerCount('drain'), 1, 'one drain listener');
    let resolved = false;
    void caughtUp!.then(() => (resolved = true));
    await new Promise((resolve) => setImmediate(resolve));
    t.notOk(resolved, 'not caught up while the write is pending');
    written.shift()!();
    await caughtUp;
    t.ok(resolved, 'caught up on drain');
    t.equal(log.behind(), undefined, 'and no longer behind');
    t.equal(slow.listenerCount('drain'), 0, 'its listener removed');

    log.info('y'.repeat(200));
    const again = log.behind();
    t.ok(again, 'behind again');
    slow.destroy();
    await again;
    t.pass('a stream that closes (its reader gone) releases whoever waits');
  },
);
