// Gateway benchmark (`npm run bench:gateway`): clips/s vs Mosquitto, p99 at half rate, connects/s vs bare Aedes, 10k-toy storm, memory per toy.
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { summarize } from '../../sim/stats.ts';
import { loadtestOptions } from '../loadtest/options.ts';
import { audioPool, buildFleet, registrations, workerInits } from '../loadtest/runner.ts';
import { Session } from '../loadtest/session.ts';
import {
  type ForkedGateway,
  findMosquitto,
  startForkedGateway,
  startMosquitto,
  type Target,
} from '../loadtest/targets.ts';
import type { LoadtestOptions } from '../loadtest/types.ts';

const argv = new Set(process.argv.slice(2));
const QUICK = argv.has('--quick');
/** `--only throughput` / `--only gateway` / `--only storm`: run a subset (for A/B work on one part). */
const argValue = (name: string): string | null => {
  const a = process.argv.slice(2);
  const i = a.indexOf(name);
  return i >= 0 ? (a[i + 1] ?? null) : null;
};
const ONLY = argValue('--only');
const want = (part: 'gateway' | 'plain' | 'storm'): boolean =>
  ONLY === null || ONLY === part || (ONLY === 'throughput' && part !== 'storm');
const STORM_TOYS = QUICK ? 1000 : 10_000;
const THROUGHPUT_TOYS = QUICK ? 100 : 400;
/** `--rate N`: offer N clips/s in the throughput phase instead of more than either side can take. */
const OFFERED = Number(argValue('--rate') ?? (QUICK ? 1000 : 4000));
const PHASE_MS = QUICK ? 4000 : 8000;
const SETTLE_MS = QUICK ? 2000 : 4000;
const OUT_DIR = join(process.cwd(), 'bench-results');

function opts(toys: number, extra: Partial<LoadtestOptions> = {}): LoadtestOptions {
  return loadtestOptions({
    toys,
    connectRate: 2000,
    clipRate: OFFERED,
    durationMs: PHASE_MS,
    seed: 'bench-gateway',
    rampMaxSteps: 1,
    seal: 'resign',
    maxInflight: 1500,
    progress: false,
    ...extra,
  });
}

const log = (s: string): void => {
  process.stderr.write(`[bench:gateway ${(performance.now() / 1000).toFixed(0)}s] ${s}\n`);
};
const round = (x: number, d = 1): number => Math.round(x * 10 ** d) / 10 ** d;

/** Top self-time functions of a V8 CPU profile. */
function topFunctions(profile: {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
  samples?: number[];
  timeDeltas?: number[];
}): { fn: string; ms: number; share: number }[] {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  let total = 0;
  samples.forEach((id, i) => {
    const n = byId.get(id);
    const d = deltas[i] ?? 0;
    if (!n) return;
    const f = n.callFrame;
    const key = `${f.functionName || '(anonymous)'} ${f.url.replace(/^.*\/(node_modules\/)?/, '')}:${f.lineNumber + 1}`;
    self.set(key, (self.get(key) ?? 0) + d);
    total += d;
  });
  const busy = total - (self.get('(idle) :0') ?? 0);
  return [...self.entries()]
    .filter(([k]) => !k.startsWith('(idle)'))
    .sort((a, b) => b[1] - a[1])
    .slice(0, 15)
    .map(([fn, us]) => ({ fn, ms: round(us / 1000), share: round(us / Math.max(1, busy), 3) }));
}

/** p50/p99/max-bucket of one op of the gateway's store-latency histogram (Prometheus buckets, ms). */
function storeLatency(
  counters: Record<string, number> | null,
  op: string,
): Record<string, number | null> | null {
  if (!counters) return null;
  const buckets: [number, number][] = [];
  for (const [k, v] of Object.entries(counters)) {
    const m = /^plushlink_gateway_store_latency_seconds_bucket\{(.*)\}$/.exec(k);
    if (!m?.[1]?.split(',').includes(`op=${op}`)) continue;
    const le = /le=([^,]+)/.exec(m[1])?.[1];
    if (le) buckets.push([le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le), v]);
  }
  buckets.sort((a, b) => a[0] - b[0]);
  const total = buckets[buckets.length - 1]?.[1] ?? 0;
  if (total === 0) return null;
  const at = (q: number): number | null => {
    const b = buckets.find(([, c]) => c >= q * total);
    return b && Number.isFinite(b[0]) ? b[0] * 1000 : null;
  };
  return { count: total, p50UpToMs: at(0.5), p99UpToMs: at(0.99), p999UpToMs: at(0.999) };
}

