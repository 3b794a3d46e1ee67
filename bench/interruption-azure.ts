/**
 * Azure interruption latency: from the metadata fake announcing a Preempt
 * (Scheduled Events) to the worker receiving graceful-termination, with the
 * default poll interval (1 s). The floor is the same delivery started by a
 * SIGTERM to start-worker, which involves no polling. Trials are
 * interleaved; each waits a random part of a poll interval before the
 * notice, so the phase of the poll loop is sampled evenly.
 * Target: p99 <= 1.5 s.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeAzureMetadata, SCHEDULED_EVENTS, workerManagerTags } from '../test/fakes/azure-metadata.js';
import { FakeTaskcluster } from '../test/fakes/taskcluster.js';
import { waitFor } from '../test/helpers.js';
import { median, percentile, startInterruptibleRun } from './measure.js';

const POOL = 'bench/azure';
const PROVIDER = 'azure-bench';

/** One run of start-worker until the worker is up and watching; `trigger` then asks it to stop. Returns ms to delivery. */
async function trial(dir: string, imds: FakeAzureMetadata, trigger: (stop: () => void) => void): Promise<number> {
  // default terminationPollInterval: the point is what operators get
  const { run, saidHello, terminationReceivedAt } = startInterruptibleRun(mkdtempSync(join(dir, 'trial-')), {
    providerType: 'azure',
    metadataEndpoint: imds.endpoint,
  });
  await saidHello();
  const since = Date.now();
  await waitFor('the watcher to poll', () =>
    imds.requestsTo(SCHEDULED_EVENTS, 'GET').some((r) => r.time >= since && r.outcome === 200),
  );
  // a random phase within one poll interval
  await new Promise((resolve) => setTimeout(resolve, Math.random() * 1000));
  const sent = Date.now();
  trigger(() => run.child.kill('SIGTERM'));
  const received = await terminationReceivedAt();
  imds.events = [];
  return received - sent;
}

export async function benchAzureInterruption(trials = 25): Promise<void> {
  const tc = await new FakeTaskcluster().start();
  tc.addWorkerPool(POOL, PROVIDER, {});
  tc.acceptProofsFrom.add(PROVIDER);
  const imds = await new FakeAzureMetadata({
    tags: workerManagerTags(tc.rootUrl, { 'worker-pool-id': POOL, 'provider-id': PROVIDER }),
  }).start();
  const dir = mkdtempSync(join(tmpdir(), 'start-worker-bench-azure-'));
  try {
    const notice: number[] = [];
    const floor: number[] = [];
    await trial(dir, imds, () => imds.postEvent({ EventType: 'Preempt' })); // warm-up
    for (let i = 0; i < trials; i++) {
      notice.push(await trial(dir, imds, () => imds.postEvent({ EventType: 'Preempt' })));
      floor.push(await trial(dir, imds, (stop) => stop()));
    }
    const ms = (value: number) => `${value.toFixed(0)} ms`;
    console.log(`azure interruption (${trials} interleaved trials each, default terminationPollInterval 1 s)`);
    console.log(
      `  Preempt notice -> graceful-termination: p50 ${ms(median(notice))}, p99 ${ms(percentile(notice, 99))}, max ${ms(Math.max(...notice))} (target p99 <= 1500 ms)`,
    );
    console.log(`  floor, SIGTERM -> graceful-termination: p50 ${ms(median(floor))}, p99 ${ms(percentile(floor, 99))}`);
    console.log(
      `  the notice costs ${ms(median(notice) - median(floor))} more at p50 (about half a poll interval is expected)`,
    );
  } finally {
    await imds.stop();
    await tc.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
