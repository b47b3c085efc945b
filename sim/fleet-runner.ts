// Simulated fleet: seeded bulk identities (one 0600 key file), registration in a gateway store, and a bounded run of toys and parent apps.
import { chmod, mkdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import * as hdr from 'hdr-histogram-js';
import type { AuditLog, EndpointRecord, FamilyId, GatewayStore, NewEndpoint } from '../gateway/interfaces.ts';
import { fromHex, toBase32, toHex } from '../shared/bytes.ts';
import {
  identityFromSecrets,
  identityToJson,
  type PrivateIdentity,
  type PublicIdentity,
  publicPart,
} from '../shared/identity.ts';
import { KEY_BYTES } from '../shared/limits.ts';
import { seededRandom } from '../shared/random.ts';
import type { EndpointId, RandomSource } from '../shared/types.ts';
import { synthesizeSpeech } from './audio/synth.ts';
import { uniform01 } from './backoff.ts';
import { type DeviceClock, realClock, type Timer } from './clock.ts';
import { encodePcmToOgg } from './codec/clip.ts';
import { EncoderPool } from './codec/pool.ts';
import { parentName, toyName } from './names.ts';
import { atomicWriteFile } from './outbox.ts';
import { ParentApp } from './parent.ts';
import { type AudioInput, type Endpoint, Toy, TypedEmitter } from './toy.ts';
import type { Connector } from './transport/wifi.ts';

// ---------------------------------------------------------------------------------------------
// Roster: who is in the fleet

export interface FleetPlan {
  readonly families: number;
  readonly toysPerFamily: number;
  readonly parentsPerFamily: number;
  /** Every key and family id derives from it: the same seed gives the same fleet. */
  readonly seed: string;
}

export interface FleetMember {
  readonly identity: PrivateIdentity;
  readonly role: 'toy' | 'parent';
  /** 0-based family index. */
  readonly family: number;
  /** 0-based index within its role in the family. */
  readonly index: number;
  /** Local display name ("bear-1"): never leaves this process. */
  readonly name: string;
}

export interface FleetFamily {
  readonly index: number;
  readonly id: FamilyId;
  readonly toys: readonly FleetMember[];
  readonly parents: readonly FleetMember[];
}

export interface FleetRoster {
  readonly plan: FleetPlan;
  readonly families: readonly FleetFamily[];
}

export const MAX_FLEET_ENDPOINTS = 100_000;

export function validatePlan(plan: FleetPlan): FleetPlan {
  const int = (name: string, v: number, min: number, max: number): void => {
    if (!Number.isInteger(v) || v < min || v > max)
      throw new RangeError(`${name} must be an integer in [${min}, ${max}], got ${v}`);
  };
  int('families', plan.families, 1, MAX_FLEET_ENDPOINTS);
  int('toysPerFamily', plan.toysPerFamily, 1, 16);
  int('parentsPerFamily', plan.parentsPerFamily, 1, 16);
  if (plan.families * (plan.toysPerFamily + plan.parentsPerFamily) > MAX_FLEET_ENDPOINTS) {
    throw new RangeError(`a fleet holds at most ${MAX_FLEET_ENDPOINTS} endpoints`);
  }
  if (typeof plan.seed !== 'string' || plan.seed.length === 0 || plan.seed.length > 200) {
    throw new RangeError('seed must be a non-empty string of at most 200 characters');
  }
  return plan;
}

function familyIdFrom(random: RandomSource): FamilyId {
  return `f${toBase32(random(16))}` as FamilyId;
}

/**
 * Generates every key of the fleet from the seed (simulation only: seeded keys are as secret as
 * the seed). About 0.3 ms per endpoint (two JWK key imports in Node's crypto): 10,000 in ~3 s.
 */
export function generateFleet(plan: FleetPlan): FleetRoster {
  validatePlan(plan);
  const random = seededRandom(`plushlink/fleet/${plan.seed}`);
  const member = (role: 'toy' | 'parent', family: number, index: number): FleetMember => ({
    identity: identityFromSecrets(role, random(KEY_BYTES), random(KEY_BYTES)),
    role,
    family,
    index,
    name: role === 'toy' ? toyName(family, index) : parentName(family, index),
  });
  const families: FleetFamily[] = [];
  for (let f = 0; f < plan.families; f++) {
    const id = familyIdFrom(random);
    const toys = Array.from({ length: plan.toysPerFamily }, (_, k) => member('toy', f, k));
    const parents = Array.from({ length: plan.parentsPerFamily }, (_, k) => member('parent', f, k));
    families.push({ index: f, id, toys, parents });
  }
  return { plan, families };
}

export function fleetMembers(roster: FleetRoster): FleetMember[] {
  return roster.families.flatMap((f) => [...f.toys, ...f.parents]);
}

// ---------------------------------------------------------------------------------------------
// Fleet key file

/**
 * FLEETDIR/fleet.keys: every endpoint's private key in ONE file (mode 0600, created exclusively,
 * replaced atomically) rather than 10,000 key directories; FLEETDIR/fleet.json: the public roster
 * (ids, roles, public keys, pseudonymous family ids). Neither holds names: display names are
 * re-derived from the indexes by the process that shows them.
 */
export const FLEET_KEYS_FILE = 'fleet.keys';
export const FLEET_PUBLIC_FILE = 'fleet.json';

interface FleetKeysJson {
  plushlink: 'fleet-keys';
  v: 1;
  plan: { families: number; toysPerFamily: number; parentsPerFamily: number };
  families: { id: string; toys: [string, string][]; parents: [string, string][] }[];
}

export async function writeFleetKeys(
  dir: string,
  roster: FleetRoster,
): Promise<{ keysFile: string; publicFile: string }> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const keysFile = join(dir, FLEET_KEYS_FILE);
  const publicFile = join(dir, FLEET_PUBLIC_FILE);
  const { families, toysPerFamily, parentsPerFamily } = roster.plan;
  const secrets = (m: FleetMember): [string, string] => [
    toHex(m.identity.signSeed),
    toHex(m.identity.boxSecret),
  ];
  const keys: FleetKeysJson = {
    plushlink: 'fleet-keys',
    v: 1,
    plan: { families, toysPerFamily, parentsPerFamily },
    families: roster.families.map((f) => ({
      id: f.id,
      toys: f.toys.map(secrets),
      parents: f.parents.map(secrets),
    })),
  };
  await atomicWriteFile(keysFile, JSON.stringify(keys)); // 0600 temp file renamed into place
  await chmod(keysFile, 0o600);
  const pub = (m: FleetMember) => JSON.parse(identityToJson(m.identity)) as unknown;
  const publicRoster = {
    plushlink: 'fleet',
    v: 1,
    plan: keys.plan,
    families: roster.families.map((f) => ({ id: f.id, toys: f.toys.map(pub), parents: f.parents.map(pub) })),
  };
  await atomicWriteFile(publicFile, JSON.stringify(publicRoster));
  await chmod(publicFile, 0o644);
  return { keysFile, publicFile };
}