interface Throughput {
  target: string;
  offeredPerSec: number;
  clipsPerSec: number;
  mbPerSec: number;
  e2eP99Ms: number;
  pubackP99Ms: number;
  targetCpuPercentMean: number | null;
  generatorVerdict: string;
  /** Embedded gateway: its event-loop stalls during the phase (ms). */
  gatewayEventLoopLagMaxMs: number | null;
  errors: Record<string, number>;
}

const pool = audioPool(8, 'bench-gateway');

/** Connects the fleet, then runs one phase at `rate` and returns the achieved figures. */
async function throughputOn(
  target: Target,
  rate: number,
  phases: { rate: number | 'half' }[],
): Promise<Throughput[]> {
  const o = opts(THROUGHPUT_TOYS, { clipRate: rate });
  const fleet = buildFleet(o);
  if ('provision' in target) {
    await (target as ForkedGateway).provision(registrations(fleet));
  }
  const session = new Session(target, workerInits(fleet, target.info, pool, o));
  const out: Throughput[] = [];
  try {
    await session.start();
    await session.connect('parents', 2000, fleet.roster.families.length);
    await session.connect('toys', 2000, THROUGHPUT_TOYS);
    // warm-up (JIT, SQLite page cache, MQTT buffers)
    await session.run(Math.min(rate, 200), 0, 2000, 'warm-up');
    await session.drain(10_000);
    for (const ph of phases) {
      const r = ph.rate === 'half' ? Math.max(1, (out[0]?.clipsPerSec ?? rate) / 2) : ph.rate;
      if (out.length > 0) {
        // After an overload phase the parents still hold thousands of queued receipts (the drain
        // waits for PUBACKs and deliveries, not receipts): settle at the new rate first, so the
        // measured phase is the steady state at that rate rather than the tail of the previous one.
        await session.run(r, 0, SETTLE_MS, `${target.info.kind} settle`);
      }
      session.resetPhase();
      const cpu0 = target.sample();
      const t0 = performance.now();
      await session.run(r, 0, PHASE_MS, `${target.info.kind} ${Math.round(r)}/s`);
      const wall = performance.now() - t0;
      const cpu1 = target.sample();
      const acc = session.phaseAcc;
      const acked = acc.counters.clipsAcked;
      const bytesAcked = acc.counters.bytesAcked;
      await session.drain(15_000);
      const e2e = summarize(acc.e2e);
      const pub = summarize(acc.puback);
      const cpuPct =
        cpu0 && cpu1 && target.resourceSource === 'proc'
          ? round(((cpu1.cpuMs - cpu0.cpuMs) / wall) * 100)
          : null;
      out.push({
        target: target.info.kind,
        offeredPerSec: Math.round(r),
        clipsPerSec: round((acked / wall) * 1000),
        mbPerSec: round((bytesAcked / 1e6 / wall) * 1000, 2),
        e2eP99Ms: e2e.p99,
        pubackP99Ms: pub.p99,
        targetCpuPercentMean: cpuPct,
        generatorVerdict: '',
        gatewayEventLoopLagMaxMs: null,
        errors: { ...acc.errors },
      });
      log(
        `${target.info.kind}: offered ${Math.round(r)}/s → ${out[out.length - 1]?.clipsPerSec} clips/s, e2e p99 ${e2e.p99} ms`,
      );
      if (ONLY !== null) {
        for (const p of session.timeline.filter(
          (x) => x.phase === `${target.info.kind} ${Math.round(r)}/s`,
        )) {
          log(
            `  t=${p.t.toFixed(0)} ${p.phase} acked ${p.clipsAcked} e2e p50/p99 ${p.e2eP50Ms}/${p.e2eP99Ms} puback p99 ${p.pubackP99Ms} gw cpu ${p.gatewayCpuPercent}% gen cpu ${p.generatorCpuPercent}% gen lag p99 ${p.generatorLagP99Ms} host ${p.hostCpuPercent}%`,
          );
        }
      }
    }
    const counters = await target.counters();
    if (counters) {
      storeLatencies[target.info.kind] = {
        acceptClip: storeLatency(counters, 'acceptClip'),
        markDelivered: storeLatency(counters, 'markDelivered'),
        getEndpoint: storeLatency(counters, 'getEndpoint'),
        familyMembers: storeLatency(counters, 'familyMembers'),
      };
    }
  } finally {
    await session.stop();
  }
  const s = session.summary();
  for (const t of out) {
    t.generatorVerdict = s.generator.verdict;
    t.gatewayEventLoopLagMaxMs = s.gateway.eventLoopLagMaxMs;
    if (t.targetCpuPercentMean === null) t.targetCpuPercentMean = s.gateway.cpuPercentMean;
  }
  return out;
}

