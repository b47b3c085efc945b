// Load-test targets: the embedded PlushLink gateway, an external one, and plain brokers (bare Aedes, Mosquitto).
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { type AddressInfo, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { HeapSpaceInfo } from 'node:v8';
import { Aedes } from 'aedes';
import type { Registry } from 'prom-client';
import { type FamilyRegistration, openAdmin, registerFamilies } from '../../gateway/admin.ts';
import { openClusterAdmin } from '../../gateway/cluster/admin.ts';
import {
  gatewayDataPaths,
  startEmbeddedGateway as startGatewayOnDataDir,
  UNLIMITED_RATE_LIMITS,
} from '../../gateway/embedded.ts';
import type { Gateway } from '../../gateway/gateway.ts';
import type { SqliteStore } from '../../gateway/store/sqlite.ts';
import type { WorkerSqliteStore } from '../../gateway/store/sqlite-worker.ts';
import { MAX_TRANSIT_HOLD_MS } from '../../gateway/transit.ts';
import { forkModule } from '../../platform/entry.ts';
import { nodeFlags } from '../../platform/node-flags.ts';
import { parseIdentityJson } from '../../shared/identity.ts';
import type { TargetInfo } from '../../sim/load-driver.ts';

/** CPU time (ms, cumulative) and memory (bytes) of the process under test, when we can see it. */
export interface ResourceSample {
  readonly cpuMs: number;
  readonly rssBytes: number;
  readonly heapBytes: number | null;
}

export interface Target {
  readonly info: TargetInfo;
  /** How resources are sampled: our own process (embedded), /proc of a pid, or not at all. */
  readonly resourceSource: 'process' | 'proc' | 'none';
  sample(): ResourceSample | null;
  /** Gateway-side counters (flattened Prometheus samples), when the gateway is in-process. */
  counters(): Promise<Record<string, number> | null>;
  close(): Promise<void>;
  /** The process under test, when it is not this one (for pinning it to a core). */
  readonly pid?: number;
}

function flatten(metrics: Awaited<ReturnType<Registry['getMetricsAsJSON']>>) {
  const out: Record<string, number> = {};
  for (const m of metrics) {
    for (const v of m.values) {
      const labels = Object.entries(v.labels)
        .map(([k, x]) => `${k}=${String(x)}`)
        .join(',');
      const name = (v as { metricName?: string }).metricName ?? m.name;
      out[labels ? `${name}{${labels}}` : name] = v.value;
    }
  }
  return out;
}

/** This process: CPU, RSS and the main isolate's heap + external memory; null if unreadable (e.g. EMFILE). */
function ownSample(): ResourceSample | null {
  try {
    const cpu = process.cpuUsage();
    const mem = process.memoryUsage();
    return {
      cpuMs: (cpu.user + cpu.system) / 1000,
      rssBytes: mem.rss,
      heapBytes: mem.heapUsed + mem.external,
    };
  } catch {
    return null;
  }
}

/** A target the load test can provision its fleet into (through the gateway's admin API). */
export interface Provisionable {
  /** Registers the fleet's public identities and families (audited, idempotent). */
  register(families: readonly FamilyRegistration[]): Promise<void>;
}

export interface EmbeddedGateway extends Target, Provisionable {
  readonly gateway: Gateway;
  readonly store: SqliteStore | WorkerSqliteStore;
  readonly dataDir: string;
}

/**
 * Starts a PlushLink gateway in this process on 127.0.0.1:0 with a temp SQLite store. Rate limits
 * are set far above the offered load (the load test measures capacity, not the limiter), the
 * packet limit stays at its default so oversized packets are refused as in production.
 */
/**
 * PLK_LOADTEST_TRANSIT_HOLD_MS for A/B runs (docs/LOADTEST.md): `off` forwards clips only after
 * their commit, a number of ms sets the hold [PLK-12.9]; unset keeps the gateway's default.
 */
function transitHoldFromEnv(): { transitHoldMs?: number | null } {
  const v = process.env.PLK_LOADTEST_TRANSIT_HOLD_MS;
  if (v === undefined || v === '') return {};
  if (v === 'off') return { transitHoldMs: null };
  if (!/^\d+$/.test(v) || Number(v) > MAX_TRANSIT_HOLD_MS)
    throw new RangeError(
      `PLK_LOADTEST_TRANSIT_HOLD_MS must be off or whole ms from 0 to ${MAX_TRANSIT_HOLD_MS}, got ${v}`,
    );
  return { transitHoldMs: Number(v) };
}

export async function startEmbeddedGateway(): Promise<EmbeddedGateway> {
  const dataDir = mkdtempSync(join(tmpdir(), 'plushlink-loadtest-'));
  // The production store (SqliteStore, group commit on the event loop); PLK_LOADTEST_STORE=worker
  // selects WorkerSqliteStore (writer thread) for A/B runs — see docs/LOADTEST.md.
  const eg = await startGatewayOnDataDir({
    dataDir,
    limits: UNLIMITED_RATE_LIMITS,
    nonceCapacity: 1_000_000,
    // Attack scenarios reconnect their attackers many times a minute; the quota itself is tested elsewhere.
    noncesPerEndpoint: 1_000_000,
    storeKind: process.env.PLK_LOADTEST_STORE === 'worker' ? 'worker' : 'sqlite',
    gateway: { retentionIntervalMs: 0, connectTimeoutMs: 30_000, ...transitHoldFromEnv() },
  });
  const { gateway, store } = eg;
  const identity = eg.identity;
  const addr = { port: eg.port };
  return {
    info: {
      kind: 'embedded',
      mode: 'gateway',
      url: `mqtt://127.0.0.1:${addr.port}`,
      gatewayId: identity.id,
      gatewaySignPublicKey: identity.signPublicKey,
      transitHoldMs: gateway.transitHoldMs,
    },
    gateway,
    store,
    dataDir,
    async register(families) {
      await registerFamilies(store, eg.audit, families, { source: 'loadtest' });
    },
    resourceSource: 'process',
    sample: ownSample,
    async counters() {
      const c = flatten(await gateway.metrics.registry.getMetricsAsJSON());
      // Group commit: how many writes shared each durable commit (the bench amortises an append over it).
      const stats = 'commitStats' in store ? store.commitStats() : null;
      if (stats) Object.assign(c, { store_commits: stats.commits, store_commit_jobs: stats.jobs });
      return c;
    },
    async close() {
      await eg.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** `process.memoryUsage()` of a forked target and its V8 heap spaces (bench:idle's breakdown). */
export type MemorySample = NodeJS.MemoryUsage & { readonly spaces: readonly HeapSpaceInfo[] };

export interface ForkedGateway extends Target {
  provision(families: readonly FamilyRegistration[]): Promise<void>;
  /** The child's memory, after a full garbage collection, with V8's heap spaces (committed and used). */
  memory(): Promise<MemorySample>;
  readonly pid: number;
}

/** This module's compiled twin in dist/ (the same file when this one is compiled). */
const COMPILED_HERE = import.meta.url.endsWith('.ts')
  ? new URL('../../dist/scripts/loadtest/targets.js', import.meta.url).href
  : import.meta.url;

/**
 * Compiles the tree into dist/ (`tsc -p tsconfig.build.json`, as `npm run build` does without the
 * web bundle) so that a benchmark's forked gateway runs the code `plushlink gateway` runs, not the
 * same sources through tsx: tsx's transform keeps function names with an `Object.defineProperty`
 * call on every closure it creates (`__name`), which the compiled code does not pay. Returns null
 * when done, or why it could not (then the caller runs from source and says so).
 */
export function buildCompiled(): string | null {
  const root = fileURLToPath(
    new URL(import.meta.url.endsWith('.ts') ? '../../' : '../../../', import.meta.url),
  );
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  if (!existsSync(tsc)) return 'typescript is not installed (npm ci)';
  const r = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], {
    cwd: root,
    encoding: 'utf8',
    timeout: 120_000,
  });
  if (r.status === 0) return null;
  const first = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n')[0] ?? '';
  return `tsc -p tsconfig.build.json failed${first ? `: ${first}` : ''}`;
}

/**
 * How a benchmark's forked systems under test run: compiled (buildCompiled succeeded) unless
 * PLK_BENCH_FROM_SOURCE=1 or the build failed, then from source through tsx; `note` says which
 * and why, for the log and the JSON's `setup.gatewayCode`.
 */
export function benchCode(env: NodeJS.ProcessEnv = process.env): { compiled: boolean; note: string } {
  const why = env.PLK_BENCH_FROM_SOURCE === '1' ? 'PLK_BENCH_FROM_SOURCE=1' : buildCompiled();
  return why === null
    ? { compiled: true, note: 'compiled (dist/, tsc)' }
    : { compiled: false, note: `source (tsx): ${why}` };
}

/**
 * The embedded gateway in a child process on 127.0.0.1:0: its CPU and RSS (read from /proc) are
 * its own, and the load generator's sockets do not count against its file-descriptor limit.
 */
export async function startForkedGateway(
  what: 'gateway' | 'aedes' = 'gateway',
  /**
   * `oneCore`: the caller will pin the child to one core (the benchmarks), see ONE_CORE_FLAGS.
   * `compiled`: run the child from dist/ (what `plushlink` runs; the caller built it, see
   * buildCompiled) even when this module runs from source.
   */
  opts: { cpuProfDir?: string; oneCore?: boolean; compiled?: boolean } = {},
): Promise<ForkedGateway> {
  const prof = opts.cpuProfDir ? ['--cpu-prof', '--cpu-prof-dir', opts.cpuProfDir] : [];
  // --expose-gc: memory() reports the live heap after a full collection (bench:idle). The gateway
  // and bare Aedes alike start with the flags the plushlink command has (platform/node-flags.ts).
  prof.push('--expose-gc', ...nodeFlags(process.env, { oneCore: opts.oneCore === true }));
  const child = forkModule(opts.compiled ? COMPILED_HERE : import.meta.url, 'gateway-child', [what], {
    execArgv: prof,
    serialization: 'advanced',
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  const waitFor = <T>(type: string, timeoutMs: number): Promise<T> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        child.off('message', on);
        reject(new Error(`gateway child: no "${type}" within ${timeoutMs} ms`));
      }, timeoutMs);
      const on = (m: { type: string; message?: string }): void => {
        if (m.type === type || m.type === 'error') {
          clearTimeout(timer);
          child.off('message', on);
          if (m.type === 'error') reject(new Error(`gateway child: ${m.message ?? 'error'}`));
          else resolve(m as T);
        }
      };
      child.on('message', on);
    });
  const ready = await waitFor<{
    info: Omit<TargetInfo, 'gatewaySignPublicKey'> & { gatewaySignPublicKey: number[] | null };
  }>('ready', 60_000);
  const pid = child.pid ?? 0;
  return {
    pid,
    info: {
      ...ready.info,
      kind: what === 'gateway' ? 'forked' : ready.info.kind,
      gatewaySignPublicKey: ready.info.gatewaySignPublicKey
        ? new Uint8Array(ready.info.gatewaySignPublicKey)
        : null,
    },
    resourceSource: 'proc',
    sample: () => procSample(pid),
    async provision(families) {
      child.send({ type: 'provision', families });
      await waitFor('provisioned', 300_000);
    },
    async counters() {
      child.send({ type: 'counters' });
      return (await waitFor<{ counters: Record<string, number> }>('counters', 10_000)).counters;
    },
    async memory() {
      child.send({ type: 'memory' });
      const m = await waitFor<{ memory: NodeJS.MemoryUsage; spaces: HeapSpaceInfo[] }>('memory', 30_000);
      return { ...m.memory, spaces: m.spaces };
    },
    async close() {
      if (child.exitCode !== null) return;
      const exited = new Promise<void>((res) => child.once('exit', () => res()));
      child.send({ type: 'close' });
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    },
  };
}

/** Soft limit on open files of this process (Linux /proc/self/limits), or null. */
export function openFileLimit(): number | null {
  try {
    const line = readFileSync('/proc/self/limits', 'latin1')
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    const n = Number(line?.split(/\s{2,}/)[1]);
    return Number.isFinite(n) ? n : null;
  } catch {
    return null;
  }
}

/** Reads utime+stime and RSS of `pid` from /proc (Linux); null when unreadable. */
export function procSample(pid: number): ResourceSample | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(f[11]) + Number(f[12]);
    const rssPages = Number(f[21]);
    return { cpuMs: ticks * 10, rssBytes: rssPages * 4096, heapBytes: null };
  } catch {
    return null;
  }
}

