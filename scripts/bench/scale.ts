// Scale-out benchmark (`npm run bench:scale`): one gateway node vs two on shared PostgreSQL and Redis (and the embedded SQLite node for reference) — clips/s, p99, storm recovery, CPU per clip by process, Redis ops and PostgreSQL writes per clip.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import pg from 'pg';
import { registerFamilies } from '../../gateway/admin.ts';
import { openClusterAdmin } from '../../gateway/cluster/admin.ts';
import { writeKeyDir } from '../../platform/keyfiles.ts';
import { generateIdentity, publicPart } from '../../shared/identity.ts';
import { summarize } from '../../sim/stats.ts';
import { startPostgres, startRedis, stopPid } from '../../test/helpers/engines.ts';
import { loadtestOptions } from '../loadtest/options.ts';
import { audioPool, buildFleet, registrations, workerInits } from '../loadtest/runner.ts';
import { Session } from '../loadtest/session.ts';
import { type ForkedGateway, procSample, startForkedGateway, type Target } from '../loadtest/targets.ts';
import type { LoadtestOptions } from '../loadtest/types.ts';

const args = process.argv.slice(2);
const QUICK = args.includes('--quick');
const argValue = (name: string): string | null => {
  const i = args.indexOf(name);
  return i >= 0 ? (args[i + 1] ?? null) : null;
};
const TOYS = QUICK ? 100 : 400;
const STORM_TOYS = Number(argValue('--storm-toys') ?? (QUICK ? 500 : 2000));
const OFFERED = Number(argValue('--rate') ?? (QUICK ? 800 : 3000));
const PHASE_MS = QUICK ? 4000 : 8000;
const CLIP_SECONDS = 8;
const OUT_DIR = join(process.cwd(), 'bench-results');
/**
 * --pin: the load generator (this process and its worker threads) on CPU 0, everything under test
 * (gateway nodes, PostgreSQL, Redis) on CPU 1 — as bench:gateway pins. Fair for CPU per clip and
 * for one node's ceiling on one core; two nodes then share that one core, so the pinned two-node
 * figure measures the cluster's overhead, not its scaling. Unpinned (the default), every process
 * shares both cores and the scheduler decides.
 */
const PIN = args.includes('--pin') && cpus().length >= 2;
const SUT_CPU = '1';

/** Moves every thread of `pid` (and what it forks later) onto `cpu`. */
function pin(pid: number | undefined, cpu: string): void {
  if (!PIN || pid === undefined) return;
  const r = spawnSync('taskset', ['-a', '-p', '-c', cpu, String(pid)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`taskset -p -c ${cpu} ${pid}: ${r.stderr || r.error}`);
}
const CLI = join(import.meta.dirname, '..', 'cli.ts');

const log = (s: string): void => {
  process.stderr.write(`[bench:scale ${(performance.now() / 1000).toFixed(0)}s] ${s}\n`);
};
const round = (x: number, d = 1): number => Math.round(x * 10 ** d) / 10 ** d;

function opts(toys: number, extra: Partial<LoadtestOptions> = {}): LoadtestOptions {
  return loadtestOptions({
    toys,
    connectRate: 2000,
    clipRate: OFFERED,
    durationMs: PHASE_MS,
    seed: 'bench-scale',
    seal: 'resign',
    maxInflight: 1500,
    progress: false,
    ...extra,
  });
}

/** CPU ms of every process whose parent is `pid`, and of `pid` itself (PostgreSQL's backends). */
function treeCpuMs(pid: number): number {
  let ms = procSample(pid)?.cpuMs ?? 0;
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'latin1');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(f[1]) === pid) ms += (Number(f[11]) + Number(f[12])) * 10;
    } catch {
      // gone meanwhile
    }
  }
  return ms;
}

function ownCpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

interface Engines {
  readonly pgUrl: string;
  readonly redisUrl: string;
  readonly pgPid: () => number | undefined;
  readonly redisPid: () => number | undefined;
  destroy(): Promise<void>;
}

