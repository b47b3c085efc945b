// One load-test session against one target: worker threads, phases, per-second aggregation, run summary.
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { type IntervalHistogram, monitorEventLoopDelay, performance } from 'node:perf_hooks';
import type { Worker } from 'node:worker_threads';
import { startWorker } from '../../platform/entry.ts';
import { type AttackKind, type AttackTally, type Counters, zeroCounters } from '../../sim/load-driver.ts';
import {
  addEncoded,
  type Histogram,
  logBuckets,
  maxOf,
  mean,
  newHistogram,
  summarize,
} from '../../sim/stats.ts';
import type { Target } from './targets.ts';
import type {
  MainToWorker,
  PhaseSpan,
  RunSummary,
  StormResult,
  TimePoint,
  WorkerInit,
  WorkerSummary,
  WorkerTick,
  WorkerToMain,
} from './types.ts';

/**
 * The aggregate `cpu` line of /proc/stat in jiffies: `busy` is what this machine's processes and
 * kernel ran, `steal` what the hypervisor gave to other guests while this one wanted a core (on a
 * shared VM it can be tens of percent, and is no neighbour of ours). Guest time is already inside
 * user time, so only the first eight columns count. Null for any other line.
 */
export function parseProcStat(line: string): { busy: number; steal: number; total: number } | null {
  const f = line.trim().split(/\s+/);
  if (f[0] !== 'cpu') return null;
  const v = f.slice(1, 9).map((x) => Number(x) || 0);
  const total = v.reduce((a, b) => a + b, 0);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  const steal = v[7] ?? 0;
  return { busy: total - idle - steal, steal, total };
}

/** Busy, steal and total jiffies of the whole host from /proc/stat (Linux), or null. */
function hostCpu(): { busy: number; steal: number; total: number } | null {
  try {
    return parseProcStat(readFileSync('/proc/stat', 'latin1').split('\n')[0] ?? '');
  } catch {
    return null;
  }
}

/**
 * Why the machine, not the generator or the target, may have set the pace: neighbours above 20 %
 * of the machine, or the hypervisor's steal above 10 %; null when neither.
 */
export function contentionText(a: {
  othersPercent: number | null;
  stealPercent: number | null;
  hostPercent: number | null;
}): string | null {
  const others = a.othersPercent !== null && a.othersPercent > 20 ? Math.round(a.othersPercent) : null;
  const steal = a.stealPercent !== null && a.stealPercent > 10 ? Math.round(a.stealPercent) : null;
  const host = `during the run (host ${Math.round(a.hostPercent ?? 0)} % busy)`;
  if (others !== null && steal !== null)
    return `other processes used ${others} % of the machine's CPU and the hypervisor took ${steal} % (steal) ${host}`;
  if (others !== null) return `other processes used ${others} % of the machine's CPU ${host}`;
  if (steal !== null) return `the hypervisor took ${steal} % of the machine (steal) ${host}`;
  return null;
}

/** Our own process's CPU time in ms (gateway when embedded, plus workers and runner). */
const ownCpuMs = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

type Reply = Exclude<WorkerToMain, WorkerTick | { type: 'fatal' } | { type: 'ready' }>;

function addCounters(into: Counters, d: Counters): void {
  for (const k of Object.keys(d) as (keyof Counters)[]) into[k] += d[k];
}
function addErrors(into: Record<string, number>, d: Record<string, number>): void {
  for (const [k, v] of Object.entries(d)) into[k] = (into[k] ?? 0) + v;
}
const errorTotal = (e: Record<string, number>): number =>
  Object.entries(e)
    .filter(([k]) => !k.startsWith('not-sent:') && !k.startsWith('attack-'))
    .reduce((a, [, v]) => a + v, 0);

/** Errors that end a sent clip (so that sent = acked + clipErrors). */
export const isClipError = (k: string): boolean =>
  k === 'puback-timeout' || k === 'interrupted' || k.startsWith('publish:');

