/**
 * The boot path: time from starting start-worker to the worker's spawn,
 * with the aws and google providers and worker secrets, at 0 and 20 ms of
 * round-trip time put in front of every fake by a latency proxy. The extra
 * time at 20 ms, in round trips, is what the critical path costs; it is
 * printed with the dependent phases and the new connections per host.
 * Target: <= 6 round trips of extra time at 20 ms, one new connection per
 * host. HTTP/1.1 needs a connection per request in flight, so for the
 * metadata service, which is asked several things at once, the count is
 * printed beside the most requests it had in flight: a connection beyond
 * those would be one opened while a kept-alive one sat idle.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeEc2Metadata } from '../test/fakes/aws-metadata.js';
import { FakeGoogleMetadata } from '../test/fakes/google-metadata.js';
import { FakeTaskcluster } from '../test/fakes/taskcluster.js';
import { fakeWorkerSection, readJsonLines, startCli, writeConfig } from '../test/helpers.js';
import { dependentPhases, LatencyProxy, mostInFlight } from './latency-proxy.js';
import { median } from './measure.js';

const POOL = 'proj/boot';
const PROVIDER = 'cloud-prov';
const RTT_MS = 20;

interface Trial {
  spawnMs: number;
  phases: number;
  connections: { metadata: number; taskcluster: number };
  inFlight: { metadata: number; taskcluster: number };
}

type Cloud = 'aws' | 'google';

/** One boot: fakes behind proxies of the given RTT, start-worker started, time until the worker is spawned. */
async function boot(cloud: Cloud, rttMs: number): Promise<Trial> {
  const tc = await new FakeTaskcluster().start();
  tc.addWorkerPool(POOL, PROVIDER);
  tc.acceptProofsFrom.add(PROVIDER);
  tc.secrets.set(`worker-pool:${POOL}`, { config: { fromSecret: true } });
  const tcProxy = await new LatencyProxy(Number(new URL(tc.rootUrl).port), rttMs).start();
  const userData = { rootUrl: tcProxy.url, workerPoolId: POOL, providerId: PROVIDER, workerGroup: 'boot' };
  let stopMetadata: () => Promise<void>;
  let metadataPort: number;
  if (cloud === 'aws') {
    const imds = await new FakeEc2Metadata().start();
    imds.setUserData(userData);
    stopMetadata = () => imds.stop();
    metadataPort = Number(new URL(imds.endpoint).port);
  } else {
    const metadata = await new FakeGoogleMetadata({ rootUrl: tcProxy.url }).start();
    metadata.setUserData(userData);
    stopMetadata = () => metadata.stop();
    metadataPort = Number(new URL(metadata.url).port);
  }
  const metadataProxy = await new LatencyProxy(metadataPort, rttMs).start();
  const dir = mkdtempSync(join(tmpdir(), 'start-worker-boot-'));
  try {
    const record = join(dir, 'record.jsonl');
    const config = writeConfig(dir, {
      provider: { providerType: cloud, metadataEndpoint: metadataProxy.url },
      worker: fakeWorkerSection(),
      getSecrets: true,
      shutdownCommand: ['/bin/true'],
    });
    const started = Date.now();
    const run = startCli([config], {
      env: { FAKE_WORKER: JSON.stringify({ capabilities: [], exitAfterOutput: 0 }), FAKE_WORKER_RECORD: record },
      timeoutMs: 60_000,
    });
    const result = await run.done;
    if (result.code !== 0)
      throw new Error(`start-worker (${cloud}, ${rttMs} ms) exited with ${result.code}:\n${result.stderr}`);
    const spawned = readJsonLines<{ event: string; time: number }>(record).find((r) => r.event === 'started');
    if (spawned === undefined) throw new Error('the worker never started');
    // the requests before the spawn: the boot path (removal after the worker exits is not)
    const before = [...metadataProxy.requests, ...tcProxy.requests].filter((r) => r.start < spawned.time);
    return {
      spawnMs: spawned.time - started,
      phases: dependentPhases(before),
      connections: { metadata: metadataProxy.connections, taskcluster: tcProxy.connections },
      inFlight: { metadata: mostInFlight(metadataProxy.requests), taskcluster: mostInFlight(tcProxy.requests) },
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await Promise.all([metadataProxy.stop(), tcProxy.stop(), stopMetadata(), tc.stop()]);
  }
}

export async function benchBoot(runs = 15): Promise<void> {
  console.log(
    `boot path: start-worker to the worker's spawn, worker secrets read, ${runs} interleaved runs at each RTT, medians`,
  );
  for (const cloud of ['aws', 'google'] as const) {
    await boot(cloud, 0); // warm the file cache
    const fast: Trial[] = [];
    const slow: Trial[] = [];
    for (let i = 0; i < runs; i++) {
      fast.push(await boot(cloud, 0));
      slow.push(await boot(cloud, RTT_MS));
    }
    const fastMs = median(fast.map((t) => t.spawnMs));
    const slowMs = median(slow.map((t) => t.spawnMs));
    const extra = slowMs - fastMs;
    const last = slow.at(-1)!;
    console.log(`  ${cloud}: ${fastMs.toFixed(0)} ms at 0 ms RTT, ${slowMs.toFixed(0)} ms at ${RTT_MS} ms RTT`);
    console.log(
      `    extra ${extra.toFixed(0)} ms = ${(extra / RTT_MS).toFixed(1)} round trips (target <= 6); dependent phases ${median(slow.map((t) => t.phases))}; new connections: metadata ${last.connections.metadata} (${last.inFlight.metadata} requests at once at most), Taskcluster ${last.connections.taskcluster} (${last.inFlight.taskcluster} at once) (target 1 per host; no more than the requests at once)`,
    );
  }
}