/**
 * An already-running gateway: its identity file pins the proof key; with its data dir, the fleet
 * is registered through the admin API (audit anchors signed with the gateway's key, as
 * `plushlink provision` does), beside the running gateway.
 */
export async function externalGateway(opts: {
  url: string;
  /** Every node of the gateway (TargetInfo.urls), when there are several. */
  urls?: readonly string[];
  identityFile: string;
  dataDir: string | null;
  pid: number | null;
  /** A gateway on PostgreSQL: its store, provisioned with the key of `dataDir` (cluster/admin.ts). */
  postgres?: { url: string; schema: string | null } | null;
}): Promise<Target & { register: Provisionable['register'] | null }> {
  const gw = parseIdentityJson(readFileSync(opts.identityFile, 'utf8'));
  const gatewayKey = opts.dataDir ? gatewayDataPaths(opts.dataDir).keyDir : undefined;
  const admin =
    opts.dataDir && opts.postgres
      ? await openClusterAdmin(opts.dataDir, {
          postgres: opts.postgres.url,
          ...(opts.postgres.schema ? { schema: opts.postgres.schema } : {}),
          ...(gatewayKey ? { gatewayKey } : {}),
        })
      : opts.dataDir
        ? await openAdmin(opts.dataDir, { gatewayKey: gatewayDataPaths(opts.dataDir).keyDir })
        : null;
  return {
    info: {
      kind: 'external',
      mode: 'gateway',
      url: opts.url,
      ...(opts.urls && opts.urls.length > 1 ? { urls: opts.urls } : {}),
      gatewayId: gw.id,
      gatewaySignPublicKey: gw.signPublicKey,
    },
    register: admin
      ? async (families) => {
          await registerFamilies(admin.store, admin.audit, families, { source: 'loadtest' });
        }
      : null,
    resourceSource: opts.pid ? 'proc' : 'none',
    sample: () => (opts.pid ? procSample(opts.pid) : null),
    counters: async () => null,
    async close() {
      await admin?.close();
    },
  };
}

