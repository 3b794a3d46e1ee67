// Preloaded into a measured process: write its peak RSS (KiB) to fd 3 on exit.
import { writeSync } from 'node:fs';

process.on('exit', () => {
  try {
    writeSync(3, `${process.resourceUsage().maxRSS}\n`);
  } catch {
    // not measured
  }
});
