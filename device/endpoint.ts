// What toys and parent apps share: the connect state machine with backoff, push-to-talk → sealed envelope (or v2 chunks) → outbox → QoS 1, and the inbox (open → play → receipt).
import { toHex } from '../shared/bytes.ts';
import {
  CHUNK_LIMITS,
  CHUNKED_VERSION,
  ChunkedClipSealer,
  ChunkReceiver,
  type CompletedClip,
  chunkDeliveryId,
  decodeChunk,
  type FailedClip,
  type PlayableChunk,
  type ReceiveResult,
  resealChunks,
} from '../shared/chunked.ts';
import {
  type CodecParams,
  decodeClip,
  openClip,
  resealClip,
  sealClipKeepingKey,
} from '../shared/envelope.ts';
import { isPlushlinkError, PlushlinkError } from '../shared/errors.ts';
import type { PrivateIdentity, PublicIdentity } from '../shared/identity.ts';
import { MSG, PROTOCOL_VERSION } from '../shared/limits.ts';
import { seededRandom, systemRandom } from '../shared/random.ts';
import { createReceipt, decodeReceipt, type ReceiptStatus, verifyReceipt } from '../shared/receipt.ts';
import { verifyRoster } from '../shared/roster.ts';
import { clipTopic, inboxTopic, receiptTopic } from '../shared/topics.ts';
import type { EndpointId, RandomSource } from '../shared/types.ts';
import { Backoff, type BackoffOptions } from './backoff.ts';
import { type DeviceClock, realClock } from './clock.ts';
import { CodecError } from './codec/errors.ts';
import { ChunkPlayer, splitOggIntoChunks } from './codec/ogg-chunks.ts';
import { normalizeEncoderSettings, type OpusEncoderSettings } from './codec/opus.ts';
import type { EncoderPool } from './codec/pool.ts';
import { TypedEmitter } from './events.ts';
import type { FirmwareReport, FirmwareUpdater } from './firmware.ts';
import { Outbox, OutboxError, type OutboxItem, type OutboxOptions } from './outbox.ts';
import { type PlayFormat, playClip, playedFileName } from './player.ts';
import { type AudioInput, recordAudio, sharedEncoderPool } from './recorder.ts';
import type { Connector, EndpointLink } from './transport/wifi.ts';

export type EndpointState = 'unprovisioned' | 'idle' | 'connecting' | 'checking' | 'online' | 'stopped';

export interface EndpointEvents {
  state: { readonly from: EndpointState; readonly to: EndpointState; readonly at: number };
  /** A connection attempt failed; the next one starts after `delayMs`. */
  retry: { readonly attempt: number; readonly delayMs: number; readonly error: Error };
  recorded: { readonly durationMs: number; readonly oggBytes: number; readonly packets: number };
  sealed: {
    readonly clipId: string;
    readonly sequence: number;
    readonly bytes: number;
    readonly oggBytes: number;
    readonly durationMs: number;
    readonly recipients: readonly EndpointId[];
    /** The Ogg Opus bytes that were sealed (what every recipient must get back bit for bit). */
    readonly ogg: Uint8Array;
    /** [PLK-14] Protocol version of the clip (absent: 1) and, for version 2, its number of chunks. */
    readonly version?: number;
    readonly chunks?: number;
  };
  /**
   * `clipId` is what the outbox and receipts name: a v1 clip id, or a v2 chunk's delivery id, in
   * which case `chunk` says which clip and chunk it is [PLK-14.9].
   */
  published: {
    readonly clipId: string;
    readonly sequence: number;
    readonly bytes: number;
    readonly attempt: number;
    readonly chunk?: ChunkRef;
  };
  /** The gateway has durably stored the envelope [PLK-12.3] (PUBACK, or a receipt when that was lost). `ms` since sealing. */
  acked: {
    readonly clipId: string;
    readonly sequence: number;
    readonly ms: number;
    /** What proved the clip stored: its PUBACK, or (that PUBACK lost) a recipient's receipt. */
    readonly via: 'puback' | 'receipt';
    readonly chunk?: ChunkRef;
  };
  /** A recipient's receipt for one of our clips came back: `ms` from sealing to receipt arrival. */
  delivered: {
    readonly clipId: string;
    readonly recipient: EndpointId;
    readonly ms: number;
    readonly chunk?: ChunkRef;
  };
  /**
   * [PLK-14.8] A chunk of a v2 clip verified and played, in index order (index 0: playback begins).
   * `playableMs` is the clip's audio played so far; `latencyMs` is from the clip's start (chunk
   * 0 sealed, sender clock) to now; `duplicate` chunks are not played again.
   */
  chunk: {
    readonly clipId: string;
    readonly sender: EndpointId;
    readonly index: number;
    readonly final: boolean;
    readonly sequence: number;
    readonly playableMs: number;
    readonly latencyMs: number;
    readonly bytes: number;
    readonly duplicate: boolean;
  };
  /**
   * [PLK-14.8] A v2 clip or chunk went wrong: truncated, reordered, replayed, a broken chain, ...
   * (`error.code`). `fatal: false` is a notice (a chunk arrived early and is held).
   */
  chunkError: {
    readonly clipId: string;
    readonly sender: EndpointId;
    readonly index?: number;
    readonly error: PlushlinkError;
    readonly fatal: boolean;
  };
  received: {
    readonly clipId: string;
    readonly sender: EndpointId;
    readonly sequence: number;
    readonly durationMs: number;
    readonly oggBytes: number;
    readonly envelopeBytes: number;
    /** Sealed-at (sender clock) to opened-at (our clock): meaningful when both share a clock, as in a fleet. */
    readonly latencyMs: number;
    readonly duplicate: boolean;
    /** The opened Ogg Opus bytes (exactly the sender's). */
    readonly ogg: Uint8Array;
  };
  played: {
    readonly clipId: string;
    readonly sender: EndpointId;
    readonly durationMs: number;
    readonly file?: string;
  };
  /** [PLK-4.6] A roster from the gateway was adopted; `resealed` queued clips were sealed to it anew. */
  roster: { readonly version: number; readonly members: readonly EndpointId[]; readonly resealed: number };
  /** [PLK-6.3] A clip addressed to us could not be opened: an unopenable receipt was sent. */
  unopenable: { readonly clipId: string; readonly sender: EndpointId; readonly reason: string };
  /** [PLK-6.3] A recipient reported that it cannot open one of our clips. */
  undeliverable: { readonly clipId: string; readonly recipient: EndpointId };
  /** A clip the gateway kept refusing (connection closed on it `attempts` times) was removed from the outbox. */
  abandoned: { readonly clipId: string; readonly sequence: number; readonly attempts: number };
  error: { readonly where: string; readonly error: Error };
  /** A firmware release from the inbox was installed, was already installed, or was refused (with its reason) [PLK-13.4]. */
  firmware: FirmwareReport;
}