/** PostgreSQL and Redis counters: commits, rows, WAL, and Redis commands by name. */
interface EngineCounters {
  xactCommit: number;
  tupInserted: number;
  tupUpdated: number;
  tupDeleted: number;
  walBytes: number;
  walRecords: number;
  walSync: number;
  redisCalls: Record<string, number>;
  /** Rows inserted + updated + deleted, by table of the gateway schemas (TOAST chunks of the envelopes included). */
  tableRows: Record<string, number>;
  redisUsedMemory: number;
}

async function engineCounters(db: pg.Client, redis: Redis): Promise<EngineCounters> {
  const d = (
    await db.query<{ c: string; i: string; u: string; dl: string }>(
      "SELECT xact_commit AS c, tup_inserted AS i, tup_updated AS u, tup_deleted AS dl FROM pg_stat_database WHERE datname = 'postgres'",
    )
  ).rows[0]!;
  const w = (
    await db.query<{ b: string; r: string; s: string }>(
      'SELECT wal_bytes AS b, wal_records AS r, wal_sync AS s FROM pg_stat_wal',
    )
  ).rows[0]!;
  const tables = await db.query<{ t: string; n: string }>(
    `SELECT CASE WHEN s.relname LIKE 'pg_toast%' THEN 'toast (envelope chunks)' ELSE s.relname END AS t,
            sum(s.n_tup_ins + s.n_tup_upd + s.n_tup_del) AS n
       FROM pg_stat_all_tables s
      WHERE s.schemaname LIKE 'bench%' OR s.schemaname = 'pg_toast'
      GROUP BY 1`,
  );
  const tableRows: Record<string, number> = {};
  for (const r of tables.rows) tableRows[r.t] = Number(r.n);
  const mem = /^used_memory:(\d+)/m.exec(await redis.info('memory'));
  const info = await redis.info('commandstats');
  const redisCalls: Record<string, number> = {};
  for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) redisCalls[m[1]!] = Number(m[2]);
  return {
    xactCommit: Number(d.c),
    tupInserted: Number(d.i),
    tupUpdated: Number(d.u),
    tupDeleted: Number(d.dl),
    walBytes: Number(w.b),
    walRecords: Number(w.r),
    walSync: Number(w.s),
    redisCalls,
    tableRows,
    redisUsedMemory: Number(mem?.[1] ?? 0),
  };
}

function perClip(a: EngineCounters, b: EngineCounters, clips: number) {
  if (clips <= 0) return null;
  const calls: Record<string, number> = {};
  let total = 0;
  for (const [k, v] of Object.entries(b.redisCalls)) {
    if (k === 'info' || k === 'client|setname' || k === 'select') continue;
    const n = v - (a.redisCalls[k] ?? 0);
    if (n > 0) {
      calls[k] = round(n / clips, 2);
      total += n;
    }
  }
  const rows: Record<string, number> = {};
  for (const [k, v] of Object.entries(b.tableRows)) {
    const n = v - (a.tableRows[k] ?? 0);
    if (n > 0) rows[k] = round(n / clips, 2);
  }
  const trips = (names: readonly string[]): number =>
    round(names.reduce((acc, k) => acc + ((b.redisCalls[k] ?? 0) - (a.redisCalls[k] ?? 0)), 0) / clips, 2);
  return {
    /** Commands Redis executed, those inside the Lua scripts included (commandstats counts both). */
    redisOps: round(total / clips, 2),
    redisOpsByCommand: calls,
    /** Round trips of the gateway's own: one script call per nonce / rate-limit check. */
    redisScriptCalls: trips(['evalsha', 'eval']),
    /** Pub/sub messages onto the bus (a clip or receipt for an endpoint connected to another node). */
    redisPublishes: trips(['publish']),
    pgRowsByTable: rows,
    /** Transactions, read-only ones included (pg_stat_database.xact_commit). */
    pgCommits: round((b.xactCommit - a.xactCommit) / clips, 3),
    pgRowsWritten: round(
      (b.tupInserted - a.tupInserted + b.tupUpdated - a.tupUpdated + b.tupDeleted - a.tupDeleted) / clips,
      2,
    ),
    pgWalBytes: Math.round((b.walBytes - a.walBytes) / clips),
    pgWalRecords: round((b.walRecords - a.walRecords) / clips, 1),
    pgWalSyncs: round((b.walSync - a.walSync) / clips, 3),
  };
}