interface Acc {
  counters: Counters;
  errors: Record<string, number>;
  connect: Histogram;
  puback: Histogram;
  e2e: Histogram;
}
const newAcc = (): Acc => ({
  counters: zeroCounters(),
  errors: {},
  connect: newHistogram(),
  puback: newHistogram(),
  e2e: newHistogram(),
});
function resetAcc(a: Acc): void {
  a.counters = zeroCounters();
  a.errors = {};
  a.connect.reset();
  a.puback.reset();
  a.e2e.reset();
}

interface WorkerStat {
  toys: number;
  parents: number;
  cpuMs: number;
  runCpuMs: number;
  runWallMs: number;
  elu: number[];
  lagP99: number[];
  lagMax: number;
}

export interface SessionProgress {
  phase: string;
  elapsedMs: number;
  connected: number;
  clipsPerSec: number;
  e2eP99Ms: number | null;
  errors: number;
}

/**
 * Other processes' share of the machine during one interval, in % of all cores: the host's busy
 * share minus this process (generator, and an embedded gateway) and minus the target when it is a
 * process of its own (`targetCpuPercent`, % of one core; null when it is not measured apart).
 */
export function otherProcessesPercent(a: {
  hostBusy: number;
  ownCpuMs: number;
  wallMs: number;
  cores: number;
  targetCpuPercent: number | null;
}): number {
  const own = a.ownCpuMs / a.wallMs / a.cores;
  const target = a.targetCpuPercent === null ? 0 : a.targetCpuPercent / 100 / a.cores;
  return Math.max(0, Math.round((a.hostBusy - own - target) * 1000) / 10);
}

/**
 * Drives the workers through phases and aggregates what they report. Every wait is bounded; a
 * worker that dies or misses a deadline makes the phase end (the report says so) rather than hang.
 */
export class Session {
  private readonly workers: Worker[] = [];
  private readonly waiting = new Map<string, { left: Set<number>; replies: Reply[]; done: () => void }>();
  readonly total: Acc = newAcc();
  private readonly interval: Acc = newAcc();
  /** Reset by the scenario for per-phase figures (ramp steps, storm). */
  readonly phaseAcc: Acc = newAcc();
  readonly attacks: Partial<Record<AttackKind, AttackTally>> = {};
  readonly timeline: TimePoint[] = [];
  private readonly wstats: WorkerStat[];
  private intervalWorkerCpuMs = 0;
  private intervalLag: number[] = [];
  private intervalCpu: number[] = [];
  private connected: number[] = [];
  private phaseName = 'setup';
  private readonly spans: PhaseSpan[] = [{ name: 'setup', fromS: 0, toS: 0 }];
  /**
   * What the scenario offered: one segment per traffic phase, clips/s per worker, absolute ms
   * (timeOrigin + now, the clock of the workers' ticks). Each tick adds what was offered between
   * that worker's previous tick and this one, so the offered rate lines up with the counts.
   */
  private readonly offerSegs: { from: number; to: number; rate: number }[] = [];
  private readonly lastTickAt: number[] = [];
  private offered = 0;
  private running = false;
  private readonly t0 = performance.now();
  private lastSampleAt = performance.now();
  private lastSample: ReturnType<Target['sample']> = null;
  private sampler: NodeJS.Timeout | null = null;
  runMs = 0;
  lost = 0;
  /** Acknowledged clips for parents offline at the end of a drain (see LoadDriver.drain). */
  held = 0;
  fatal: string[] = [];
  private lastHost = hostCpu();
  private lastOwnCpu = ownCpuMs();
  private readonly hostBusy: (number | null)[] = [];
  private readonly othersBusy: (number | null)[] = [];
  private readonly stealBusy: (number | null)[] = [];
  /** Event-loop delay of this thread: the gateway's own loop when it is embedded. */
  private readonly mainLag: IntervalHistogram | null;
  private readonly gwLagP99: number[] = [];
  private gwLagMax = 0;
  private gw = { cpu: [] as (number | null)[], rss: [] as (number | null)[], heap: [] as (number | null)[] };

