/** `npm run bench [name...]`: run the benchmarks (all by default). Never part of CI. */
import { benchProtocol } from './protocol.js';
import { benchStartup } from './startup.js';

const benchmarks: Record<string, () => Promise<void>> = {
  startup: () => benchStartup(),
  protocol: () => benchProtocol(),
};

const selected = process.argv.slice(2);
for (const [name, run] of Object.entries(benchmarks)) {
  if (selected.length > 0 && !selected.includes(name)) continue;
  await run();
}
