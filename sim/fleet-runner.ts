// Runs a roster of toys and parent apps against a gateway for a bounded time: real state machines, outboxes, Opus and crypto; delivery and latency statistics.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { uniform01 } from '../device/backoff.ts';
import { type DeviceClock, realClock, type Timer } from '../device/clock.ts';
import { EncoderPool } from '../device/codec/pool.ts';
import type { Endpoint } from '../device/endpoint.ts';
import { TypedEmitter } from '../device/events.ts';
import { ParentApp } from '../device/parent.ts';
import type { AudioInput } from '../device/recorder.ts';
import { Toy } from '../device/toy.ts';
import type { Connector } from '../device/transport/wifi.ts';
import type { PublicIdentity } from '../shared/identity.ts';
import { seededRandom } from '../shared/random.ts';
import type { EndpointId, RandomSource } from '../shared/types.ts';
import { familyPublics, type Roster, type RosterMember } from './roster.ts';
import { type BankClip, buildSpeechBank } from './speech-bank.ts';
import { type LatencySummary, newHistogram, recordMs, summarize } from './stats.ts';

export interface FleetRunConfig {
  readonly roster: Roster;
  readonly gateway: PublicIdentity;
  readonly connector: Connector;
  readonly durationMs: number;
  /** Each toy records a clip every this often (first one at a random phase); 0 = toys only listen. */
  readonly talkEveryMs: number;
  /** Each parent sends a voice message every this often; 0 = parents only listen. Default 4 × talkEveryMs. */
  readonly parentTalkEveryMs?: number;
  /** Every endpoint's first clip starts within this time of its start (default: within one period). */
  readonly firstTalkWithinMs?: number;
  /**
   * Encode each clip of the speech bank once and let every endpoint seal those bytes (each clip
   * is still encrypted, signed and sent on its own). For load: Opus at complexity 10 costs
   * ~12 ms of CPU per second of audio, which a 10,000-endpoint fleet cannot afford per clip.
   */
  readonly reuseEncoded?: boolean;
  /** Opus complexity 0..10 for every endpoint. Default 10. */
  readonly complexity?: number;
  /** Length of each clip. Default 3 s. */
  readonly clipSeconds?: number;
  readonly seed: string;
  readonly clock?: DeviceClock;
  /** Connections are spread uniformly over this ramp. Default max(min(5 s, duration / 4), 6 ms per endpoint), at most duration / 2. */
  readonly rampMs?: number;
  /** After the duration: how long to wait for outstanding PUBACKs and deliveries. Default 10 s. */
  readonly drainMs?: number;
  /** Every endpoint saves received clips here as .opus files. */
  readonly outDir?: string;
  /** Push-to-talk takes real time (a 4 s clip is sealed 4 s after the button press). Default false. */
  readonly pacedRecording?: boolean;
  /** Local display names for file names. */
  readonly nameOf?: (id: EndpointId) => string;
  /**
   * Persist each endpoint's outbox as DIR/<id>.outbox (sequence numbers 1, 2, 3, …; a restart
   * resends what was not acknowledged). Without it outboxes live in memory and sequence numbers
   * follow the clock, which keeps them increasing across runs without any state [PLK-8.1].
   */
  readonly outboxDir?: string;
  /** Decode every received clip (proves it plays; costs CPU). Default true. */
  readonly decode?: boolean;
  readonly encoderPool?: EncoderPool;
  /** Gives up on a recording when the outbox is full instead of counting an error. */
  readonly maxOutbox?: number;
}

