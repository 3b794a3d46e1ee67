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
import { fakeWorkerSection, readJsonLines, recordingShutdown, startCli, waitFor, writeConfig } from '../test/helpers.js';
import { median, percentile } from './measure.js';

const POOL = 'bench/azure';
const PROVIDER = 'azure-bench';

interface Recorded {
  event: string;
  time: number;
  message?: { type?: string };
}

/** One run of start-worker until the worker is up and watching; `trigger` then asks it to stop. Returns ms to delivery. */
async function trial(dir: string, config: string, imds: FakeAzureMetadata, n: number, trigger: (stop: () => void) => void): Promise<number> {
  const record = join(dir, `record-${n}.jsonl`);
  const run = startCli([config], { env: { FAKE_WORKER: JSON.stringify({ capabilities: ['graceful-termination'], onGracefulTermination: { exit: 0 } }), FAKE_WORKER_RECORD: record } });
  await waitFor('the worker to say hello', () => run.stderr().includes('worker capabilities'));
  const since = Date.now();
  await waitFor('the watcher to poll', () => imds.requestsTo(SCHEDULED_EVENTS, 'GET').some((r) => r.time >= since && r.outcome === 200));
  // a random phase within one poll interval
  await new Promise((resolve) => setTimeout(resolve, Math.random() * 1000));
  const sent = Date.now();
  trigger(() => run.child.kill('SIGTERM'));
  const result = await run.done;
  if (result.code !== 0) throw new Error(`start-worker exited with ${result.code}:\n${result.stderr}`);
  const received = readJsonLines<Recorded>(record).find((r) => r.message?.type === 'graceful-termination');
  if (received === undefined) throw new Error(`the worker got no graceful-termination:\n${result.stderr}`);
  imds.events = [];
  return received.time - sent;
}

export async function benchAzureInterruption(trials = 25): Promise<void> {
  const tc = await new FakeTaskcluster().start();
  tc.addWorkerPool(POOL, PROVIDER, {});
  tc.acceptProofsFrom.add(PROVIDER);
  const imds = await new FakeAzureMetadata({ tags: workerManagerTags(tc.rootUrl, { 'worker-pool-id': POOL, 'provider-id': PROVIDER }) }).start();
  const dir = mkdtempSync(join(tmpdir(), 'start-worker-bench-azure-'));
  try {
    // default terminationPollInterval: the point is what operators get
    const config = writeConfig(dir, {
      provider: { providerType: 'azure', metadataEndpoint: imds.endpoint },
      worker: fakeWorkerSection(),
      getSecrets: false,
      shutdownCommand: recordingShutdown(dir).command,
    });
    const notice: number[] = [];
    const floor: number[] = [];
    await trial(dir, config, imds, -1, () => imds.postEvent({ EventType: 'Preempt' })); // warm-up
    for (let i = 0; i < trials; i++) {
      notice.push(await trial(dir, config, imds, 2 * i, () => imds.postEvent({ EventType: 'Preempt' })));
      floor.push(await trial(dir, config, imds, 2 * i + 1, (stop) => stop()));
    }
    const ms = (value: number) => `${value.toFixed(0)} ms`;
    console.log(`azure interruption (${trials} interleaved trials each, default terminationPollInterval 1 s)`);
    console.log(`  Preempt notice -> graceful-termination: p50 ${ms(median(notice))}, p99 ${ms(percentile(notice, 99))}, max ${ms(Math.max(...notice))} (target p99 <= 1500 ms)`);
    console.log(`  floor, SIGTERM -> graceful-termination: p50 ${ms(median(floor))}, p99 ${ms(percentile(floor, 99))}`);
    console.log(`  the notice costs ${ms(median(notice) - median(floor))} more at p50 (about half a poll interval is expected)`);
  } finally {
    await imds.stop();
    await tc.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