/** Reads FLEETDIR/fleet.keys back (refusing a file readable by others); undefined when absent. */
export async function readFleetKeys(dir: string): Promise<FleetRoster | undefined> {
  const keysFile = join(dir, FLEET_KEYS_FILE);
  let st: Awaited<ReturnType<typeof stat>>;
  try {
    st = await stat(keysFile);
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ENOENT') return undefined;
    throw err;
  }
  if ((st.mode & 0o077) !== 0) throw new Error(`${keysFile} is accessible by other users; chmod 600 it`);
  if (st.size > 64 * 1024 * 1024) throw new Error(`${keysFile} is too large`);
  const raw = JSON.parse(await readFile(keysFile, 'utf8')) as Partial<FleetKeysJson>;
  if (raw.plushlink !== 'fleet-keys' || raw.v !== 1 || !raw.plan || !Array.isArray(raw.families)) {
    throw new Error(`${keysFile} is not a PlushLink fleet key file`);
  }
  const plan: FleetPlan = { ...raw.plan, seed: 'from-file' }; // the seed itself is never stored
  validatePlan(plan);
  const load = (
    role: 'toy' | 'parent',
    family: number,
    index: number,
    pair: [string, string],
  ): FleetMember => ({
    identity: identityFromSecrets(
      role,
      fromHex(pair[0], 'signSeed', KEY_BYTES),
      fromHex(pair[1], 'boxSecret', KEY_BYTES),
    ),
    role,
    family,
    index,
    name: role === 'toy' ? toyName(family, index) : parentName(family, index),
  });
  const families = raw.families.map((f, i) => ({
    index: i,
    id: f.id as FamilyId,
    toys: f.toys.map((p, k) => load('toy', i, k, p)),
    parents: f.parents.map((p, k) => load('parent', i, k, p)),
  }));
  return { plan, families };
}

