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
import { toHex } from '../shared/bytes.ts';
import type { PublicIdentity } from '../shared/identity.ts';
import { seededRandom, systemRandom } from '../shared/random.ts';
import type { EndpointId, RandomSource } from '../shared/types.ts';
import { BleFamily, type BlePairingEvent, type BleRelayEvent, PHONE_LINK_PARAMS } from './ble-relay.ts';
import { familyPublics, type Roster, type RosterMember } from './roster.ts';
import { type BankClip, loadSpeechBank, type SpeechBank, type SpeechChoice } from './speech-bank.ts';
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
  /** Length of each clip (recordings: at most this long). Default 3 s. */
  readonly clipSeconds?: number;
  /** What the endpoints say: synthetic speech (default), the bundled recordings, WAV files, or a bank loaded already. */
  readonly speech?: SpeechChoice | SpeechBank;
  /** Fixes every identity-independent choice of the run: speech, phases, jitter. */
  readonly seed: string;
  /**
   * Mixed into every clip id, content key and Ogg serial, so that a re-run with the same seed
   * never repeats a clip id (the gateway refuses a known clip id with another sequence number
   * [PLK-8.2]). Default: fresh random bytes; give one only to replay a run exactly.
   */
  readonly runId?: string;
  /**
   * `ble`: toys have no Wi-Fi; each pairs (numeric comparison) with the phone of its family's
   * first parent, whose app relays the sealed clips unchanged on its relay topic [PLK-4.5].
   * Parents then only listen (a toy on BLE has no inbox through the phone). Default `wifi`.
   */
  readonly link?: 'wifi' | 'ble';
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
   * Persist each endpoint's outbox as DIR/<id>.outbox: a later run with the same DIR resends what
   * an earlier one left unacknowledged. Either way sequence numbers follow the clock (ms), which
   * keeps them increasing across runs — also with another DIR or none [PLK-8.1].
   */
  readonly outboxDir?: string;
  /**
   * Sequence numbers follow the clock (default). `false` (only with outboxDir) counts 1, 2, 3, …
   * from the outbox files: readable in a log, but a fleet whose keys outlive its outbox folder
   * (same seed, new --dir) would then repeat numbers the gateway already accepted.
   */
  readonly clockSequence?: boolean;
  /** After the drain, how long endpoints get to close their connections before the run ends anyway. Default 3 s. */
  readonly stopGraceMs?: number;
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
  /** Clips an earlier run with the same outbox folder left unacknowledged, sent and stored now. */
  readonly clipsResumed: number;
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
  /** Endpoints that were never online during the run. */
  readonly neverOnline: number;
  /** Endpoints that had not closed their connection within the stop grace (the run ended anyway). */
  readonly stopTimeouts: number;
  /** The run was stopped before its duration (Ctrl-C): what was in flight still had the drain time. */
  readonly interrupted: boolean;
  /** What the endpoints said (SpeechBank.source). */
  readonly speech: string;
  readonly link: 'wifi' | 'ble';
  /** With link `ble`: pairings and the air time of every relayed clip. */
  readonly ble?: BleStats;
}

export interface BleStats {
  /** Toys paired with their family's phone (numeric comparison confirmed on both). */
  readonly paired: number;
  readonly pairingsFailed: number;
  /** Clips downloaded over BLE and relayed unchanged by a phone (acknowledged by the gateway). */
  readonly relayed: number;
  /** Simulated download time per clip (STOP_RECORDING → last notification), ms. */
  readonly airtime: LatencySummary;
  /** The timing model's expected time for the same clips (estimateTransfer), mean ms. */
  readonly modelMeanMs: number;
  readonly bytesMean: number;
  readonly params: {
    readonly attMtu: number;
    readonly llDataLength: number;
    readonly phy: string;
    readonly connectionIntervalMs: number;
  };
}

export interface FleetRunnerEvents {
  /** Fired once per endpoint as it is created, so callers can attach their own listeners (the demo log). */
  endpoint: { readonly member: RosterMember; readonly endpoint: Endpoint };
  /** Link `ble`: a toy and its phone compared six digits (the log shows them). */
  pairing: BlePairingEvent;
  /** Link `ble`: a clip went over the air and the phone relayed it. */
  relayed: BleRelayEvent;
  /** The drain started: `interrupted` when a stop signal cut the talking short. */
  draining: { readonly interrupted: boolean; readonly drainMs: number };
}