  constructor(
    readonly target: Target,
    private readonly inits: readonly WorkerInit[],
    private readonly onProgress?: (p: SessionProgress) => void,
  ) {
    this.wstats = inits.map((i) => ({
      toys: i.toys.length,
      parents: i.parents.length,
      cpuMs: 0,
      runCpuMs: 0,
      runWallMs: 0,
      elu: [],
      lagP99: [],
      lagMax: 0,
    }));
    this.connected = inits.map(() => 0);
    this.mainLag = target.resourceSource === 'process' ? monitorEventLoopDelay({ resolution: 10 }) : null;
    this.mainLag?.enable();
  }

  /** The current phase; each change is recorded as an exact span for the report's markers. */
  get phase(): string {
    return this.phaseName;
  }

  set phase(name: string) {
    const now = this.seconds();
    const last = this.spans[this.spans.length - 1];
    if (last) last.toS = now;
    if (last?.name === name) return;
    this.spans.push({ name, fromS: now, toS: now });
    this.phaseName = name;
  }

  private seconds(): number {
    return Math.round(this.elapsedMs()) / 1000;
  }

  /** Clips one worker was asked to send between two absolute times. */
  private offeredBetween(from: number, to: number): number {
    let n = 0;
    for (const s of this.offerSegs) {
      const a = Math.max(from, s.from);
      const b = Math.min(to, s.to);
      if (b > a) n += (s.rate * (b - a)) / 1000;
    }
    return n;
  }

  /** Starts a fresh per-phase accumulator (ramp steps, bench phases). */
  resetPhase(): void {
    resetAcc(this.phaseAcc);
  }

  /** Latest resource sample of the target (for memory-per-connection measurements). */
  sampleTarget(): ReturnType<Target['sample']> {
    return this.target.sample();
  }

  elapsedMs(): number {
    return performance.now() - this.t0;
  }

  async start(): Promise<void> {
    const ready = this.inits.map(
      (init) =>
        new Promise<void>((resolve, reject) => {
          const w = startWorker(import.meta.url, 'worker', './worker-boot.mjs', {
            workerData: { init },
            resourceLimits: { maxOldGenerationSizeMb: 4096 },
          });
          const timer = setTimeout(
            () => reject(new Error(`worker ${init.index} did not start in 60 s`)),
            60_000,
          );
          w.on('message', (m: WorkerToMain) => {
            if (m.type === 'ready') {
              clearTimeout(timer);
              resolve();
            } else this.onMessage(m);
          });
          w.on('error', (err) => {
            clearTimeout(timer);
            this.fatal.push(`worker ${init.index}: ${err.message}`);
            this.failWorker(init.index);
            reject(err);
          });
          w.on('exit', () => this.failWorker(init.index));
          this.workers.push(w);
        }),
    );
    await Promise.all(ready);
    this.lastSample = this.target.sample();
    this.lastSampleAt = performance.now();
    this.sampler = setInterval(() => this.closeInterval(), 1000);
  }

  private failWorker(index: number): void {
    for (const w of this.waiting.values()) {
      if (w.left.delete(index) && w.left.size === 0) w.done();
    }
  }

  private onMessage(m: WorkerToMain): void {
    if (m.type === 'tick') {
      this.onTick(m);
      return;
    }
    if (m.type === 'fatal') {
      this.fatal.push(`worker ${m.index}: ${m.message}`);
      this.failWorker(m.index);
      return;
    }
    if (m.type === 'ready') return;
    const w = this.waiting.get(m.type);
    if (w?.left.delete(m.index)) {
      w.replies.push(m);
      if (w.left.size === 0) w.done();
    }
  }

