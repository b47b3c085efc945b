// Bounded outbox of sealed clip envelopes (and v2 clip chunks) with per-sender sequence numbers, persisted atomically (temp file + rename).
import { readFile, stat } from 'node:fs/promises';
import { atomicWriteFile } from '../platform/files.ts';
import { toHex } from '../shared/bytes.ts';
import { CodedError } from '../shared/errors.ts';
import { isEndpointId } from '../shared/identity.ts';
import { describeValue, isJsonObject, type JsonValue, parseJson } from '../shared/json.ts';
import { LIMITS } from '../shared/limits.ts';
import type { EndpointId } from '../shared/types.ts';
import { type ClipObject, decodeClipObject } from '../shared/versions.ts';

export interface OutboxItem {
  /**
   * Hex of the 16 bytes the gateway stores the object under and receipts name: a v1 envelope's
   * clip id, a v2 chunk's delivery id [PLK-14.9].
   */
  readonly clipId: string;
  readonly sequence: number;
  readonly createdAt: number;
  readonly durationMs: number;
  readonly recipients: readonly EndpointId[];
  /** The sealed envelope exactly as it will be published (and republished). */
  readonly envelope: Uint8Array;
  /**
   * The clip's content key, so that the toy can re-seal it to a new roster without the audio
   * [PLK-4.6]; as secret as the clip (the outbox file is 0600 and only ever on the device).
   */
  readonly contentKey?: Uint8Array;
}

export type OutboxErrorCode =
  | 'OUTBOX_FULL'
  | 'OUTBOX_CORRUPT'
  | 'OUTBOX_SEQUENCE'
  | 'OUTBOX_DUPLICATE'
  /** The gateway closed the connection on this envelope every time it was sent: given up, loudly. */
  | 'OUTBOX_REFUSED';

/** Typed outbox failure. OUTBOX_FULL is the caller's signal to stop recording: nothing is ever dropped silently. */
export class OutboxError extends CodedError<OutboxErrorCode> {}

export interface OutboxOptions {
  /** Persist to this file (created 0600, replaced atomically on every change). In memory when absent. */
  readonly path?: string | undefined;
  /** Most envelopes held at once. Default 32. */
  readonly maxItems?: number;
  /** Most envelope bytes held at once. Default 16 MiB. */
  readonly maxBytes?: number;
  /**
   * Lower bound for the next sequence number (e.g. the clock, for endpoints without persistent
   * state: PLK-8.1 allows gaps, so time-based numbers stay strictly increasing across restarts).
   */
  readonly sequenceFloor?: () => number;
}

const FILE_MAGIC = 'plushlink-outbox';
const MAX_FILE_BYTES = 64 * 1024 * 1024;

interface OutboxFile {
  plushlink: typeof FILE_MAGIC;
  v: 1;
  lastSequence: number;
  items: {
    clipId: string;
    sequence: number;
    createdAt: number;
    durationMs: number;
    recipients: string[];
    envelope: string;
    contentKey?: string;
  }[];
}

function positiveInt(name: string, v: number, max: number): number {
  if (!Number.isSafeInteger(v) || v < 1 || v > max)
    throw new RangeError(`${name} must be an integer in [1, ${max}], got ${v}`);
  return v;
}

function corrupt(path: string, why: string): OutboxError {
  return new OutboxError('OUTBOX_CORRUPT', `${path}: ${why}`);
}

/** Most items a file may list (the largest maxItems an Outbox accepts). */
const MAX_FILE_ITEMS = 100_000;
/** Base64 text of the largest envelope. */
const MAX_ENVELOPE_BASE64 = Math.ceil(LIMITS.maxEnvelopeBytes / 3) * 4;
const BASE64_RE = /^[A-Za-z0-9+/]*={0,2}$/;

