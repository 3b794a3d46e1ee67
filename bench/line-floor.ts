/** The floor for bench/protocol: read stdin through a pipe and split it into lines, nothing more. */
let lines = 0;
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
