// Load generation for one slice of a fleet: connects its toys and parents through the endpoint connect client, sends sealed clips at a rate, runs attacks, measures — no threads, so it runs and is tested in-process.
import { performance } from 'node:perf_hooks';
import type { MqttClient } from 'mqtt';
import {
  ConnectError,
  ConnectRefusedError,
  connectEndpoint,
  connectPlain,
  type MqttEndpointConnection,
} from '../device/transport/mqtt-connect.ts';
import { type CryptoSuite, defaultCrypto } from '../shared/crypto.ts';
import { decodeClip, openClip, sealClip } from '../shared/envelope.ts';
import {
  generateIdentity,
  identityFromSecrets,
  idToBytes,
  type PrivateIdentity,
  type PublicIdentity,
  publicPart,
} from '../shared/identity.ts';
import { CONTEXT, MSG } from '../shared/limits.ts';
import { systemRandom } from '../shared/random.ts';
import { createReceipt } from '../shared/receipt.ts';
import { signBody } from '../shared/signed.ts';
import { clipTopic, inboxTopic, receiptTopic } from '../shared/topics.ts';
import type { EndpointId } from '../shared/types.ts';
import { type Histogram, newHistogram, recordMs } from './stats.ts';

/** full: every clip sealed from scratch; resign: per-recipient sealed template, per-clip header and signature. */
export type SealMode = 'full' | 'resign';

export type AttackKind =
  | 'bad-signature'
  | 'replayed-envelope'
  | 'replayed-token'
  | 'oversized-packet'
  | 'wildcard-subscription'
  | 'unknown-id';
export const ATTACK_KINDS: readonly AttackKind[] = [
  'bad-signature',
  'replayed-envelope',
  'replayed-token',
  'oversized-packet',
  'wildcard-subscription',
  'unknown-id',
];

/** Where the traffic goes. `gateway` speaks PlushLink auth; `plain` is a bare MQTT relay. */
export interface TargetInfo {
  readonly kind: 'embedded' | 'forked' | 'external' | 'aedes' | 'mosquitto';
  readonly mode: 'gateway' | 'plain';
  readonly url: string;
  /**
   * Several nodes of one gateway (docs/SCALING.md): parent p connects to node p mod n and each toy
   * to the node after its parent's, so every clip and receipt crosses nodes. `url` is the first.
   */
  readonly urls?: readonly string[];
  readonly gatewayId: string | null;
  readonly gatewaySignPublicKey: Uint8Array | null;
  /**
   * The gateway's hold for clips in transit in ms [PLK-12.9], null when off; absent when not known
   * (a gateway started elsewhere) or not applicable (a plain broker).
   */
  readonly transitHoldMs?: number | null;
}

/** An endpoint's two 32-byte secrets (identities are rebuilt from them where they are used). */
export interface EndpointSecrets {
  readonly signSeed: Uint8Array;
  readonly boxSecret: Uint8Array;
}

export interface DriverInit {
  readonly index: number;
  readonly target: TargetInfo;
  /** Legitimate toys and the parent each one sends to (index into `parents`). */
  readonly toys: readonly EndpointSecrets[];
  readonly toyParent: readonly number[];
  readonly parents: readonly EndpointSecrets[];
  /** Registered attacker toys (own family, with `attackerParent` as the only other member). */
  readonly attackers: readonly EndpointSecrets[];
  readonly attackerParent: EndpointSecrets | null;
  readonly oggPool: readonly Uint8Array[];
  readonly clipDurationMs: number;
  readonly receipts: boolean;
  readonly parentsOpen: boolean;
  readonly oversizeBytes: number;
  readonly seal: SealMode;
  readonly pubackTimeoutMs: number;
  /** Most un-acknowledged clips; beyond it scheduled sends are skipped and counted (closed loop). */
  readonly maxInflight: number;
}

/** Counters of one interval (deltas since the last snapshot). */
export interface Counters {
  clipsSent: number;
  clipsAcked: number;
  clipsDelivered: number;
  duplicates: number;
  bytesSent: number;
  bytesAcked: number;
  connects: number;
  connectFailures: number;
  receiptsSent: number;
  notSent: number;
}

export const zeroCounters = (): Counters => ({
  clipsSent: 0,
  clipsAcked: 0,
  clipsDelivered: 0,
  duplicates: 0,
  bytesSent: 0,
  bytesAcked: 0,
  connects: 0,
  connectFailures: 0,
  receiptsSent: 0,
  notSent: 0,
});