export interface FleetStats {
  readonly elapsedMs: number;
  readonly endpoints: number;
  readonly online: number;
  /** Most endpoints online at the same time. */
  readonly peakOnline: number;
  readonly connects: number;
  readonly retries: number;
  readonly clipsSent: number;
  readonly clipsAcked: number;
  /** Clips given up after repeated refusals (each also counted as an error). */
  readonly clipsAbandoned: number;
  /** Deliveries expected (sum over sent clips of their recipients). */
  readonly deliveriesExpected: number;
  /** Unique clips opened by their recipients. */
  readonly delivered: number;
  readonly duplicates: number;
  /** Clips sealed by an earlier run that the gateway delivered now (not in the latency figures). */
  readonly backlogDelivered: number;
  readonly receipts: number;
  readonly envelopeBytes: number;
  readonly errors: number;
  readonly errorKinds: Readonly<Record<string, number>>;
  /** First message seen for each error kind. */
  readonly errorSamples: Readonly<Record<string, string>>;
  /** Sealed (sender) → opened (recipient), ms: one-way delivery latency (same clock). */
  readonly latency: LatencySummary;
  /** Sealed → PUBACK, ms. */
  readonly ackLatency: LatencySummary;
  /** Event-loop delay of this process, ms: high values mean the simulator itself is the bottleneck. */
  readonly eventLoopDelay: { readonly p50: number; readonly p99: number; readonly max: number };
}

export interface FleetRunnerEvents {
  /** Fired once per endpoint as it is created, so callers can attach their own listeners (the demo log). */
  endpoint: { readonly member: RosterMember; readonly endpoint: Endpoint };
}

/**
 * Runs every toy and parent app of a roster against a gateway for a bounded time. Toys record a
 * clip every `talkEveryMs` (seeded phase), parents answer now and then; every endpoint runs the
 * real state machine, outbox, Opus encoder (pooled) and crypto. Stops by itself after the
 * duration plus a drain period, and returns the statistics.
 */
export class FleetRunner extends TypedEmitter<FleetRunnerEvents> {
  readonly config: FleetRunConfig;
  readonly endpoints: { readonly member: RosterMember; readonly endpoint: Endpoint }[] = [];
  private readonly clock: DeviceClock;
  private readonly pool: EncoderPool;
  private readonly ownPool: boolean;
  private readonly timers = new Set<Timer>();
  private readonly lat = newHistogram();
  private readonly ackLat = newHistogram();
  private bank: readonly BankClip[] = [];
  /** Clip ids sealed in this run (clips from earlier runs may still arrive from the gateway's backlog). */
  private readonly sentClips = new Set<string>();
  private startedAt = 0;
  private talking = false;
  private readonly counters = {
    connects: 0,
    retries: 0,
    clipsSent: 0,
    clipsAcked: 0,
    clipsAbandoned: 0,
    deliveriesExpected: 0,
    delivered: 0,
    duplicates: 0,
    backlogDelivered: 0,
    receipts: 0,
    envelopeBytes: 0,
    errors: 0,
  };
  private readonly errorKinds: Record<string, number> = {};
  private readonly errorSamples: Record<string, string> = {};
  private onlineCount = 0;
  private readonly loopDelay = monitorEventLoopDelay({ resolution: 20 });
  private peakOnline = 0;
  private outstandingRecords = 0;

  constructor(config: FleetRunConfig) {
    super();
    if (!(config.durationMs > 0)) throw new RangeError('durationMs must be > 0');
    if (!(config.talkEveryMs >= 0)) throw new RangeError('talkEveryMs must be ≥ 0 (0: toys only listen)');
    this.config = config;
    this.clock = config.clock ?? realClock;
    this.ownPool = !config.encoderPool;
    this.pool = config.encoderPool ?? new EncoderPool({ maxEncoders: 4 });
  }

  stats(): FleetStats {
    return {
      elapsedMs: this.startedAt ? this.clock.now() - this.startedAt : 0,
      endpoints: this.endpoints.length,
      online: this.onlineCount,
      peakOnline: this.peakOnline,
      ...this.counters,
      errorKinds: { ...this.errorKinds },
      errorSamples: { ...this.errorSamples },
      latency: summarize(this.lat),
      ackLatency: summarize(this.ackLat),
      eventLoopDelay: {
        p50: Math.round(this.loopDelay.percentile(50) / 1e6),
        p99: Math.round(this.loopDelay.percentile(99) / 1e6),
        max: Math.round(this.loopDelay.max / 1e6),
      },
    };
  }