  private onTick(t: WorkerTick): void {
    const prev = this.lastTickAt[t.index];
    this.lastTickAt[t.index] = t.at;
    if (prev !== undefined) this.offered += this.offeredBetween(prev, t.at);
    for (const acc of [this.total, this.interval, this.phaseAcc]) {
      addCounters(acc.counters, t.counters);
      addErrors(acc.errors, t.errors);
      addEncoded(acc.connect, t.connect);
      addEncoded(acc.puback, t.puback);
      addEncoded(acc.e2e, t.e2e);
    }
    for (const [k, v] of Object.entries(t.attacks) as [AttackKind, AttackTally][]) {
      const a = this.attacks[k] ?? { attempted: 0, refused: 0, leaked: 0, inconclusive: 0, signals: {} };
      this.attacks[k] = a;
      a.attempted += v.attempted;
      a.refused += v.refused;
      a.leaked += v.leaked;
      a.inconclusive += v.inconclusive;
      addErrors(a.signals, v.signals);
    }
    const ws = this.wstats[t.index];
    if (ws) {
      if (t.cpuMs >= 0) {
        ws.cpuMs += t.cpuMs;
        this.intervalWorkerCpuMs += t.cpuMs;
        if (this.running) ws.runCpuMs += t.cpuMs;
      }
      if (this.running) {
        ws.elu.push(t.elu);
        ws.lagP99.push(t.lagP99Ms);
        ws.lagMax = Math.max(ws.lagMax, t.lagMaxMs);
      }
    }
    this.intervalLag.push(t.lagP99Ms);
    if (t.cpuMs >= 0) this.intervalCpu.push(t.cpuMs);
    this.connected[t.index] = t.connected;
  }

  private closeInterval(): void {
    const now = performance.now();
    const wall = now - this.lastSampleAt;
    const s = this.target.sample();
    let cpu: number | null = null;
    if (s && this.lastSample && wall > 0) {
      let d = s.cpuMs - this.lastSample.cpuMs;
      // Embedded: the process CPU includes our worker threads; take theirs out.
      if (this.target.resourceSource === 'process') d -= this.intervalWorkerCpuMs;
      cpu = Math.max(0, (d / wall) * 100);
    }
    this.lastSample = s;
    this.lastSampleAt = now;
    const a = this.interval;
    const sec = wall / 1000;
    const pub = a.puback.totalCount > 0 ? summarize(a.puback) : null;
    const e2e = a.e2e.totalCount > 0 ? summarize(a.e2e) : null;
    const errorsByKind: Record<string, number> = {};
    for (const [k, v] of Object.entries(a.errors)) if (v > 0) errorsByKind[k] = v;
    const genCpu = this.intervalCpu.length
      ? (this.intervalCpu.reduce((x, y) => x + y, 0) / wall) * 100
      : null;
    const point: TimePoint = {
      t: Math.round(this.elapsedMs() / 100) / 10,
      dt: Math.round(wall) / 1000,
      phase: this.phase,
      clipsSent: a.counters.clipsSent,
      clipsAcked: a.counters.clipsAcked,
      clipsDelivered: a.counters.clipsDelivered,
      errors: errorTotal(a.errors),
      mbAcked: Math.round((a.counters.bytesAcked / 1e6) * 1000) / 1000,
      connects: a.counters.connects,
      connected: this.connected.reduce((x, y) => x + y, 0),
      pubackP50Ms: pub?.p50 ?? null,
      pubackP99Ms: pub?.p99 ?? null,
      e2eP50Ms: e2e?.p50 ?? null,
      e2eP99Ms: e2e?.p99 ?? null,
      gatewayCpuPercent: cpu === null ? null : Math.round(cpu * 10) / 10,
      gatewayRssMb: s ? Math.round(s.rssBytes / 1e5) / 10 : null,
      gatewayHeapMb: s?.heapBytes ? Math.round(s.heapBytes / 1e5) / 10 : null,
      generatorCpuPercent: genCpu === null ? null : Math.round(genCpu * 10) / 10,
      generatorLagP99Ms: round1(maxOf(this.intervalLag)),
      hostCpuPercent: null,
      otherProcessesCpuPercent: null,
      hostStealPercent: null,
      gatewayLagP99Ms: null,
      offeredPerSec: sec > 0 ? Math.round((this.offered / sec) * 10) / 10 : 0,
      errorsByKind,
    };
    this.offered = 0;
    if (this.mainLag && this.mainLag.count > 0) {
      point.gatewayLagP99Ms = round1(this.mainLag.percentile(99) / 1e6);
      if (this.running) {
        this.gwLagP99.push(point.gatewayLagP99Ms ?? 0);
        this.gwLagMax = Math.max(this.gwLagMax, this.mainLag.max / 1e6);
      }
      this.mainLag.reset();
    }
    const host = hostCpu();
    const own = ownCpuMs();
    if (host && this.lastHost && host.total > this.lastHost.total) {
      const cores = cpus().length || 1;
      const busy = (host.busy - this.lastHost.busy) / (host.total - this.lastHost.total);
      const steal = (host.steal - this.lastHost.steal) / (host.total - this.lastHost.total);
      point.hostCpuPercent = Math.round(busy * 1000) / 10;
      point.hostStealPercent = Math.round(steal * 1000) / 10;
      point.otherProcessesCpuPercent = otherProcessesPercent({
        hostBusy: busy,
        ownCpuMs: own - this.lastOwnCpu,
        wallMs: wall,
        cores,
        // A forked gateway, or an external one with --gateway-pid, is a process of its own: it is
        // the system under test, not a neighbour (an embedded one is inside `own` already).
        targetCpuPercent: this.target.resourceSource === 'proc' ? cpu : null,
      });
      if (this.running) {
        this.hostBusy.push(point.hostCpuPercent);
        this.othersBusy.push(point.otherProcessesCpuPercent);
        this.stealBusy.push(point.hostStealPercent);
      }
    }
    this.lastHost = host;
    this.lastOwnCpu = own;
    this.timeline.push(point);
    if (this.running && wall >= 500) {
      this.gw.cpu.push(point.gatewayCpuPercent);
      this.gw.rss.push(point.gatewayRssMb);
      this.gw.heap.push(point.gatewayHeapMb);
    }
    this.onProgress?.({
      phase: this.phase,
      elapsedMs: this.elapsedMs(),
      connected: point.connected,
      clipsPerSec: sec > 0 ? point.clipsAcked / sec : 0,
      e2eP99Ms: point.e2eP99Ms,
      errors: errorTotal(this.total.errors),
    });
    resetAcc(a);
    this.intervalWorkerCpuMs = 0;
    this.intervalLag = [];
    this.intervalCpu = [];
  }