interface StormBench {
  target: string;
  toys: number;
  /** Offered at 2,000/s: connects/s is capped there. */
  connectsPerSecInitial: number;
  initialConnected: number;
  stormAllBackMs: number;
  stormConnectsPerSec: number;
  back: number;
  failed: number;
  authFailures: number;
  reconnectP99Ms: number;
  heapPerToyBytes: number | null;
  rssPerToyBytes: number | null;
}

async function stormOn(target: Target): Promise<StormBench> {
  const o = opts(STORM_TOYS, { clipRate: 1, connectRate: 2000 });
  const fleet = buildFleet(o);
  if ('provision' in target) {
    await (target as ForkedGateway).provision(registrations(fleet));
  }
  const session = new Session(target, workerInits(fleet, target.info, pool, o));
  try {
    await session.start();
    await session.connect('parents', 2000, fleet.roster.families.length);
    await new Promise((r) => setTimeout(r, 1000));
    const before = session.sampleTarget();
    const t0 = performance.now();
    const c = await session.connect('toys', 2000, STORM_TOYS);
    const initialMs = performance.now() - t0;
    await new Promise((r) => setTimeout(r, 2000));
    const after = session.sampleTarget();
    log(`${target.info.kind}: ${c.ok} toys connected in ${(initialMs / 1000).toFixed(1)} s; storm`);
    const st = await session.storm(60_000);
    log(`${target.info.kind}: storm ${st.back}/${st.toys} back in ${st.allBackMs} ms`);
    const perToy = (a: number | null | undefined, b: number | null | undefined) =>
      a !== null && a !== undefined && b !== null && b !== undefined && c.ok > 0
        ? Math.round((b - a) / c.ok)
        : null;
    return {
      target: target.info.kind,
      toys: STORM_TOYS,
      connectsPerSecInitial: Math.round((c.ok / initialMs) * 1000),
      initialConnected: c.ok,
      stormAllBackMs: st.allBackMs,
      stormConnectsPerSec: st.connectsPerSec,
      back: st.back,
      failed: st.failed,
      authFailures: st.authFailures,
      reconnectP99Ms: st.connect.p99,
      heapPerToyBytes:
        target.resourceSource === 'process' ? perToy(before?.heapBytes, after?.heapBytes) : null,
      rssPerToyBytes: target.resourceSource === 'proc' ? perToy(before?.rssBytes, after?.rssBytes) : null,
    };
  } finally {
    await session.stop();
  }
}

const storeLatencies: Record<string, Record<string, Record<string, number | null> | null>> = {};
const profiles: { phase: string; top: { fn: string; ms: number; share: number }[] }[] = [];

async function withTarget<T>(start: () => Promise<Target>, fn: (t: Target) => Promise<T>): Promise<T> {
  const t = await start();
  try {
    return await fn(t);
  } finally {
    await t.close();
  }
}