/** Which clip and chunk a v2 outbox entry or receipt is [PLK-14.9]. */
export interface ChunkRef {
  /** Hex of the clip id. */
  readonly clipId: string;
  readonly index: number;
  readonly final: boolean;
}

/** [PLK-14] What this endpoint sends: v1 envelopes (the default) or v2 chunked clips (experimental). */
export interface ProtocolOptions {
  readonly version: 1 | 2;
  /** [PLK-14.6] Chunk length for version 2, ms (250..10 000); default 1000. */
  readonly chunkMs?: number;
  /** [PLK-14.3] Pad every chunk to at least this many bytes (one bucket for the whole clip); default 0: each its own bucket. */
  readonly padTo?: number;
}

export interface EndpointOptions {
  /** The endpoint's keys; without them the device is `unprovisioned` until provision(). */
  readonly identity?: PrivateIdentity;
  /** Pinned gateway identity [PLK-3.6]. */
  readonly gateway?: PublicIdentity;
  /** The other members of the family (public identities): who we seal to and accept clips from. */
  readonly family?: readonly PublicIdentity[];
  readonly connector: Connector;
  readonly clock?: DeviceClock;
  /** Seed for every random choice (clip ids, keys, nonces, Ogg serials, backoff jitter). System CSPRNG when absent. */
  readonly seed?: string;
  /** Explicit random source for sealing (overrides seed). */
  readonly random?: RandomSource;
  /** Explicit random source for backoff jitter (overrides seed). */
  readonly jitterRandom?: RandomSource;
  readonly backoff?: BackoffOptions;
  /** An opened Outbox, or options to open one (path for persistence). */
  readonly outbox?: Outbox | OutboxOptions;
  readonly encoderPool?: EncoderPool;
  readonly encoder?: Partial<OpusEncoderSettings>;
  /** Folder where received clips are "played" (written). Nothing is written when absent. */
  readonly playDir?: string;
  readonly playFormat?: PlayFormat;
  /** Decode received clips to PCM (proves they play). Default true. */
  readonly decodeReceived?: boolean;
  /** Push-to-talk takes real (clock) time: record(4) waits 4 s before sealing. Default false. */
  readonly pacedRecording?: boolean;
  /** Local display name for file names and logs (never sent anywhere). */
  readonly name?: string;
  /** Local display names of other endpoints, for file names (never sent anywhere). */
  readonly nameOf?: (id: EndpointId) => string;
  /** Consecutive lost connections while one clip is in flight before it is given up (with an error event). Default 5. */
  readonly maxPublishAttempts?: number;
  /** Remembered (sender, clip id) pairs for duplicate detection. Default 4096. */
  readonly dedupWindow?: number;
  /** Checks and installs vendor-signed firmware from the inbox [PLK-13.5]; firmware messages are ignored without it. */
  readonly firmware?: FirmwareUpdater;
  /** [PLK-14] Protocol of the clips this endpoint sends; default version 1. Both versions are always received. */
  readonly protocol?: ProtocolOptions;
  /** [PLK-14.8] A v2 clip with no chunk for this long is truncated (and a held chunk given up); default 30 s. */
  readonly chunkIdleMs?: number;
}

export interface RecordResult {
  readonly clipId: string;
  readonly sequence: number;
  /** The envelope (v1), or chunk 0 (v2). */
  readonly envelope: Uint8Array;
  readonly ogg: Uint8Array;
  readonly durationMs: number;
  /** [PLK-14] Version 2: every chunk, in order. */
  readonly chunks?: readonly Uint8Array[];
}

/** [PLK-14.8] Default idle limit of a chunked clip in progress. */
export const CHUNK_IDLE_MS = 30_000;

/** How long a new connection waits for the gateway's roster before it publishes anyway [PLK-4.6]. */
export const ROSTER_WAIT_MS = 2000;

function toError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

/** Bounded insertion-ordered set (oldest forgotten first). */
class BoundedSet {
  private readonly set = new Set<string>();
  constructor(private readonly max: number) {}
  has(k: string): boolean {
    return this.set.has(k);
  }
  add(k: string): void {
    this.set.add(k);
    if (this.set.size > this.max) {
      const first = this.set.values().next();
      if (!first.done) this.set.delete(first.value);
    }
  }
}

/**
 * The behaviour toys and parent apps share: the connect loop with backoff, the outbox pump, the
 * inbox (clips → open → play → receipt; receipts of our clips → delivery latency).
 */
