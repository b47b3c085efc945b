// The parent app's logic in the page, as device/parent.ts and device/endpoint.ts do it for the simulator: connect loop, roster, clips verified, opened and receipted, replies sealed to the toys, and the toys' receipts.
import { readOggOpus } from '../../device/codec/ogg.ts';
import { toHex } from '../../shared/bytes.ts';
import { CHUNKED_VERSION, chunkDeliveryId, decodeChunk } from '../../shared/chunked.ts';
import { tweetnaclSuite } from '../../shared/crypto-nacl.ts';
import { decodeClip, sealClip } from '../../shared/envelope.ts';
import { CodedError, PlushlinkError } from '../../shared/errors.ts';
import { type PublicIdentity, parseIdentityJson } from '../../shared/identity.ts';
import { identityCode } from '../../shared/identity-code.ts';
import { CONTEXT, LIMITS, MSG, PROTOCOL_VERSION } from '../../shared/limits.ts';
import { createReceipt, decodeReceipt, type ReceiptStatus, verifyReceipt } from '../../shared/receipt.ts';
import { type RosterMemberInfo, verifyRoster } from '../../shared/roster.ts';
import { clipTopic, receiptTopic } from '../../shared/topics.ts';
import type { EndpointId } from '../../shared/types.ts';
import { connectGateway, type GatewayConnection } from './connection.ts';
import { WebError } from './errors.ts';
import { type BrowserKeys, loadOrCreateKeys, openClipWithKeys, signWithKeys } from './keys.ts';
import { REPLY_BITRATE, REPLY_FRAME_MS, type Recording } from './recorder.ts';
import { PageStore } from './store.ts';

export type PageState = 'starting' | 'unregistered' | 'connecting' | 'online' | 'offline' | 'failed';

/** One message from the family, as the list shows it. */
export interface ClipItem {
  /** `sender:clip id` (hex). */
  readonly key: string;
  readonly sender: EndpointId;
  readonly clipId: string;
  /** When the sender sealed it (its clock). */
  readonly createdAt: number;
  readonly receivedAt: number;
  /** What the Ogg Opus stream plays for, ms (not what the header claims). */
  readonly durationMs: number;
  /** The stream's TITLE comment, if the sender set one: untrusted text, shown as text only. */
  readonly title?: string;
  /** The opened Ogg Opus bytes (kept in memory only). */
  readonly ogg?: Uint8Array;
  /** Why it could not be opened or played; the message is shown instead of a player. */
  readonly error?: string;
}

export type ReplyStatus = 'sending' | 'stored' | 'delivered' | 'undeliverable' | 'failed';

/** One of the parent's own messages to the toys. */
export interface ReplyItem {
  readonly clipId: string;
  readonly sequence: number;
  readonly createdAt: number;
  readonly durationMs: number;
  readonly to: readonly EndpointId[];
  status: ReplyStatus;
  readonly deliveredTo: Set<EndpointId>;
  error?: string;
}

interface PageEvents {
  state: { readonly state: PageState; readonly detail: string };
  roster: { readonly members: readonly RosterMemberInfo[] };
  clip: ClipItem;
  reply: ReplyItem;
}

/** What the clips store holds per message: the envelope (ciphertext) and the sender's public keys. */
interface StoredClip {
  readonly v: 1;
  readonly key: string;
  readonly envelope: Uint8Array;
  readonly sender: RosterMemberInfo;
  readonly receivedAt: number;
}

interface OutboxEntry {
  readonly clipId: string;
  readonly sequence: number;
  readonly createdAt: number;
  readonly durationMs: number;
  readonly to: readonly EndpointId[];
  readonly envelope: Uint8Array;
}

const nacl = tweetnaclSuite();
/** Messages kept in the page (oldest forgotten first). */
const MAX_KEPT_CLIPS = 100;
const MAX_TITLE = 80;

function messageOf(err: unknown): string {
  if (err instanceof CodedError) return err.message;
  return err instanceof Error ? err.message : String(err);
}