  private countError(where: string, err: Error): void {
    this.counters.errors++;
    const kind = `${where}:${(err as { code?: unknown }).code ?? err.name}`;
    this.errorKinds[kind] = (this.errorKinds[kind] ?? 0) + 1;
    if (!(kind in this.errorSamples) && Object.keys(this.errorSamples).length < 20)
      this.errorSamples[kind] = err.message.slice(0, 200);
  }

  private schedule(ms: number, fn: () => void): void {
    const t = this.clock.setTimer(ms, () => {
      this.timers.delete(t);
      fn();
    });
    this.timers.add(t);
  }

  private talk(ep: Endpoint, member: RosterMember, everyMs: number, random: RandomSource, n: number): void {
    if (!this.talking) return;
    const clip = this.bank[(member.family + member.index + n) % this.bank.length]!;
    const seconds = clip.durationMs / 1000;
    const input: AudioInput =
      clip.ogg && clip.packets !== undefined
        ? { kind: 'encoded', ogg: clip.ogg, durationMs: clip.durationMs, packets: clip.packets }
        : { kind: 'pcm', samples: clip.pcm, sampleRate: 16000 };
    this.outstandingRecords++;
    ep.record(seconds, input)
      .catch((err: unknown) => this.countError('record', err instanceof Error ? err : new Error(String(err))))
      .finally(() => {
        this.outstandingRecords--;
      });
    // ±10 % jitter keeps a big fleet from talking in lockstep.
    const next = everyMs * (0.9 + 0.2 * uniform01(random));
    this.schedule(next, () => this.talk(ep, member, everyMs, random, n + 1));
  }

  private wire(ep: Endpoint, member: RosterMember): void {
    let wasOnline = false;
    ep.on('state', (e) => {
      if (e.to === 'online') {
        this.counters.connects++;
        if (!wasOnline) this.onlineCount++;
        this.peakOnline = Math.max(this.peakOnline, this.onlineCount);
        wasOnline = true;
      } else if (wasOnline && e.to !== 'checking') {
        this.onlineCount--;
        wasOnline = false;
      }
    });
    ep.on('retry', (e) => {
      this.counters.retries++;
      this.countError('connect', e.error);
    });
    ep.on('sealed', (e) => {
      this.sentClips.add(e.clipId);
      this.counters.clipsSent++;
      this.counters.envelopeBytes += e.bytes;
      this.counters.deliveriesExpected += e.recipients.length;
    });
    ep.on('acked', (e) => {
      this.counters.clipsAcked++;
      recordMs(this.ackLat, e.ms);
    });
    ep.on('abandoned', () => {
      this.counters.clipsAbandoned++;
    });
    ep.on('delivered', () => {
      this.counters.receipts++;
    });
    ep.on('received', (e) => {
      if (e.duplicate) this.counters.duplicates++;
      else if (!this.sentClips.has(e.clipId)) this.counters.backlogDelivered++;
      else {
        this.counters.delivered++;
        recordMs(this.lat, e.latencyMs);
      }
    });
    ep.on('error', (e) => this.countError(e.where, e.error));
    this.emit('endpoint', { member, endpoint: ep });
  }