/**
 * Whether a run delivered what it should, in one line for the end of a report: "ok: 22/22
 * delivered" or "FAILED: 3 of 22 deliveries missing; …". Connection retries alone do not fail a
 * run (a gateway's rate limit makes a big fleet retry); an endpoint that never got online does.
 */
export interface FleetVerdict {
  readonly ok: boolean;
  readonly problems: readonly string[];
  readonly line: string;
}

export function fleetVerdict(s: FleetStats): FleetVerdict {
  const problems: string[] = [];
  const missing = s.deliveriesExpected - s.delivered;
  if (missing > 0) problems.push(`${missing} of ${s.deliveriesExpected} deliveries missing`);
  const unstored = s.clipsSent - s.clipsAcked - s.clipsAbandoned;
  if (unstored > 0) problems.push(`${unstored} of ${s.clipsSent} clips not stored by the gateway`);
  if (s.clipsAbandoned > 0) problems.push(`${s.clipsAbandoned} clips given up after repeated refusals`);
  if (s.neverOnline > 0) {
    const top = Object.entries(s.errorKinds)
      .filter(([k]) => k.startsWith('connect:'))
      .sort((a, b) => b[1] - a[1])[0];
    const why = top ? ` (${top[0]}×${top[1]}: ${(s.errorSamples[top[0]] ?? '').slice(0, 100)})` : '';
    problems.push(`${s.neverOnline} of ${s.endpoints} endpoints never connected${why}`);
  }
  const errors = Object.entries(s.errorKinds).filter(([k]) => !k.startsWith('connect:'));
  const errorCount = errors.reduce((n, [, v]) => n + v, 0);
  if (errorCount > 0)
    problems.push(`${errorCount} errors (${errors.map(([k, v]) => `${k}×${v}`).join(', ')})`);
  if (s.stopTimeouts > 0) problems.push(`${s.stopTimeouts} endpoints did not stop in time`);
  if (problems.length > 0) return { ok: false, problems, line: `FAILED: ${problems.join('; ')}` };
  const notes = [
    `${s.endpoints - s.neverOnline}/${s.endpoints} endpoints connected`,
    ...(s.retries > 0 ? [`${s.retries} connect retries`] : []),
    ...(s.interrupted ? ['stopped early'] : []),
  ];
  return {
    ok: true,
    problems,
    line: `ok: ${s.delivered}/${s.deliveriesExpected} delivered (${notes.join(', ')})`,
  };
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
  private speechSource = '';
  /** Clip id → recipients expected, for clips sealed in this run (earlier runs' clips may still arrive from the gateway's backlog). */
  private readonly sentClips = new Map<string, number>();
  private startedAt = 0;
  private talking = false;
  private interrupted = false;
  private stopTimeouts = 0;
  private readonly everOnline = new Set<Endpoint>();
  private readonly started = new Set<Endpoint>();
  private readonly runId: string;
  private readonly bleFamilies: BleFamily[] = [];
  private readonly bleCounts = { paired: 0, pairingsFailed: 0, relayed: 0, modelMs: 0, bytes: 0 };
  private readonly airtime = newHistogram();
  private readonly counters = {
    connects: 0,
    retries: 0,
    clipsSent: 0,
    clipsAcked: 0,
    clipsAbandoned: 0,
    clipsResumed: 0,
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
  /** The roster's endpoints: a recipient outside the fleet (a parent's browser, docs/WEB.md) receipts on its own, uncounted. */
  private readonly fleetIds: ReadonlySet<EndpointId>;

  constructor(config: FleetRunConfig) {
    super();
    if (!(config.durationMs > 0)) throw new RangeError('durationMs must be > 0');
    if (!(config.talkEveryMs >= 0)) throw new RangeError('talkEveryMs must be ≥ 0 (0: toys only listen)');
    if (config.link === 'ble' && (config.parentTalkEveryMs ?? 0) > 0)
      throw new RangeError(
        'with link ble parents only listen (a toy on BLE has no inbox through the phone): parentTalkEveryMs must be 0',
      );
    this.config = config;
    this.fleetIds = new Set(
      config.roster.families.flatMap((f) => [...f.toys, ...f.parents].map((m) => m.identity.id)),
    );
    this.runId = config.runId ?? toHex(systemRandom(8));
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
      neverOnline: this.endpoints.filter((e) => !this.everOnline.has(e.endpoint)).length,
      stopTimeouts: this.stopTimeouts,
      interrupted: this.interrupted,
      speech: this.speechSource,
      link: this.config.link ?? 'wifi',
      ...(this.config.link === 'ble' ? { ble: this.bleStats() } : {}),
    };
  }

  private bleStats(): BleStats {
    const b = this.bleCounts;
    const p = this.bleFamilies[0]?.params ?? PHONE_LINK_PARAMS;
    return {
      paired: b.paired,
      pairingsFailed: b.pairingsFailed,
      relayed: b.relayed,
      airtime: summarize(this.airtime),
      modelMeanMs: b.relayed ? Math.round((b.modelMs / b.relayed) * 10) / 10 : 0,
      bytesMean: b.relayed ? Math.round(b.bytes / b.relayed) : 0,
      params: {
        attMtu: p.attMtu,
        llDataLength: p.llDataLength,
        phy: p.phy,
        connectionIntervalMs: p.connectionIntervalMs,
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

  private setExpected(clipId: string, recipients: number): void {
    const before = this.sentClips.get(clipId);
    if (before === undefined) return;
    this.counters.deliveriesExpected += recipients - before;
    this.sentClips.set(clipId, recipients);
  }

  private wire(ep: Endpoint, member: RosterMember): void {
    let wasOnline = false;
    ep.on('state', (e) => {
      if (e.to === 'online') {
        this.everOnline.add(ep);
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
    const inFleet = (ids: readonly EndpointId[]): number => ids.filter((id) => this.fleetIds.has(id)).length;
    ep.on('sealed', (e) => {
      this.sentClips.set(e.clipId, inFleet(e.recipients));
      this.counters.clipsSent++;
      this.counters.envelopeBytes += e.bytes;
      this.counters.deliveriesExpected += inFleet(e.recipients);
    });
    // [PLK-4.6] a roster from the gateway re-seals queued clips to its members: expect those.
    ep.on('roster', () => {
      for (const item of ep.outbox?.items() ?? []) this.setExpected(item.clipId, inFleet(item.recipients));
    });
    ep.on('acked', (e) => {
      if (!this.sentClips.has(e.clipId)) {
        this.counters.clipsResumed++;
        return;
      }
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

  private startEndpoint(ep: Endpoint): void {
    if (this.started.has(ep)) return;
    this.started.add(ep);
    ep.start().catch((err: unknown) =>
      this.countError('start', err instanceof Error ? err : new Error(String(err))),
    );
  }

  /** Builds endpoints and starts them over the ramp; talking starts right away (clips queue until online). */
  async start(): Promise<void> {
    const cfg = this.config;
    const random = seededRandom(`plushlink/fleet-run/${cfg.seed}`);
    const encoderSettings = cfg.complexity !== undefined ? { complexity: cfg.complexity } : {};
    const speech = cfg.speech ?? 'synth';
    const bank =
      typeof speech === 'object' && 'clips' in speech
        ? speech
        : await loadSpeechBank(speech, {
            count: 8,
            seconds: cfg.clipSeconds ?? 3,
            seed: cfg.seed,
            ...(cfg.reuseEncoded ? { encode: encoderSettings } : {}),
          });
    this.bank = bank.clips;
    this.speechSource = bank.source;
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
    const parentEvery = cfg.parentTalkEveryMs ?? (cfg.link === 'ble' ? 0 : cfg.talkEveryMs * 4);
    for (const fam of cfg.roster.families) {
      const publics = familyPublics(fam);
      let connectorOf = (_m: RosterMember): Connector => cfg.connector;
      if (cfg.link === 'ble') {
        const ble = new BleFamily(
          fam,
          cfg.connector,
          {
            pairing: (e) => {
              if (e.ok) this.bleCounts.paired++;
              else this.bleCounts.pairingsFailed++;
              this.emit('pairing', e);
            },
            linkLost: (_toy, error) => this.countError('connect', error),
            relayed: (e) => {
              this.bleCounts.relayed++;
              this.bleCounts.modelMs += e.modelMs;
              this.bleCounts.bytes += e.bytes;
              recordMs(this.airtime, e.airtimeMs);
              this.emit('relayed', e);
            },
          },
          `${cfg.seed}/${this.runId}`,
        );
        this.bleFamilies.push(ble);
        connectorOf = (m) =>
          m.role === 'toy' ? ble.toyConnector(m) : m === ble.phoneOwner ? ble.phoneConnector : cfg.connector;
      }
      for (const member of [...fam.toys, ...fam.parents]) {
        const common = {
          identity: member.identity,
          gateway: cfg.gateway,
          family: publics,
          connector: connectorOf(member),
          clock: this.clock,
          // Backoff jitter follows the seed; what must be unique per run (clip ids, content keys,
          // nonces, Ogg serials) also follows the run id.
          seed: `${cfg.seed}/${member.identity.id}`,
          random: seededRandom(`${cfg.seed}/${member.identity.id}/seal/${this.runId}`),
          encoderPool: this.pool,
          encoder: encoderSettings,
          decodeReceived: cfg.decode ?? true,
          name: member.name,
          outbox: {
            maxItems: cfg.maxOutbox ?? 16,
            ...(cfg.clockSequence === false && cfg.outboxDir
              ? {}
              : { sequenceFloor: () => this.clock.now() }),
            ...(cfg.outboxDir ? { path: join(cfg.outboxDir, `${member.identity.id}.outbox`) } : {}),
          },
          ...(cfg.outDir ? { playDir: cfg.outDir } : {}),
          ...(cfg.nameOf ? { nameOf: cfg.nameOf } : {}),
          pacedRecording: cfg.pacedRecording ?? false,
        };
        const ep: Endpoint = member.role === 'toy' ? new Toy(common) : new ParentApp(common);
        this.endpoints.push({ member, endpoint: ep });
        this.wire(ep, member);
        const startDelay = uniform01(random) * rampMs;
        this.schedule(startDelay, () => this.startEndpoint(ep));
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

  /**
   * Stops talking, waits (up to drainMs; `abortDrain` cuts it short) for what is in flight, then
   * stops every endpoint, giving them stopGraceMs to close their connections: bounded whatever
   * the gateway does.
   */
  async finish(abortDrain?: AbortSignal): Promise<FleetStats> {
    const drainMs = this.config.drainMs ?? 10_000;
    this.talking = false;
    for (const t of this.timers) t.cancel();
    this.timers.clear();
    // A run stopped during its ramp: the endpoints still waiting join now, so that what is in
    // flight for them is delivered.
    for (const e of this.endpoints) this.startEndpoint(e.endpoint);
    this.emit('draining', { interrupted: this.interrupted, drainMs });
    const drainUntil = this.clock.now() + drainMs;
    while (!abortDrain?.aborted && !this.settled() && this.clock.now() < drainUntil)
      await this.clock.sleep(50, abortDrain);
    let pending = this.endpoints.length;
    const stops = this.endpoints.map((e) =>
      e.endpoint
        .stop()
        .catch((err: unknown) => this.countError('stop', err instanceof Error ? err : new Error(String(err))))
        .finally(() => {
          pending--;
        }),
    );
    await Promise.race([Promise.all(stops), this.clock.sleep(this.config.stopGraceMs ?? 3000, abortDrain)]);
    this.stopTimeouts = pending;
    if (this.ownPool && pending === 0) this.pool.close();
    this.loopDelay.disable();
    return this.stats();
  }

  /**
   * start() → wait durationMs (or until `stop` aborts: the run is then `interrupted`, and what is
   * in flight still gets the drain time) → finish(abortDrain).
   */
  async run(stop?: AbortSignal, abortDrain?: AbortSignal): Promise<FleetStats> {
    await this.start();
    await this.clock.sleep(this.config.durationMs, stop);
    if (stop?.aborted) this.interrupted = true;
    return this.finish(abortDrain);
  }
}