/** [PLK-6.3] How an unopenable clip is described to a parent. */
function unopenableReason(err: unknown): string {
  if (err instanceof PlushlinkError) {
    switch (err.code) {
      case 'PLK_E_BAD_SIGNATURE':
        return 'its signature does not verify: it was changed on the way, or not sent by this toy';
      case 'PLK_E_NOT_RECIPIENT':
        return 'it is not addressed to this browser';
      case 'PLK_E_DECRYPT':
      case 'PLK_E_PADDING':
        return 'it cannot be decrypted with this browser’s key';
      case 'PLK_E_WRONG_ENDPOINT':
        return 'it is not from a member of your family';
      default:
        return `it is malformed (${err.code})`;
    }
  }
  if (err instanceof CodedError && String(err.code).startsWith('OGG_'))
    return `the recording inside is damaged (${err.code})`;
  return messageOf(err);
}

/** The TITLE comment of an Ogg Opus stream, as plain bounded text (control characters dropped). */
function titleOf(comments: readonly string[]): string | undefined {
  const c = comments.find((x) => x.toUpperCase().startsWith('TITLE='));
  if (!c) return undefined;
  const text = c
    .slice(6)
    .replace(/\p{Cc}/gu, ' ')
    .trim();
  return text ? text.slice(0, MAX_TITLE) : undefined;
}

/** The page's parent endpoint. Events carry what the UI shows; nothing here touches the DOM. */
export class ParentPage {
  private readonly listeners = new Map<keyof PageEvents, Set<(e: never) => void>>();
  private store: PageStore | undefined;
  keys: BrowserKeys | undefined;
  gateway: PublicIdentity | undefined;
  private members: RosterMemberInfo[] = [];
  private rosterVersion = 0;
  private readonly clips = new Map<string, ClipItem>();
  private readonly replies = new Map<string, ReplyItem>();
  private outbox: OutboxEntry[] = [];
  private conn: GatewayConnection | undefined;
  private stateValue: PageState = 'starting';
  private stopped = false;
  private wake: (() => void) | undefined;
  private inbox: Promise<void> = Promise.resolve();
  private failures = 0;
  readonly names = new Map<EndpointId, string>();

  constructor(private readonly mqttUrl: string) {}

  on<K extends keyof PageEvents>(kind: K, fn: (e: PageEvents[K]) => void): void {
    const set = this.listeners.get(kind) ?? new Set();
    this.listeners.set(kind, set);
    set.add(fn as (e: never) => void);
  }

  private emit<K extends keyof PageEvents>(kind: K, e: PageEvents[K]): void {
    for (const fn of this.listeners.get(kind) ?? []) (fn as (e: PageEvents[K]) => void)(e);
  }

  get state(): PageState {
    return this.stateValue;
  }

  private setState(state: PageState, detail: string): void {
    this.stateValue = state;
    this.emit('state', { state, detail });
  }

  /** The family as the gateway last told it [PLK-4.6]. */
  family(): readonly RosterMemberInfo[] {
    return this.members;
  }

  toys(): readonly RosterMemberInfo[] {
    return this.members.filter((m) => m.role === 'toy');
  }

  /** The parent's name for a family member: a local nickname, or "Toy 2" by roster order. */
  nameOf(id: EndpointId): string {
    const nick = this.names.get(id);
    if (nick) return nick;
    const toys = this.toys();
    const i = toys.findIndex((t) => t.id === id);
    if (i >= 0) return `Toy ${i + 1}`;
    if (this.members.some((m) => m.id === id && m.role === 'parent')) return 'Another parent';
    return 'Someone outside your family';
  }

  /** Renames a toy in this browser only (never sent anywhere). */
  async rename(id: EndpointId, name: string): Promise<void> {
    const text = name.trim().slice(0, 40);
    if (text) this.names.set(id, text);
    else this.names.delete(id);
    await this.store?.put(`name:${id}`, text);
    this.emit('roster', { members: this.members });
    for (const c of this.clips.values()) if (c.sender === id) this.emit('clip', c);
  }

  /** [PLK-1.5] What the operator registers: public keys only. */
  identityCode(): string {
    if (!this.keys) throw new WebError('WEB_STORAGE', 'no keys yet');
    return identityCode(this.keys.identity);
  }

