// Child-process host for a load-test target (`--gateway forked`, bare Aedes in bench): own event loop, CPU, memory, file descriptors.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { getHeapSpaceStatistics, writeHeapSnapshot } from 'node:v8';
import type { FamilyRegistration } from '../../gateway/admin.ts';
import { startEmbeddedGateway, startPlainAedes } from './targets.ts';

type Request =
  | { readonly type: 'provision'; readonly families: readonly FamilyRegistration[] }
  | { readonly type: 'counters' }
  | { readonly type: 'memory' }
  | { readonly type: 'close' };

const send = (m: unknown): void => {
  process.send?.(m);
};

// PLK_ALLOC_PROFILE=FILE: V8's sampling heap profiler over every allocation, those the garbage
// collector freed included (what makes the scavenges), written to FILE on close (docs/LOADTEST.md).
const allocFile = process.env.PLK_ALLOC_PROFILE;
const stopAllocationProfile = allocFile ? await startAllocationProfile(allocFile) : async () => {};
async function startAllocationProfile(file: string): Promise<() => Promise<void>> {
  const { Session } = await import('node:inspector/promises');
  const session = new Session();
  session.connect();
  await session.post('HeapProfiler.startSampling', {
    samplingInterval: 4096,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  });
  return async () => {
    const { profile } = await session.post('HeapProfiler.stopSampling');
    writeFileSync(file, JSON.stringify(profile));
    session.disconnect();
  };
}
const embedded = process.argv[2] === 'aedes' ? null : await startEmbeddedGateway();
const gw = embedded ?? (await startPlainAedes());
process.on('message', (m: Request) => {
  if (m.type === 'provision') {
    if (!embedded) {
      send({ type: 'provisioned' });
      return;
    }
    embedded.register(m.families).then(
      () => send({ type: 'provisioned' }),
      (err: unknown) => send({ type: 'error', message: String(err) }),
    );
  } else if (m.type === 'counters') {
    gw.counters().then((c) => send({ type: 'counters', counters: c }));
  } else if (m.type === 'memory') {
    // After a full collection when the child runs with --expose-gc (bench:idle): live heap, not garbage.
    (globalThis as { gc?: () => void }).gc?.();
    // PLK_HEAP_SNAPSHOT_DIR: also a heap snapshot per sample, to diff what each connection keeps (docs/LOADTEST.md).
    const snapDir = process.env.PLK_HEAP_SNAPSHOT_DIR;
    if (snapDir) writeHeapSnapshot(join(snapDir, `${Date.now()}.heapsnapshot`));
    send({ type: 'memory', memory: process.memoryUsage(), spaces: getHeapSpaceStatistics() });
  } else if (m.type === 'close') {
    stopAllocationProfile()
      .then(() => gw.close())
      .then(() => {
        send({ type: 'closed' });
        process.disconnect?.();
        process.exit(0);
      });
  }
});
// The parent going away (crash, Ctrl-C) takes the gateway with it.
process.on('disconnect', () => {
  void gw.close().finally(() => process.exit(0));
});
send({
  type: 'ready',
  info: {
    ...gw.info,
    gatewaySignPublicKey: gw.info.gatewaySignPublicKey ? Array.from(gw.info.gatewaySignPublicKey) : null,
  },
});
if (process.env.PLK_STORE_TRACE === '1') {
  const { monitorEventLoopDelay, PerformanceObserver, constants } = await import('node:perf_hooks');
  const h = monitorEventLoopDelay({ resolution: 10 });
  h.enable();
  // Garbage-collection pauses of this process per second, by kind (scavenge, mark-compact,
  // incremental marking, weak callbacks): count, total and longest, to tell GC from store stalls.
  const names: Record<number, string> = {
    [constants.NODE_PERFORMANCE_GC_MINOR]: 'scavenge',
    [constants.NODE_PERFORMANCE_GC_MAJOR]: 'mark-compact',
    [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
    [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weak-callbacks',
  };
  let gc = new Map<string, { n: number; ms: number; max: number }>();
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = (e as { detail?: { kind?: number } }).detail?.kind ?? 0;
      const name = names[kind] ?? `kind-${kind}`;
      const k = gc.get(name) ?? { n: 0, ms: 0, max: 0 };
      k.n++;
      k.ms += e.duration;
      k.max = Math.max(k.max, e.duration);
      gc.set(name, k);
    }
  }).observe({ entryTypes: ['gc'] });
  setInterval(() => {
    const gcText = [...gc]
      .map(([n, k]) => `${n} ${k.n} (${k.ms.toFixed(1)} ms, max ${k.max.toFixed(1)})`)
      .join(', ');
    process.stderr.write(
      `[loop ${process.argv[2] ?? 'gateway'}] delay p99 ${(h.percentile(99) / 1e6).toFixed(1)} ms max ${(h.max / 1e6).toFixed(1)} ms;` +
        ` gc ${gcText || 'none'}\n`,
    );
    h.reset();
    gc = new Map();
  }, 1000).unref();
}