/**
 * Bare Aedes on 127.0.0.1:0, no authentication, default everything: the plain-relay reference. Its
 * listen backlog is the gateway's default (4096), not Node's 511, so that a storm compares the
 * brokers and not their accept queues.
 */
export async function startPlainAedes(): Promise<Target> {
  const broker = await Aedes.createBroker({});
  const server: Server = createServer((socket) => {
    socket.setNoDelay(true);
    broker.handle(socket);
  });
  await new Promise<void>((res) => server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, res));
  const port = (server.address() as AddressInfo).port;
  return {
    info: {
      kind: 'aedes',
      mode: 'plain',
      url: `mqtt://127.0.0.1:${port}`,
      gatewayId: null,
      gatewaySignPublicKey: null,
    },
    resourceSource: 'process',
    sample: ownSample,
    counters: async () => null,
    async close() {
      await new Promise<void>((res) => broker.close(() => res()));
      await new Promise<void>((res) => server.close(() => res()));
    },
  };
}

/** Path of the mosquitto binary, or null when not installed. */
export function findMosquitto(): string | null {
  for (const p of ['/usr/sbin/mosquitto', '/usr/bin/mosquitto', '/usr/local/sbin/mosquitto']) {
    const r = spawnSync(p, ['-h'], { stdio: 'ignore', timeout: 5000 });
    if (r.error === undefined) return p;
  }
  return null;
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((res) => s.listen(0, '127.0.0.1', res));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((res) => s.close(() => res()));
  return port;
}