  /** Opens storage and keys, pins the gateway, shows what was kept, then connects (and keeps reconnecting). */
  async start(): Promise<void> {
    try {
      this.store = await PageStore.open();
      this.keys = (await loadOrCreateKeys(this.store)).keys;
      this.gateway = await this.pinGateway(this.store);
      await this.restore(this.store);
    } catch (err) {
      this.setState('failed', messageOf(err));
      return;
    }
    void this.loop();
  }

  /** Connect now instead of waiting for the next retry. */
  retryNow(): void {
    this.wake?.();
  }

  /**
   * [PLK-3.6] The gateway identity the page checks every proof and roster against: pinned the first
   * time (trust on first use), and from then on a different one is refused, never adopted.
   */
  private async pinGateway(store: PageStore): Promise<PublicIdentity> {
    const pinnedText = await store.get('gateway');
    const pinned = typeof pinnedText === 'string' ? parseIdentityJson(pinnedText) : undefined;
    let served: PublicIdentity | undefined;
    let servedText: string | undefined;
    try {
      const res = await fetch('/gateway.json', { cache: 'no-store', credentials: 'omit' });
      if (res.ok) {
        servedText = await res.text();
        served = parseIdentityJson(servedText);
      }
    } catch {
      /* offline: the pinned identity is enough */
    }
    if (served && served.role !== 'gateway')
      throw new WebError('WEB_GATEWAY_CHANGED', 'the server did not send a gateway identity');
    if (pinned && served && pinned.id !== served.id)
      throw new WebError(
        'WEB_GATEWAY_CHANGED',
        `This page trusts gateway ${pinned.id.slice(0, 8)}…, but the server now presents ${served.id.slice(0, 8)}…. Nothing was sent. If your operator really replaced the gateway, reset this page (it then needs registering again).`,
      );
    if (pinned) return pinned;
    if (!served || !servedText)
      throw new WebError('WEB_CONNECT', 'cannot reach the gateway to learn its identity');
    await store.put('gateway', servedText);
    return served;
  }

  private async restore(store: PageStore): Promise<void> {
    const roster = await store.get('roster');
    if (roster && typeof roster === 'object' && Array.isArray((roster as { members?: unknown }).members)) {
      const r = roster as { version: number; members: RosterMemberInfo[] };
      this.members = r.members;
      this.rosterVersion = r.version;
    }
    for (const m of this.members) {
      const nick = await store.get(`name:${m.id}`);
      if (typeof nick === 'string' && nick) this.names.set(m.id, nick);
    }
    this.emit('roster', { members: this.members });
    const seq = await store.get('outbox');
    if (Array.isArray(seq)) this.outbox = seq as OutboxEntry[];
    const stored = (await store.allClips()).filter(
      (c): c is StoredClip => typeof c === 'object' && c !== null && (c as StoredClip).v === 1,
    );
    stored.sort((a, b) => a.receivedAt - b.receivedAt);
    for (const s of stored) {
      try {
        this.addClip(await this.open(s.envelope, s.sender, s.receivedAt));
      } catch (err) {
        this.addClip({
          key: s.key,
          sender: s.sender.id,
          clipId: s.key.slice(s.key.indexOf(':') + 1),
          createdAt: s.receivedAt,
          receivedAt: s.receivedAt,
          durationMs: 0,
          error: `This message can no longer be opened: ${unopenableReason(err)}.`,
        });
      }
    }
  }

  private addClip(item: ClipItem): void {
    this.clips.set(item.key, item);
    this.emit('clip', item);
  }

