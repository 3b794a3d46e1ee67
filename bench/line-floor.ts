/**
 * The floors for bench/protocol: read stdin through a pipe and split it into
 * lines, nothing more; with FLOOR_PARSE set, also decode each line and
 * JSON.parse it, the least any reader of the protocol must do.
 */
import { StringDecoder } from 'node:string_decoder';

let lines = 0;
if (process.env['FLOOR_PARSE']) {
  const decoder = new StringDecoder('utf8');
  let carry = '';
  let parsed = 0;
  process.stdin.on('data', (chunk: Buffer) => {
    const text = carry + decoder.write(chunk);
    let start = 0;
    for (let newline = text.indexOf('\n'); newline !== -1; newline = text.indexOf('\n', start)) {
      if ((JSON.parse(text.slice(start + 1, newline)) as { type?: string }).type === 'log') parsed += 1;
      lines += 1;
      start = newline + 1;
    }
    carry = text.slice(start);
  });
  process.stdin.on('end', () => process.stderr.write(`${parsed}\n`));
} else {
  let carry = 0;
  process.stdin.on('data', (chunk: Buffer) => {
    let start = 0;
    for (let newline = chunk.indexOf(10); newline !== -1; newline = chunk.indexOf(10, start)) {
      lines += 1;
      start = newline + 1;
    }
    carry = chunk.length - start;
  });
  process.stdin.on('end', () => {
    if (carry > 0) lines += 1;
    process.stderr.write(`${lines}\n`);
  });
}
