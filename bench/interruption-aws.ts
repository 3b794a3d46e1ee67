/**
 * AWS spot interruption latency: from the metadata service announcing an
 * interruption to the worker receiving graceful-termination, through the
 * real CLI, the IMDSv2 fake, the Taskcluster fake and the protocol test
 * worker. The thing measured runs at default settings (a poll a second);
 * the floor is the same path polling every 0.05 s (the delivery cost alone);
 * trials are interleaved. Then the idle metadata traffic at default
 * settings, in requests per minute.
 * Targets: p99 <= 1.5 s; idle traffic <= 65 requests/minute.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeEc2Metadata, SPOT_INSTANCE_ACTION } from '../test/fakes/aws-metadata.js';
import { FakeTaskcluster } from '../test/fakes/taskcluster.js';
import { waitFor } from '../test/helpers.js';
import { median, percentile, startInterruptibleRun } from './measure.js';

const POOL = 'bench/aws';
const PROVIDER = 'aws-bench';

interface Fakes {
  tc: FakeTaskcluster;
  imds: FakeEc2Metadata;
}

/** Start a worker and wait until it runs and the watcher has polled: the caller does the rest. */
async function startRun(fakes: Fakes, pollInterval: number | undefined) {
  const dir = mkdtempSync(join(tmpdir(), 'start-worker-bench-'));
  const started = startInterruptibleRun(
    dir,
    {
      providerType: 'aws',
      metadataEndpoint: fakes.imds.endpoint,
      ...(pollInterval === undefined ? {} : { terminationPollInterval: pollInterval }),
    },
    { AWS_EC2_METADATA_SERVICE_ENDPOINT: undefined },
  );
  await started.saidHello();
  await waitFor('a first poll', () => fakes.imds.count(SPOT_INSTANCE_ACTION) > 0, 30_000);
  return { dir, ...started };
}

/** One trial: ms from the announcement to the worker's receipt of graceful-termination. */
async function interruptionLatency(fakes: Fakes, pollInterval: number | undefined): Promise<number> {
  fakes.imds.metaData.delete('spot/instance-action');
  fakes.imds.metaData.delete('spot/termination-time');
  const { dir, terminationReceivedAt } = await startRun(fakes, pollInterval);
  try {
    // Announce at a random point of the poll cycle, as a real notice would
    // arrive: a uniform delay after a poll, over one default interval.
    const polls = fakes.imds.count(SPOT_INSTANCE_ACTION);
    await waitFor('the next poll', () => fakes.imds.count(SPOT_INSTANCE_ACTION) > polls, 30_000);
    await new Promise((resolve) => setTimeout(resolve, Math.random() * 1000));
    fakes.imds.announceSpotInterruption('terminate', new Date(Date.now() + 120_000));
    const announcedAt = fakes.imds.spotAnnouncedAt!;
    return (await terminationReceivedAt()) - announcedAt;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Metadata requests per minute while the worker idles at default settings. */
async function idleTraffic(
  fakes: Fakes,
  seconds: number,
): Promise<{ perMinute: number; tokenPuts: number; paths: string[] }> {
  fakes.imds.metaData.delete('spot/instance-action');
  fakes.imds.metaData.delete('spot/termination-time');
  const tokenPutsBefore = fakes.imds.tokenPuts;
  const { dir, run } = await startRun(fakes, undefined);
  try {
    const windowStart = Date.now();
    await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
    const requests = fakes.imds.requestsSince(windowStart);
    run.child.kill('SIGTERM');
    await run.done;
    return {
      perMinute: (requests.length * 60) / seconds,
      tokenPuts: fakes.imds.tokenPuts - tokenPutsBefore,
      paths: [...new Set(requests.map((r) => `${r.method} ${r.path}`))],
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function benchAwsInterruption(trials = 20, idleSeconds = 60): Promise<void> {
  const tc = await new FakeTaskcluster().start();
  const imds = await new FakeEc2Metadata().start();
  try {
    tc.addWorkerPool(POOL, PROVIDER);
    tc.acceptProofsFrom.add(PROVIDER);
    imds.setUserData({ rootUrl: tc.rootUrl, workerPoolId: POOL, providerId: PROVIDER, workerGroup: 'bench' });
    const fakes = { tc, imds };
    await interruptionLatency(fakes, undefined); // warm the file cache
    const atDefault: number[] = [];
    const floor: number[] = [];
    for (let i = 0; i < trials; i++) {
      atDefault.push(await interruptionLatency(fakes, undefined));
      floor.push(await interruptionLatency(fakes, 0.05));
    }
    const idle = await idleTraffic(fakes, idleSeconds);
    const format = (ms: number) => `${(ms / 1000).toFixed(3)} s`;
    console.log(
      `aws interruption: announcement -> graceful-termination at the worker (${trials} interleaved trials each)`,
    );
    console.log(
      `  default (poll 1 s):  p50 ${format(percentile(atDefault, 50))}, p99 ${format(percentile(atDefault, 99))}, max ${format(Math.max(...atDefault))} (target p99 <= 1.5 s)`,
    );
    console.log(
      `  floor (poll 0.05 s): p50 ${format(percentile(floor, 50))}, p99 ${format(percentile(floor, 99))}, max ${format(Math.max(...floor))}`,
    );
    console.log(`  ratio of medians ${(median(atDefault) / median(floor)).toFixed(1)}x (the poll interval dominates)`);
    console.log(`aws idle metadata traffic at default settings (${idleSeconds} s window)`);
    console.log(
      `  ${idle.perMinute.toFixed(1)} requests/minute (target <= 65), ${idle.tokenPuts} token PUT(s) for the whole run; requests: ${idle.paths.join(', ')}`,
    );
  } finally {
    await imds.stop();
    await tc.stop();
  }
}