interface Node {
  readonly child: ChildProcess;
  readonly url: string;
  readonly pid: number;
}

/** `plushlink gateway --postgres --redis` in a child process (from source, so it is never stale). */
async function startNode(dir: string, engines: Engines, schema: string): Promise<Node> {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      CLI,
      'gateway',
      '--data',
      dir,
      '--port',
      '0',
      '--postgres',
      engines.pgUrl,
      '--pg-schema',
      schema,
      '--redis',
      engines.redisUrl,
      '--connect-rate',
      '1000000',
      '--clip-rate',
      '10000',
      '--clip-burst',
      '10000',
      '--byte-rate',
      '1000000000',
      '--token-window',
      '600s',
      '--log-level',
      'error',
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /port=(\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`gateway node exited with ${code}`)));
  });
  pin(child.pid, SUT_CPU);
  return { child, url: `mqtt://127.0.0.1:${port}`, pid: child.pid! };
}

interface Config {
  readonly name: string;
  readonly target: Target;
  readonly nodes: readonly Node[];
  /** Counted as "the gateway" in CPU per clip (nodes, or the embedded gateway's process). */
  readonly gatewayPids: readonly number[];
  readonly cluster: boolean;
  close(): Promise<void>;
}

async function clusterConfig(
  engines: Engines,
  nodes: number,
  schema: string,
  fleetRegs: Parameters<typeof registerFamilies>[2],
): Promise<Config> {
  const base = mkdtempSync(join(tmpdir(), 'plk-bench-scale-'));
  const gw = generateIdentity('gateway');
  await writeKeyDir(join(base, 'key', 'gateway'), gw);
  const admin = await openClusterAdmin(join(base, 'key'), {
    postgres: engines.pgUrl,
    schema,
    create: true,
    gatewayKey: join(base, 'key', 'gateway'),
  });
  await admin.store.setMeta('gateway_id', gw.id);
  await registerFamilies(admin.store, admin.audit, fleetRegs, { source: 'bench' });
  await admin.close();
  const list: Node[] = [];
  for (let i = 0; i < nodes; i++) {
    const dir = join(base, `node${i}`);
    cpSync(join(base, 'key', 'gateway'), join(dir, 'gateway'), { recursive: true });
    list.push(await startNode(dir, engines, schema));
  }
  const pids = list.map((n) => n.pid);
  const target: Target = {
    info: {
      kind: 'external',
      mode: 'gateway',
      url: list[0]!.url,
      ...(list.length > 1 ? { urls: list.map((n) => n.url) } : {}),
      gatewayId: gw.id,
      gatewaySignPublicKey: publicPart(gw).signPublicKey,
      // The PostgreSQL store offers no verdict: clips are forwarded after their commit [PLK-12.9].
      transitHoldMs: null,
    },
    resourceSource: 'proc',
    sample: () => {
      let cpuMs = 0;
      let rssBytes = 0;
      for (const p of pids) {
        const s = procSample(p);
        cpuMs += s?.cpuMs ?? 0;
        rssBytes += s?.rssBytes ?? 0;
      }
      return { cpuMs, rssBytes, heapBytes: null };
    },
    counters: async () => null,
    close: async () => {},
  };
  return {
    name: `${nodes} node${nodes > 1 ? 's' : ''} (PostgreSQL + Redis)`,
    target,
    nodes: list,
    gatewayPids: pids,
    cluster: true,
    async close() {
      for (const n of list) await stopPid(n.pid, 'SIGTERM');
      rmSync(base, { recursive: true, force: true });
    },
  };
}

