/**
 * Startup cost: start-worker on the embedded example versus a bare
 * `node -e 0`, interleaved, medians of wall time and peak RSS.
 * Targets: wall <= 2.0x and peak RSS <= 1.5x bare node.
 */
import { join } from 'node:path';
import { measureNode, median, repoRoot, type Sample } from './measure.js';

export async function benchStartup(runs = 25): Promise<void> {
  const example = join(repoRoot, 'examples', 'standalone-dummy.yaml');
  const bin = join(repoRoot, 'bin', 'start-worker');
  const floor: Sample[] = [];
  const startWorker: Sample[] = [];
  // warm the file cache once
  await measureNode(['-e', '0']);
  await measureNode([bin, example]);
  for (let i = 0; i < runs; i++) {
    floor.push(await measureNode(['-e', '0']));
    startWorker.push(await measureNode([bin, example]));
  }
  const floorWall = median(floor.map((s) => s.wallMs));
  const swWall = median(startWorker.map((s) => s.wallMs));
  const floorRss = median(floor.map((s) => s.peakRssKiB));
  const swRss = median(startWorker.map((s) => s.peakRssKiB));
  console.log(`startup (${runs} interleaved runs each, medians)`);
  console.log(`  node -e 0:         wall ${floorWall.toFixed(1)} ms, peak RSS ${(floorRss / 1024).toFixed(1)} MiB`);
  console.log(`  start-worker:      wall ${swWall.toFixed(1)} ms, peak RSS ${(swRss / 1024).toFixed(1)} MiB`);
  console.log(`  ratio wall ${(swWall / floorWall).toFixed(2)}x (target <= 2.0x), peak RSS ${(swRss / floorRss).toFixed(2)}x (target <= 1.5x)`);
}
