/**
 * Interruption latency on Google: from the metadata fake announcing a
 * preemption to the worker receiving graceful-termination, at default
 * settings (the real CLI, the protocol test worker, loopback fakes of the
 * metadata server and Taskcluster). The floor, measured in the same runs
 * and interleaved: from SIGTERM to the runner to the worker receiving
 * graceful-termination, the same delivery path without the metadata server.
 * Target: p99 <= 0.3 s.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeGoogleMetadata, MAINTENANCE_PATH, PREEMPTED_PATH } from '../test/fakes/google-metadata.js';
import { FakeTaskcluster } from '../test/fakes/taskcluster.js';
import { waitFor } from '../test/helpers.js';
import { median, percentile, startInterruptibleRun } from './measure.js';

type Trigger = 'preemption' | 'signal';

export async function benchGoogleInterruption(trials = 25): Promise<void> {
  const tc = await new FakeTaskcluster().start();
  const metadata = await new FakeGoogleMetadata({ rootUrl: tc.rootUrl }).start();
  tc.addWorkerPool('proj/google-pool', 'gcp');
  tc.acceptProofsFrom.add('gcp');
  const dir = mkdtempSync(join(tmpdir(), 'start-worker-bench-'));
  const latencies: Record<Trigger, number[]> = { preemption: [], signal: [] };
  try {
    for (let i = 0; i < trials; i++) {
      for (const trigger of ['preemption', 'signal'] as const) {
        latencies[trigger].push(await trial(metadata, join(dir, `${i}-${trigger}`), trigger));
      }
    }
  } finally {
    await metadata.stop();
    await tc.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  const line = (values: number[]) =>
    `p50 ${median(values).toFixed(0)} ms, p99 ${percentile(values, 99).toFixed(0)} ms, max ${Math.max(...values).toFixed(0)} ms`;
  console.log(`google interruption (${trials} interleaved runs each, default settings)`);
  console.log(`  preemption notice -> graceful-termination:  ${line(latencies.preemption)} (target p99 <= 300 ms)`);
  console.log(`  floor: SIGTERM -> graceful-termination:     ${line(latencies.signal)}`);
  console.log(`  ratio p50 ${(median(latencies.preemption) / Math.max(1, median(latencies.signal))).toFixed(2)}x`);
}

/** One run of the CLI; resolves to the milliseconds from the trigger to the worker getting graceful-termination. */
async function trial(metadata: FakeGoogleMetadata, name: string, trigger: Trigger): Promise<number> {
  metadata.set(PREEMPTED_PATH, 'FALSE');
  metadata.set(MAINTENANCE_PATH, 'NONE');
  const { run, saidHello, terminationReceivedAt } = startInterruptibleRun(mkdtempSync(`${name}-`), {
    providerType: 'google',
    metadataEndpoint: metadata.url,
  });
  await saidHello();
  await waitFor(
    'the watchers',
    () => metadata.pendingLongPolls(PREEMPTED_PATH) === 1 && metadata.pendingLongPolls(MAINTENANCE_PATH) === 1,
  );
  const triggeredAt = Date.now();
  if (trigger === 'preemption') metadata.preempt();
  else run.child.kill('SIGTERM');
  return (await terminationReceivedAt()) - triggeredAt;
}