/** Starts Mosquitto on a free loopback port with a temp config (anonymous, no persistence). */
export async function startMosquitto(bin: string): Promise<Target> {
  const dir = mkdtempSync(join(tmpdir(), 'plushlink-mosquitto-'));
  const port = await freePort();
  const conf = join(dir, 'mosquitto.conf');
  writeFileSync(
    conf,
    [
      `listener ${port} 127.0.0.1`,
      'allow_anonymous true',
      'persistence false',
      'max_inflight_messages 0',
      'max_queued_messages 100000',
      'message_size_limit 0',
      'log_dest none',
      '',
    ].join('\n'),
  );
  const child: ChildProcess = spawn(bin, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  // Wait (bounded) until the port accepts connections.
  const { connect } = await import('node:net');
  const deadline = Date.now() + 5000;
  for (;;) {
    const ok = await new Promise<boolean>((res) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        res(true);
      });
      s.once('error', () => res(false));
    });
    if (ok) break;
    if (Date.now() > deadline || child.exitCode !== null) {
      child.kill('SIGKILL');
      throw new Error(`mosquitto did not start: ${stderr.trim().split('\n')[0] ?? 'no output'}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const pid = child.pid ?? 0;
  return {
    pid,
    info: {
      kind: 'mosquitto',
      mode: 'plain',
      url: `mqtt://127.0.0.1:${port}`,
      gatewayId: null,
      gatewaySignPublicKey: null,
    },
    resourceSource: 'proc',
    sample: () => procSample(pid),
    counters: async () => null,
    async close() {
      if (child.exitCode === null) {
        const exited = new Promise<void>((res) => child.once('exit', () => res()));
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 3000);
        await exited;
        clearTimeout(t);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