interface PhaseResult {
  offeredPerSec: number;
  clipsPerSec: number;
  e2eP50Ms: number;
  e2eP99Ms: number;
  pubackP99Ms: number;
  /** CPU per acknowledged clip, µs, by process group. */
  cpuUsPerClip: {
    gateway: number;
    postgres: number | null;
    redis: number | null;
    generator: number;
    all: number;
  };
  hostCpuPercent: number;
  perClip: ReturnType<typeof perClip>;
  /** Clips a parent received more than once (a backlog resent after a suspected delivery gap). */
  duplicates: number;
  errors: Record<string, number>;
}

function hostBusyMs(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'latin1').split('\n')[0]!.split(/\s+/).slice(1).map(Number);
  const idle = (line[3] ?? 0) + (line[4] ?? 0);
  const total = line.reduce((a, b) => a + b, 0);
  return { busy: (total - idle) * 10, total: total * 10 };
}

async function phase(
  cfg: Config,
  session: Session,
  rate: number,
  engines: Engines,
  db: pg.Client,
  redis: Redis,
  label: string,
): Promise<PhaseResult> {
  session.resetPhase();
  const gw0 = cfg.target.sample()?.cpuMs ?? 0;
  const pg0 = engines.pgPid() ? treeCpuMs(engines.pgPid()!) : 0;
  const r0 = engines.redisPid() ? (procSample(engines.redisPid()!)?.cpuMs ?? 0) : 0;
  const me0 = ownCpuMs();
  const h0 = hostBusyMs();
  const c0 = await engineCounters(db, redis);
  const t0 = performance.now();
  await session.run(rate, 0, PHASE_MS, label);
  const wall = performance.now() - t0;
  const gw1 = cfg.target.sample()?.cpuMs ?? 0;
  const pg1 = engines.pgPid() ? treeCpuMs(engines.pgPid()!) : 0;
  const r1 = engines.redisPid() ? (procSample(engines.redisPid()!)?.cpuMs ?? 0) : 0;
  const me1 = ownCpuMs();
  const h1 = hostBusyMs();
  const acc = session.phaseAcc;
  const acked = acc.counters.clipsAcked;
  await session.drain(15_000);
  // PostgreSQL publishes its statistics at most once a second.
  await new Promise((r) => setTimeout(r, 1200));
  const c1 = await engineCounters(db, redis);
  // The engine counters span the drain too: divide them by every clip acknowledged until then.
  const ackedWithDrain = acc.counters.clipsAcked;
  const e2e = summarize(acc.e2e);
  const pub = summarize(acc.puback);
  const us = (ms: number): number => (acked > 0 ? Math.round((ms * 1000) / acked) : 0);
  const gwUs = us(gw1 - gw0);
  const pgUs = cfg.cluster ? us(pg1 - pg0) : null;
  const redisUs = cfg.cluster ? us(r1 - r0) : null;
  const genUs = us(me1 - me0);
  const res: PhaseResult = {
    offeredPerSec: Math.round(rate),
    clipsPerSec: round((acked / wall) * 1000),
    e2eP50Ms: e2e.p50,
    e2eP99Ms: e2e.p99,
    pubackP99Ms: pub.p99,
    cpuUsPerClip: {
      gateway: gwUs,
      postgres: pgUs,
      redis: redisUs,
      generator: genUs,
      all: us(h1.busy - h0.busy),
    },
    hostCpuPercent: round(((h1.busy - h0.busy) / (h1.total - h0.total)) * 100),
    perClip: cfg.cluster ? perClip(c0, c1, ackedWithDrain) : null,
    duplicates: acc.counters.duplicates,
    errors: { ...acc.errors },
  };
  log(
    `${cfg.name} ${label}: offered ${Math.round(rate)}/s → ${res.clipsPerSec} clips/s, e2e p50/p99 ${e2e.p50}/${e2e.p99} ms, CPU/clip µs gw ${gwUs} pg ${pgUs ?? '-'} redis ${redisUs ?? '-'} gen ${genUs}, host ${res.hostCpuPercent}%, duplicates ${res.duplicates}`,
  );
  return res;
}