/** Same shape (counts) and the same keys: a fleet directory may be reused by a later run. */
export function sameFleet(a: FleetRoster, b: FleetRoster): boolean {
  const ma = fleetMembers(a);
  const mb = fleetMembers(b);
  return (
    a.families.length === b.families.length &&
    ma.length === mb.length &&
    ma.every((m, i) => m.identity.id === mb[i]?.identity.id) &&
    a.families.every((f, i) => f.id === b.families[i]?.id)
  );
}

// ---------------------------------------------------------------------------------------------
// Registration with the gateway

export interface RegisterResult {
  readonly endpoints: number;
  readonly families: number;
  /** Already registered with the same keys (a re-run against the same gateway data). */
  readonly skipped: number;
  readonly ms: number;
}

/**
 * Registers public keys and families directly in a GatewayStore (the gateway's SQLite file can be
 * opened beside a running gateway: WAL mode, busy timeout). New endpoints go in one transaction
 * (the store's addEndpoints, as gateway/admin.ts provisionMany uses), the rest is issued
 * concurrently so the SQLite store group-commits it. Idempotent: endpoints that exist with the same
 * key and families that exist are skipped. One audit event for the whole batch.
 */
export async function registerFleet(
  store: GatewayStore,
  roster: FleetRoster,
  opts: { now?: number; audit?: AuditLog } = {},
): Promise<RegisterResult> {
  const t0 = performance.now();
  const now = Math.floor(opts.now ?? Date.now());
  const CHUNK = 4096;
  const members = fleetMembers(roster);
  const existing: (EndpointRecord | undefined)[] = [];
  for (let i = 0; i < members.length; i += CHUNK) {
    existing.push(
      ...(await Promise.all(members.slice(i, i + CHUNK).map((m) => store.getEndpoint(m.identity.id)))),
    );
  }
  const newMembers: FleetMember[] = [];
  members.forEach((m, i) => {
    const e = existing[i];
    if (!e) newMembers.push(m);
    else if (toHex(e.signPublicKey) !== toHex(m.identity.signPublicKey))
      throw new Error(`endpoint ${m.identity.id} exists with other keys`);
  });
  const known = new Set((await store.listFamilies()).map((f) => f.id));
  const newFamilies = roster.families.filter((f) => !known.has(f.id));
  for (let i = 0; i < newFamilies.length; i += CHUNK) {
    await Promise.all(newFamilies.slice(i, i + CHUNK).map((f) => store.createFamily(f.id, now)));
  }
  const recs: NewEndpoint[] = newMembers.map((m) => ({
    id: m.identity.id,
    role: m.role,
    signPublicKey: m.identity.signPublicKey,
    boxPublicKey: m.identity.boxPublicKey,
    createdAt: now,
  }));
  await store.addEndpoints(recs);
  for (let i = 0; i < newMembers.length; i += CHUNK) {
    await Promise.all(
      newMembers
        .slice(i, i + CHUNK)
        .map((m) => store.addFamilyMember(roster.families[m.family]!.id, m.identity.id)),
    );
  }
  if (recs.length > 0) {
    await opts.audit?.append({
      at: now,
      kind: 'endpoint.provisioned_bulk',
      detail: { count: recs.length, families: newFamilies.length, source: 'fleet' },
    });
  }
  return {
    endpoints: recs.length,
    families: newFamilies.length,
    skipped: members.length - newMembers.length,
    ms: performance.now() - t0,
  };
}

