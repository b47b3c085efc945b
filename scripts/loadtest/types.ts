// Load-test data model: options, worker messages and the report written as JSON/CSV/HTML.
import type {
  AttackKind,
  AttackTally,
  Counters,
  DriverInit,
  SealMode,
  TargetInfo,
} from '../../sim/load-driver.ts';
import type { LatencySummary } from '../../sim/stats.ts';

export type ScenarioName = 'steady' | 'ramp' | 'storm' | 'attack';
export const SCENARIOS: readonly ScenarioName[] = ['steady', 'ramp', 'storm', 'attack'];

export interface LoadtestOptions {
  /** `embedded`, or an mqtt:// URL. */
  readonly gateway: string;
  readonly toys: number;
  /** Toys per family (each family has one parent that receives the toys' clips). */
  readonly toysPerFamily: number;
  /** Connects per second while bringing the fleet up. */
  readonly connectRate: number;
  /** Clips per second, whole fleet (steady and attack; the first step of ramp). */
  readonly clipRate: number;
  readonly clipSeconds: number;
  readonly durationMs: number;
  readonly scenario: ScenarioName;
  readonly workers: number;
  readonly seed: string;
  readonly outDir: string | null;
  readonly allowRemote: boolean;
  /** ramp: p99 end-to-end target in ms, step length, rate multiplier per step, step limit. */
  readonly rampTargetP99Ms: number;
  readonly rampStepMs: number;
  readonly rampFactor: number;
  readonly rampMaxSteps: number;
  /** attack: share of operations that are attacks (0..0.9). */
  readonly attackShare: number;
  /** Parents sign and publish a receipt per clip (realistic; the gateway then deletes the clip). */
  readonly receipts: boolean;
  /** Parents fully verify and decrypt each clip (costs generator CPU). */
  readonly parentsOpen: boolean;
  readonly compare: 'plain' | null;
  readonly seal: SealMode;
  /** Un-acknowledged clips per worker before sends are skipped (default 20,000). */
  readonly maxInflight?: number;
  readonly progress: boolean;
  /** Hard wall-clock cap for the whole run, ms. */
  readonly maxRunMs: number;
  /** External gateway: pid to sample CPU and memory from /proc, or a metrics URL. */
  readonly gatewayPid: number | null;
  readonly gatewayMetricsUrl: string | null;
  /** Public identity JSON of an external gateway (pinned; needed to check its proof). */
  readonly gatewayIdentityFile: string | null;
  /** External gateway: data dir whose store the toys are provisioned into. */
  readonly gatewayDataDir: string | null;
  /** External gateway on PostgreSQL: provision through its store (gatewayDataDir then holds only the key). */
  readonly gatewayPostgres: string | null;
  readonly gatewayPgSchema: string | null;
  /** `--threshold` expressions (scripts/loadtest/thresholds.ts), checked before any work. */
  readonly thresholds: readonly string[];
  /** What the toys say without --wav: the bundled recordings (assets/speech) or synthetic speech. */
  readonly speech: 'bundled' | 'synth';
  /** `--wav` recordings to send instead (16-bit PCM, any rate SPEECH_WAV_RATES lists, resampled). */
  readonly wavFiles: readonly string[];
}

/** What the main thread gives each worker: its slice of the fleet and the target. */
export type WorkerInit = DriverInit;

export type MainToWorker =
  | {
      readonly type: 'connect';
      readonly rate: number;
      readonly timeoutMs: number;
      readonly who: 'parents' | 'toys';
    }
  | {
      readonly type: 'run';
      readonly clipRate: number;
      readonly attackRate: number;
      readonly durationMs: number;
    }
  | { readonly type: 'storm'; readonly timeoutMs: number }
  | { readonly type: 'drain'; readonly timeoutMs: number }
  | { readonly type: 'stop' };