export interface AttackTally {
  attempted: number;
  refused: number;
  /** Accepted by the target: a security failure. */
  leaked: number;
  /** No verdict (timeout, generator error). */
  inconclusive: number;
  /** How the refusals showed, e.g. "connack-5", "closed", "suback-128". */
  signals: Record<string, number>;
}

/** What happened since the previous snapshot. */
export interface DriverInterval {
  readonly counters: Counters;
  readonly errors: Record<string, number>;
  readonly connect: Histogram;
  readonly puback: Histogram;
  readonly e2e: Histogram;
  readonly connected: number;
  readonly inflight: number;
  readonly attacks: Partial<Record<AttackKind, AttackTally>>;
}

/** Sends per scheduler tick (every 5 ms): bounds the work one tick can do. */
export const SENDS_PER_TICK = 2_000;
/** Hard bound on un-acknowledged clips of one driver. */
export const MAX_INFLIGHT = 20_000;
/** Wildcard and foreign filters the wildcard attack tries, in turn. */
const WILDCARDS = ['#', 'plk/1/+/inbox', '$SYS/#', 'plk/1/#'];

interface Member {
  readonly index: number;
  readonly identity: PrivateIdentity;
  readonly pub: PublicIdentity;
  client: MqttClient | null;
  ready: boolean;
  /** True while we are closing it on purpose (storm, stop): the close is not an error. */
  dropping: boolean;
  seq: number;
  /** Index into parents (toys only). */
  readonly parent: number;
}

interface Inflight {
  readonly t0: number;
  readonly bytes: number;
  /** The recipient: an index into the parents. */
  readonly parent: number;
  state: 'pending' | 'acked' | 'failed';
  delivered: boolean;
}

type Outcome = { ok: true; conn: MqttEndpointConnection; ms: number } | { ok: false; error: string };