  /** Sends `msg` to every worker and waits (bounded) for each one's `reply`. */
  private ask<T extends Reply['type']>(
    msg: MainToWorker,
    reply: T,
    timeoutMs: number,
  ): Promise<Extract<Reply, { type: T }>[]> {
    // After an abort only the stop itself is still sent; every other phase ends at once.
    if (this.closing && msg.type !== 'stop') return Promise.resolve([]);
    return new Promise((resolve) => {
      const replies: Reply[] = [];
      const left = new Set(this.workers.map((_w, i) => i));
      let timer: NodeJS.Timeout | undefined;
      const done = (): void => {
        if (timer) clearTimeout(timer);
        this.waiting.delete(reply);
        resolve(replies as Extract<Reply, { type: T }>[]);
      };
      this.waiting.set(reply, { left, replies, done });
      timer = setTimeout(() => {
        this.fatal.push(`${reply}: ${left.size} worker(s) missed the ${timeoutMs} ms deadline`);
        done();
      }, timeoutMs);
      for (const w of this.workers) w.postMessage(msg);
    });
  }

  async connect(
    who: 'parents' | 'toys',
    ratePerSec: number,
    endpoints: number,
  ): Promise<{ ok: number; failed: number }> {
    this.phase = `connect-${who}`;
    const perWorker = ratePerSec / this.workers.length;
    const expectMs = ratePerSec > 0 ? (endpoints / ratePerSec) * 1000 : 0;
    const r = await this.ask(
      { type: 'connect', rate: perWorker, timeoutMs: 30_000, who },
      'connected',
      expectMs + 60_000,
    );
    return { ok: r.reduce((a, x) => a + x.ok, 0), failed: r.reduce((a, x) => a + x.failed, 0) };
  }