function parseOutboxFile(path: string, text: string): { lastSequence: number; items: OutboxItem[] } {
  let raw: JsonValue;
  try {
    // Strict and bounded (size, depth, no duplicate or prototype keys, null-prototype objects).
    raw = parseJson(text, { what: 'outbox file', maxBytes: MAX_FILE_BYTES, maxDepth: 4 });
  } catch (err) {
    throw new OutboxError('OUTBOX_CORRUPT', `${path}: ${(err as Error).message}`, { cause: err });
  }
  const f = raw as Partial<OutboxFile> | null;
  if (!isJsonObject(f) || f.plushlink !== FILE_MAGIC || f.v !== 1) throw corrupt(path, 'not an outbox file');
  if (!Number.isSafeInteger(f.lastSequence) || (f.lastSequence ?? -1) < 0)
    throw corrupt(path, `bad lastSequence (${describeValue(f.lastSequence)})`);
  if (!Array.isArray(f.items)) throw corrupt(path, `items must be an array, got ${describeValue(f.items)}`);
  if (f.items.length > MAX_FILE_ITEMS) throw corrupt(path, `more than ${MAX_FILE_ITEMS} items`);
  const items: OutboxItem[] = [];
  let prev = 0;
  for (const it of f.items) {
    if (!isJsonObject(it) || typeof it.envelope !== 'string') throw corrupt(path, 'bad item');
    const b64 = it.envelope;
    if (b64.length > MAX_ENVELOPE_BASE64 || b64.length % 4 !== 0 || !BASE64_RE.test(b64))
      throw corrupt(path, 'envelope is not base64 of at most the envelope limit');
    const envelope = new Uint8Array(Buffer.from(b64, 'base64'));
    let decoded: ClipObject;
    try {
      decoded = decodeClipObject(envelope);
    } catch (err) {
      throw corrupt(path, `bad envelope (${err instanceof Error ? err.message : String(err)})`);
    }
    const header = decoded.header;
    // The JSON fields are a cache of the envelope's header: they must agree with it.
    if (
      toHex(decoded.storeId) !== it.clipId ||
      header.sequence !== it.sequence ||
      header.createdAt !== it.createdAt
    ) {
      throw corrupt(path, 'item does not match its envelope');
    }
    if (header.sequence <= prev || header.sequence > (f.lastSequence ?? 0))
      throw corrupt(path, 'sequence order');
    if (
      !Array.isArray(it.recipients) ||
      it.recipients.length > LIMITS.maxRecipients ||
      !it.recipients.every(isEndpointId)
    )
      throw corrupt(path, 'bad recipients');
    prev = header.sequence;
    const key = (it as { contentKey?: unknown }).contentKey;
    if (key !== undefined && (typeof key !== 'string' || !/^[0-9a-f]{64}$/.test(key)))
      throw corrupt(path, 'content key is not 32 bytes of hex');
    items.push({
      clipId: it.clipId,
      sequence: header.sequence,
      createdAt: header.createdAt,
      durationMs: header.durationMs,
      recipients: it.recipients as EndpointId[],
      envelope,
      ...(typeof key === 'string' ? { contentKey: new Uint8Array(Buffer.from(key, 'hex')) } : {}),
    });
  }
  return { lastSequence: f.lastSequence ?? 0, items };
}

/**
 * FIFO of sealed envelopes waiting for their PUBACK. Bounded by count and bytes: add() on a full
 * outbox throws OutboxError('OUTBOX_FULL') and never evicts anything. With a path, every change
 * (and the last sequence number handed out) is on disk before add()/remove() resolve, so a
 * restarted toy resends exactly what was not acknowledged and never reuses a sequence number.
 */
export class Outbox {
  readonly path: string | undefined;
  readonly maxItems: number;
  readonly maxBytes: number;
  private readonly floor: (() => number) | undefined;
  private queue: OutboxItem[] = [];
  private totalBytes = 0;
  private persistedSequence = 0;
  private reservedSequence = 0;
  private version = 0;
  private writtenVersion = 0;
  private writing: Promise<void> | null = null;

  private constructor(opts: OutboxOptions) {
    this.path = opts.path;
    this.maxItems = positiveInt('maxItems', opts.maxItems ?? 32, 100_000);
    this.maxBytes = positiveInt('maxBytes', opts.maxBytes ?? 16 * 1024 * 1024, 2 ** 40);
    this.floor = opts.sequenceFloor;
  }

  /** Opens an outbox, loading the file at `path` if there is one (a missing file is an empty outbox). */
  static async open(opts: OutboxOptions = {}): Promise<Outbox> {
    const box = new Outbox(opts);
    if (box.path) {
      let text: string | undefined;
      try {
        const st = await stat(box.path);
        if (!st.isFile()) throw corrupt(box.path, 'not a regular file'); // a FIFO or device would block the read
        if (st.size > MAX_FILE_BYTES) throw corrupt(box.path, `larger than ${MAX_FILE_BYTES} bytes`);
        text = await readFile(box.path, 'utf8');
      } catch (err) {
        if ((err as { code?: unknown }).code !== 'ENOENT') throw err;
      }
      if (text !== undefined) {
        const loaded = parseOutboxFile(box.path, text);
        box.queue = loaded.items;
        box.totalBytes = loaded.items.reduce((n, it) => n + it.envelope.length, 0);
        box.persistedSequence = loaded.lastSequence;
        box.reservedSequence = loaded.lastSequence;
      }
    }
    return box;
  }

  get size(): number {
    return this.queue.length;
  }
  get bytes(): number {
    return this.totalBytes;
  }
  /** Highest sequence number stored in (or acknowledged through) this outbox. */
  get lastSequence(): number {
    return this.persistedSequence;
  }
  /** Oldest first. */
  items(): readonly OutboxItem[] {
    return this.queue.slice();
  }
  peek(): OutboxItem | undefined {
    return this.queue[0];
  }
  has(clipId: string): boolean {
    return this.queue.some((it) => it.clipId === clipId);
  }

  /** Throws OUTBOX_FULL unless one more envelope of `bytes` fits: call before the work of recording and sealing. */
  assertRoom(bytes = 0): void {
    this.assertRoomFor(1, bytes);
  }

