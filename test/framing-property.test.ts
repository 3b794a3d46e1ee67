/**
 * A property test of the line splitter: whatever the chunking of the
 * stream, every line comes out once, in order, and every over-long line is
 * reported with its length in bytes.
 */
import t from 'tap';
import { LineSplitter } from '../src/protocol/framing.js';

/** A small seeded generator (mulberry32), so a failure can be replayed from its seed. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let x = state;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

type Event = { line: string } | { overlong: number };

const MAX = 64;
// ASCII, 2-, 3- and 4-byte UTF-8 (a surrogate pair in JavaScript), '~', and a carriage return
const ALPHABET = ['a', 'Z', '7', ' ', '~', '{', '"', 'é', 'ß', '✓', '€', '𝄞', '😀', '\r', '\t'];

/** One record of the stream: its bytes on the wire (newline included) and what the splitter must report. */
function record(next: () => number): { bytes: Buffer; expected: Event } {
  const kind = next();
  if (kind < 0.08) {
    // garbage: bytes that are not UTF-8; the line is what decoding them gives
    const raw = Buffer.from(
      Array.from({ length: 1 + Math.floor(next() * 12) }, () => 0x80 + Math.floor(next() * 0x7f)),
    );
    return { bytes: Buffer.concat([raw, Buffer.from('\n')]), expected: { line: raw.toString('utf8') } };
  }
  if (kind < 0.16) {
    // a message, as a worker writes it
    const text = `~${JSON.stringify({ type: 'log', body: { textPayload: 'é✓😀'.slice(0, Math.floor(next() * 4)) } })}`;
    return lineRecord(text, next() < 0.3 ? '\r\n' : '\n');
  }
  const length =
    kind < 0.3
      ? MAX - 4 + Math.floor(next() * 10)
      : kind < 0.4
        ? MAX * (1 + Math.floor(next() * 4))
        : Math.floor(next() * 20);
  let text = '';
  while (Buffer.byteLength(text) < length) text += ALPHABET[Math.floor(next() * ALPHABET.length)];
  return lineRecord(text, next() < 0.2 ? '\r\n' : '\n');
}

function lineRecord(text: string, ending: string): { bytes: Buffer; expected: Event } {
  const bytes = Buffer.from(text + ending);
  // The limit applies to the bytes before the newline; a trailing \r is not part of the line.
  const length = bytes.length - 1;
  if (length > MAX) return { bytes, expected: { overlong: length } };
  const line = ending === '\r\n' || text.endsWith('\r') ? (text + ending).slice(0, -2) : text;
  return { bytes, expected: { line } };
}

function chunkings(wire: Buffer, next: () => number): Buffer[] {
  const chunks: Buffer[] = [];
  const style = next();
  for (let at = 0; at < wire.length;) {
    const size = style < 0.2 ? 1 : style < 0.6 ? 1 + Math.floor(next() * 7) : 1 + Math.floor(next() * 200);
    chunks.push(wire.subarray(at, at + size));
    at += size;
  }
  return chunks;
}

function run(chunks: Buffer[]): Event[] {
  const events: Event[] = [];
  const splitter = new LineSplitter(
    MAX,
    (line) => events.push({ line }),
    (bytes) => events.push({ overlong: bytes }),
  );
  for (const chunk of chunks) splitter.push(chunk);
  splitter.end();
  return events;
}

t.test(
  'random streams in random chunkings: every line once, in order; over-long lines with their byte length',
  async (t) => {
    let failures = 0;
    for (let seed = 1; seed <= 500 && failures < 3; seed++) {
      const next = random(seed);
      const records = Array.from({ length: 1 + Math.floor(next() * 40) }, () => record(next));
      const wire = Buffer.concat(records.map((r) => r.bytes));
      const expected = records.map((r) => r.expected);
      const actual = run(chunkings(wire, next));
      if (JSON.stringify(actual) !== JSON.stringify(expected)) {
        failures += 1;
        t.same(actual, expected, `seed ${seed}`);
      }
    }
    t.equal(failures, 0, '500 random streams');
  },
);

t.test('one stream cut at every pair of byte positions', async (t) => {
  const next = random(42);
  const records = Array.from({ length: 12 }, () => record(next));
  const wire = Buffer.concat(records.map((r) => r.bytes));
  const expected = JSON.stringify(records.map((r) => r.expected));
  let mismatches = 0;
  for (let first = 0; first <= wire.length; first++) {
    for (let second = first; second <= wire.length; second += 3) {
      const actual = run([wire.subarray(0, first), wire.subarray(first, second), wire.subarray(second)]);
      if (JSON.stringify(actual) !== expected) mismatches += 1;
    }
  }
  t.equal(mismatches, 0, `${wire.length} bytes, every first cut, every third second cut`);
});

t.test('a final line without a newline, and a final over-long one', async (t) => {
  t.same(run([Buffer.from('ab\n€'), Buffer.from('x')]), [{ line: 'ab' }, { line: '€x' }]);
  const long = Buffer.from('😀'.repeat(MAX));
  t.same(run([long.subarray(0, 5), long.subarray(5)]), [{ overlong: long.length }]);
});