  async run(clipRate: number, attackRate: number, durationMs: number, phase = 'run'): Promise<void> {
    this.phase = phase;
    this.running = true;
    const t = performance.now();
    const n = this.workers.length;
    const span = this.spans[this.spans.length - 1];
    if (span) span.offeredPerSec = clipRate;
    const seg = { from: performance.timeOrigin + t, to: Number.POSITIVE_INFINITY, rate: clipRate / n };
    this.offerSegs.push(seg);
    await this.ask(
      { type: 'run', clipRate: clipRate / n, attackRate: attackRate / n, durationMs },
      'ran',
      durationMs + 30_000,
    );
    const end = performance.now();
    // The workers stop sending after durationMs (or earlier, on an abort).
    seg.to = performance.timeOrigin + Math.min(end, t + durationMs);
    const wall = end - t;
    this.runMs += wall;
    for (const ws of this.wstats) ws.runWallMs += wall;
    this.running = false;
  }

  async drain(timeoutMs = 15_000): Promise<number> {
    this.phase = 'drain';
    const r = await this.ask({ type: 'drain', timeoutMs }, 'drained', timeoutMs + 10_000);
    const lost = r.reduce((a, x) => a + x.lost, 0);
    this.lost += lost;
    this.held += r.reduce((a, x) => a + x.held, 0);
    return lost;
  }

  async storm(timeoutMs: number): Promise<StormResult> {
    this.phase = 'storm';
    const atS = this.seconds();
    resetAcc(this.phaseAcc);
    const r = await this.ask({ type: 'storm', timeoutMs }, 'stormed', timeoutMs + 30_000);
    const toys = r.reduce((a, x) => a + x.toys, 0);
    const back = r.reduce((a, x) => a + x.back, 0);
    const allBackMs = Math.round(Math.max(0, ...r.map((x) => x.allBackMs)) * 10) / 10;
    const authFailures = Object.entries(this.phaseAcc.errors)
      .filter(([k]) => k.startsWith('connect:connack-'))
      .reduce((a, [, v]) => a + v, 0);
    return {
      atS,
      toys,
      back,
      failed: r.reduce((a, x) => a + x.failed, 0),
      allBackMs,
      connectsPerSec: allBackMs > 0 ? Math.round((back / allBackMs) * 1000) : 0,
      authFailures,
      connect: summarize(this.phaseAcc.connect),
    };
  }

  private stopping: Promise<void> | null = null;

  /** Ctrl-C / time limit: ends every pending wait now and stops the workers (idempotent). */
  abort(): Promise<void> {
    for (const w of [...this.waiting.values()]) w.done();
    return this.stop();
  }

  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private closing = false;

  private async doStop(): Promise<void> {
    this.closing = true;
    this.phase = 'stop';
    if (this.workers.length > 0) await this.ask({ type: 'stop' }, 'stopped', 15_000);
    if (this.sampler) clearInterval(this.sampler);
    this.sampler = null;
    this.closeInterval();
    await Promise.all(this.workers.map((w) => w.terminate()));
    this.mainLag?.disable();
  }

