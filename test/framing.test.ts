import { PassThrough } from 'node:stream';
import t from 'tap';
import type { JsonObject } from '../src/json.js';
import { LineSplitter } from '../src/protocol/framing.js';
import { WorkerProtocol } from '../src/protocol/protocol.js';
import { captureLogger } from './log-capture.js';

function split(chunks: Buffer[], maxLineBytes = 1_048_576): { lines: string[]; overlong: number[] } {
  const lines: string[] = [];
  const overlong: number[] = [];
  const splitter = new LineSplitter(
    maxLineBytes,
    (line) => lines.push(line),
    (bytes) => overlong.push(bytes),
  );
  for (const chunk of chunks) splitter.push(chunk);
  splitter.end();
  return { lines, overlong };
}

t.test('a message split at every byte boundary arrives whole', async (t) => {
  const wire = Buffer.from('~{"type":"log","body":{"textPayload":"héllo ✓"}}\nplain\n');
  for (let cut = 0; cut <= wire.length; cut++) {
    const { lines } = split([wire.subarray(0, cut), wire.subarray(cut)]);
    t.same(lines, ['~{"type":"log","body":{"textPayload":"héllo ✓"}}', 'plain'], `cut at ${cut}`);
  }
  const { lines } = split([...wire].map((byte) => Buffer.from([byte])));
  t.same(lines.length, 2, 'one byte at a time');
});

t.test('CRLF, empty lines and a final line without a newline', async (t) => {
  t.same(split([Buffer.from('a\r\nb\n\nc')]).lines, ['a', 'b', '', 'c']);
  t.same(split([Buffer.from('')]).lines, []);
});

t.test('an over-long line is dropped and reading resumes at the next newline', async (t) => {
  const big = Buffer.alloc(5 * 1024 * 1024, 0x61);
  const chunks = [
    Buffer.from('~{"type":"first"}\n'),
    big.subarray(0, 100),
    big.subarray(100),
    Buffer.from('\n~{"type":"second"}\n'),
  ];
  const { lines, overlong } = split(chunks);
  t.same(lines, ['~{"type":"first"}', '~{"type":"second"}']);
  t.same(overlong, [5 * 1024 * 1024]);
  t.same(split([Buffer.from('12345\n1234\n')], 4), { lines: ['1234'], overlong: [5] }, 'the limit is exact');
  t.same(split([Buffer.from('123456')], 4), { lines: [], overlong: [6] }, 'an over-long final line');
  t.same(
    split([Buffer.from('éé\né\n')], 3),
    { lines: ['é'], overlong: [4] },
    'the limit counts UTF-8 bytes, not characters',
  );
  t.same(split([Buffer.from('é'), Buffer.from('é\n')], 3), { lines: [], overlong: [4] }, 'also across chunks');
});

function protocolWith(capabilities: string[] | undefined) {
  const { log, records } = captureLogger();
  const toWorker = new PassThrough();
  const sent: JsonObject[] = [];
  toWorker.on('data', (chunk: Buffer) => {
    for (const line of chunk.toString().split('\n').filter(Boolean)) sent.push(JSON.parse(line.slice(1)) as JsonObject);
  });
  const protocol = new WorkerProtocol({ log, toWorker });
  const reports: unknown[] = [];
  let shutdowns = 0;
  protocol.setHandlers({ errorReport: (r) => reports.push(r), shutdown: () => shutdowns++ });
  protocol.start();
  if (capabilities) protocol.receive(Buffer.from(`~${JSON.stringify({ type: 'hello', capabilities })}\n`));
  return { protocol, records, sent, reports, shutdowns: () => shutdowns };
}

t.test('random bytes around valid messages: the valid messages all arrive, nothing throws', async (t) => {
  let seed = 42;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (let round = 0; round < 50; round++) {
    const { protocol, records } = protocolWith(['log']);
    const parts: Buffer[] = [];
    for (let i = 0; i < 20; i++) {
      const garbage = Buffer.from(Array.from({ length: Math.floor(random() * 200) }, () => Math.floor(random() * 256)));
      parts.push(
        Buffer.from('\n'),
        garbage,
        Buffer.from('\n'),
        Buffer.from(`~{"type":"log","body":{"marker":"m${round}-${i}"}}\n`),
      );
    }
    const wire = Buffer.concat(parts);
    let offset = 0;
    while (offset < wire.length) {
      const size = 1 + Math.floor(random() * 300);
      protocol.receive(wire.subarray(offset, offset + size));
      offset += size;
    }
    protocol.end();
    const markers = records
      .filter((r) => r.source === 'worker' && typeof r.message === 'object')
      .map((r) => (r.message as JsonObject)['marker']);
    for (let i = 0; i < 20; i++) t.ok(markers.includes(`m${round}-${i}`), `round ${round} message ${i}`);
  }
});