export abstract class Endpoint extends TypedEmitter<EndpointEvents> {
  protected identityValue: PrivateIdentity | undefined;
  protected gatewayValue: PublicIdentity | undefined;
  protected familyById = new Map<EndpointId, PublicIdentity>();
  readonly clock: DeviceClock;
  readonly name: string | undefined;
  protected readonly connector: Connector;
  protected readonly random: RandomSource;
  protected readonly backoff: Backoff;
  protected readonly pool: EncoderPool;
  protected readonly encoderSettings: OpusEncoderSettings;
  protected readonly opts: EndpointOptions;
  private outboxValue: Outbox | undefined;
  private readonly outboxOptions: OutboxOptions;
  private stateValue: EndpointState;
  private link: EndpointLink | undefined;
  private abort: AbortController | undefined;
  private loop: Promise<void> | undefined;
  private pumping = false;
  private readonly seen: BoundedSet;
  /** clip id → sealed-at, for acked/delivered latencies of our own clips (bounded). */
  private readonly sentAt = new Map<string, number>();
  private readonly attempts = new Map<string, number>();
  private inFlight: string | undefined;
  /** Version of the roster we adopted last [PLK-4.6]. */
  private rosterVersion = 0;
  /** Pending while a new connection's roster has not been applied yet [PLK-4.6]. */
  private rosterGate: Promise<void> | null = null;
  private rosterGateOpen: (() => void) | null = null;
  private rosterChain: Promise<void> = Promise.resolve();
  /** Inbox work in progress (open → play → receipt): stop() lets it finish. */
  private readonly tasks = new Set<Promise<void>>();
  /** [PLK-14.8] Version 2 receiving: chain verification, held chunks, players per clip, in-order inbox work. */
  private chunkReceiver: ChunkReceiver | undefined;
  private readonly chunkPlayers = new Map<string, ChunkPlayer>();
  private readonly brokenClips = new Set<string>();
  private chunkWork: Promise<void> = Promise.resolve();
  private chunkTimer: { cancel(): void } | undefined;
  /** Our own v2 chunks by delivery id (bounded), for events. */
  private readonly chunkOf = new Map<string, ChunkRef>();
  /** Clips (hex ids) whose chunks are still being sealed: not re-sealed meanwhile. */
  private readonly sealing = new Set<string>();

  constructor(opts: EndpointOptions) {
    super();
    if (!opts || typeof opts.connector?.connect !== 'function')
      throw new TypeError('connector must be a Connector');
    this.opts = opts;
    this.connector = opts.connector;
    this.clock = opts.clock ?? realClock;
    this.name = opts.name;
    this.random = opts.random ?? (opts.seed !== undefined ? seededRandom(`${opts.seed}/seal`) : systemRandom);
    const jitter =
      opts.jitterRandom ?? (opts.seed !== undefined ? seededRandom(`${opts.seed}/backoff`) : systemRandom);
    this.backoff = new Backoff(jitter, opts.backoff);
    this.pool = opts.encoderPool ?? sharedEncoderPool();
    this.encoderSettings = normalizeEncoderSettings(opts.encoder ?? {});
    this.seen = new BoundedSet(opts.dedupWindow ?? 4096);
    if (opts.outbox instanceof Outbox) this.outboxValue = opts.outbox;
    this.outboxOptions = opts.outbox instanceof Outbox ? {} : (opts.outbox ?? {});
    if (opts.protocol !== undefined) {
      const v = opts.protocol.version;
      if (v !== PROTOCOL_VERSION && v !== CHUNKED_VERSION)
        throw new RangeError(`protocol.version must be 1 or 2, got ${String(v)}`);
      const ms = opts.protocol.chunkMs ?? CHUNK_LIMITS.defaultChunkMs;
      if (!Number.isInteger(ms) || ms < CHUNK_LIMITS.minChunkMs || ms > CHUNK_LIMITS.maxChunkMs)
        throw new RangeError(
          `protocol.chunkMs must be an integer in [${CHUNK_LIMITS.minChunkMs}, ${CHUNK_LIMITS.maxChunkMs}], got ${ms}`,
        );
      // A chunked clip takes one outbox entry per chunk: a minute at 250 ms is 240.
      if (v === CHUNKED_VERSION && this.outboxOptions.maxItems === undefined)
        this.outboxOptions = { ...this.outboxOptions, maxItems: 1024 };
    }
    this.stateValue = 'unprovisioned';
    if (opts.identity && opts.gateway)
      this.provision({ identity: opts.identity, gateway: opts.gateway, family: opts.family ?? [] });
  }

  get state(): EndpointState {
    return this.stateValue;
  }
  get id(): EndpointId {
    if (!this.identityValue) throw new Error('endpoint is not provisioned');
    return this.identityValue.id;
  }
  get identity(): PrivateIdentity | undefined {
    return this.identityValue;
  }
  get outbox(): Outbox | undefined {
    return this.outboxValue;
  }
  get online(): boolean {
    return this.stateValue === 'online';
  }

  protected setState(to: EndpointState): void {
    const from = this.stateValue;
    if (from === to) return;
    this.stateValue = to;
    this.emit('state', { from, to, at: this.clock.now() });
  }

  /** Installs keys, the pinned gateway and the family roster: unprovisioned → idle. */
  provision(p: {
    identity: PrivateIdentity;
    gateway: PublicIdentity;
    family: readonly PublicIdentity[];
  }): void {
    if (this.stateValue !== 'unprovisioned' && this.stateValue !== 'idle') {
      throw new Error(`cannot provision while ${this.stateValue}`);
    }
    this.identityValue = p.identity;
    this.gatewayValue = p.gateway;
    this.setFamily(p.family);
    this.setState('idle');
  }

  /** Replaces the family roster (e.g. a parent joined). Our own id is ignored. */
  setFamily(family: readonly PublicIdentity[]): void {
    this.familyById = new Map(family.filter((m) => m.id !== this.identityValue?.id).map((m) => [m.id, m]));
  }

  family(): readonly PublicIdentity[] {
    return [...this.familyById.values()];
  }

  /** Who our clips are sealed to. */
  protected abstract defaultRecipients(): readonly PublicIdentity[];

  /** Opens the outbox (if needed) and starts the connect loop. */
  async start(): Promise<void> {
    if (this.stateValue === 'unprovisioned') throw new Error('cannot start: not provisioned');
    if (this.loop) return;
    this.outboxValue ??= await Outbox.open(this.outboxOptions);
    this.abort = new AbortController();
    this.loop = this.runLoop(this.abort.signal);
  }

  /** Nothing queued, nothing in flight, no inbox work pending. */
  get drained(): boolean {
    return (this.outboxValue?.size ?? 0) === 0 && this.tasks.size === 0 && !this.pumping;
  }

