/** `npm run bench [name...]`: run the benchmarks (all by default). Never part of CI. */
import { benchBoot } from './boot.js';
import { benchAwsInterruption } from './interruption-aws.js';
import { benchAzureInterruption } from './interruption-azure.js';
import { benchFleet } from './fleet.js';
import { benchGoogleInterruption } from './interruption-google.js';
import { benchPollCost } from './poll-cost.js';
import { benchProtocol } from './protocol.js';
import { benchSoak } from './soak.js';
import { benchStartup } from './startup.js';

const benchmarks: Record<string, () => Promise<void>> = {
  startup: () => benchStartup(),
  boot: () => benchBoot(),
  protocol: () => benchProtocol(),
  'poll-cost': () => benchPollCost(),
  'interruption-aws': () => benchAwsInterruption(),
  'interruption-azure': () => benchAzureInterruption(),
  'interruption-google': () => benchGoogleInterruption(),
  fleet: () => benchFleet(),
  soak: () => benchSoak(),
};

const selected = process.argv.slice(2);
const unknown = selected.filter((name) => !(name in benchmarks));
if (unknown.length > 0) {
  console.error(`unknown benchmark(s): ${unknown.join(', ')}; known: ${Object.keys(benchmarks).join(', ')}`);
  process.exit(1);
}
for (const [name, run] of Object.entries(benchmarks)) {
  if (selected.length > 0 && !selected.includes(name)) continue;
  await run();
}
