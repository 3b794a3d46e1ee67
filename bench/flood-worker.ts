/**
 * Writes FLOOD_COUNT protocol log messages of about 100 bytes as fast as the
 * pipe takes them, then exits. Says hello first unless FLOOD_NO_HANDSHAKE is
 * set (the floor run reads the same bytes without a runner).
 */
import { createInterface } from 'node:readline';

const count = Number(process.env['FLOOD_COUNT'] ?? 1_000_000);
const BATCH = 500;

function flood(): void {
  let sent = 0;
  const write = (): void => {
    while (sent < count) {
      let batch = '';
      for (let i = 0; i < BATCH && sent < count; i++, sent++) {
        batch += `~{"type":"log","body":{"textPayload":"task 1234 step ${String(sent).padStart(7, '0')} finished","level":"info"}}\n`;
      }
      if (!process.stdout.write(batch)) {
        process.stdout.once('drain', write);
        return;
      }
    }
    process.stdout.end(() => process.exit(0));
  };
  write();
}

if (process.env['FLOOD_NO_HANDSHAKE']) {
  flood();
} else {
  const input = createInterface({ input: process.stdin });
  input.once('line', () => {
    process.stdout.write('~{"type":"hello","capabilities":["log"]}\n');
    flood();
  });
}