  /** Stops the loop after letting inbox work (receipts) finish, closes the link gracefully, flushes the outbox. */
  async stop(): Promise<void> {
    if (this.tasks.size > 0) {
      const done = Promise.allSettled([...this.tasks]);
      await Promise.race([done, this.clock.sleep(2000)]);
    }
    await this.chunkWork.catch(() => undefined);
    this.closeChunks();
    this.abort?.abort();
    const link = this.link;
    if (link && !link.closed) await link.close().catch(() => undefined);
    await this.loop?.catch(() => undefined);
    this.loop = undefined;
    await this.outboxValue?.flush().catch(() => undefined);
    this.setState('stopped');
  }

  /** Kills the connection without DISCONNECT (lost Wi-Fi): the loop reconnects with backoff. */
  dropConnection(): void {
    this.link?.destroy();
  }

  private async runLoop(signal: AbortSignal): Promise<void> {
    const identity = this.identityValue;
    const gateway = this.gatewayValue;
    if (!identity || !gateway) return;
    while (!signal.aborted) {
      this.setState('connecting');
      let link: EndpointLink;
      try {
        link = await this.connector.connect({
          identity,
          gateway,
          signal,
          onCheckingProof: () => this.setState('checking'),
        });
      } catch (err) {
        if (signal.aborted) break;
        const delayMs = this.backoff.next();
        this.emit('retry', { attempt: this.backoff.attempt, delayMs, error: toError(err) });
        await this.clock.sleep(delayMs, signal);
        continue;
      }
      if (signal.aborted) {
        await link.close().catch(() => undefined);
        break;
      }
      this.backoff.reset();
      const closed = new Promise<void>((resolve) => link.onClose(() => resolve()));
      this.link = link;
      // [PLK-4.6] the gateway's roster comes right after its proof: nothing is published before
      // it is applied (queued clips may need re-sealing), but a gateway without one is not waited for long.
      if (link.sendsRoster) this.closeRosterGate();
      link.onMessage((topic, payload) => this.onInbox(topic, payload));
      this.setState('online');
      this.kick();
      await closed;
      this.link = undefined;
      if (signal.aborted) break;
      // A lost connection waits a jittered moment too, so 10,000 toys do not reconnect in lockstep.
      this.setState('connecting');
      const delayMs = this.backoff.next();
      await this.clock.sleep(delayMs, signal);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Sending

  /**
   * Push-to-talk: records `seconds` from `input` through the microphone model (20 ms frames),
   * encodes with a pooled Opus encoder into Ogg, seals to `to` (default: the family's other
   * role), queues the envelope in the outbox (OutboxError OUTBOX_FULL when full) and publishes it
   * as soon as the device is online.
   */
  async record(seconds: number, input: AudioInput, to?: readonly PublicIdentity[]): Promise<RecordResult> {
    const identity = this.identityValue;
    if (!identity) throw new Error('cannot record: not provisioned');
    if (typeof seconds !== 'number' || !(seconds > 0) || seconds > 300) {
      throw new RangeError(`seconds must be in (0, 300], got ${String(seconds)}`);
    }
    this.outboxValue ??= await Outbox.open(this.outboxOptions);
    const outbox = this.outboxValue;
    const recipients = to ?? this.defaultRecipients();
    if (recipients.length === 0) throw new PlushlinkError('PLK_E_FIELD', 'no recipients in the family');
    if (this.opts.protocol?.version === CHUNKED_VERSION)
      return this.recordChunked(seconds, input, recipients, identity, outbox);
    outbox.assertRoom(); // refuse before the work, not after
    if (this.opts.pacedRecording) await this.clock.sleep(seconds * 1000);

    const encoded =
      input.kind === 'encoded'
        ? input
        : await recordAudio(seconds, input, this.encoderSettings, this.pool, this.random);
    const durationMs = Math.round(encoded.durationMs);
    this.emit('recorded', { durationMs, oggBytes: encoded.ogg.length, packets: encoded.packets });

    const codec: CodecParams = {
      codec: 'opus-ogg',
      channels: this.encoderSettings.channels,
      sampleRate: this.encoderSettings.sampleRate,
      bitrate: this.encoderSettings.bitrate,
      frameMs: this.encoderSettings.frameMs,
    };
    const sequence = outbox.nextSequence();
    const createdAt = this.clock.now();
    const { envelope, contentKey } = sealClipKeepingKey({
      sender: identity,
      recipients,
      sequence,
      createdAt,
      durationMs,
      codec,
      ogg: encoded.ogg,
      random: this.random,
    });
    const clipId = toHex(decodeClip(envelope).header.clipId);
    this.emit('sealed', {
      clipId,
      sequence,
      bytes: envelope.length,
      oggBytes: encoded.ogg.length,
      durationMs,
      recipients: recipients.map((r) => r.id),
      ogg: encoded.ogg,
    });
    const item: OutboxItem = {
      clipId,
      sequence,
      createdAt,
      durationMs,
      recipients: recipients.map((r) => r.id),
      envelope,
      contentKey,
    };
    await outbox.add(item);
    this.rememberSent(clipId, createdAt);
    this.kick();
    return { clipId, sequence, envelope, ogg: encoded.ogg, durationMs };
  }

  /**
   * [PLK-14.6] Version 2: the recording cut into chunks of the chunk length at Ogg page boundaries,
   * each sealed with the next sequence number, queued and published at once — with
   * `pacedRecording`, each as soon as its audio has been "recorded", as a streaming toy would.
   */
  private async recordChunked(
    seconds: number,
    input: AudioInput,
    recipients: readonly PublicIdentity[],
    identity: PrivateIdentity,
    outbox: Outbox,
  ): Promise<RecordResult> {
    const chunkMs = this.opts.protocol?.chunkMs ?? CHUNK_LIMITS.defaultChunkMs;
    outbox.assertRoomFor(Math.max(1, Math.ceil((seconds * 1000) / chunkMs))); // refuse before the work
    const encoded =
      input.kind === 'encoded'
        ? input
        : await recordAudio(seconds, input, this.encoderSettings, this.pool, this.random, {
            pageMs: chunkMs,
          });
    const durationMs = Math.round(encoded.durationMs);
    this.emit('recorded', { durationMs, oggBytes: encoded.ogg.length, packets: encoded.packets });
    const pieces = splitOggIntoChunks(encoded.ogg, chunkMs);
    outbox.assertRoomFor(pieces.length);
    const sealer = new ChunkedClipSealer({
      sender: identity,
      recipients,
      codec: {
        codec: 'opus-ogg',
        channels: this.encoderSettings.channels,
        sampleRate: this.encoderSettings.sampleRate,
        bitrate: this.encoderSettings.bitrate,
        frameMs: this.encoderSettings.frameMs,
      },
      padTo: this.opts.protocol?.padTo ?? 0,
      random: this.random,
    });
    const clipId = toHex(sealer.clipId);
    const contentKey = sealer.contentKey();
    const ids = recipients.map((r) => r.id);
    const chunks: Uint8Array[] = [];
    let firstSequence = 0;
    this.sealing.add(clipId);
    try {
      for (let i = 0; i < pieces.length; i++) {
        const piece = pieces[i]!;
        if (this.opts.pacedRecording) await this.clock.sleep(piece.durationMs);
        const final = i === pieces.length - 1;
        const sequence = outbox.nextSequence();
        if (i === 0) firstSequence = sequence;
        const createdAt = this.clock.now();
        const bytes = sealer.seal({
          ogg: piece.ogg,
          durationMs: piece.durationMs,
          sequence,
          createdAt,
          final,
        });
        const deliveryId = toHex(chunkDeliveryId(sealer.clipId, i));
        this.rememberChunk(deliveryId, { clipId, index: i, final });
        await outbox.add({
          clipId: deliveryId,
          sequence,
          createdAt,
          durationMs: piece.durationMs,
          recipients: ids,
          envelope: bytes,
          contentKey,
        });
        this.rememberSent(deliveryId, createdAt);
        chunks.push(bytes);
        this.kick();
      }
    } finally {
      this.sealing.delete(clipId);
      sealer.destroy();
    }
    this.emit('sealed', {
      clipId,
      sequence: firstSequence,
      bytes: chunks.reduce((n, c) => n + c.length, 0),
      oggBytes: encoded.ogg.length,
      durationMs,
      recipients: ids,
      ogg: encoded.ogg,
      version: CHUNKED_VERSION,
      chunks: chunks.length,
    });
    return { clipId, sequence: firstSequence, envelope: chunks[0]!, ogg: encoded.ogg, durationMs, chunks };
  }

  private rememberChunk(deliveryId: string, ref: ChunkRef): void {
    this.chunkOf.set(deliveryId, ref);
    if (this.chunkOf.size > 4096) {
      const first = this.chunkOf.keys().next();
      if (!first.done) this.chunkOf.delete(first.value);
    }
  }

  /** The `chunk` field of an event about outbox entry or receipt `id` (absent for v1 clips). */
  private chunkField(id: string): { chunk?: ChunkRef } {
    const ref = this.chunkOf.get(id);
    return ref ? { chunk: ref } : {};
  }

  private rememberSent(clipId: string, at: number): void {
    this.sentAt.set(clipId, at);
    if (this.sentAt.size > 4096) {
      const first = this.sentAt.keys().next();
      if (!first.done) this.sentAt.delete(first.value);
    }
  }

  /** Starts the outbox pump if it is not running. */
  protected kick(): void {
    if (this.pumping || this.stateValue !== 'online') return;
    this.pumping = true;
    void this.pump().finally(() => {
      this.pumping = false;
      // Something may have been queued after the pump's last look.
      if (this.stateValue === 'online' && this.outboxValue?.peek() && this.link && !this.link.closed)
        this.kick();
    });
  }

  /** Holds the pump until this connection's roster has been applied (or ROSTER_WAIT_MS passed). */
  private closeRosterGate(): void {
    this.openRosterGate();
    const timer = this.clock.setTimer(ROSTER_WAIT_MS, () => this.openRosterGate());
    this.rosterGate = new Promise<void>((resolve) => {
      this.rosterGateOpen = () => {
        timer.cancel();
        resolve();
      };
    });
  }

  private openRosterGate(): void {
    const open = this.rosterGateOpen;
    this.rosterGateOpen = null;
    this.rosterGate = null;
    open?.();
  }

  /** One envelope in flight at a time, oldest first: the gateway requires increasing sequence numbers [PLK-8.1]. */
  private async pump(): Promise<void> {
    const outbox = this.outboxValue;
    if (!outbox) return;
    if (this.rosterGate) await this.rosterGate;
    for (;;) {
      const link = this.link;
      const item = outbox.peek();
      if (!item || !link || link.closed || this.stateValue !== 'online') return;
      const attempt = (this.attempts.get(item.clipId) ?? 0) + 1;
      const maxAttempts = this.opts.maxPublishAttempts ?? 5;
      if (attempt > maxAttempts) {
        // The gateway keeps closing the connection on this clip: report it loudly, then move on.
        this.attempts.delete(item.clipId);
        await outbox.remove(item.clipId);
        this.emit('abandoned', { clipId: item.clipId, sequence: item.sequence, attempts: maxAttempts });
        this.emit('error', {
          where: 'publish',
          error: new OutboxError(
            'OUTBOX_REFUSED',
            `clip ${item.clipId} (sequence ${item.sequence}) refused ${maxAttempts} times; given up`,
          ),
        });
        continue;
      }
      this.attempts.set(item.clipId, attempt);
      this.inFlight = item.clipId;
      this.emit('published', {
        clipId: item.clipId,
        sequence: item.sequence,
        bytes: item.envelope.length,
        attempt,
        ...this.chunkField(item.clipId),
      });
      try {
        await link.publish(clipTopic(this.id), item.envelope);
      } catch {
        this.inFlight = undefined;
        return; // link lost: the connect loop brings it back and the pump resends
      }
      this.inFlight = undefined;
      this.attempts.delete(item.clipId);
      await this.ack(item);
    }
  }

  /**
   * The gateway has stored `item` — its PUBACK came, or a recipient's receipt proves it [PLK-12.3]:
   * removes it from the outbox and reports `acked` once, whichever proof came first.
   */
  private async ack(item: OutboxItem, via: 'puback' | 'receipt' = 'puback'): Promise<void> {
    const outbox = this.outboxValue;
    if (!outbox) return;
    let removed = false;
    try {
      removed = await outbox.remove(item.clipId);
    } catch (err) {
      this.emit('error', { where: 'outbox', error: toError(err) });
    }
    if (removed) {
      const at = this.sentAt.get(item.clipId) ?? item.createdAt;
      this.emit('acked', {
        clipId: item.clipId,
        sequence: item.sequence,
        ms: this.clock.now() - at,
        via,
        ...this.chunkField(item.clipId),
      });
    }
  }

  // -------------------------------------------------------------------------------------------
  // Receiving

  private onInbox(topic: string, payload: Uint8Array): void {
    const identity = this.identityValue;
    if (!identity || topic !== inboxTopic(identity.id) || payload.length === 0) return;
    // [PLK-4.4] inbox payloads are told apart by their first byte; unknown types are ignored.
    switch (payload[0]) {
      case MSG.CLIP: {
        // [PLK-14.1] the version byte picks the module: v2 chunks are verified chunk by chunk.
        if (payload[1] === CHUNKED_VERSION) {
          this.onChunk(payload);
          return;
        }
        const task = this.onClip(payload).catch((err: unknown) =>
          this.emit('error', { where: 'inbox', error: toError(err) }),
        );
        this.tasks.add(task);
        void task.finally(() => this.tasks.delete(task));
        return;
      }
      case MSG.RECEIPT:
      case MSG.UNOPENABLE:
        this.onReceipt(payload);
        return;
      case MSG.ROSTER: {
        const task = this.onRoster(payload).catch((err: unknown) =>
          this.emit('error', { where: 'roster', error: toError(err) }),
        );
        this.tasks.add(task);
        void task.finally(() => this.tasks.delete(task));
        return;
      }
      case MSG.FIRMWARE: {
        const firmware = this.opts.firmware;
        if (!firmware) return;
        const task = firmware.handle(payload).then(
          (report) => this.emit('firmware', report),
          (err: unknown) => this.emit('error', { where: 'firmware', error: toError(err) }),
        );
        this.tasks.add(task);
        void task.finally(() => this.tasks.delete(task));
        return;
      }
      default:
        return;
    }
  }

  /**
   * [PLK-4.6] A roster signed by the pinned gateway that lists us: adopt it (unless older than the
   * one we hold) and re-seal every queued clip whose recipients are no longer our default ones.
   */
  /** Rosters are applied one at a time, in arrival order (a second one waits for the first's re-sealing). */
  private onRoster(payload: Uint8Array): Promise<void> {
    const run = this.rosterChain.then(() => this.applyRoster(payload));
    this.rosterChain = run.catch(() => undefined);
    return run.finally(() => this.openRosterGate());
  }

  private async applyRoster(payload: Uint8Array): Promise<void> {
    const identity = this.identityValue;
    const gateway = this.gatewayValue;
    if (!identity || !gateway) return;
    const roster = verifyRoster(payload, { gateway, endpointId: identity.id });
    if (roster.version < this.rosterVersion) return;
    this.rosterVersion = roster.version;
    this.setFamily(roster.members);
    const resealed = await this.resealOutbox();
    this.emit('roster', {
      version: roster.version,
      members: roster.members.map((m) => m.id),
      resealed,
    });
  }

  /** Re-seals queued clips to the current default recipients (same clip id, sequence and body); returns how many. */
  private async resealOutbox(): Promise<number> {
    const identity = this.identityValue;
    const outbox = this.outboxValue;
    if (!identity || !outbox) return 0;
    const want = this.defaultRecipients();
    if (want.length === 0) return 0;
    const wantIds = new Set(want.map((r) => r.id));
    let n = 0;
    for (const item of outbox.items()) {
      if (item.envelope[1] === CHUNKED_VERSION) continue; // whole chunked clips, below
      const same = item.recipients.length === wantIds.size && item.recipients.every((r) => wantIds.has(r));
      if (same || item.clipId === this.inFlight) continue;
      if (!item.contentKey) {
        this.emit('error', {
          where: 'roster',
          error: new OutboxError(
            'OUTBOX_REFUSED',
            `clip ${item.clipId} cannot be re-sealed (no content key)`,
          ),
        });
        continue;
      }
      const envelope = resealClip({
        sender: identity,
        envelope: item.envelope,
        contentKey: item.contentKey,
        recipients: want,
        random: this.random,
      });
      if (await outbox.replace({ ...item, envelope, recipients: want.map((r) => r.id) })) {
        this.attempts.delete(item.clipId);
        n++;
      }
    }
    return n + (await this.resealChunkedOutbox(identity, outbox, want, wantIds));
  }

  /**
   * [PLK-14.6] Queued v2 clips are re-sealed whole, and only while none of their chunks has been
   * acknowledged (chunk 0 still queued, nothing in flight, no chunk still being recorded); a clip
   * partly sent keeps its recipients.
   */
  private async resealChunkedOutbox(
    identity: PrivateIdentity,
    outbox: Outbox,
    want: readonly PublicIdentity[],
    wantIds: ReadonlySet<EndpointId>,
  ): Promise<number> {
    const clips = new Map<string, OutboxItem[]>();
    for (const item of outbox.items()) {
      if (item.envelope[1] !== CHUNKED_VERSION) continue;
      const key = toHex(decodeChunk(item.envelope).header.clipId);
      clips.set(key, [...(clips.get(key) ?? []), item]);
    }
    let n = 0;
    for (const [clipId, items] of clips) {
      const first = items[0]!;
      const same = first.recipients.length === wantIds.size && first.recipients.every((r) => wantIds.has(r));
      if (same || this.sealing.has(clipId) || items.some((it) => it.clipId === this.inFlight)) continue;
      if (decodeChunk(first.envelope).header.index !== 0) continue;
      if (!first.contentKey) continue;
      const chunks = resealChunks({
        sender: identity,
        chunks: items.map((it) => it.envelope),
        contentKey: first.contentKey,
        recipients: want,
        random: this.random,
      });
      for (let i = 0; i < items.length; i++) {
        const item = items[i]!;
        if (await outbox.replace({ ...item, envelope: chunks[i]!, recipients: want.map((r) => r.id) }))
          this.attempts.delete(item.clipId);
      }
      n++;
    }
    return n;
  }

  private async onClip(payload: Uint8Array): Promise<void> {
    const identity = this.identityValue!;
    const now = this.clock.now();
    const header = decodeClip(payload).header;
    const clipId = toHex(header.clipId);
    let opened: ReturnType<typeof openClip>;
    try {
      const sender = this.familyById.get(header.sender);
      if (!sender)
        throw new PlushlinkError('PLK_E_WRONG_ENDPOINT', `clip from ${header.sender}, not a family member`);
      opened = openClip(payload, { recipient: identity, sender }); // verifies the signature first [PLK-5.6]
    } catch (err) {
      // [PLK-6.3] say so, signed, so that the gateway sets the delivery aside instead of resending it.
      await this.sendReceipt(header.sender, header.clipId, now, 'unopenable');
      this.emit('unopenable', { clipId, sender: header.sender, reason: toError(err).message });
      throw err;
    }
    const key = `${header.sender}:${clipId}`;
    const duplicate = this.seen.has(key);
    this.seen.add(key);
    this.emit('received', {
      clipId,
      sender: header.sender,
      sequence: header.sequence,
      durationMs: header.durationMs,
      oggBytes: opened.ogg.length,
      envelopeBytes: payload.length,
      latencyMs: now - header.createdAt,
      duplicate,
      ogg: opened.ogg,
    });
    if (!duplicate) {
      let played: Awaited<ReturnType<typeof playClip>>;
      try {
        played = await playClip(
          {
            playDir: this.opts.playDir,
            playFormat: this.opts.playFormat,
            decode: this.opts.decodeReceived,
            fileName: (from, id, format) => this.playFileName(from, id, format),
          },
          clipId,
          header.sender,
          opened.ogg,
        );
      } catch (err) {
        // A signed clip whose Ogg Opus does not play is as unopenable as one that does not decrypt.
        if (!(err instanceof CodecError)) throw err;
        await this.sendReceipt(header.sender, header.clipId, now, 'unopenable');
        this.emit('unopenable', { clipId, sender: header.sender, reason: err.message });
        throw err;
      }
      this.emit('played', { clipId, sender: header.sender, ...played });
    }
    // [PLK-8.2] duplicates are receipted again (the gateway may have lost the first receipt).
    await this.sendReceipt(header.sender, header.clipId, now);
  }

  // -------------------------------------------------------------------------------------------
  // Receiving version 2 [PLK-14.8]

  /** One chunk: verified at once (in arrival order); playing, receipts and events follow in order. */
  private onChunk(payload: Uint8Array): void {
    const identity = this.identityValue;
    if (!identity) return;
    this.chunkReceiver ??= new ChunkReceiver({
      recipient: identity,
      senders: (id) => this.familyById.get(id),
    });
    const now = this.clock.now();
    const result = this.chunkReceiver.receive(payload, now);
    this.scheduleChunkExpiry();
    this.queueChunkWork(() => this.handleChunks(result, now));
  }

  private queueChunkWork(fn: () => Promise<void>): void {
    const task = this.chunkWork
      .then(fn)
      .catch((err: unknown) => this.emit('error', { where: 'inbox', error: toError(err) }));
    this.chunkWork = task;
    this.tasks.add(task);
    void task.finally(() => this.tasks.delete(task));
  }

  private async handleChunks(r: ReceiveResult, now: number): Promise<void> {
    const chunk = r.chunk;
    if (r.outcome === 'refused') {
      if (!chunk) throw r.error ?? new PlushlinkError('PLK_E_FIELD', 'chunk refused');
      const h = chunk.header;
      // [PLK-14.9] unopenable: the gateway sets the delivery aside rather than resend it.
      await this.sendReceipt(h.sender, chunk.deliveryId, now, 'unopenable');
      if (r.error)
        this.emit('chunkError', {
          clipId: toHex(h.clipId),
          sender: h.sender,
          index: h.index,
          error: r.error,
          fatal: true,
        });
    } else if (r.outcome === 'held' && chunk && r.error) {
      const h = chunk.header;
      this.emit('chunkError', {
        clipId: toHex(h.clipId),
        sender: h.sender,
        index: h.index,
        error: r.error,
        fatal: false,
      });
    } else if (r.outcome === 'duplicate' && chunk) {
      const h = chunk.header;
      this.emit('chunk', {
        clipId: toHex(h.clipId),
        sender: h.sender,
        index: h.index,
        final: h.final,
        sequence: h.sequence,
        playableMs: 0,
        latencyMs: now - h.createdAt,
        bytes: chunk.size,
        duplicate: true,
      });
      // [PLK-8.2] duplicates are receipted again.
      await this.sendReceipt(h.sender, chunk.deliveryId, now);
    }
    for (const p of r.playable) await this.playChunk(p, now);
    for (const f of r.failed) this.chunkFailed(f, f.error === r.error);
    for (const d of r.dropped) await this.sendReceipt(d.sender, d.deliveryId, now, 'unopenable');
    for (const c of r.completed) await this.chunkedClipDone(c, now);
  }

  /** A verified chunk in index order: decoded with the clip's streaming player, then receipted. */
  private async playChunk(p: PlayableChunk, now: number): Promise<void> {
    const key = `${p.sender}:${p.clipId}`;
    if (this.brokenClips.has(key)) {
      await this.sendReceipt(p.sender, p.deliveryId, now, 'unopenable');
      return;
    }
    if (this.opts.decodeReceived ?? true) {
      let player = this.chunkPlayers.get(key);
      if (!player) {
        player = new ChunkPlayer();
        this.chunkPlayers.set(key, player);
      }
      try {
        player.push(p.ogg);
      } catch (err) {
        if (!(err instanceof CodecError)) throw err;
        // Signed audio that does not play is as unopenable as audio that does not decrypt [PLK-6.3].
        player.destroy();
        this.chunkPlayers.delete(key);
        this.brokenClips.add(key);
        if (this.brokenClips.size > 1024)
          this.brokenClips.delete(this.brokenClips.values().next().value ?? key);
        await this.sendReceipt(p.sender, p.deliveryId, now, 'unopenable');
        this.emit('unopenable', { clipId: p.clipId, sender: p.sender, reason: err.message });
        return;
      }
    }
    this.emit('chunk', {
      clipId: p.clipId,
      sender: p.sender,
      index: p.index,
      final: p.final,
      sequence: p.sequence,
      playableMs: p.playableMs,
      latencyMs: now - p.clipCreatedAt,
      bytes: p.bytes,
      duplicate: false,
    });
    await this.sendReceipt(p.sender, p.deliveryId, now);
  }

  private chunkFailed(f: FailedClip, reported: boolean): void {
    const key = `${f.sender}:${f.clipId}`;
    this.chunkPlayers.get(key)?.destroy();
    this.chunkPlayers.delete(key);
    if (!reported)
      this.emit('chunkError', { clipId: f.clipId, sender: f.sender, error: f.error, fatal: true });
  }

  /** The final chunk played: the whole clip is received (and, with playDir, written as one .opus file). */
  private async chunkedClipDone(c: CompletedClip, now: number): Promise<void> {
    const key = `${c.sender}:${c.clipId}`;
    const player = this.chunkPlayers.get(key);
    this.chunkPlayers.delete(key);
    const decodedMs = player ? Math.round(player.playedMs) : 0;
    player?.destroy();
    if (this.brokenClips.has(key)) return;
    this.emit('received', {
      clipId: c.clipId,
      sender: c.sender,
      sequence: c.firstSequence,
      durationMs: c.durationMs,
      oggBytes: c.ogg.length,
      envelopeBytes: c.bytes,
      latencyMs: now - c.createdAt,
      duplicate: false,
      ogg: c.ogg,
    });
    const played = await playClip(
      {
        playDir: this.opts.playDir,
        playFormat: this.opts.playFormat,
        decode: false, // decoded chunk by chunk already
        fileName: (from, id, format) => this.playFileName(from, id, format),
      },
      c.clipId,
      c.sender,
      c.ogg,
    );
    this.emit('played', {
      clipId: c.clipId,
      sender: c.sender,
      durationMs: played.durationMs || decodedMs,
      ...(played.file ? { file: played.file } : {}),
    });
  }

  /** Clips in progress or chunks held: an idle check on the device clock [PLK-14.8]. */
  private scheduleChunkExpiry(): void {
    const rx = this.chunkReceiver;
    if (!rx || this.chunkTimer || (rx.openClips === 0 && rx.heldChunks === 0)) return;
    const idle = this.opts.chunkIdleMs ?? CHUNK_IDLE_MS;
    this.chunkTimer = this.clock.setTimer(idle, () => {
      this.chunkTimer = undefined;
      const now = this.clock.now();
      const r = rx.expireIdle(now, idle);
      this.queueChunkWork(async () => {
        for (const f of r.failed) this.chunkFailed(f, false);
        for (const d of r.dropped) await this.sendReceipt(d.sender, d.deliveryId, now, 'unopenable');
      });
      this.scheduleChunkExpiry();
    });
  }

  /** The endpoint stops: clips in progress are truncated [PLK-14.8]. */
  private closeChunks(): void {
    this.chunkTimer?.cancel();
    this.chunkTimer = undefined;
    const rx = this.chunkReceiver;
    if (rx) for (const f of rx.close().failed) this.chunkFailed(f, false);
    for (const p of this.chunkPlayers.values()) p.destroy();
    this.chunkPlayers.clear();
  }

  /** File name for a played clip; overridable. */
  protected playFileName(sender: EndpointId, clipId: string, format: PlayFormat): string {
    const from = this.opts.nameOf?.(sender) ?? sender.slice(0, 8);
    return playedFileName(this.name ?? this.id.slice(0, 8), from, clipId, format);
  }

  private async sendReceipt(
    sender: EndpointId,
    clipId: Uint8Array,
    receivedAt: number,
    status: ReceiptStatus = 'opened',
  ): Promise<void> {
    const identity = this.identityValue!;
    const link = this.link;
    if (!link || link.closed) return; // the gateway resends the clip on reconnect; we receipt it then
    const receipt = createReceipt({ recipient: identity, sender, clipId, receivedAt, status });
    try {
      await link.publish(receiptTopic(identity.id), receipt);
    } catch {
      /* link lost: same as above */
    }
  }

  private onReceipt(payload: Uint8Array): void {
    const identity = this.identityValue!;
    try {
      // The receipt's signer must be a family member, and the clip's sender must be us.
      const claimed = decodeReceipt(payload);
      const member = this.familyById.get(claimed.recipient);
      if (!member) return;
      const receipt = verifyReceipt(payload, member.signPublicKey);
      if (receipt.sender !== identity.id) return;
      const clipId = toHex(receipt.clipId);
      const sealedAt = this.sentAt.get(clipId);
      if (receipt.status === 'unopenable')
        this.emit('undeliverable', { clipId, recipient: receipt.recipient });
      else
        this.emit('delivered', {
          clipId,
          recipient: receipt.recipient,
          ms: sealedAt === undefined ? -1 : this.clock.now() - sealedAt,
          ...this.chunkField(clipId),
        });
      // A receipt proves the gateway accepted the clip: if its PUBACK was lost, stop resending it.
      const item = this.outboxValue?.items().find((it) => it.clipId === clipId);
      if (item && this.inFlight !== clipId) void this.ack(item, 'receipt');
    } catch (err) {
      if (!isPlushlinkError(err)) this.emit('error', { where: 'receipt', error: toError(err) });
    }
  }
}