t.test('negotiation: welcome lists every capability, sorted; the intersection governs', async (t) => {
  const { protocol, sent } = protocolWith(['log', 'shutdown', 'teleport']);
  t.same(sent[0], {
    type: 'welcome',
    capabilities: ['error-report', 'graceful-termination', 'log', 'new-credentials', 'shutdown'],
  });
  t.same(protocol.capabilities, ['log', 'shutdown']);
  t.equal(protocol.send({ type: 'graceful-termination', 'finish-tasks': true }), false, 'not agreed: not sent');
  t.equal(sent.length, 1);
});

t.test('malformed messages are logged, never thrown', async (t) => {
  const { protocol, records, reports } = protocolWith(['log', 'error-report']);
  const lines = [
    '~{"type":"log","body":"not an object"}',
    '~{"type":"error-report","kind":"k","title":5,"description":"d","extra":{}}',
    '~{"type":"teleport"}',
    '~{"type":"hello","capabilities":"log"}',
  ];
  t.doesNotThrow(() => protocol.receive(Buffer.from(lines.join('\n') + '\n')));
  const warnings = records.filter((r) => r.level === 'warn').map((r) => r.message as string);
  t.match(warnings.join('\n'), /body is not an object/);
  t.match(warnings.join('\n'), /invalid error-report \(title must be a string\)/);
  t.match(warnings.join('\n'), /unknown type "teleport"/);
  t.match(warnings.join('\n'), /hello without a capabilities array/);
  t.same(reports, []);
  t.same(protocol.capabilities, [], 'a hello without an array means no capabilities');
});

t.test("lines that only look like messages are the worker's text, as Taskcluster reads them", async (t) => {
  const { protocol, records } = protocolWith(['log']);
  const text = [
    '~/src/project: build ok',
    '~~ banner ~~',
    '~{"type": "not valid JSON}',
    '~[1,2]',
    '~{"value":"sure"}',
    '~{"type": 5}',
    '~',
    '~{',
  ];
  protocol.receive(
    Buffer.from(
      `${text.join('\n')}\n  ~{"type":"log","body":{"textPayload":"padded"}}  \r\n\t~{"type":"log","body":{"textPayload":"tabbed"}}\n`,
    ),
  );
  const worker = records.filter((r) => r.source === 'worker').map((r) => r.message);
  t.same(
    worker,
    [...text.map((line) => ({ textPayload: line })), { textPayload: 'padded' }, { textPayload: 'tabbed' }],
    'every line logged, in order; surrounding whitespace trimmed off messages',
  );
  t.same(
    records.filter((r) => r.level === 'warn'),
    [],
    'no warnings: this is output, not a protocol error',
  );
  t.ok(
    records.some((r) => r.level === 'debug' && /not valid JSON/.test(r.message as string)),
    'a debug line says why one was not a message',
  );
});

t.test('messages of capabilities not agreed are ignored with a warning', async (t) => {
  const { protocol, records, shutdowns } = protocolWith(['log']);
  protocol.receive(
    Buffer.from('~{"type":"shutdown"}\n~{"type":"error-report","kind":"k","title":"t","description":"d","extra":{}}\n'),
  );
  t.equal(shutdowns(), 0);
  t.match(
    records
      .filter((r) => r.level === 'warn')
      .map((r) => r.message)
      .join('\n'),
    /"shutdown" message, but capability "shutdown" was not agreed/,
  );
});

t.test('valid messages reach their handlers; plain lines are logged', async (t) => {
  const { protocol, records, reports, shutdowns } = protocolWith(['error-report', 'log', 'shutdown']);
  protocol.receive(
    Buffer.from(
      'just text\n~{"type":"log","body":{"textPayload":"hi","x":1}}\n~{"type":"error-report","kind":"k","title":"t","description":"d","extra":{"a":1}}\n~{"type":"shutdown"}\n',
    ),
  );
  t.same(reports, [{ kind: 'k', title: 't', description: 'd', extra: { a: 1 } }]);
  t.equal(shutdowns(), 1);
  const workerMessages = records.filter((r) => r.source === 'worker').map((r) => r.message);
  t.same(workerMessages, [{ textPayload: 'just text' }, { textPayload: 'hi', x: 1 }]);
});