  summary(): RunSummary {
    const c = this.total.counters;
    const clipErrors = Object.entries(this.total.errors)
      .filter(([k]) => isClipError(k))
      .reduce((a, [, v]) => a + v, 0);
    const runSec = this.runMs / 1000;
    const workers: WorkerSummary[] = this.wstats.map((w, index) => ({
      index,
      toys: w.toys,
      parents: w.parents,
      cpuMs: Math.round(w.cpuMs),
      cpuPercent: w.runWallMs > 0 ? Math.round((w.runCpuMs / w.runWallMs) * 1000) / 10 : null,
      eluMean: Math.round((mean(w.elu) ?? 0) * 1000) / 1000,
      eluMax: Math.round((maxOf(w.elu) ?? 0) * 1000) / 1000,
      lagP99MaxMs: Math.round((maxOf(w.lagP99) ?? 0) * 10) / 10,
      lagMaxMs: Math.round(w.lagMax * 10) / 10,
    }));
    const reasons: string[] = [];
    for (const w of workers) {
      if (w.eluMean > 0.9) reasons.push(`worker ${w.index} event loop ${Math.round(w.eluMean * 100)} % busy`);
      if (w.cpuPercent !== null && w.cpuPercent > 90) reasons.push(`worker ${w.index} CPU ${w.cpuPercent} %`);
      if (w.lagP99MaxMs > 100) reasons.push(`worker ${w.index} event-loop lag p99 up to ${w.lagP99MaxMs} ms`);
    }
    const noToy = this.total.errors['not-sent:no-connected-toy'] ?? 0;
    if (noToy > 0) reasons.push(`${noToy} scheduled clips not sent: no connected toy`);
    const others = mean(this.othersBusy);
    const steal = mean(this.stealBusy);
    const contended = contentionText({
      othersPercent: others,
      stealPercent: steal,
      hostPercent: mean(this.hostBusy),
    });
    const gwCpuMax = maxOf(this.gw.cpu);
    const skipped = this.total.errors['not-sent:inflight-limit'] ?? 0;
    const bottleneck = reasons.length > 0 || contended !== null;
    let verdict: string;
    if (reasons.length > 0)
      verdict = `generator-bound: ${reasons.join('; ')}${contended ? `; ${contended}` : ''} — figures are a lower bound of the target's capacity`;
    else if (contended)
      verdict = `machine contended: ${contended}; the generator and the target waited for a core — figures are a lower bound`;
    else if (gwCpuMax !== null && gwCpuMax > 90)
      verdict = `target-bound: target CPU reached ${Math.round(gwCpuMax)} % of a core while the generator had headroom`;
    else if (skipped > 0)
      verdict = `target-bound: ${skipped} sends skipped because the target did not acknowledge fast enough (in-flight limit)`;
    else verdict = 'neither saturated: the offered load was below capacity';
    return {
      // Several nodes of one gateway: every node's URL, comma-separated as on the command line.
      target: {
        kind: this.target.info.kind,
        url: (this.target.info.urls ?? [this.target.info.url]).join(','),
        ...(this.target.info.mode === 'plain'
          ? {}
          : {
              transitHoldMs:
                this.target.info.transitHoldMs === undefined ? 'unknown' : this.target.info.transitHoldMs,
            }),
      },
      phaseMs: Math.round(this.runMs),
      totals: { ...c, errors: clipErrors, lost: this.lost, held: this.held },
      errors: { ...this.total.errors },
      throughput: {
        clipsPerSec: runSec > 0 ? Math.round((c.clipsAcked / runSec) * 10) / 10 : 0,
        mbPerSec: runSec > 0 ? Math.round((c.bytesAcked / 1e6 / runSec) * 1000) / 1000 : 0,
      },
      latency: {
        connect: summarize(this.total.connect),
        puback: summarize(this.total.puback),
        e2e: summarize(this.total.e2e),
      },
      e2eHistogram: logBuckets(this.total.e2e, 40),
      gateway: {
        source: this.target.resourceSource,
        cpuPercentMean: round1(mean(this.gw.cpu)),
        cpuPercentMax: round1(gwCpuMax),
        rssMbMax: round1(maxOf(this.gw.rss)),
        heapMbMax: round1(maxOf(this.gw.heap)),
        eventLoopLagP99MaxMs: round1(maxOf(this.gwLagP99)),
        eventLoopLagMaxMs: this.mainLag ? round1(this.gwLagMax) : null,
      },
      generator: {
        workers,
        bottleneck,
        verdict,
        hostCpuPercentMean: round1(mean(this.hostBusy)),
        otherProcessesCpuPercentMean: round1(others),
        hostStealPercentMean: round1(steal),
      },
      timeline: this.timeline,
      phases: this.spans
        .map((p, i) => ({ ...p, toS: i === this.spans.length - 1 ? Math.max(p.toS, this.seconds()) : p.toS }))
        .filter((p) => p.toS > p.fromS),
    };
  }
}

const round1 = (x: number | null): number | null => (x === null ? null : Math.round(x * 10) / 10);