  /** Throws OUTBOX_FULL unless `items` more entries (a chunked clip's chunks [PLK-14.6]) of `bytes` in all fit. */
  assertRoomFor(items: number, bytes = 0): void {
    if (this.queue.length + items > this.maxItems) {
      throw new OutboxError(
        'OUTBOX_FULL',
        `outbox full: ${this.queue.length} clips waiting (max ${this.maxItems})`,
      );
    }
    if (this.totalBytes + bytes > this.maxBytes) {
      throw new OutboxError(
        'OUTBOX_FULL',
        `outbox full: ${this.totalBytes + bytes} bytes would exceed ${this.maxBytes}`,
      );
    }
  }

  /** Hands out the next sequence number [PLK-8.1]: strictly greater than every number handed out before. */
  nextSequence(): number {
    let next = Math.max(this.reservedSequence, this.persistedSequence) + 1;
    if (this.floor) next = Math.max(next, Math.floor(this.floor()));
    if (!Number.isSafeInteger(next) || next > LIMITS.maxSequence)
      throw new OutboxError('OUTBOX_SEQUENCE', 'sequence numbers exhausted');
    this.reservedSequence = next;
    return next;
  }

  /** Appends a sealed envelope (and persists it with its sequence number) or throws OUTBOX_FULL. */
  async add(item: OutboxItem): Promise<void> {
    if (!(item.envelope instanceof Uint8Array)) throw new TypeError('envelope must be a Uint8Array');
    if (!Number.isSafeInteger(item.sequence) || item.sequence <= this.persistedSequence) {
      throw new OutboxError(
        'OUTBOX_SEQUENCE',
        `sequence ${item.sequence} is not above ${this.persistedSequence}`,
      );
    }
    if (this.has(item.clipId))
      throw new OutboxError('OUTBOX_DUPLICATE', `clip ${item.clipId} is already queued`);
    this.assertRoom(item.envelope.length);
    const prevSeq = this.persistedSequence;
    this.queue.push(item);
    this.totalBytes += item.envelope.length;
    this.persistedSequence = item.sequence;
    this.reservedSequence = Math.max(this.reservedSequence, item.sequence);
    try {
      await this.persist();
    } catch (err) {
      // Not on disk: undo, so memory never claims more than the file holds.
      this.queue = this.queue.filter((it) => it !== item);
      this.totalBytes -= item.envelope.length;
      this.persistedSequence = prevSeq;
      throw err;
    }
  }

  /**
   * Replaces a queued clip by the same clip sealed anew (same clip id and sequence number, other
   * recipients [PLK-4.6]); persisted before it resolves. False when it was not queued.
   */
  async replace(item: OutboxItem): Promise<boolean> {
    const i = this.queue.findIndex((it) => it.clipId === item.clipId);
    const old = this.queue[i];
    if (!old) return false;
    if (old.sequence !== item.sequence)
      throw new OutboxError('OUTBOX_SEQUENCE', 'a re-sealed clip keeps its sequence number');
    this.queue[i] = item;
    this.totalBytes += item.envelope.length - old.envelope.length;
    try {
      await this.persist();
    } catch (err) {
      this.queue[i] = old;
      this.totalBytes -= item.envelope.length - old.envelope.length;
      throw err;
    }
    return true;
  }

  /** Removes an acknowledged envelope; false when it was not queued. */
  async remove(clipId: string): Promise<boolean> {
    const i = this.queue.findIndex((it) => it.clipId === clipId);
    if (i < 0) return false;
    const [item] = this.queue.splice(i, 1);
    this.totalBytes -= item?.envelope.length ?? 0;
    await this.persist();
    return true;
  }

  /** Resolves once every change so far is on disk. */
  async flush(): Promise<void> {
    await this.persist(false);
  }

  private serialize(): string {
    const file: OutboxFile = {
      plushlink: FILE_MAGIC,
      v: 1,
      lastSequence: this.persistedSequence,
      items: this.queue.map((it) => ({
        clipId: it.clipId,
        sequence: it.sequence,
        createdAt: it.createdAt,
        durationMs: it.durationMs,
        recipients: [...it.recipients],
        envelope: Buffer.from(it.envelope).toString('base64'),
        ...(it.contentKey ? { contentKey: Buffer.from(it.contentKey).toString('hex') } : {}),
      })),
    };
    return JSON.stringify(file);
  }

  /** Writes coalesce: one write covers every change made before it started; callers wait for theirs. */
  private async persist(bump = true): Promise<void> {
    if (!this.path) return;
    const path = this.path;
    if (bump) this.version++;
    const want = this.version;
    while (this.writtenVersion < want) {
      if (this.writing) {
        await this.writing.catch(() => undefined);
        continue;
      }
      const v = this.version;
      const data = this.serialize();
      this.writing = atomicWriteFile(path, data).then(
        () => {
          this.writtenVersion = Math.max(this.writtenVersion, v);
          this.writing = null;
        },
        (err: unknown) => {
          this.writing = null;
          throw err;
        },
      );
      await this.writing;
    }
  }
}
