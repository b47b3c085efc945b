// What toys and parent apps share: the connect state machine with backoff, push-to-talk → sealed envelope → outbox → QoS 1, and the inbox (open → play → receipt).
import { toHex } from '../shared/bytes.ts';
import {
  type CodecParams,
  decodeClip,
  openClip,
  resealClip,
  sealClipKeepingKey,
} from '../shared/envelope.ts';
import { isPlushlinkError, PlushlinkError } from '../shared/errors.ts';
import type { PrivateIdentity, PublicIdentity } from '../shared/identity.ts';
import { MSG } from '../shared/limits.ts';
import { seededRandom, systemRandom } from '../shared/random.ts';
import { createReceipt, decodeReceipt, type ReceiptStatus, verifyReceipt } from '../shared/receipt.ts';
import { verifyRoster } from '../shared/roster.ts';
import { clipTopic, inboxTopic, receiptTopic } from '../shared/topics.ts';
import type { EndpointId, RandomSource } from '../shared/types.ts';
import { Backoff, type BackoffOptions } from './backoff.ts';
import { type DeviceClock, realClock } from './clock.ts';
import { CodecError } from './codec/errors.ts';
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
  };
  published: {
    readonly clipId: string;
    readonly sequence: number;
    readonly bytes: number;
    readonly attempt: number;
  };
  /** PUBACK: the gateway has durably stored the envelope [PLK-12.3]. `ms` since sealing. */
  acked: { readonly clipId: string; readonly sequence: number; readonly ms: number };
  /** A recipient's receipt for one of our clips came back: `ms` from sealing to receipt arrival. */
  delivered: { readonly clipId: string; readonly recipient: EndpointId; readonly ms: number };
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
}

export interface RecordResult {
  readonly clipId: string;
  readonly sequence: number;
  readonly envelope: Uint8Array;
  readonly ogg: Uint8Array;
  readonly durationMs: number;
}

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

  private async ack(item: OutboxItem): Promise<void> {
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
      this.emit('acked', { clipId: item.clipId, sequence: item.sequence, ms: this.clock.now() - at });
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
        });
      // A receipt proves the gateway accepted the clip: if its PUBACK was lost, stop resending it.
      const outbox = this.outboxValue;
      if (outbox?.has(clipId) && this.inFlight !== clipId) {
        void outbox
          .remove(clipId)
          .catch((err: unknown) => this.emit('error', { where: 'outbox', error: toError(err) }));
      }
    } catch (err) {
      if (!isPlushlinkError(err)) this.emit('error', { where: 'receipt', error: toError(err) });
    }
  }
}