export interface WorkerTick {
  readonly type: 'tick';
  readonly index: number;
  /** performance.timeOrigin + now() of the worker, ms (comparable across threads). */
  readonly at: number;
  readonly counters: Counters;
  readonly errors: Record<string, number>;
  /** Interval histograms, compressed base64 (µs). */
  readonly connect: string;
  readonly puback: string;
  readonly e2e: string;
  /** CPU time of this worker thread in the interval, ms (from /proc/thread-self/stat; -1 if unknown). */
  readonly cpuMs: number;
  readonly elu: number;
  readonly lagP99Ms: number;
  readonly lagMaxMs: number;
  readonly connected: number;
  readonly inflight: number;
  readonly attacks: Partial<Record<AttackKind, AttackTally>>;
}

export type WorkerToMain =
  | WorkerTick
  | { readonly type: 'ready'; readonly index: number }
  | { readonly type: 'connected'; readonly index: number; readonly ok: number; readonly failed: number }
  | { readonly type: 'ran'; readonly index: number }
  | {
      readonly type: 'stormed';
      readonly index: number;
      readonly toys: number;
      readonly back: number;
      readonly failed: number;
      /** ms from the drop to the last toy's verified reconnect (worker clock). */
      readonly allBackMs: number;
      readonly dropAt: number;
    }
  | {
      readonly type: 'drained';
      readonly index: number;
      readonly lost: number;
      readonly timedOut: number;
      /** Acknowledged for a parent offline at the end: held by the gateway for it, not lost. */
      readonly held: number;
    }
  | { readonly type: 'stopped'; readonly index: number }
  | { readonly type: 'fatal'; readonly index: number; readonly message: string };

export interface TimePoint {
  /** Seconds since the run started. */
  t: number;
  /** Length of this interval in seconds (counts below are per interval, not per second). */
  dt: number;
  phase: string;
  clipsSent: number;
  clipsAcked: number;
  clipsDelivered: number;
  errors: number;
  mbAcked: number;
  connects: number;
  connected: number;
  pubackP50Ms: number | null;
  pubackP99Ms: number | null;
  e2eP50Ms: number | null;
  e2eP99Ms: number | null;
  gatewayCpuPercent: number | null;
  gatewayRssMb: number | null;
  gatewayHeapMb: number | null;
  generatorCpuPercent: number | null;
  generatorLagP99Ms: number | null;
  /** Whole machine, % of all cores: what its processes and kernel ran (steal not included). */
  hostCpuPercent: number | null;
  /** Processes other than this one, % of all cores (a busy neighbour skews every figure). */
  otherProcessesCpuPercent: number | null;
  /** The hypervisor's steal, % of all cores: time this VM wanted a core and another guest had it. */
  hostStealPercent?: number | null;
  /** Event-loop delay p99 of the embedded gateway's thread in this interval, ms. */
  gatewayLagP99Ms: number | null;
  /** Clips per second the scenario asked for in this interval (0 outside traffic phases). */
  offeredPerSec?: number;
  /** This interval's errors by kind (every kind, also not-sent:* and attack-*). */
  errorsByKind?: Record<string, number>;
}

/** A phase of the run (connect, steady, ramp step, storm, drain…), seconds since the run started. */
export interface PhaseSpan {
  name: string;
  fromS: number;
  toS: number;
  /** Traffic phases: the clips per second the scenario offered (legitimate clips, whole fleet). */
  offeredPerSec?: number;
}

export interface WorkerSummary {
  index: number;
  toys: number;
  parents: number;
  cpuMs: number;
  /** Mean CPU use of the worker thread while running, percent of one core. */
  cpuPercent: number | null;
  eluMean: number;
  eluMax: number;
  lagP99MaxMs: number;
  lagMaxMs: number;
}

export interface RampStep {
  clipRate: number;
  achievedClipsPerSec: number;
  e2eP99Ms: number | null;
  pubackP99Ms: number | null;
  errors: number;
  generatorSaturated: boolean;
}

export interface StormResult {
  /** When every toy was dropped, seconds since the run started. */
  atS?: number;
  toys: number;
  back: number;
  failed: number;
  allBackMs: number;
  connectsPerSec: number;
  authFailures: number;
  connect: LatencySummary;
}

