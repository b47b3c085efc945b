// Child-process host for a load-test target (`--gateway forked`, bare Aedes in bench): own event loop, CPU, memory, file descriptors.
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
    gw.close().then(() => {
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
  const { monitorEventLoopDelay } = await import('node:perf_hooks');
  const h = monitorEventLoopDelay({ resolution: 10 });
  h.enable();
  setInterval(() => {
    process.stderr.write(
      `[loop ${process.argv[2] ?? 'gateway'}] delay p99 ${(h.percentile(99) / 1e6).toFixed(1)} ms max ${(h.max / 1e6).toFixed(1)} ms\n`,
    );
    h.reset();
  }, 1000).unref();
}