  /** Builds endpoints and starts them over the ramp; talking starts right away (clips queue until online). */
  async start(): Promise<void> {
    const cfg = this.config;
    const random = seededRandom(`plushlink/fleet-run/${cfg.seed}`);
    const encoderSettings = cfg.complexity !== undefined ? { complexity: cfg.complexity } : {};
    this.bank = buildSpeechBank({
      count: 8,
      seconds: cfg.clipSeconds ?? 3,
      seed: cfg.seed,
      ...(cfg.reuseEncoded ? { encode: encoderSettings } : {}),
    }).clips;
    if (cfg.outboxDir) await mkdir(cfg.outboxDir, { recursive: true, mode: 0o700 });
    if (cfg.outDir) await mkdir(cfg.outDir, { recursive: true });
    this.startedAt = this.clock.now();
    this.loopDelay.enable();
    this.talking = true;
    // ~5 ms of connect work per endpoint (token signature, MQTT setup, proof check) on each side.
    const endpointCount = cfg.roster.families.reduce((n, f) => n + f.toys.length + f.parents.length, 0);
    const rampMs =
      cfg.rampMs ??
      Math.min(cfg.durationMs / 2, Math.max(Math.min(5000, cfg.durationMs / 4), endpointCount * 6));
    const parentEvery = cfg.parentTalkEveryMs ?? cfg.talkEveryMs * 4;
    for (const fam of cfg.roster.families) {
      const publics = familyPublics(fam);
      for (const member of [...fam.toys, ...fam.parents]) {
        const common = {
          identity: member.identity,
          gateway: cfg.gateway,
          family: publics,
          connector: cfg.connector,
          clock: this.clock,
          seed: `${cfg.seed}/${member.identity.id}`,
          encoderPool: this.pool,
          encoder: encoderSettings,
          decodeReceived: cfg.decode ?? true,
          name: member.name,
          outbox: cfg.outboxDir
            ? { maxItems: cfg.maxOutbox ?? 16, path: join(cfg.outboxDir, `${member.identity.id}.outbox`) }
            : { maxItems: cfg.maxOutbox ?? 16, sequenceFloor: () => this.clock.now() },
          ...(cfg.outDir ? { playDir: cfg.outDir } : {}),
          ...(cfg.nameOf ? { nameOf: cfg.nameOf } : {}),
          pacedRecording: cfg.pacedRecording ?? false,
        };
        const ep: Endpoint = member.role === 'toy' ? new Toy(common) : new ParentApp(common);
        this.endpoints.push({ member, endpoint: ep });
        this.wire(ep, member);
        const startDelay = uniform01(random) * rampMs;
        this.schedule(startDelay, () => {
          ep.start().catch((err: unknown) =>
            this.countError('start', err instanceof Error ? err : new Error(String(err))),
          );
        });
        const every = member.role === 'toy' ? cfg.talkEveryMs : parentEvery;
        if (every > 0) {
          const talkRandom = seededRandom(`${cfg.seed}/talk/${member.identity.id}`);
          const window = Math.min(
            every,
            cfg.durationMs / 2,
            cfg.firstTalkWithinMs ?? Number.POSITIVE_INFINITY,
          );
          const phase = startDelay + uniform01(talkRandom) * window;
          this.schedule(phase, () => this.talk(ep, member, every, talkRandom, 0));
        }
      }
    }
  }

  /** True once every sent clip has been acknowledged and every expected delivery opened. */
  settled(): boolean {
    const c = this.counters;
    return (
      this.outstandingRecords === 0 &&
      c.clipsAcked + c.clipsAbandoned >= c.clipsSent &&
      c.delivered >= c.deliveriesExpected &&
      this.endpoints.every((e) => e.endpoint.drained)
    );
  }

  /** Stops talking, waits (up to drainMs) for what is in flight, then stops every endpoint. */
  async finish(signal?: AbortSignal): Promise<FleetStats> {
    this.talking = false;
    for (const t of this.timers) t.cancel();
    this.timers.clear();
    const drainUntil = this.clock.now() + (this.config.drainMs ?? 10_000);
    while (!signal?.aborted && !this.settled() && this.clock.now() < drainUntil)
      await this.clock.sleep(50, signal);
    await Promise.all(this.endpoints.map((e) => e.endpoint.stop()));
    if (this.ownPool) this.pool.close();
    this.loopDelay.disable();
    return this.stats();
  }

  /** start() → wait durationMs (or until `signal` aborts) → finish(). */
  async run(signal?: AbortSignal): Promise<FleetStats> {
    await this.start();
    await this.clock.sleep(this.config.durationMs, signal);
    return this.finish(signal);
  }
}