  /** Verify, open, check the Ogg Opus stream [PLK-5.6]; throws what unopenableReason explains. */
  private async open(envelope: Uint8Array, sender: PublicIdentity, receivedAt: number): Promise<ClipItem> {
    const opened = await openClipWithKeys(this.keys!, envelope, sender);
    const file = readOggOpus(opened.ogg, { maxPackets: 20_000 });
    const h = opened.header;
    const title = titleOf(file.tags.comments);
    return {
      key: `${h.sender}:${toHex(h.clipId)}`,
      sender: h.sender,
      clipId: toHex(h.clipId),
      createdAt: h.createdAt,
      receivedAt,
      durationMs: Math.round(file.durationSamples48k / 48),
      ...(title ? { title } : {}),
      ogg: opened.ogg,
    };
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        resolve();
      }
      this.wake = done;
    });
  }

  private async loop(): Promise<void> {
    const keys = this.keys!;
    const gateway = this.gateway!;
    while (!this.stopped) {
      // Waiting for registration: the pill keeps saying so while the page asks again.
      if (this.stateValue !== 'unregistered') this.setState('connecting', 'connecting to the gateway…');
      let conn: GatewayConnection;
      try {
        conn = await connectGateway({ url: this.mqttUrl, keys, gateway });
      } catch (err) {
        this.failures++;
        const notRegistered = err instanceof WebError && err.code === 'WEB_REFUSED' && err.returnCode === 5;
        if (err instanceof WebError && err.code === 'WEB_PROOF')
          this.setState('offline', `${err.message}: nothing was sent`);
        else if (notRegistered) this.setState('unregistered', err.message);
        else this.setState('offline', messageOf(err));
        // Jittered back-off (2 s … 30 s; 3 s while waiting for registration), so that many pages never retry in step.
        const base = notRegistered ? 3000 : Math.min(30_000, 1000 * 2 ** Math.min(this.failures, 5));
        await this.sleep(base * (0.75 + Math.random() * 0.5));
        continue;
      }
      this.failures = 0;
      this.conn = conn;
      const closed = new Promise<void>((resolve) => conn.onClose(resolve));
      conn.onMessage((payload) => {
        this.inbox = this.inbox.then(() => this.onInbox(payload)).catch(() => undefined);
      });
      this.setState('online', 'connected: the gateway proved its identity');
      void this.flushOutbox();
      await closed;
      this.conn = undefined;
      if (!this.stopped) {
        this.setState('offline', 'connection lost, reconnecting…');
        await this.sleep(1000 + Math.random() * 1000);
      }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.conn?.close();
  }

  // ------------------------------------------------------------------------------------------ inbox

  /** [PLK-4.4] Inbox payloads by their first byte; unknown kinds are ignored. */
  private async onInbox(payload: Uint8Array): Promise<void> {
    switch (payload[0]) {
      case MSG.ROSTER:
        return this.onRoster(payload);
      case MSG.CLIP:
        return this.onClip(payload);
      case MSG.RECEIPT:
      case MSG.UNOPENABLE:
        return this.onReceipt(payload);
      default:
        return;
    }
  }

  /** [PLK-4.6] A roster signed by the pinned gateway that lists us, not older than ours. */
  private async onRoster(payload: Uint8Array): Promise<void> {
    let roster: ReturnType<typeof verifyRoster>;
    try {
      roster = verifyRoster(payload, {
        gateway: this.gateway!,
        endpointId: this.keys!.identity.id,
        crypto: nacl,
      });
    } catch {
      return;
    }
    if (roster.version < this.rosterVersion) return;
    this.rosterVersion = roster.version;
    this.members = [...roster.members];
    await this.store?.put('roster', { version: roster.version, members: this.members });
    for (const m of this.members) {
      const nick = await this.store?.get(`name:${m.id}`);
      if (typeof nick === 'string' && nick) this.names.set(m.id, nick);
    }
    this.emit('roster', { members: this.members });
  }

  private async onClip(payload: Uint8Array): Promise<void> {
    const now = Date.now();
    if (payload[1] === CHUNKED_VERSION) return this.onChunk(payload, now);
    let header: ReturnType<typeof decodeClip>['header'];
    try {
      if (payload[1] !== PROTOCOL_VERSION) throw new PlushlinkError('PLK_E_VERSION', `version ${payload[1]}`);
      header = decodeClip(payload).header;
    } catch (err) {
      // Nothing in it can be trusted, not even who sent it: refused, and said so.
      this.addClip({
        key: `malformed:${now}:${Math.random()}`,
        sender: '' as EndpointId,
        clipId: '',
        createdAt: now,
        receivedAt: now,
        durationMs: 0,
        error: `A malformed message arrived and was refused (${messageOf(err)}).`,
      });
      return;
    }
    const clipId = toHex(header.clipId);
    const key = `${header.sender}:${clipId}`;
    const known = this.clips.get(key);
    if (known?.ogg) {
      // [PLK-8.2] a duplicate: receipted again, not shown twice.
      await this.sendReceipt(header.sender, header.clipId, now, 'opened');
      return;
    }
    const sender = this.members.find((m) => m.id === header.sender);
    try {
      if (!sender) throw new PlushlinkError('PLK_E_WRONG_ENDPOINT', 'not in the family roster');
      const item = await this.open(payload, sender, now);
      await this.keep({ v: 1, key, envelope: payload, sender, receivedAt: now });
      this.addClip(item);
      await this.sendReceipt(header.sender, header.clipId, now, 'opened');
    } catch (err) {
      // [PLK-6.3] signed "cannot open", so that the gateway sets it aside instead of resending it.
      this.addClip({
        key,
        sender: header.sender,
        clipId,
        createdAt: header.createdAt,
        receivedAt: now,
        durationMs: 0,
        error: `A message arrived but cannot be played: ${unopenableReason(err)}.`,
      });
      await this.sendReceipt(header.sender, header.clipId, now, 'unopenable');
    }
  }

  /** [PLK-14.8] Chunked clips (experimental version 2) are not played here: each chunk is reported unopenable. */
  private async onChunk(payload: Uint8Array, now: number): Promise<void> {
    let chunk: ReturnType<typeof decodeChunk>;
    try {
      chunk = decodeChunk(payload);
    } catch {
      return;
    }
    const h = chunk.header;
    const key = `${h.sender}:${toHex(h.clipId)}`;
    if (!this.clips.has(key))
      this.addClip({
        key,
        sender: h.sender,
        clipId: toHex(h.clipId),
        createdAt: h.createdAt,
        receivedAt: now,
        durationMs: 0,
        error:
          'A message in the experimental streaming format (protocol version 2) arrived; this page plays version 1 only.',
      });
    if (this.members.some((m) => m.id === h.sender))
      await this.sendReceipt(h.sender, chunkDeliveryId(h.clipId, h.index), now, 'unopenable');
  }

  /** Keeps the envelope (ciphertext, as it arrived) so that the list survives a reload. */
  private async keep(record: StoredClip): Promise<void> {
    const store = this.store;
    if (!store) return;
    await store.putClip(record.key, record);
    const all = [...this.clips.values()].filter((c) => c.ogg);
    if (all.length >= MAX_KEPT_CLIPS) {
      all.sort((a, b) => a.receivedAt - b.receivedAt);
      for (const old of all.slice(0, all.length - MAX_KEPT_CLIPS + 1)) await this.remove(old.key);
    }
  }

  /** Deletes a message from this browser (the gateway deleted it when it was receipted [PLK-12.5]). */
  async remove(key: string): Promise<void> {
    this.clips.delete(key);
    await this.store?.deleteClip(key);
  }

  /** [PLK-6.1] [PLK-6.3] A receipt signed with the page's key, to its own rcpt topic. */
  private async sendReceipt(
    sender: EndpointId,
    clipId: Uint8Array,
    at: number,
    status: ReceiptStatus,
  ): Promise<void> {
    const conn = this.conn;
    if (!conn || sender === ('' as EndpointId)) return; // the gateway resends the clip on reconnect
    const context = status === 'opened' ? CONTEXT.RECEIPT : CONTEXT.UNOPENABLE;
    const receipt = await signWithKeys(this.keys!, context, ({ identity, crypto }) =>
      createReceipt({ recipient: identity, sender, clipId, receivedAt: Math.floor(at), status, crypto }),
    );
    await conn.publish(receiptTopic(this.keys!.identity.id), receipt).catch(() => undefined);
  }

  /** A toy's receipt for one of our replies: verified with the toy's key [PLK-6.2]. */
  private async onReceipt(payload: Uint8Array): Promise<void> {
    try {
      const claimed = decodeReceipt(payload);
      const member = this.members.find((m) => m.id === claimed.recipient);
      if (!member) return;
      const receipt = verifyReceipt(payload, member.signPublicKey, nacl);
      if (receipt.sender !== this.keys!.identity.id) return;
      const clipId = toHex(receipt.clipId);
      await this.dropFromOutbox(clipId);
      const reply = this.replies.get(clipId);
      if (!reply) return;
      if (receipt.status === 'unopenable') reply.status = 'undeliverable';
      else {
        reply.deliveredTo.add(receipt.recipient);
        if (reply.status !== 'undeliverable') reply.status = 'delivered';
      }
      this.emit('reply', reply);
    } catch {
      /* not a receipt we can check: ignored */
    }
  }

  // ------------------------------------------------------------------------------------------ replies

  /** [PLK-8.1] Strictly increasing across reloads: the clock, or one more than the last. */
  private async nextSequence(): Promise<number> {
    const last = await this.store?.get('sequence');
    const next = Math.max(typeof last === 'number' ? last + 1 : 1, Date.now());
    if (next > LIMITS.maxSequence) throw new WebError('WEB_STORAGE', 'sequence numbers exhausted');
    await this.store?.put('sequence', next); // before it is used: a crash never reuses it
    return next;
  }

  /** [PLK-5] Seals a recording to every toy of the family, signs it with the page's key, queues and publishes it. */
  async sendReply(rec: Recording): Promise<ReplyItem> {
    const toys = this.toys();
    if (toys.length === 0) throw new WebError('WEB_NO_TOY', 'There is no toy in your family to send to yet.');
    const sequence = await this.nextSequence();
    const createdAt = Date.now();
    const envelope = await signWithKeys(this.keys!, CONTEXT.CLIP, ({ identity, crypto }) =>
      sealClip({
        sender: identity,
        recipients: toys,
        sequence,
        createdAt,
        durationMs: Math.min(rec.durationMs, LIMITS.maxDurationMs),
        codec: {
          codec: 'opus-ogg',
          channels: 1,
          sampleRate: rec.sampleRate,
          bitrate: REPLY_BITRATE,
          frameMs: REPLY_FRAME_MS,
        },
        ogg: rec.ogg,
        crypto,
      }),
    );
    const clipId = toHex(decodeClip(envelope).header.clipId);
    const entry: OutboxEntry = {
      clipId,
      sequence,
      createdAt,
      durationMs: rec.durationMs,
      to: toys.map((t) => t.id),
      envelope,
    };
    this.outbox.push(entry);
    await this.store?.put('outbox', this.outbox);
    const reply: ReplyItem = { ...entry, status: 'sending', deliveredTo: new Set() };
    this.replies.set(clipId, reply);
    this.emit('reply', reply);
    void this.flushOutbox();
    return reply;
  }

  private flushing = false;

  /** One envelope in flight at a time, oldest first (the gateway wants increasing sequences [PLK-8.1]). */
  private async flushOutbox(): Promise<void> {
    if (this.flushing) return;
    this.flushing = true;
    try {
      for (;;) {
        const conn = this.conn;
        const entry = this.outbox[0];
        if (!conn || !entry) return;
        try {
          await conn.publish(clipTopic(this.keys!.identity.id), entry.envelope);
        } catch {
          return; // connection lost: resent after the reconnect
        }
        await this.dropFromOutbox(entry.clipId);
        const reply = this.replies.get(entry.clipId);
        if (reply && reply.status === 'sending') {
          reply.status = 'stored';
          this.emit('reply', reply);
        }
      }
    } finally {
      this.flushing = false;
    }
  }

  private async dropFromOutbox(clipId: string): Promise<void> {
    const before = this.outbox.length;
    this.outbox = this.outbox.filter((e) => e.clipId !== clipId);
    if (this.outbox.length !== before) await this.store?.put('outbox', this.outbox);
  }

  /** Forgets everything this browser holds (keys, pinned gateway, messages). */
  async reset(): Promise<void> {
    await this.stop();
    this.store?.close();
    await new Promise<void>((resolve) => {
      const req = indexedDB.deleteDatabase('plushlink');
      req.onsuccess = req.onerror = req.onblocked = () => resolve();
    });
  }
}
