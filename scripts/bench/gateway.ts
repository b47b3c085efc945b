// Gateway benchmark (`npm run bench:gateway`): the gateway, bare Aedes and Mosquitto each pinned to core 0, the generator to core 1 — clips/s, CPU per clip, p99 at half rate, storms, memory per toy, and efficiency = floor ÷ clip cost.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Command, Option } from 'commander';
import { nodeFlags } from '../../platform/node-flags.ts';
import { summarize } from '../../sim/stats.ts';
import { intOption } from '../cli-util.ts';
import {
  acceptQueueText,
  listenerQueueFromSs,
  readTcpCounters,
  tcpCountersDelta,
} from '../loadtest/netstat.ts';
import { loadtestOptions } from '../loadtest/options.ts';
import { transitHoldText } from '../loadtest/report-text.ts';
import { audioPool, buildFleet, registrations, workerInits } from '../loadtest/runner.ts';
import { Session } from '../loadtest/session.ts';
import {
  benchCode,
  type ForkedGateway,
  findMosquitto,
  type ResourceSample,
  startForkedGateway,
  startMosquitto,
  type Target,
} from '../loadtest/targets.ts';
import type { LoadtestOptions } from '../loadtest/types.ts';
import type { FloorFigures } from './floor.ts';

const program = new Command('bench:gateway')
  .description(
    'the PlushLink gateway, bare Aedes and Mosquitto side by side, each pinned to core 0 with the generator on core 1: saturated clips/s, CPU per clip, e2e at half rate, the floor and efficiency, storms, memory per toy (docs/LOADTEST.md)',
  )
  .addOption(
    new Option(
      '--only <part>',
      'run a subset, for A/B work on one part (writes gateway-only-<part>.json)',
    ).choices(['gateway', 'plain', 'throughput', 'storm']),
  )
  .option(
    '--rate <n>',
    'clips/s offered in the throughput phase (default 4000, more than any contender takes; --quick 1000)',
    intOption('--rate', 1, 100_000),
  )
  .option('--quick', '100 toys for throughput, 1,000 for the storm, shorter phases')
  .option(
    '--cpu-prof',
    "run the gateway under node --cpu-prof and put its 15 largest self-time functions in the JSON; its figures then include the profiler's cost (its sampling thread took 4-5 % of the pinned core here)",
  )
  .parse();
const o = program.opts<{
  only?: 'gateway' | 'plain' | 'throughput' | 'storm';
  rate?: number;
  quick?: boolean;
  cpuProf?: boolean;
}>();
const QUICK = o.quick === true;
/** `--only throughput` / `--only gateway` / `--only storm`: run a subset (for A/B work on one part). */
const ONLY = o.only ?? null;
const CPU_PROF = o.cpuProf === true;
const want = (part: 'gateway' | 'plain' | 'storm'): boolean =>
  ONLY === null || ONLY === part || (ONLY === 'throughput' && part !== 'storm');
const STORM_TOYS = QUICK ? 1000 : 10_000;
const THROUGHPUT_TOYS = QUICK ? 100 : 400;
/** The envelope size the floor is measured with (an 8 s clip's, like the generator's). */
const ENVELOPE_BYTES = 18_700;
/** Largest change of one verification's time between before and after the runs that still leaves the ratios meaningful. */
const MAX_SPEED_DRIFT = 0.1;

/** `--rate N`: offer N clips/s in the throughput phase instead of more than either side can take. */
const OFFERED = o.rate ?? (QUICK ? 1000 : 4000);
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
/**
 * [PLK-12.9] Of the clips forwarded before their commit in a phase, the shares whose commit stored
 * no body (every recipient receipted in transit), some deliveries, or all; null for other systems.
 */