export interface AttackResult {
  share: number;
  byKind: Record<string, AttackTally>;
  attempted: number;
  refused: number;
  leaked: number;
  inconclusive: number;
  /** Gateway-side counters (embedded: read from its metrics registry), for cross-checking. */
  gatewayCounters: Record<string, number> | null;
}

export interface RunSummary {
  /**
   * `transitHoldMs`: the gateway's hold for clips in transit [PLK-12.9] in ms, null when off,
   * `unknown` for a gateway started elsewhere; absent for a plain broker.
   */
  target: { kind: TargetInfo['kind']; url: string; transitHoldMs?: number | null | 'unknown' };
  phaseMs: number;
  /** `held`: acknowledged clips for a parent that was offline at the end (the gateway keeps them for its next connection). */
  totals: Counters & { errors: number; lost: number; held: number };
  errors: Record<string, number>;
  throughput: { clipsPerSec: number; mbPerSec: number };
  latency: { connect: LatencySummary; puback: LatencySummary; e2e: LatencySummary };
  e2eHistogram: { fromMs: number; toMs: number; count: number }[];
  gateway: {
    source: 'process' | 'proc' | 'metrics' | 'none';
    cpuPercentMean: number | null;
    cpuPercentMax: number | null;
    rssMbMax: number | null;
    heapMbMax: number | null;
    /** Embedded gateway: worst per-second event-loop delay p99, and the largest single delay, ms. */
    eventLoopLagP99MaxMs: number | null;
    eventLoopLagMaxMs: number | null;
  };
  generator: {
    workers: WorkerSummary[];
    bottleneck: boolean;
    verdict: string;
    hostCpuPercentMean: number | null;
    otherProcessesCpuPercentMean: number | null;
    /** The hypervisor's steal, mean % of all cores during traffic (absent in reports before it was read). */
    hostStealPercentMean?: number | null;
  };
  timeline: TimePoint[];
  /** Exact phase boundaries (the timeline's points are whole seconds). */
  phases?: PhaseSpan[];
}

/** One `--threshold` and what the run measured for it. */
export interface ThresholdResult {
  /** As given, e.g. "e2e.p99<25ms". */
  expression: string;
  metric: string;
  /** What the metric is, for people: "e2e p99". */
  label: string;
  op: '<' | '<=' | '>' | '>=' | '==';
  limit: number;
  /** The unit of `limit` and `measured`: ms, s, % (of what the metric is a share of), /s or none. */
  unit: 'ms' | 's' | '%' | '/s' | '';
  measured: number | null;
  /** e.g. "3.41 ms", "0.4 % (2 of sent 500)", "not measured". */
  measuredText: string;
  passed: boolean;
}

/** The run's outcome; `exitCode` is the CLI's (0 passed, 1 failed run, 3 a threshold failed). */
export interface RunResult {
  status: 'passed' | 'failed' | 'thresholds-failed';
  exitCode: 0 | 1 | 3;
  reasons: string[];
}

export interface LoadtestReport {
  tool: 'plushlink loadtest';
  version: 1;
  startedAt: string;
  finishedAt: string;
  interrupted: boolean;
  options: Record<string, string | number | boolean | null>;
  audio: {
    clips: number;
    clipSeconds: number;
    oggBytesMean: number;
    envelopeBytesMean: number;
    sealing: string;
    /** Where the speech came from: synthetic, the bundled recording, or --wav files. */
    source?: string;
  };
  fleet: { toys: number; parents: number; attackers: number; workers: number };
  run: RunSummary;
  scenario: {
    name: ScenarioName;
    ramp?: { targetP99Ms: number; steps: RampStep[]; kneeClipsPerSec: number | null; note: string };
    storm?: StormResult;
    attack?: AttackResult;
  };
  compare?: {
    runs: RunSummary[];
    ratios: { broker: string; throughput: number | null; p99: number | null }[];
  };
  notes: string[];
  /** One entry per --threshold, in the order given. */
  thresholds?: ThresholdResult[];
  result?: RunResult;
}