t.test('log messages as either JSON.stringify or Go writes them, and lines that only start like one', async (t) => {
  const { protocol, records, shutdowns } = protocolWith(['log', 'shutdown']);
  const lines = [
    '~{"type":"log","body":{"textPayload":"type first"}}',
    '~{"body":{"level":"info","textPayload":"keys sorted"},"type":"log"}',
    // a later key of the same name wins, as JSON.parse has it
    '~{"type":"log","body":{"textPayload":"x"},"body":{"textPayload":"last body"}}',
    '~{"type":"log","body":{"textPayload":"y"},"type":"shutdown"}',
    '~{"body":{"textPayload":"more keys"},"type":"log","extra":1}',
    '~{"type":"log","body":{"textPayload":"z"}} trailing}',
    '~{"type":"log","body":["not an object"]}',
    '~{"type":"log","body":{"__proto__":{"polluted":true}}}',
  ];
  protocol.receive(Buffer.from(lines.join('\n') + '\n'));
  const worker = records.filter((r) => r.source === 'worker').map((r) => r.message as JsonObject);
  t.same(worker.slice(0, 4), [
    { textPayload: 'type first' },
    { level: 'info', textPayload: 'keys sorted' },
    { textPayload: 'last body' },
    { textPayload: 'more keys' },
  ]);
  t.equal(shutdowns(), 1, 'the message with a second "type" is a shutdown');
  t.same(worker[4], { textPayload: lines[5] }, 'not JSON: text');
  t.equal(worker.length, 6);
  t.ok(Object.hasOwn(worker[5]!, '__proto__') && !('polluted' in worker[5]!), '__proto__ is an own key');
  t.match(
    records.filter((r) => r.level === 'warn').map((r) => r.message),
    [/body is not an object/],
  );

  const notAgreed = protocolWith(['shutdown']);
  notAgreed.protocol.receive(Buffer.from(`${lines[0]}\n${lines[1]}\n`));
  t.same(
    notAgreed.records.filter((r) => r.source === 'worker'),
    [],
    'without the log capability, nothing is forwarded',
  );
  t.equal(notAgreed.records.filter((r) => r.level === 'warn' && /"log" message/.test(r.message as string)).length, 2);
});

t.test('outgoing messages are validated before sending', async (t) => {
  const { protocol, sent, records } = protocolWith(['graceful-termination', 'new-credentials']);
  t.equal(protocol.send({ type: 'new-credentials', 'client-id': 'c', 'access-token': '' }), false);
  t.equal(protocol.send({ type: 'graceful-termination', 'finish-tasks': 'yes' as unknown as boolean }), false);
  t.equal(
    protocol.send({
      type: 'new-credentials',
      'client-id': 'c',
      'access-token': 'tok',
      certificate: 5 as unknown as string,
    }),
    false,
  );
  t.equal(sent.length, 1, 'only the welcome went out');
  t.match(
    records
      .filter((r) => r.level === 'error')
      .map((r) => r.message)
      .join('\n'),
    /not sending an invalid new-credentials/,
  );
  t.equal(protocol.send({ type: 'new-credentials', 'client-id': 'c', 'access-token': 'tok' }), true);
  t.same(sent[1], { type: 'new-credentials', 'client-id': 'c', 'access-token': 'tok' });
});

t.test('a worker that closed its stdin does not crash the runner; writes respect backpressure', async (t) => {
  const { log } = captureLogger();
  const toWorker = new PassThrough({ highWaterMark: 16 });
  const protocol = new WorkerProtocol({ log, toWorker });
  protocol.start();
  protocol.receive(Buffer.from('~{"type":"hello","capabilities":["graceful-termination"]}\n'));
  for (let i = 0; i < 5; i++) protocol.send({ type: 'graceful-termination', 'finish-tasks': true });
  t.ok(toWorker.writableLength < 1024, 'messages wait for drain instead of piling into the stream');
  const received: string[] = [];
  toWorker.on('data', (chunk: Buffer) => received.push(chunk.toString()));
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(received.join('').split('\n').filter(Boolean).length, 6, 'all arrive once the reader drains');
  toWorker.destroy(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(protocol.send({ type: 'graceful-termination', 'finish-tasks': false }), false);
});