function transitShares(
  c0: Record<string, number> | null,
  c1: Record<string, number> | null,
): { clips: number; none: number; some: number; all: number } | null {
  if (!c0 || !c1) return null;
  const d = (stored: string) => {
    const k = `plushlink_gateway_transit_total{stored=${stored}}`;
    return (c1[k] ?? 0) - (c0[k] ?? 0);
  };
  const [none, some, all] = [d('none'), d('some'), d('all')];
  const clips = none + some + all;
  if (clips === 0) return { clips, none: 0, some: 0, all: 0 };
  return { clips, none: round(none / clips, 3), some: round(some / clips, 3), all: round(all / clips, 3) };
}

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
  e2eP50Ms: number;
  e2eP99Ms: number;
  pubackP99Ms: number;
  targetCpuPercentMean: number | null;
  /** CPU time of the target process (all threads, /proc) per acknowledged clip, µs. */
  cpuUsPerClip: number | null;
  generatorVerdict: string;
  /** Embedded gateway: its event-loop stalls during the phase (ms). */
  gatewayEventLoopLagMaxMs: number | null;
  /** Store writes per durable commit during the phase (the gateway's group-commit size). */
  groupSize: number | null;
  /** [PLK-12.9] Clips forwarded before their commit, and the shares by what their commit stored. */
  transit: { clips: number; none: number; some: number; all: number } | null;
  /** The generator's own event-loop lag p99 during the phase (ms): latency it adds to e2e itself. */
  generatorLagP99Ms: number | null;
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
      const commits0 = await target.counters();
      const cpu0 = target.sample();
      const t0 = performance.now();
      await session.run(r, 0, PHASE_MS, `${target.info.kind} ${Math.round(r)}/s`);
      const wall = performance.now() - t0;
      const cpu1 = target.sample();
      const commits1 = await target.counters();
      const dCommits = (commits1?.store_commits ?? 0) - (commits0?.store_commits ?? 0);
      const dJobs = (commits1?.store_commit_jobs ?? 0) - (commits0?.store_commit_jobs ?? 0);
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
        e2eP50Ms: e2e.p50,
        e2eP99Ms: e2e.p99,
        cpuUsPerClip:
          cpu0 && cpu1 && target.resourceSource === 'proc' && acked > 0
            ? Math.round(((cpu1.cpuMs - cpu0.cpuMs) * 1000) / acked)
            : null,
        pubackP99Ms: pub.p99,
        targetCpuPercentMean: cpuPct,
        generatorVerdict: '',
        gatewayEventLoopLagMaxMs: null,
        groupSize: dCommits > 0 ? round(dJobs / dCommits, 1) : null,
        transit: transitShares(commits0, commits1),
        generatorLagP99Ms: (() => {
          const lags = session.timeline
            .filter((x) => x.phase === `${target.info.kind} ${Math.round(r)}/s`)
            .map((x) => x.generatorLagP99Ms)
            .filter((x): x is number => typeof x === 'number')
            .sort((a, b) => a - b);
          return lags.length > 0 ? (lags[Math.floor(lags.length / 2)] ?? null) : null;
        })(),
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
    if (counters?.store_commits)
      groupSizes[target.info.kind] = round((counters.store_commit_jobs ?? 0) / counters.store_commits, 1);
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
  /** CPU of the system under test per connect (its pinned core), initial connects and storm; null unless read from /proc. */
  cpuUsPerConnectInitial: number | null;
  cpuUsPerConnectStorm: number | null;
  /** The generator's CPU (this process, all worker threads) in % of its one pinned core, initial connects and storm. */
  generatorCpuPercentInitial: number;
  generatorCpuPercentStorm: number;
  /** Which side limited the connect rate: the generator at >= 90 % of its core, else the system under test. */
  limitedBy: 'generator' | 'system under test';
  /** The accept queue the kernel granted the listener (its backlog capped by net.core.somaxconn; `ss`), or null. */
  acceptQueue: number | null;
  /** Connection attempts the kernel dropped at the full accept queue (/proc/net/netstat), initial connects and storm. */
  listenOverflowsInitial: number | null;
  listenOverflowsStorm: number | null;
  /** SYNs the toys sent again during the storm: time spent in TCP back-off, not in the system under test. */
  synRetransmitsStorm: number | null;
  /** The share of the storm's wall time the system under test's core was busy (its CPU from /proc), %. */
  busyPercentStorm: number | null;
}

/** The backlog the kernel granted the listener behind `url` (mqtt://host:port), from `ss`; null without it. */
function acceptQueueOf(url: string): number | null {
  const port = Number(new URL(url).port);
  const r = spawnSync('ss', ['-ltnH'], { encoding: 'latin1' });
  return r.status === 0 && Number.isSafeInteger(port) ? listenerQueueFromSs(r.stdout, port) : null;
}