interface ConfigResult {
  name: string;
  saturation: PhaseResult;
  halfRate: PhaseResult;
  storm: {
    toys: number;
    back: number;
    failed: number;
    allBackMs: number;
    connectsPerSec: number;
    reconnectP99Ms: number;
    redisOpsPerConnect: number | null;
    redisScriptCallsPerConnect: number | null;
    pgCommitsPerConnect: number | null;
    pgWalBytesPerConnect: number | null;
  };
  /** Growth per toy connected (all nodes together), measured around the storm fleet's connect. */
  memoryPerConnectedToy: { gatewayRssKb: number; redisBytes: number | null };
  rssPerNodeMb: number[];
}

/** RSS of every gateway process and Redis' used_memory, once the sockets have settled. */
async function memory(cfg: Config, redis: Redis): Promise<{ rss: number; redis: number }> {
  await new Promise((r) => setTimeout(r, 500));
  let rss = 0;
  for (const p of cfg.gatewayPids) rss += procSample(p)?.rssBytes ?? 0;
  const m = /^used_memory:(\d+)/m.exec(await redis.info('memory'));
  return { rss, redis: Number(m?.[1] ?? 0) };
}

async function runConfig(
  make: (regs: Parameters<typeof registerFamilies>[2]) => Promise<Config>,
  engines: Engines,
  pool: ReturnType<typeof audioPool>,
): Promise<ConfigResult> {
  const o = opts(TOYS);
  const fleet = buildFleet(o);
  const storm = opts(STORM_TOYS, { clipRate: 1, seed: 'bench-scale-storm' });
  const stormFleet = buildFleet(storm);
  const cfg = await make([...registrations(fleet), ...registrations(stormFleet)]);
  const db = new pg.Client({ connectionString: engines.pgUrl });
  await db.connect();
  const redis = new Redis(engines.redisUrl);
  try {
    if ('provision' in cfg.target) {
      await (cfg.target as ForkedGateway).provision([...registrations(fleet), ...registrations(stormFleet)]);
    }
    log(`${cfg.name}: ${cfg.nodes.length > 0 ? cfg.nodes.map((n) => n.url).join(' ') : cfg.target.info.url}`);
    let saturation: PhaseResult;
    let halfRate: PhaseResult;
    {
      const session = new Session(cfg.target, workerInits(fleet, cfg.target.info, pool, o));
      try {
        await session.start();
        await session.connect('parents', 2000, fleet.roster.families.length);
        await session.connect('toys', 2000, TOYS);
        await session.run(Math.min(OFFERED, 300), 0, 2000, 'warm-up');
        await session.drain(10_000);
        saturation = await phase(cfg, session, OFFERED, engines, db, redis, 'saturation');
        await session.run(saturation.clipsPerSec / 2, 0, 3000, 'settle');
        await session.drain(10_000);
        halfRate = await phase(
          cfg,
          session,
          Math.max(1, saturation.clipsPerSec / 2),
          engines,
          db,
          redis,
          'half rate',
        );
      } finally {
        await session.stop();
      }
    }
    const session = new Session(cfg.target, workerInits(stormFleet, cfg.target.info, pool, storm));
    let stormResult: ConfigResult['storm'];
    let perToy: ConfigResult['memoryPerConnectedToy'] = { gatewayRssKb: 0, redisBytes: null };
    try {
      await session.start();
      await session.connect('parents', 2000, stormFleet.roster.families.length);
      const before = await memory(cfg, redis);
      const c = await session.connect('toys', 2000, STORM_TOYS);
      const after = await memory(cfg, redis);
      perToy = {
        gatewayRssKb: round((after.rss - before.rss) / 1024 / Math.max(1, c.ok), 1),
        redisBytes: cfg.cluster ? Math.round((after.redis - before.redis) / Math.max(1, c.ok)) : null,
      };
      const c0 = await engineCounters(db, redis);
      const st = await session.storm(60_000);
      await new Promise((r) => setTimeout(r, 1200));
      const c1 = await engineCounters(db, redis);
      const ops = perClip(c0, c1, st.back);
      stormResult = {
        toys: c.ok,
        back: st.back,
        failed: st.failed,
        allBackMs: st.allBackMs,
        connectsPerSec: st.connectsPerSec,
        reconnectP99Ms: st.connect.p99,
        redisOpsPerConnect: cfg.cluster ? (ops?.redisOps ?? null) : null,
        redisScriptCallsPerConnect: cfg.cluster ? (ops?.redisScriptCalls ?? null) : null,
        pgCommitsPerConnect: cfg.cluster ? (ops?.pgCommits ?? null) : null,
        pgWalBytesPerConnect: cfg.cluster ? (ops?.pgWalBytes ?? null) : null,
      };
      log(
        `${cfg.name} storm: ${st.back}/${c.ok} back in ${st.allBackMs} ms (${st.connectsPerSec}/s); Redis ops/connect ${stormResult.redisOpsPerConnect ?? '-'}`,
      );
    } finally {
      await session.stop();
    }
    const rss = (cfg.nodes.length > 0 ? cfg.nodes.map((n) => n.pid) : cfg.gatewayPids).map((p) =>
      round((procSample(p)?.rssBytes ?? 0) / 1e6),
    );
    log(
      `${cfg.name}: per connected toy ${perToy.gatewayRssKb} kB gateway RSS, ${perToy.redisBytes ?? '-'} B Redis`,
    );
    return {
      name: cfg.name,
      saturation,
      halfRate,
      storm: stormResult,
      memoryPerConnectedToy: perToy,
      rssPerNodeMb: rss,
    };
  } finally {
    await db.end();
    redis.disconnect();
    await cfg.target.close();
    await cfg.close();
  }
}

