// Measures Opus encoder memory: RSS per live encoder, and RSS growth over create/destroy cycles (leak check).
// Run with GC exposed: node --expose-gc --import tsx scripts/bench/encoder-memory.ts [perEncoder N | leak N]
// Prints one JSON line. Used by `npm run bench:codec` and by test/codec/leak.test.ts (child process).
import { createEncoder, type OpusEncoder } from '../../device/codec/opus.ts';

const gc = (globalThis as { gc?: () => void }).gc;

/** GC, then let the event loop turn: Node 20 runs N-API finalizers (opus_encoder_destroy) in a later tick. */
async function collect(rounds = 3): Promise<void> {
  if (!gc) throw new Error('run with node --expose-gc');
  for (let i = 0; i < rounds; i++) {
    gc();
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

const frame = new Int16Array(320);
for (let i = 0; i < frame.length; i++) frame[i] = Math.round(8000 * Math.sin(i / 5));

async function perEncoder(count: number): Promise<object> {
  await collect();
  const before = process.memoryUsage();
  const live: OpusEncoder[] = [];
  for (let i = 0; i < count; i++) {
    const e = createEncoder();
    e.encode(frame); // touch the state like a real clip would
    live.push(e);
  }
  await collect();
  const after = process.memoryUsage();
  const rssPer = (after.rss - before.rss) / count;
  const result = {
    mode: 'perEncoder',
    count,
    rssBytesPerEncoder: Math.round(rssPer),
    heapBytesPerEncoder: Math.round((after.heapUsed - before.heapUsed) / count),
  };
  for (const e of live) e.destroy();
  return result;
}

async function leak(cycles: number): Promise<object> {
  // Warm up so allocator arenas and JIT are in steady state before the baseline.
  for (let i = 0; i < 2000; i++) createEncoder().destroy();
  await collect();
  const base = process.memoryUsage().rss;
  let peak = base;
  let mid = base;
  const t0 = performance.now();
  // Without an event-loop turn between batches the finalizers never run and RSS grows ~50 kB per cycle.
  for (let i = 1; i <= cycles; i++) {
    const e = createEncoder();
    if (i % 10 === 0) e.encode(frame);
    e.destroy();
    if (i % 2000 === 0) {
      await collect(1);
      const rss = process.memoryUsage().rss;
      peak = Math.max(peak, rss);
      if (i === Math.floor(cycles / 4000) * 2000) mid = rss;
    }
  }
  await collect();
  const end = process.memoryUsage().rss;
  return {
    mode: 'leak',
    cycles,
    rssGrowthBytes: end - base,
    secondHalfGrowthBytes: end - mid,
    peakGrowthBytes: peak - base,
    ms: Math.round(performance.now() - t0),
  };
}

const [mode = 'perEncoder', nStr = '1000'] = process.argv.slice(2);
const n = Number(nStr);
if (!Number.isInteger(n) || n < 1 || n > 10_000_000)
  throw new RangeError(`count must be a positive integer, got ${nStr}`);
process.stdout.write(`${JSON.stringify(mode === 'leak' ? await leak(n) : await perEncoder(n))}\n`);