/** CPU this process used since `since` (process.cpuUsage), in % of `wallMs` on one core. */
const generatorPercent = (since: NodeJS.CpuUsage, wallMs: number): number => {
  const d = process.cpuUsage(since);
  return round(((d.user + d.system) / 1000 / wallMs) * 100);
};

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
    const acceptQueue = acceptQueueOf(target.info.url);
    const before = session.sampleTarget();
    const gen0 = process.cpuUsage();
    const tcp0 = readTcpCounters();
    const t0 = performance.now();
    const c = await session.connect('toys', 2000, STORM_TOYS);
    const initialMs = performance.now() - t0;
    const tcpInitial = tcpCountersDelta(tcp0, readTcpCounters());
    const genInitial = generatorPercent(gen0, initialMs);
    const connected = session.sampleTarget();
    await new Promise((r) => setTimeout(r, 2000));
    const after = session.sampleTarget();
    log(`${target.info.kind}: ${c.ok} toys connected in ${(initialMs / 1000).toFixed(1)} s; storm`);
    const gen1 = process.cpuUsage();
    const s0 = session.sampleTarget();
    const tcp1 = readTcpCounters();
    const t1 = performance.now();
    const st = await session.storm(60_000);
    const stormWallMs = performance.now() - t1;
    const genStorm = generatorPercent(gen1, stormWallMs);
    const s1 = session.sampleTarget();
    const tcpStorm = tcpCountersDelta(tcp1, readTcpCounters());
    const busyPercentStorm =
      s0 && s1 && target.resourceSource === 'proc' && stormWallMs > 0
        ? round(((s1.cpuMs - s0.cpuMs) / stormWallMs) * 100)
        : null;
    const perConnect = (a: ResourceSample | null, b: ResourceSample | null, n: number) =>
      a && b && n > 0 && target.resourceSource === 'proc'
        ? Math.round(((b.cpuMs - a.cpuMs) * 1000) / n)
        : null;
    const limitedBy = Math.max(genInitial, genStorm) >= 90 ? 'generator' : 'system under test';
    log(
      `${target.info.kind}: storm ${st.back}/${st.toys} back in ${st.allBackMs} ms; CPU per connect ${perConnect(before, connected, c.ok) ?? '?'} µs initial, ${perConnect(s0, s1, st.back) ?? '?'} µs storm; generator at ${genInitial} % / ${genStorm} % of its core (${limitedBy === 'generator' ? "generator-bound: the rates are a lower bound of the target's" : 'the target limited them'})`,
    );
    const waited = acceptQueueText(tcpStorm, acceptQueue);
    log(
      `${target.info.kind}: its core was busy ${busyPercentStorm ?? '?'} % of the storm${waited ? `; ${waited}` : ''}`,
    );
    const perToy = (a: number | null | undefined, b: number | null | undefined) =>
      a !== null && a !== undefined && b !== null && b !== undefined && c.ok > 0
        ? Math.round((b - a) / c.ok)
        : null;
    return {
      cpuUsPerConnectInitial: perConnect(before, connected, c.ok),
      cpuUsPerConnectStorm: perConnect(s0, s1, st.back),
      generatorCpuPercentInitial: genInitial,
      generatorCpuPercentStorm: genStorm,
      limitedBy,
      acceptQueue,
      listenOverflowsInitial: tcpInitial?.listenOverflows ?? null,
      listenOverflowsStorm: tcpStorm?.listenOverflows ?? null,
      synRetransmitsStorm: tcpStorm?.synRetransmits ?? null,
      busyPercentStorm,
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

/** An empty `bench-results/<name>` for this run's CPU profiles (created only with --cpu-prof), so no earlier run's profile is read. */
function freshProfileDir(name: string): string {
  const dir = join(OUT_DIR, name);
  rmSync(dir, { recursive: true, force: true });
  if (CPU_PROF) mkdirSync(dir, { recursive: true });
  return dir;
}

/** Puts the 15 largest self-time functions of the main thread's profile in `dir` (its largest file) into the JSON. */
function addProfile(dir: string, phase: string): void {
  if (!CPU_PROF) return;
  const file = readdirSync(dir)
    .filter((f) => f.endsWith('.cpuprofile'))
    .map((f) => join(dir, f))
    .sort((a, b) => statSync(b).size - statSync(a).size)[0];
  if (file)
    profiles.push({ phase: `${phase}: ${file}`, top: topFunctions(JSON.parse(readFileSync(file, 'utf8'))) });
}

async function withTarget<T>(start: () => Promise<Target>, fn: (t: Target) => Promise<T>): Promise<T> {
  const t = await start();
  try {
    return await fn(t);
  } finally {
    await t.close();
  }
}

/** Pins `pid` (all its threads) to `core`; false when taskset is missing or refuses. */
function pin(pid: number | undefined, core: number): boolean {
  if (!pid) return false;
  return spawnSync('taskset', ['-a', '-cp', String(core), String(pid)], { stdio: 'ignore' }).status === 0;
}

/** Starts a target and pins its process to the system-under-test core. */
async function pinned(start: () => Promise<Target>): Promise<Target> {
  const t = await start();
  const ok = pin(t.pid, SUT_CORE);
  pinnedAll &&= ok;
  if (t.info.mode === 'gateway' && t.info.transitHoldMs !== undefined) {
    transitHoldMs = t.info.transitHoldMs;
    log(`gateway: ${transitHoldText({ kind: t.info.kind, url: t.info.url, transitHoldMs })}`);
  }
  return t;
}

const SUT_CORE = 0;
const GENERATOR_CORE = 1;
let pinnedAll = true;
/** taskset works: each system under test will run on one core, so it starts with ONE_CORE_FLAGS. */
let oneCore = false;
/**
 * The forked gateway and bare Aedes run from dist/, compiled by tsc at the start of the run (the code
 * `plushlink gateway` runs), unless PLK_BENCH_FROM_SOURCE=1 or the build failed: then from source
 * through tsx, whose transform adds an `Object.defineProperty` per closure created. Recorded in setup.
 */
let compiled = false;
let codeNote = '';
/** The gateway's hold for clips in transit [PLK-12.9] (PLK_LOADTEST_TRANSIT_HOLD_MS), null when off; recorded in setup. */
let transitHoldMs: number | null | undefined;
const transitSetup = (): { transitHoldMs?: number | null } =>
  transitHoldMs === undefined ? {} : { transitHoldMs };
const groupSizes: Record<string, number | null> = {};

/** The floor figures, measured in a child pinned to the gateway's core. */
function floorFigures(envelopeBytes: number, groupSize: number): FloorFigures | null {
  const r = spawnSync(
    'taskset',
    [
      '-c',
      String(SUT_CORE),
      process.execPath,
      '--import',
      'tsx',
      join(import.meta.dirname, 'floor.ts'),
      String(envelopeBytes),
      String(groupSize),
    ],
    { encoding: 'utf8', timeout: 120_000 },
  );
  if (r.status !== 0) {
    const plain = spawnSync(
      process.execPath,
      ['--import', 'tsx', join(import.meta.dirname, 'floor.ts'), String(envelopeBytes), String(groupSize)],
      { encoding: 'utf8', timeout: 120_000 },
    );
    if (plain.status !== 0) return null;
    return JSON.parse(plain.stdout) as FloorFigures;
  }
  return JSON.parse(r.stdout) as FloorFigures;
}

async function main(): Promise<void> {
  const started = new Date().toISOString();
  const load0 = loadavg()[0] ?? 0;
  const generatorPinned = pin(process.pid, GENERATOR_CORE);
  pinnedAll &&= generatorPinned;
  oneCore = generatorPinned;
  ({ compiled, note: codeNote } = benchCode());
  log(`systems under test run ${codeNote}`);
  log(
    `gateway throughput (offered ${OFFERED}/s, ${THROUGHPUT_TOYS} toys, 8 s clips, --seal resign); ${generatorPinned ? `systems under test on core ${SUT_CORE}, generator on core ${GENERATOR_CORE}` : 'taskset unavailable: NOT pinned'}`,
  );
  // The profiler is opt-in (--cpu-prof): its sampling thread alone took 4-5 % of the pinned core
  // (/proc/<pid>/task, at 400-1,000 clips/s), CPU that bare Aedes and Mosquitto never pay.
  const profDir = freshProfileDir('gateway-cpuprofile');
  const both = [{ rate: OFFERED }, { rate: 'half' as const }];
  // The VM's own speed drifts by tens of percent within minutes here: one verification measured
  // before the gateway's phases, and again with the floor after all throughput runs, says whether
  // the unit held still (the ratios divide CPU measured at one moment by a unit from another).
  const probeBefore = want('gateway') ? floorFigures(ENVELOPE_BYTES, 1) : null;
  const gw = want('gateway')
    ? await withTarget(
        () =>
          pinned(() =>
            startForkedGateway('gateway', {
              ...(CPU_PROF ? { cpuProfDir: profDir } : {}),
              oneCore,
              compiled,
            }),
          ),
        (t) => throughputOn(t, OFFERED, both),
      )
    : [];
  addProfile(profDir, `gateway process, whole throughput run (warm-up, ${OFFERED}/s offered, half rate)`);
  // Bare Aedes also runs at the gateway's own half rate: its CPU per message grows as the rate
  // falls (fewer messages share each event-loop turn, read and writev), so the half-rate floor
  // compares like with like.
  const aedesPhases = gw[1] ? [...both, { rate: gw[1].offeredPerSec }] : both;
  const aedesRelay = want('plain')
    ? await withTarget(
        () => pinned(() => startForkedGateway('aedes', { oneCore, compiled })),
        (t) => throughputOn(t, OFFERED, aedesPhases),
      )
    : [];
  const mosqBin = want('plain') ? findMosquitto() : null;
  const mosq = mosqBin
    ? await withTarget(
        () => pinned(() => startMosquitto(mosqBin)),
        (t) => throughputOn(t, OFFERED, both),
      )
    : [];

  // The floor [issue 13]: the work no gateway can skip, in units of one envelope verification.
  // The durable append is amortised over the group size the gateway itself reached in each phase.
  const floor = floorFigures(ENVELOPE_BYTES, gw[0]?.groupSize ?? groupSizes.forked ?? 1);
  const floorHalf = floorFigures(ENVELOPE_BYTES, gw[1]?.groupSize ?? groupSizes.forked ?? 1);
  const speedDrift =
    floor && probeBefore ? round(floor.envelopeVerifyUs / probeBefore.envelopeVerifyUs, 3) : null;
  const drifted = speedDrift !== null && Math.abs(speedDrift - 1) > MAX_SPEED_DRIFT;
  if (probeBefore && floor)
    log(
      `one envelope verification: ${probeBefore.envelopeVerifyUs} µs before the gateway's phases, ${floor.envelopeVerifyUs} µs after the throughput runs (×${speedDrift})${drifted ? ` — the machine's speed drifted by more than ${MAX_SPEED_DRIFT * 100} %: clip cost, floor and efficiency are uncertain in this run; run again` : ''}`,
    );
  const aedesUsPerMessage = aedesRelay[0]?.cpuUsPerClip ?? null;
  const aedesUsAtGatewayHalf = aedesRelay[2]?.cpuUsPerClip ?? aedesUsPerMessage;
  const efficiencyAt = (
    t: Throughput | undefined,
    floor: FloorFigures | null,
    aedesUsPerMessage: number | null,
  ) => {
    if (!floor || !t || t.cpuUsPerClip === null || aedesUsPerMessage === null) return null;
    const unit = floor.envelopeVerifyUs;
    const floorUnits =
      (floor.envelopeVerifyUs + floor.receiptVerifyUs + aedesUsPerMessage + floor.durableAppendUs) / unit;
    const clipCost = t.cpuUsPerClip / unit;
    return {
      clipCost: round(clipCost, 2),
      floor: round(floorUnits, 2),
      efficiency: round(floorUnits / clipCost, 3),
    };
  };
  const effMax = efficiencyAt(gw[0], floor, aedesUsPerMessage);
  const effHalf = efficiencyAt(gw[1], floorHalf, aedesUsAtGatewayHalf);
  if (floor) {
    const notRun = `not measured (bare Aedes did not run${ONLY ? `: --only ${ONLY}` : ''})`;
    log(
      `floor per clip: envelope verify ${floor.envelopeVerifyUs} µs, receipt verify ${floor.receiptVerifyUs} µs, bare Aedes relay ${aedesUsPerMessage === null ? notRun : `${aedesUsPerMessage} µs`}, durable append ${floor.durableAppendUs} µs (group of ${floor.groupSize})`,
    );
    if (floorHalf)
      log(
        `at half rate (${gw[1] ? Math.round(gw[1].offeredPerSec) : '?'}/s): durable append ${floorHalf.durableAppendUs} µs (group of ${floorHalf.groupSize}), bare Aedes relay ${aedesUsAtGatewayHalf === null ? notRun : `${aedesUsAtGatewayHalf} µs at the same rate`}`,
      );
    const eff = (e: typeof effMax): string =>
      e ? JSON.stringify(e) : aedesUsPerMessage === null ? `${notRun}, so no floor` : 'not measured';
    log(`efficiency at saturation ${eff(effMax)}, at half rate ${eff(effHalf)}`);
  }

  if (!want('storm')) {
    const partial = {
      bench: 'plushlink gateway',
      only: ONLY,
      startedAt: started,
      finishedAt: new Date().toISOString(),
      setup: {
        quick: QUICK,
        pinned: pinnedAll,
        offeredPerSec: OFFERED,
        nodeFlags: nodeFlags(process.env, { oneCore }),
        gatewayCode: codeNote,
        cpuProfiler: CPU_PROF,
        ...transitSetup(),
      },
      gateway: gw,
      mosquitto: mosq[0] ?? null,
      aedes: aedesRelay[0] ?? null,
      floor: floor
        ? { ...floor, envelopeVerifyBeforeUs: probeBefore?.envelopeVerifyUs ?? null, speedDrift }
        : null,
      efficiency: { saturation: effMax, halfRate: effHalf },
      storeLatencies,
      profile: profiles[0]?.top.slice(0, 10),
    };
    log(`--only ${ONLY}: ${JSON.stringify(partial, null, 1)}`);
    mkdirSync(OUT_DIR, { recursive: true });
    const outFile = join(OUT_DIR, `gateway-only-${ONLY}.json`);
    writeFileSync(outFile, `${JSON.stringify(partial, null, 2)}\n`);
    log(`wrote ${outFile}`);
    return;
  }
  log(`reconnect storm with ${STORM_TOYS} toys`);
  const stormProfDir = freshProfileDir('gateway-storm-cpuprofile');
  const gwStorm = await withTarget(
    () =>
      pinned(() =>
        startForkedGateway('gateway', {
          ...(CPU_PROF ? { cpuProfDir: stormProfDir } : {}),
          oneCore,
          compiled,
        }),
      ),
    stormOn,
  );
  addProfile(stormProfDir, 'gateway process, whole storm run (provisioning, initial connects, storm)');
  const aedesStorm = await withTarget(
    () => pinned(() => startForkedGateway('aedes', { oneCore, compiled })),
    stormOn,
  );
  const mosqStorm = mosqBin ? await withTarget(() => pinned(() => startMosquitto(mosqBin)), stormOn) : null;

  const gMax = gw[0];
  const gHalf = gw[1];
  const m = mosq[0];
  const ratio = (a: number | null | undefined, b: number | null | undefined) =>
    a && b ? round(a / b, 3) : null;
  const floorRate =
    floor && aedesUsPerMessage !== null
      ? Math.round(
          1e6 / (floor.envelopeVerifyUs + floor.receiptVerifyUs + aedesUsPerMessage + floor.durableAppendUs),
        )
      : null;
  const limitedBy = (t: Throughput | undefined): string => {
    if (!t) return 'not measured';
    if (/generator-bound/.test(t.generatorVerdict)) return 'generator';
    if (t.clipsPerSec >= 0.97 * t.offeredPerSec) return 'offered load (neither saturated)';
    return 'the system under test (its core)';
  };
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
      pinned: pinnedAll,
      /** The Node flags of the forked gateway and bare Aedes (platform/node-flags.ts, PLK_NODE_FLAGS). */
      nodeFlags: nodeFlags(process.env, { oneCore }),
      /** How the forked gateway and bare Aedes ran: compiled (dist/) or from source through tsx. */
      gatewayCode: codeNote,
      /** --cpu-prof: the gateway ran under the V8 profiler, whose cost is in its figures. */
      cpuProfiler: CPU_PROF,
      ...transitSetup(),
      pinning: pinnedAll
        ? `every system under test (PlushLink gateway, bare Aedes, Mosquitto) on core ${SUT_CORE}, the generator (this process and its worker threads) on core ${GENERATOR_CORE} (taskset)`
        : 'taskset unavailable or refused: NOT pinned, the generator and the system under test share the cores',
      generator:
        '2 worker threads in the bench process; each system under test in a child process of its own (loopback)',
      sealing:
        '--seal resign: per-clip header, sequence number and Ed25519 signature over a per-recipient sealed template',
      clipSeconds: 8,
      envelopeBytes: 'about 18.7 kB (Padmé bucket of an 8 s, 24 kbit/s Opus clip)',
    },
    throughput: {
      gateway: gMax,
      aedes: aedesRelay[0] ?? null,
      mosquitto: m ?? null,
      ratioVsMosquitto: ratio(gMax?.clipsPerSec, m?.clipsPerSec),
      ratioVsAedes: ratio(gMax?.clipsPerSec, aedesRelay[0]?.clipsPerSec),
      floorRatePerSec: floorRate,
      limitedBy: { gateway: limitedBy(gMax), aedes: limitedBy(aedesRelay[0]), mosquitto: limitedBy(m) },
    },
    halfRate: { gateway: gHalf ?? null, aedes: aedesRelay[1] ?? null, mosquitto: mosq[1] ?? null },
    latencyAtHalfRate: {
      ...gHalf,
      target: 'e2e p99 < 25 ms',
      met: (gHalf?.e2eP99Ms ?? Number.POSITIVE_INFINITY) < 25,
    },
    floorAtHalfRate: floorHalf
      ? {
          ...floorHalf,
          aedesRelayUsPerMessage: aedesUsAtGatewayHalf,
          aedesRelayAtRate: aedesRelay[2]?.offeredPerSec ?? null,
        }
      : null,
    floor: floor
      ? {
          ...floor,
          envelopeVerifyBeforeUs: probeBefore?.envelopeVerifyUs ?? null,
          speedDrift,
          speedDriftTooLarge: drifted,
          aedesRelayUsPerMessage: aedesUsPerMessage,
          unit: 'one Ed25519 verification of the envelope, CPU on the system-under-test core',
        }
      : null,
    clipCost: effMax?.clipCost ?? null,
    efficiency: effMax?.efficiency ?? null,
    efficiencyAtHalfRate: effHalf,
    efficiencyTarget: '>= 0.8 at saturation and at half rate',
    connects: {
      gateway: gwStorm,
      aedesWithoutAuth: aedesStorm,
      mosquittoWithoutAuth: mosqStorm,
      ratioStormConnectsPerSec: ratio(gwStorm.stormConnectsPerSec, aedesStorm.stormConnectsPerSec),
      ratioInitialConnectsPerSec: ratio(gwStorm.connectsPerSecInitial, aedesStorm.connectsPerSecInitial),
      // What the pinned core could do if the generator kept up: bare Aedes's CPU per connect over
      // the gateway's (a generator-bound storm measures the generator, not the gateway).
      ratioCpuPerConnectStorm: ratio(aedesStorm.cpuUsPerConnectStorm, gwStorm.cpuUsPerConnectStorm),
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
      mosquittoRssBytes: mosqStorm?.rssPerToyBytes ?? null,
      target: '<= 20 kB per connected toy',
      note: 'RSS growth of the process under test while the toys connected, divided by the connected toys',
    },
    groupCommit: groupSizes,
    storeLatencyDuringThroughput: storeLatencies,
    profile: profiles,
  };
  mkdirSync(OUT_DIR, { recursive: true });
  const outFile = join(OUT_DIR, ONLY === null ? 'gateway.json' : `gateway-only-${ONLY}.json`);
  writeFileSync(outFile, `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(
    `${JSON.stringify({ pinned: pinnedAll, clipCost: result.clipCost, floor: result.floor ? effMax?.floor : null, efficiency: result.efficiency, efficiencyAtHalfRate: effHalf?.efficiency ?? null, speedDrift, clipsPerSec: { gateway: gMax?.clipsPerSec, aedes: aedesRelay[0]?.clipsPerSec, mosquitto: m?.clipsPerSec, floorRate }, p99AtHalf: gHalf?.e2eP99Ms, connectsRatio: result.connects.ratioStormConnectsPerSec, connectsCpuRatio: result.connects.ratioCpuPerConnectStorm, stormMs: gwStorm.stormAllBackMs, rssPerToy: gwStorm.rssPerToyBytes }, null, 2)}\n`,
  );
  log(`wrote ${outFile}`);
}

await main();