async function main(): Promise<void> {
  const started = new Date().toISOString();
  const load0 = loadavg()[0] ?? 0;
  log(
    `${TOYS} toys, offered ${OFFERED} clips/s of ${CLIP_SECONDS} s speech, phases of ${PHASE_MS / 1000} s; storm ${STORM_TOYS} toys`,
  );
  // The generator's threads (started later) inherit this process' CPU; the engines are moved off it.
  pin(process.pid, '0');
  const [pgE, redisE] = await Promise.all([startPostgres(), startRedis()]);
  pin(pgE.pid(), SUT_CPU);
  pin(redisE.pid(), SUT_CPU);
  const engines: Engines = {
    pgUrl: pgE.url,
    redisUrl: redisE.url,
    pgPid: () => pgE.pid(),
    redisPid: () => redisE.pid(),
    destroy: async () => {
      await Promise.all([pgE.destroy(), redisE.destroy()]);
    },
  };
  const pool = audioPool(CLIP_SECONDS, 'bench-scale');
  const results: ConfigResult[] = [];
  try {
    if (!args.includes('--no-embedded')) {
      results.push(
        await runConfig(
          async () => {
            const f = await startForkedGateway();
            pin(f.pid, SUT_CPU);
            return {
              name: '1 embedded node (SQLite, reference)',
              target: f,
              nodes: [],
              gatewayPids: [f.pid],
              cluster: false,
              close: async () => {},
            };
          },
          engines,
          pool,
        ),
      );
    }
    results.push(await runConfig((regs) => clusterConfig(engines, 1, 'bench1', regs), engines, pool));
    results.push(await runConfig((regs) => clusterConfig(engines, 2, 'bench2', regs), engines, pool));
  } finally {
    await engines.destroy();
  }
  const one = results.find((r) => r.name.startsWith('1 node'));
  const two = results.find((r) => r.name.startsWith('2 nodes'));
  const result = {
    bench: 'scale',
    started,
    machine: {
      cpus: cpus().length,
      model: cpus()[0]?.model ?? 'unknown',
      memGb: round(totalmem() / 1e9),
      loadavgAtStart: round(load0, 2),
      node: process.version,
    },
    setup: {
      toys: TOYS,
      stormToys: STORM_TOYS,
      offeredPerSec: OFFERED,
      clipSeconds: CLIP_SECONDS,
      phaseMs: PHASE_MS,
      pinned: PIN,
      note: PIN
        ? 'pinned (--pin): load generator on CPU 0; gateway nodes, PostgreSQL and Redis together on CPU 1 — two nodes share that core, so their figure is the cluster overhead, not its scaling'
        : "not pinned: the gateway nodes, PostgreSQL, Redis and the load generator (this process and its worker threads) share the machine's two cores; CPU per clip is measured per process group from /proc",
    },
    results,
    twoVsOne:
      one && two
        ? {
            throughput: round(two.saturation.clipsPerSec / one.saturation.clipsPerSec, 2),
            halfRateP99: round(two.halfRate.e2eP99Ms / Math.max(0.1, one.halfRate.e2eP99Ms), 2),
            stormAllBack: round(two.storm.allBackMs / Math.max(1, one.storm.allBackMs), 2),
          }
        : null,
  };
  mkdirSync(OUT_DIR, { recursive: true });
  const outFile = join(OUT_DIR, `scale${QUICK ? '-quick' : ''}${PIN ? '-pinned' : ''}.json`);
  writeFileSync(outFile, `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(`${reportText(result.results, result.twoVsOne)}\nwritten ${outFile}\n`);
}

function reportText(
  results: ConfigResult[],
  ratio: { throughput: number; halfRateP99: number; stormAllBack: number } | null,
): string {
  const lines = [
    '',
    'config                                  clips/s  p99@half  storm back  connects/s   CPU µs/clip gw/pg/redis/gen  host%  kB/toy',
  ];
  for (const r of results) {
    const s = r.saturation;
    const c = s.cpuUsPerClip;
    lines.push(
      `${r.name.padEnd(39)} ${String(s.clipsPerSec).padStart(7)}  ${`${r.halfRate.e2eP99Ms} ms`.padStart(8)}  ${`${r.storm.allBackMs} ms`.padStart(10)}  ${String(r.storm.connectsPerSec).padStart(10)}   ${`${c.gateway}/${c.postgres ?? '-'}/${c.redis ?? '-'}/${c.generator}`.padStart(27)}  ${String(s.hostCpuPercent).padStart(5)}  ${String(r.memoryPerConnectedToy.gatewayRssKb).padStart(6)}`,
    );
  }
  lines.push('', 'per acknowledged clip (saturation phase):');
  for (const r of results) {
    const p = r.saturation.perClip;
    if (!p) continue;
    lines.push(
      `  ${r.name}: Redis ${p.redisScriptCalls} script calls + ${p.redisPublishes} publishes (${p.redisOps} commands executed); PostgreSQL ${p.pgCommits} transactions, ${p.pgWalSyncs} WAL syncs, ${p.pgWalBytes} WAL bytes, rows ${JSON.stringify(p.pgRowsByTable)}`,
    );
  }
  lines.push('', 'per reconnecting toy (storm):');
  for (const r of results) {
    if (r.storm.redisOpsPerConnect === null) continue;
    lines.push(
      `  ${r.name}: Redis ${r.storm.redisScriptCallsPerConnect} script calls (${r.storm.redisOpsPerConnect} commands), PostgreSQL ${r.storm.pgCommitsPerConnect} transactions, ${r.storm.pgWalBytesPerConnect} WAL bytes; Redis memory ${r.memoryPerConnectedToy.redisBytes} B per connected toy`,
    );
  }
  if (ratio)
    lines.push(
      '',
      `two nodes ÷ one: throughput ${ratio.throughput}×, p99 at half rate ${ratio.halfRateP99}×, storm time ${ratio.stormAllBack}×`,
    );
  lines.push(
    PIN
      ? 'limits here: one core (CPU 1) holds every node, PostgreSQL and Redis; the generator has CPU 0'
      : 'limits here: two cores shared by the nodes, PostgreSQL, Redis and the generator (see host% and CPU µs/clip by process): a second node adds no core, only its own overhead',
  );
  return lines.join('\n');
}

await main();