/** The short error label of a failed connect, as counted in the report ("connack-5", "connect-timeout"). */
export function connectErrorLabel(err: unknown): string {
  if (err instanceof ConnectRefusedError) return `connack-${err.returnCode}`;
  if (err instanceof ConnectError) {
    switch (err.code) {
      case 'CONNECT_TIMEOUT':
      case 'PROOF_TIMEOUT':
        return 'connect-timeout';
      case 'PROOF_INVALID':
        return 'bad-gateway-proof';
      case 'CONNECT_CLOSED':
        return 'closed-before-ready';
      case 'SUBSCRIBE_REFUSED':
        return 'inbox-subscribe-refused';
      default: {
        const code = (err.cause as { code?: unknown } | undefined)?.code;
        return `socket-${String(code ?? 'error')}`;
      }
    }
  }
  return 'connect-error';
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const toBuffer = (b: Uint8Array): Buffer => Buffer.from(b.buffer, b.byteOffset, b.length);

/**
 * Drives one slice of a load test. The worker thread of `plushlink loadtest` is a thin message
 * adapter around it; tests run it in-process against a real gateway. Every loop is bounded (rate,
 * SENDS_PER_TICK, MAX_INFLIGHT, per-connection timeouts) and every clip ends acknowledged or as a
 * counted error, so sent = acked + clip errors always holds.
 */
export class LoadDriver {
  private readonly crypto: CryptoSuite;
  private readonly gatewayMode: boolean;
  private readonly gatewayPublic: PublicIdentity | null;
  private readonly parents: Member[];
  private readonly toys: Member[];
  private readonly attackers: Member[];
  private readonly attackerParent: PublicIdentity | null;
  private readonly toyBySender: Map<string, Member>;
  private readonly attackerBusy = new Set<number>();
  private counters: Counters = zeroCounters();
  private errors: Record<string, number> = {};
  private readonly hConnect = newHistogram();
  private readonly hPuback = newHistogram();
  private readonly hE2e = newHistogram();
  private attacks: Partial<Record<AttackKind, AttackTally>> = {};
  /** Clips sent and not yet both acknowledged and delivered, by "toyIndex:seq". */
  private readonly inflight = new Map<string, Inflight>();
  private pendingAcks = 0;
  /** A few recent legitimate envelopes, for the replayed-envelope attack. */
  private readonly captured: Uint8Array[] = [];
  private readonly templates = new Map<string, Uint8Array>();
  private readonly idBytes = new Map<string, Uint8Array>();
  private poolIndex = 0;
  private nextToy = 0;
  private attackIndex: number;
  private attacksPending = 0;
  private oversize: Buffer | null = null;
  private stopping = false;
  private phaseTimer: NodeJS.Timeout | null = null;

  constructor(readonly init: DriverInit) {
    this.crypto = defaultCrypto();
    const target = init.target;
    this.gatewayMode = target.mode === 'gateway';
    this.gatewayPublic =
      target.gatewayId && target.gatewaySignPublicKey
        ? {
            role: 'gateway',
            id: target.gatewayId as EndpointId,
            signPublicKey: target.gatewaySignPublicKey,
            boxPublicKey: new Uint8Array(32),
          }
        : null;
    const mk = (s: EndpointSecrets, role: 'toy' | 'parent', index: number, parent = -1): Member => {
      const identity = identityFromSecrets(role, s.signSeed, s.boxSecret, this.crypto);
      return {
        index,
        identity,
        pub: publicPart(identity),
        client: null,
        ready: false,
        dropping: false,
        // Sequence numbers start at the clock (ms) and count up: strictly increasing across runs
        // against the same gateway without any stored state [PLK-8.1].
        seq: Date.now(),
        parent,
      };
    };
    this.parents = init.parents.map((s, i) => mk(s, 'parent', i));
    this.toys = init.toys.map((s, i) => mk(s, 'toy', i, init.toyParent[i] ?? 0));
    this.attackers = init.attackers.map((s, i) => mk(s, 'toy', i));
    this.attackerParent = init.attackerParent
      ? publicPart(
          identityFromSecrets(
            'parent',
            init.attackerParent.signSeed,
            init.attackerParent.boxSecret,
            this.crypto,
          ),
        )
      : null;
    this.toyBySender = new Map(this.toys.map((t) => [t.identity.id, t]));
    this.attackIndex = init.index * 3;
  }

  private countError(kind: string): void {
    this.errors[kind] = (this.errors[kind] ?? 0) + 1;
  }

  /** Toys currently connected and verified. */
  get connectedToys(): number {
    let n = 0;
    for (const t of this.toys) if (t.ready) n++;
    return n;
  }

  /**
   * What happened since the last call (the histograms are reset after the caller has read them:
   * read or encode them before the next call). Clips whose PUBACK is overdue become errors here.
   */
  interval(): DriverInterval {
    const out: DriverInterval = {
      counters: this.counters,
      errors: this.errors,
      connect: this.hConnect,
      puback: this.hPuback,
      e2e: this.hE2e,
      connected: this.connectedToys,
      inflight: this.pendingAcks,
      attacks: this.attacks,
    };
    return out;
  }

  /** Resets the interval counters and histograms, then times out overdue clips (bounded wait). */
  resetInterval(): void {
    this.counters = zeroCounters();
    this.errors = {};
    this.hConnect.reset();
    this.hPuback.reset();
    this.hE2e.reset();
    this.attacks = {};
    this.sweepTimeouts();
  }

  private sweepTimeouts(): void {
    const limit = performance.now() - this.init.pubackTimeoutMs;
    for (const [key, f] of this.inflight) {
      if (f.state === 'pending' && f.t0 < limit) {
        f.state = 'failed';
        this.pendingAcks--;
        this.countError('puback-timeout');
        this.inflight.delete(key);
      }
    }
  }

  // ---- connecting ------------------------------------------------------------------------------

  /**
   * One connection through the endpoint connect client: in gateway mode signed token, inbox
   * SUBSCRIBE and the gateway proof checked against the pinned key [PLK-3.6] (the latency covers
   * all of it); in plain mode an anonymous CONNECT and the inbox SUBSCRIBE.
   */
  private async openConnection(
    identity: PrivateIdentity,
    timeoutMs: number,
    hooks: { token?: Uint8Array; onToken?: (t: Uint8Array) => void } = {},
    url = this.init.target.url,
  ): Promise<Outcome> {
    const t0 = performance.now();
    const common = {
      url,
      identity,
      timeoutMs,
      keepalive: 600,
      crypto: this.crypto,
    };
    try {
      let conn: MqttEndpointConnection;
      if (this.gatewayMode) {
        if (!this.gatewayPublic) return { ok: false, error: 'no-gateway-identity' };
        conn = await connectEndpoint({
          ...common,
          gateway: this.gatewayPublic,
          ...(hooks.token ? { token: hooks.token } : {}),
          ...(hooks.onToken ? { onToken: hooks.onToken } : {}),
        });
      } else conn = await connectPlain(common);
      return { ok: true, conn, ms: performance.now() - t0 };
    } catch (err) {
      return { ok: false, error: connectErrorLabel(err) };
    }
  }

  private onParentMessage(parent: Member, payload: Uint8Array): void {
    if (payload[0] !== MSG.CLIP) return;
    const now = performance.now();
    let sender: string;
    let seq: number;
    let clipId: Uint8Array;
    try {
      const d = decodeClip(payload);
      sender = d.header.sender;
      seq = d.header.sequence;
      clipId = d.header.clipId;
    } catch {
      this.countError('delivery-malformed');
      return;
    }
    const toy = this.toyBySender.get(sender);
    if (!toy) return;
    if (this.init.parentsOpen) {
      try {
        openClip(payload, { recipient: parent.identity, sender: toy.pub, crypto: this.crypto });
      } catch {
        this.countError('delivery-open-failed');
      }
    }
    const key = `${toy.index}:${seq}`;
    const f = this.inflight.get(key);
    if (!f || f.delivered) {
      this.counters.duplicates++;
    } else {
      f.delivered = true;
      this.counters.clipsDelivered++;
      recordMs(this.hE2e, now - f.t0);
      if (f.state !== 'pending') this.inflight.delete(key);
    }
    if (this.init.receipts && this.gatewayMode && parent.client && parent.ready) {
      const r = createReceipt({
        recipient: parent.identity,
        sender: toy.identity.id,
        clipId,
        receivedAt: Date.now(),
        crypto: this.crypto,
      });
      parent.client.publish(receiptTopic(parent.identity.id), toBuffer(r), { qos: 1 }, (err) => {
        if (err) this.countError('receipt-publish');
      });
      this.counters.receiptsSent++;
    }
  }

  private attach(ep: Member, conn: MqttEndpointConnection, isParent: boolean): void {
    const client = conn.client;
    ep.client = client;
    ep.ready = true;
    ep.dropping = false;
    conn.onInbox((_kind, bytes) => {
      if (isParent) this.onParentMessage(ep, bytes);
    });
    client.on('close', () => {
      if (ep.client !== client) return;
      ep.ready = false;
      ep.client = null;
      if (!ep.dropping) this.countError(isParent ? 'parent-disconnected' : 'toy-disconnected');
    });
    client.on('error', () => {});
  }

  /** The node an endpoint connects to: see TargetInfo.urls (a toy's node is never its parent's). */
  private urlOf(ep: Member, isParent: boolean): string {
    const urls = this.init.target.urls;
    if (!urls || urls.length < 2) return this.init.target.url;
    return urls[(isParent ? ep.index : ep.parent + 1) % urls.length]!;
  }

  private async connectOne(ep: Member, isParent: boolean, timeoutMs: number): Promise<boolean> {
    const r = await this.openConnection(ep.identity, timeoutMs, {}, this.urlOf(ep, isParent));
    if (!r.ok) {
      this.counters.connectFailures++;
      this.countError(`connect:${r.error}`);
      return false;
    }
    this.counters.connects++;
    recordMs(this.hConnect, r.ms);
    this.attach(ep, r.conn, isParent);
    return true;
  }

  /** Connects the parents or the toys at `rate` per second (0 = all at once), each bounded by `timeoutMs`. */
  connect(who: 'parents' | 'toys', rate: number, timeoutMs: number): Promise<{ ok: number; failed: number }> {
    return this.connectMany(who === 'parents' ? this.parents : this.toys, who === 'parents', rate, timeoutMs);
  }

  private async connectMany(list: readonly Member[], isParent: boolean, rate: number, timeoutMs: number) {
    const start = performance.now();
    const jobs: Promise<boolean>[] = [];
    for (let i = 0; i < list.length; i++) {
      const ep = list[i]!;
      if (this.stopping) break;
      if (rate > 0) {
        const wait = start + (i / rate) * 1000 - performance.now();
        if (wait > 1) await sleep(wait);
      }
      jobs.push(this.connectOne(ep, isParent, timeoutMs));
    }
    const results = await Promise.all(jobs);
    return { ok: results.filter(Boolean).length, failed: results.filter((x) => !x).length };
  }

  // ---- clips -----------------------------------------------------------------------------------

  private nextReadyToy(): Member | null {
    for (let n = 0; n < this.toys.length; n++) {
      const t = this.toys[this.nextToy]!;
      this.nextToy = (this.nextToy + 1) % this.toys.length;
      if (t.ready && t.client) return t;
    }
    return null;
  }

  /**
   * --seal resign: copies a per-recipient sealed template and writes this clip's own sender, clip
   * id, sequence number and creation time at their [PLK-5.1] offsets, then signs it with the toy's
   * key. A valid envelope the recipient can open; only the content key and body are shared.
   */
  private resignFor(toy: Member, recipient: PublicIdentity): Uint8Array {
    const tpl = this.templates.get(recipient.id);
    if (!tpl) {
      const first = this.fullSeal(toy, recipient);
      this.templates.set(recipient.id, first);
      return first.slice();
    }
    const env = tpl.slice();
    let sender = this.idBytes.get(toy.identity.id);
    if (!sender) {
      sender = idToBytes(toy.identity.id);
      this.idBytes.set(toy.identity.id, sender);
    }
    env.set(sender, 2);
    env.set(systemRandom(16), 22);
    const view = new DataView(env.buffer, env.byteOffset, env.byteLength);
    view.setBigUint64(38, BigInt(toy.seq));
    view.setBigUint64(46, BigInt(Date.now()));
    const end = env.length - 64;
    env.set(signBody(this.crypto, toy.identity.signSeed, CONTEXT.CLIP, env.subarray(0, end)), end);
    return env;
  }

  /** A fresh envelope for the toy's next sequence number. */
  private sealFor(toy: Member, recipient: PublicIdentity): Uint8Array {
    toy.seq++;
    return this.init.seal === 'resign' ? this.resignFor(toy, recipient) : this.fullSeal(toy, recipient);
  }

  /** Full seal: fresh content key, sealed box per recipient, secretbox body, signature [PLK-5]. */
  private fullSeal(toy: Member, recipient: PublicIdentity): Uint8Array {
    const ogg = this.init.oggPool[this.poolIndex++ % this.init.oggPool.length]!;
    return sealClip({
      sender: toy.identity,
      recipients: [recipient],
      sequence: toy.seq,
      createdAt: Date.now(),
      durationMs: this.init.clipDurationMs,
      ogg,
      crypto: this.crypto,
    });
  }

  /** Sends one clip from the next connected toy to its parent, unless the in-flight bound is reached. */
  sendClip(): void {
    if (this.pendingAcks >= Math.min(this.init.maxInflight, MAX_INFLIGHT)) {
      this.counters.notSent++;
      this.countError('not-sent:inflight-limit');
      return;
    }
    const toy = this.nextReadyToy();
    if (!toy?.client) {
      this.counters.notSent++;
      this.countError('not-sent:no-connected-toy');
      return;
    }
    const parent = this.parents[toy.parent]!;
    const env = this.sealFor(toy, parent.pub);
    if (this.captured.length < 8) this.captured.push(env);
    const key = `${toy.index}:${toy.seq}`;
    const f: Inflight = {
      t0: performance.now(),
      bytes: env.length,
      parent: toy.parent,
      state: 'pending',
      delivered: false,
    };
    this.inflight.set(key, f);
    this.pendingAcks++;
    this.counters.clipsSent++;
    this.counters.bytesSent += env.length;
    const topic = this.gatewayMode ? clipTopic(toy.identity.id) : inboxTopic(parent.identity.id);
    toy.client.publish(topic, toBuffer(env), { qos: 1 }, (err) => {
      if (f.state !== 'pending') return;
      this.pendingAcks--;
      if (err) {
        f.state = 'failed';
        this.inflight.delete(key);
        this.countError(`publish:${err.message.slice(0, 40)}`);
        return;
      }
      f.state = 'acked';
      this.counters.clipsAcked++;
      this.counters.bytesAcked += f.bytes;
      recordMs(this.hPuback, performance.now() - f.t0);
      if (f.delivered) this.inflight.delete(key);
    });
  }

  // ---- attacks ---------------------------------------------------------------------------------

  private tally(kind: AttackKind, verdict: 'refused' | 'leaked' | 'inconclusive', signal: string): void {
    const t = this.attacks[kind] ?? { attempted: 0, refused: 0, leaked: 0, inconclusive: 0, signals: {} };
    this.attacks[kind] = t;
    t.attempted++;
    t[verdict]++;
    t.signals[signal] = (t.signals[signal] ?? 0) + 1;
  }

  /** Waits for the client to be closed by the peer (refused) or for `ack` (leaked), bounded. */
  private awaitRefusal(
    client: MqttClient,
    publish: (cb: (err?: Error) => void) => void,
    timeoutMs: number,
  ): Promise<'refused' | 'leaked' | 'inconclusive'> {
    return new Promise((resolve) => {
      let done = false;
      const end = (v: 'refused' | 'leaked' | 'inconclusive') => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        client.end(true);
        resolve(v);
      };
      const timer = setTimeout(() => end('inconclusive'), timeoutMs);
      client.on('close', () => end('refused'));
      publish((err) => end(err ? 'refused' : 'leaked'));
    });
  }

  /** Runs one attack of `kind` and tallies the target's verdict. */
  async runAttack(kind: AttackKind): Promise<void> {
    const timeoutMs = 5000;
    if (kind === 'unknown-id') {
      const stranger = generateIdentity('toy', undefined, this.crypto);
      const r = await this.openConnection(stranger, timeoutMs);
      if (r.ok) {
        r.conn.client.end(true);
        this.tally(kind, 'leaked', 'connected');
      } else this.tally(kind, r.error === 'connect-timeout' ? 'inconclusive' : 'refused', r.error);
      return;
    }
    const slot = this.attackers.findIndex((_a, i) => !this.attackerBusy.has(i));
    if (slot < 0) {
      this.countError('attack-skipped:no-free-attacker');
      return;
    }
    this.attackerBusy.add(slot);
    const att = this.attackers[slot]!;
    try {
      let token: Uint8Array | undefined;
      const r = await this.openConnection(att.identity, timeoutMs, { onToken: (t) => (token = t) });
      if (!r.ok) {
        this.countError(`attack-setup:${r.error}`);
        return;
      }
      const c = r.conn.client;
      c.on('error', () => {});
      if (kind === 'replayed-token') {
        await new Promise<void>((res) => c.end(true, {}, () => res()));
        // The same token bytes again, through the same connect client [PLK-3.5].
        const again = await this.openConnection(att.identity, timeoutMs, token ? { token } : {});
        if (again.ok) {
          again.conn.client.end(true);
          this.tally(kind, 'leaked', 'connected');
        } else this.tally(kind, again.error === 'connect-timeout' ? 'inconclusive' : 'refused', again.error);
        return;
      }
      if (kind === 'wildcard-subscription') {
        const topic = WILDCARDS[this.attackIndex % WILDCARDS.length]!;
        const granted = await new Promise<number>((res) => {
          const timer = setTimeout(() => res(-1), timeoutMs);
          c.subscribe(topic, { qos: 1 }, (err, g) => {
            clearTimeout(timer);
            res(err ? 128 : (g?.[0]?.qos ?? -1));
          });
        });
        c.end(true);
        if (granted === 128) this.tally(kind, 'refused', 'suback-128');
        else if (granted < 0) this.tally(kind, 'inconclusive', 'timeout');
        else this.tally(kind, 'leaked', `suback-${granted}`);
        return;
      }
      let payload: Buffer;
      if (kind === 'bad-signature') {
        if (!this.attackerParent) return;
        const env = this.sealFor(att, this.attackerParent);
        env[env.length - 1]! ^= 0x55;
        payload = toBuffer(env);
      } else if (kind === 'replayed-envelope') {
        const env = this.captured[this.attackIndex % Math.max(1, this.captured.length)];
        if (!env) {
          c.end(true);
          this.countError('attack-skipped:nothing-captured');
          return;
        }
        payload = toBuffer(env);
      } else {
        this.oversize ??= Buffer.alloc(this.init.oversizeBytes, 0x01);
        payload = this.oversize;
      }
      const v = await this.awaitRefusal(
        c,
        (cb) => c.publish(clipTopic(att.identity.id), payload, { qos: 1 }, (err) => cb(err ?? undefined)),
        timeoutMs,
      );
      this.tally(kind, v, v === 'refused' ? 'closed-without-puback' : v === 'leaked' ? 'puback' : 'timeout');
    } finally {
      this.attackerBusy.delete(slot);
    }
  }

  // ---- phases ----------------------------------------------------------------------------------

  /** Sends clips at `clipRate`/s and attacks at `attackRate`/s for `durationMs` (or until stopped). */
  run(clipRate: number, attackRate: number, durationMs: number): Promise<void> {
    return new Promise((resolve) => {
      const start = performance.now();
      let sent = 0;
      let attacked = 0;
      const step = (): void => {
        const elapsed = performance.now() - start;
        if (this.stopping || elapsed >= durationMs) {
          if (this.phaseTimer) clearInterval(this.phaseTimer);
          this.phaseTimer = null;
          resolve();
          return;
        }
        const due = Math.floor((elapsed / 1000) * clipRate);
        let budget = SENDS_PER_TICK;
        while (sent < due && budget-- > 0) {
          sent++;
          this.sendClip();
        }
        const dueAttacks = Math.floor((elapsed / 1000) * attackRate);
        while (attacked < dueAttacks) {
          attacked++;
          const kind = ATTACK_KINDS[this.attackIndex++ % ATTACK_KINDS.length]!;
          this.attacksPending++;
          this.runAttack(kind)
            .catch((err: unknown) => this.countError(`attack-error:${String(err).slice(0, 40)}`))
            .finally(() => this.attacksPending--);
        }
      };
      this.phaseTimer = setInterval(step, 5);
    });
  }

  /**
   * Waits (bounded) until every clip is acknowledged and delivered; the rest become errors / losses.
   * An acknowledged clip whose parent is offline at the end (its node down, or dropped) cannot be
   * delivered now: the gateway holds it for the parent's next connection, so it is `held`, not lost.
   */
  async drain(timeoutMs: number): Promise<{ lost: number; timedOut: number; held: number }> {
    const online = (f: Inflight): boolean => this.parents[f.parent]?.ready === true;
    const until = performance.now() + timeoutMs;
    while (performance.now() < until && !this.stopping) {
      let open = 0;
      for (const f of this.inflight.values())
        if (f.state === 'pending' || (f.state === 'acked' && !f.delivered && online(f))) open++;
      if (open === 0 && this.attacksPending === 0) break;
      await sleep(20);
    }
    let lost = 0;
    let timedOut = 0;
    let held = 0;
    for (const [key, f] of this.inflight) {
      if (f.state === 'pending') {
        f.state = 'failed';
        this.pendingAcks--;
        timedOut++;
        this.countError('puback-timeout');
      } else if (f.state === 'acked' && !f.delivered) {
        if (online(f)) lost++;
        else held++;
      }
      this.inflight.delete(key);
    }
    return { lost, timedOut, held };
  }

  /** Closes parent `index`'s connection on purpose (not counted as an error); false when it was not connected. */
  dropParent(index: number): boolean {
    const p = this.parents[index];
    return p ? this.drop(p) : false;
  }

  /** Cuts one endpoint's connection at once, on purpose (its close is not counted as an error). */
  private drop(ep: Member): boolean {
    const c = ep.client;
    if (!c) return false;
    ep.dropping = true;
    ep.ready = false;
    ep.client = null;
    c.stream?.destroy();
    c.end(true);
    return true;
  }

  /** Drops every toy's connection at once and reconnects them all; `allBackMs` from the drop to the last. */
  async storm(
    timeoutMs: number,
  ): Promise<{ toys: number; back: number; failed: number; allBackMs: number; dropAt: number }> {
    const dropAt = performance.now();
    for (const t of this.toys) this.drop(t);
    const res = await this.connectMany(this.toys, false, 0, timeoutMs);
    return {
      toys: this.toys.length,
      back: res.ok,
      failed: res.failed,
      allBackMs: performance.now() - dropAt,
      dropAt,
    };
  }

  /** Ends the traffic: clips still waiting for their PUBACK become `interrupted` errors; closes everything. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (this.phaseTimer) clearInterval(this.phaseTimer);
    for (const f of this.inflight.values()) {
      if (f.state === 'pending') {
        f.state = 'failed';
        this.pendingAcks--;
        this.countError('interrupted');
      }
    }
    this.inflight.clear();
    await Promise.all(
      [...this.toys, ...this.parents].map(
        (ep) =>
          new Promise<void>((res) => {
            const c = ep.client;
            ep.dropping = true;
            ep.ready = false;
            ep.client = null;
            if (!c) return res();
            const timer = setTimeout(res, 1000);
            c.end(false, {}, () => {
              clearTimeout(timer);
              res();
            });
          }),
      ),
    );
  }
}