async function main(): Promise<void> {
  const started = new Date().toISOString();
  const load0 = loadavg()[0] ?? 0;
  log(`gateway throughput (offered ${OFFERED}/s, ${THROUGHPUT_TOYS} toys, 8 s clips, --seal resign)`);
  const profDir = join(OUT_DIR, 'gateway-cpuprofile');
  rmSync(profDir, { recursive: true, force: true });
  mkdirSync(profDir, { recursive: true });
  const gw = want('gateway')
    ? await withTarget(
        () => startForkedGateway('gateway', { cpuProfDir: profDir }),
        (t) => throughputOn(t, OFFERED, [{ rate: OFFERED }, { rate: 'half' }]),
      )
    : [];
  const profFile = readdirSync(profDir)
    .filter((f) => f.endsWith('.cpuprofile'))
    .map((f) => join(profDir, f))
    .sort((a, b) => statSync(b).size - statSync(a).size)[0];
  if (profFile) {
    profiles.push({
      phase: `gateway process, whole throughput run (warm-up, ${OFFERED}/s offered, half rate): ${profFile}`,
      top: topFunctions(JSON.parse(readFileSync(profFile, 'utf8'))),
    });
  }
  const mosqBin = want('plain') ? findMosquitto() : null;
  const mosq = mosqBin
    ? await withTarget(
        () => startMosquitto(mosqBin),
        (t) => throughputOn(t, OFFERED, [{ rate: OFFERED }]),
      )
    : [];
  const aedesRelay = want('plain')
    ? await withTarget(
        () => startForkedGateway('aedes'),
        (t) => throughputOn(t, OFFERED, [{ rate: OFFERED }]),
      )
    : [];
  if (!want('storm')) {
    log(
      `--only ${ONLY}: ${JSON.stringify({ gateway: gw, mosquitto: mosq[0] ?? null, aedes: aedesRelay[0] ?? null, storeLatencies, profile: profiles[0]?.top.slice(0, 10) }, null, 1)}`,
    );
    return;
  }
  log(`reconnect storm with ${STORM_TOYS} toys`);
  const stormProf = ONLY === 'storm' ? { cpuProfDir: join(OUT_DIR, 'gateway-storm-cpuprofile') } : {};
  const gwStorm = await withTarget(() => startForkedGateway('gateway', stormProf), stormOn);
  const aedesStorm = await withTarget(() => startForkedGateway('aedes'), stormOn);

  const gMax = gw[0];
  const gHalf = gw[1];
  const m = mosq[0];
  const ratio = (a: number | undefined, b: number | undefined) => (a && b ? round(a / b, 3) : null);
  const result = {
    bench: 'plushlink gateway',
    startedAt: started,
    finishedAt: new Date().toISOString(),
    machine: {
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model ?? '?',
      memGiB: round(totalmem() / 2 ** 30),
      node: process.version,
      loadAvgAtStart: round(load0, 2),
      loadAvgAtEnd: round(loadavg()[0] ?? 0, 2),
    },
    setup: {
      quick: QUICK,
      generator:
        '2 worker threads in the bench process; the gateway and bare Aedes each run in a child process, Mosquitto in its own (loopback)',
      sealing:
        '--seal resign: per-clip header, sequence number and Ed25519 signature over a per-recipient sealed template',
      clipSeconds: 8,
      envelopeBytes: 'about 18.7 kB (Padmé bucket of an 8 s, 24 kbit/s Opus clip)',
    },
    throughput: {
      gateway: gMax,
      mosquitto: m ?? null,
      aedes: aedesRelay[0] ?? null,
      ratioVsMosquitto: ratio(gMax?.clipsPerSec, m?.clipsPerSec),
      target: '>= 0.5',
      met: (ratio(gMax?.clipsPerSec, m?.clipsPerSec) ?? 0) >= 0.5,
    },
    latencyAtHalfRate: {
      ...gHalf,
      target: 'e2e p99 < 25 ms',
      met: (gHalf?.e2eP99Ms ?? Number.POSITIVE_INFINITY) < 25,
    },
    connects: {
      gateway: gwStorm,
      aedesWithoutAuth: aedesStorm,
      ratioStormConnectsPerSec: ratio(gwStorm.stormConnectsPerSec, aedesStorm.stormConnectsPerSec),
      ratioInitialConnectsPerSec: ratio(gwStorm.connectsPerSecInitial, aedesStorm.connectsPerSecInitial),
      target: '>= 0.8',
      met: (ratio(gwStorm.stormConnectsPerSec, aedesStorm.stormConnectsPerSec) ?? 0) >= 0.8,
    },
    storm: {
      toys: STORM_TOYS,
      allBackMs: gwStorm.stormAllBackMs,
      target: `${STORM_TOYS} toys back < 5000 ms`,
      met: gwStorm.back === STORM_TOYS && gwStorm.stormAllBackMs < 5000,
    },
    memoryPerToy: {
      gatewayRssBytes: gwStorm.rssPerToyBytes,
      bareAedesRssBytes: aedesStorm.rssPerToyBytes,
      note: 'RSS growth of the gateway process (a child process of its own) while the toys connected, divided by the connected toys',
    },
    storeLatencyDuringThroughput: storeLatencies,
    profile: profiles,
  };
  mkdirSync(OUT_DIR, { recursive: true });
  const outFile = join(OUT_DIR, ONLY === null ? 'gateway.json' : `gateway-only-${ONLY}.json`);
  writeFileSync(outFile, `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(
    `${JSON.stringify({ throughput: result.throughput.ratioVsMosquitto, p99AtHalf: gHalf?.e2eP99Ms, connectsRatio: result.connects.ratioStormConnectsPerSec, stormMs: gwStorm.stormAllBackMs, rssPerToy: gwStorm.rssPerToyBytes }, null, 2)}\n`,
  );
  log(`wrote ${outFile}`);
}

await main();