// ---------------------------------------------------------------------------------------------
// Running the fleet

export interface FleetRunConfig {
  readonly roster: FleetRoster;
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

export interface LatencySummary {
  readonly count: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
  readonly mean: number;
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
  endpoint: { readonly member: FleetMember; readonly endpoint: Endpoint };
}

function histogram(): hdr.Histogram {
  return hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 3_600_000,
    numberOfSignificantValueDigits: 3,
  });
}

function summarize(h: hdr.Histogram): LatencySummary {
  if (h.totalCount === 0) return { count: 0, p50: 0, p90: 0, p99: 0, max: 0, mean: 0 };
  return {
    count: h.totalCount,
    p50: h.getValueAtPercentile(50),
    p90: h.getValueAtPercentile(90),
    p99: h.getValueAtPercentile(99),
    max: h.maxValue,
    mean: Math.round(h.mean * 10) / 10,
  };
}

/** Numeric seed for the synthetic speech generator, derived from a string. */
function numericSeed(random: RandomSource): number {
  const b = random(4);
  return ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
}

/**
 * Runs every toy and parent app of a roster against a gateway for a bounded time. Toys record a
 * clip every `talkEveryMs` (seeded phase), parents answer now and then; every endpoint runs the
 * real state machine, outbox, Opus encoder (pooled) and crypto. Stops by itself after the
 * duration plus a drain period, and returns the statistics.
 */
export class FleetRunner extends TypedEmitter<FleetRunnerEvents> {
  readonly config: FleetRunConfig;
  readonly endpoints: { readonly member: FleetMember; readonly endpoint: Endpoint }[] = [];
  private readonly clock: DeviceClock;
  private readonly pool: EncoderPool;
  private readonly ownPool: boolean;
  private readonly timers = new Set<Timer>();
  private readonly lat = histogram();
  private readonly ackLat = histogram();
  private readonly bank: Int16Array[] = [];
  private readonly encodedBank: AudioInput[] = [];
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

  private talk(ep: Endpoint, member: FleetMember, everyMs: number, random: RandomSource, n: number): void {
    if (!this.talking) return;
    const k = (member.family + member.index + n) % this.bank.length;
    const pcm = this.bank[k]!;
    const seconds = pcm.length / 16000;
    const input: AudioInput = this.encodedBank[k] ?? { kind: 'pcm', samples: pcm, sampleRate: 16000 };
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

  private wire(ep: Endpoint, member: FleetMember): void {
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
      this.ackLat.recordValue(Math.max(1, e.ms));
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
        this.lat.recordValue(Math.max(1, e.latencyMs));
      }
    });
    ep.on('error', (e) => this.countError(e.where, e.error));
    this.emit('endpoint', { member, endpoint: ep });
  }

  /** Builds endpoints and starts them over the ramp; talking starts right away (clips queue until online). */
  async start(): Promise<void> {
    const cfg = this.config;
    const random = seededRandom(`plushlink/fleet-run/${cfg.seed}`);
    const clipSeconds = cfg.clipSeconds ?? 3;
    for (let i = 0; i < 8; i++)
      this.bank.push(synthesizeSpeech({ seed: numericSeed(random), durationMs: clipSeconds * 1000 }));
    const encoderSettings = cfg.complexity !== undefined ? { complexity: cfg.complexity } : {};
    if (cfg.reuseEncoded) {
      for (const pcm of this.bank) {
        const serial = numericSeed(random);
        const e = await this.pool.use(encoderSettings, (encoder) => encodePcmToOgg(pcm, { serial, encoder }));
        this.encodedBank.push({ kind: 'encoded', ogg: e.ogg, durationMs: e.durationMs, packets: e.packets });
      }
    }
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
      const publics = [...fam.toys, ...fam.parents].map((m) => publicPart(m.identity));
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
