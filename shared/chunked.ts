// Protocol version 2 (experimental), the chunked clip: a clip as a hash chain of independently signed and sealed chunks, playable after the first [PLK-14].
import { assertBytes, ByteReader, ByteWriter, bytesEqual, concatBytes, toHex, utf8 } from './bytes.ts';
import {
  type CryptoSuite,
  defaultCrypto,
  sealedBoxOpen,
  sealedBoxSeal,
  secretboxOpen,
  secretboxSeal,
  sha256,
} from './crypto.ts';
import { CODEC, type CodecParams, DEFAULT_CODEC, readClipHeader, validateCodec } from './envelope.ts';
import { PlushlinkError } from './errors.ts';
import { idFromBytes, idToBytes, type PrivateIdentity, type PublicIdentity } from './identity.ts';
import {
  CLIP_ID_BYTES,
  ID_BYTES,
  KEY_BYTES,
  LIMITS,
  MSG,
  SEALED_KEY_BYTES,
  SECRETBOX_MAC_BYTES,
  SECRETBOX_NONCE_BYTES,
  SIGNATURE_BYTES,
} from './limits.ts';
import { padmeSize } from './padding.ts';
import { systemRandom } from './random.ts';
import { signBody, verifyBody } from './signed.ts';
import type { EndpointId, RandomSource } from './types.ts';
import type { ClipObject, ClipVersion } from './versions.ts';

/** [PLK-14.2] The version byte of a chunk (its type byte is the clip's, 0x01). */
export const CHUNKED_VERSION = 2;

/** [PLK-14.2] [PLK-14.4] [PLK-14.9] Domain-separation strings of version 2. */
export const CHUNK_CONTEXT = {
  /** Signature context of a chunk [PLK-2.3]. */
  CHUNK: 'plushlink/v2/clip-chunk',
  /** Prefix of the chain hash of a chunk [PLK-14.4]. */
  CHAIN: 'plushlink/v2/chunk-chain',
  /** Prefix of a chunk's delivery id [PLK-14.9]. */
  DELIVERY_ID: 'plushlink/v2/chunk-delivery-id',
} as const;

export const CHAIN_HASH_BYTES = 32;
/** [PLK-14.2] Flags byte: bit 0 marks the clip's final chunk; the other bits are zero. */
export const CHUNK_FLAG_FINAL = 0x01;

/** Bytes before the recipients: type .. recipient count [PLK-14.2]. */
const FIXED_HEAD = 1 + 1 + ID_BYTES + CLIP_ID_BYTES + 8 + 8 + 16 + 2 + 1 + CHAIN_HASH_BYTES + 1; // 106
/** Recipient entry of chunk 0 (id + sealed content key) and of every later chunk (id only). */
const RECIPIENT_FIRST = ID_BYTES + SEALED_KEY_BYTES; // 100
const RECIPIENT_LATER = ID_BYTES; // 20

/** Size in bytes of chunk `index` with `recipients` entries and a padded payload of `paddedBytes` [PLK-14.2]. */
export function chunkSize(index: number, recipients: number, paddedBytes: number): number {
  return (
    FIXED_HEAD +
    recipients * (index === 0 ? RECIPIENT_FIRST : RECIPIENT_LATER) +
    SECRETBOX_NONCE_BYTES +
    4 +
    paddedBytes +
    SECRETBOX_MAC_BYTES +
    SIGNATURE_BYTES
  );
}

const MAX_CHUNK_PADDED = 270_336; // padmeSize(4 + 262_144)

/** [PLK-14.5] Hard limits of version 2, enforced before allocating; exceeding one is PLK_E_LIMIT. */
export const CHUNK_LIMITS = {
  /** Chunks per clip (indices 0..1199): 300 s at the shortest chunk a sender may cut. */
  maxChunks: 1200,
  /** Ogg Opus bytes in one chunk. */
  maxChunkPayloadBytes: 262_144,
  /** Padded payload of one chunk (the Padmé bucket of 4 + maxChunkPayloadBytes). */
  maxChunkPaddedBytes: MAX_CHUNK_PADDED,
  /** One whole chunk object (chunk 0, 16 recipients, the largest padded payload). */
  maxChunkBytes: chunkSize(0, LIMITS.maxRecipients, MAX_CHUNK_PADDED),
  /** Audio in one chunk. */
  maxChunkDurationMs: 60_000,
  /** Ogg Opus bytes and audio of a whole clip: as a v1 clip [PLK-9.1]. */
  maxClipPayloadBytes: LIMITS.maxClipPlaintextBytes,
  maxClipDurationMs: LIMITS.maxDurationMs,
  /** [PLK-14.6] Chunk lengths a sender may choose, and its default. */
  minChunkMs: 250,
  maxChunkMs: 10_000,
  defaultChunkMs: 1000,
} as const;

const CHAIN_PREFIX = utf8(`${CHUNK_CONTEXT.CHAIN}\0`);
const DELIVERY_PREFIX = utf8(`${CHUNK_CONTEXT.DELIVERY_ID}\0`);
const ZERO_CHAIN = new Uint8Array(CHAIN_HASH_BYTES);

export interface ChunkRecipient {
  readonly id: EndpointId;
  /** crypto_box_seal(content key) to the recipient (80 bytes): in chunk 0 only [PLK-14.3]. */
  readonly sealedKey?: Uint8Array;
}

export interface ChunkHeader {
  readonly version: number;
  readonly sender: EndpointId;
  readonly clipId: Uint8Array;
  readonly sequence: number;
  readonly createdAt: number;
  readonly codec: CodecParams;
  /** Audio in this chunk, ms. */
  readonly durationMs: number;
  readonly index: number;
  readonly final: boolean;
  /** Chain hash of chunk index − 1; 32 zero bytes in chunk 0 [PLK-14.4]. */
  readonly previous: Uint8Array;
  readonly recipients: readonly ChunkRecipient[];
  readonly bodyNonce: Uint8Array;
}

export interface DecodedChunk {
  readonly header: ChunkHeader;
  /** crypto_secretbox output: MAC (16) || ciphertext of the padded payload. */
  readonly body: Uint8Array;
  /** Every byte before the signature: what the signature covers, and what the chain hash hashes. */
  readonly signed: Uint8Array;
  readonly signature: Uint8Array;
  readonly size: number;
  /** [PLK-14.9] What the gateway stores the chunk under and recipients receipt it with. */
  readonly deliveryId: Uint8Array;
}

// ---- padding, ids, hashes --------------------------------------------------------------------

/** [PLK-14.3] A padded chunk size: a Padmé bucket (PLK-7.1) within the chunk limit. */
export function isChunkBucket(size: number): boolean {
  return (
    Number.isSafeInteger(size) &&
    size >= LIMITS.minPaddedBytes &&
    size <= CHUNK_LIMITS.maxChunkPaddedBytes &&
    padmeSize(size) === size
  );
}

/**
 * [PLK-14.3] Padded size of a chunk payload of `payloadBytes`: the Padmé bucket of
 * max(4 + payloadBytes, padTo). A sender pads every chunk of a clip to one floor (`padTo`) so that
 * chunk sizes do not follow the speech second by second.
 */
export function chunkPaddedSize(payloadBytes: number, padTo = 0): number {
  if (!Number.isSafeInteger(payloadBytes) || payloadBytes < 0)
    throw new RangeError('payloadBytes must be a non-negative integer');
  if (!Number.isSafeInteger(padTo) || padTo < 0) throw new RangeError('padTo must be a non-negative integer');
  if (payloadBytes > CHUNK_LIMITS.maxChunkPayloadBytes)
    throw new PlushlinkError(
      'PLK_E_LIMIT',
      `chunk payload is ${payloadBytes} bytes, max ${CHUNK_LIMITS.maxChunkPayloadBytes}`,
    );
  const size = padmeSize(Math.max(4 + payloadBytes, Math.min(padTo, CHUNK_LIMITS.maxChunkPaddedBytes)));
  if (size > CHUNK_LIMITS.maxChunkPaddedBytes)
    throw new PlushlinkError('PLK_E_LIMIT', `padded chunk of ${size} bytes exceeds the chunk limit`);
  return size;
}

/** [PLK-14.3] padded = u32 length || payload || zeros, of a chunk bucket. */
function padChunk(payload: Uint8Array, padTo: number): Uint8Array {
  const out = new Uint8Array(chunkPaddedSize(payload.length, padTo));
  new DataView(out.buffer).setUint32(0, payload.length);
  out.set(payload, 4);
  return out;
}

/** Inverse of the chunk padding: a chunk bucket, a length that fits, all-zero filler [PLK-14.3]. Returns a view. */
export function unpadChunk(padded: Uint8Array): Uint8Array {
  assertBytes(padded, 'padded');
  if (!isChunkBucket(padded.length))
    throw new PlushlinkError('PLK_E_PADDING', `size ${padded.length} is not a chunk bucket`);
  const len = new DataView(padded.buffer, padded.byteOffset, padded.byteLength).getUint32(0);
  if (len > padded.length - 4 || len > CHUNK_LIMITS.maxChunkPayloadBytes)
    throw new PlushlinkError('PLK_E_PADDING', `length field ${len} does not fit bucket ${padded.length}`);
  let acc = 0;
  for (let i = 4 + len; i < padded.length; i++) acc |= padded[i]!;
  if (acc !== 0) throw new PlushlinkError('PLK_E_PADDING', 'non-zero filler');
  return padded.subarray(4, 4 + len);
}

function checkIndex(index: number): void {
  if (!Number.isSafeInteger(index) || index < 0 || index >= CHUNK_LIMITS.maxChunks)
    throw new PlushlinkError(
      'PLK_E_LIMIT',
      `chunk index ${index} is not in 0..${CHUNK_LIMITS.maxChunks - 1}`,
    );
}

/** [PLK-14.9] d = SHA-256("plushlink/v2/chunk-delivery-id" || 0x00 || clip id || u16 index)[0..16]. */
export function chunkDeliveryId(clipId: Uint8Array, index: number): Uint8Array {
  assertBytes(clipId, 'clipId', CLIP_ID_BYTES);
  checkIndex(index);
  return sha256(concatBytes(DELIVERY_PREFIX, clipId, new Uint8Array([index >> 8, index & 0xff]))).subarray(
    0,
    CLIP_ID_BYTES,
  );
}

/** [PLK-14.4] c = SHA-256("plushlink/v2/chunk-chain" || 0x00 || every byte of the chunk before its signature). */
export function chunkChainHash(chunk: Pick<DecodedChunk, 'signed'>): Uint8Array {
  return sha256(concatBytes(CHAIN_PREFIX, chunk.signed));
}

// ---- codec parameters (the PLK-5.2 layout; the duration is the chunk's) --------------------------

function sameCodec(a: CodecParams, b: CodecParams): boolean {
  return (
    a.codec === b.codec &&
    a.channels === b.channels &&
    a.sampleRate === b.sampleRate &&
    a.bitrate === b.bitrate &&
    a.frameMs === b.frameMs
  );
}

function checkInt(value: number, max: number, field: string): void {
  if (!Number.isSafeInteger(value) || value < 0 || value > max)
    throw new PlushlinkError('PLK_E_FIELD', `${field} must be an integer in [0, ${max}], got ${value}`);
}

function checkRecipients(recipients: readonly PublicIdentity[]): void {
  const n = recipients.length;
  if (n < 1 || n > LIMITS.maxRecipients)
    throw new PlushlinkError('PLK_E_LIMIT', `recipients must number 1..${LIMITS.maxRecipients}, got ${n}`);
  if (new Set(recipients.map((r) => r.id)).size !== n)
    throw new PlushlinkError('PLK_E_FIELD', 'duplicate recipient');
}

// ---- writing ---------------------------------------------------------------------------------

interface ChunkFields {
  readonly sender: PrivateIdentity;
  readonly clipId: Uint8Array;
  readonly sequence: number;
  readonly createdAt: number;
  readonly codec: CodecParams;
  readonly durationMs: number;
  readonly index: number;
  readonly final: boolean;
  readonly previous: Uint8Array;
  readonly recipients: readonly PublicIdentity[];
  /** One per recipient in chunk 0, none after. */
  readonly sealedKeys: readonly Uint8Array[] | null;
  readonly bodyNonce: Uint8Array;
  readonly body: Uint8Array;
}

/** [PLK-14.2] Lays out one chunk and signs it; returns it with its chain hash. */
function writeChunk(crypto: CryptoSuite, f: ChunkFields): { bytes: Uint8Array; chainHash: Uint8Array } {
  const n = f.recipients.length;
  const w = new ByteWriter(chunkSize(f.index, n, f.body.length - SECRETBOX_MAC_BYTES));
  w.u8(MSG.CLIP).u8(CHUNKED_VERSION).raw(idToBytes(f.sender.id)).raw(f.clipId);
  w.u64(f.sequence).u64(f.createdAt);
  w.u8(CODEC.OPUS_OGG).u8(f.codec.channels).u32(f.codec.sampleRate).u32(f.codec.bitrate);
  w.u16(Math.round(f.codec.frameMs * 10)).u32(f.durationMs);
  w.u16(f.index)
    .u8(f.final ? CHUNK_FLAG_FINAL : 0)
    .raw(f.previous);
  w.u8(n);
  f.recipients.forEach((r, i) => {
    w.raw(idToBytes(r.id));
    if (f.index === 0) w.raw(f.sealedKeys![i]!);
  });
  w.raw(f.bodyNonce).u32(f.body.length).raw(f.body);
  const signed = w.bytes.subarray(0, w.offset);
  const chainHash = chunkChainHash({ signed });
  w.raw(signBody(crypto, f.sender.signSeed, CHUNK_CONTEXT.CHUNK, signed));
  return { bytes: w.bytes, chainHash };
}

export interface ChunkedClipOptions {
  readonly sender: PrivateIdentity;
  readonly recipients: readonly PublicIdentity[];
  readonly codec?: CodecParams;
  /** [PLK-14.3] Pad every chunk to at least this many bytes (rounded up to a Padmé bucket); default 0. */
  readonly padTo?: number;
  readonly random?: RandomSource;
  readonly crypto?: CryptoSuite;
}

export interface ChunkInput {
  /** This chunk's slice of the Ogg Opus stream (whole pages; chunk 0 starts with the headers). */
  readonly ogg: Uint8Array;
  readonly durationMs: number;
  /** Per-sender sequence number [PLK-8.1]: above the previous chunk's [PLK-14.6]. */
  readonly sequence: number;
  readonly createdAt: number;
  readonly final: boolean;
}

/**
 * [PLK-14.6] Seals one clip chunk by chunk, as a toy records it: one content key and clip id for
 * the clip (random draws, in order: content key, clip id; then per chunk the body nonce and, in
 * chunk 0, one ephemeral X25519 secret per recipient), each chunk linked to the one before.
 */
export class ChunkedClipSealer {
  readonly clipId: Uint8Array;
  private readonly sender: PrivateIdentity;
  private readonly recipients: readonly PublicIdentity[];
  private readonly codec: CodecParams;
  private readonly padTo: number;
  private readonly random: RandomSource;
  private readonly crypto: CryptoSuite;
  private readonly key: Uint8Array;
  private previous: Uint8Array = ZERO_CHAIN;
  private index = 0;
  private lastSequence = 0;
  private lastCreatedAt = 0;
  private payloadBytes = 0;
  private durationMs = 0;
  private finished = false;

  constructor(opts: ChunkedClipOptions) {
    this.sender = opts.sender;
    this.codec = opts.codec ?? DEFAULT_CODEC;
    this.random = opts.random ?? systemRandom;
    this.crypto = opts.crypto ?? defaultCrypto();
    this.padTo = opts.padTo ?? 0;
    if (!Number.isSafeInteger(this.padTo) || this.padTo < 0 || this.padTo > CHUNK_LIMITS.maxChunkPaddedBytes)
      throw new PlushlinkError('PLK_E_FIELD', `padTo ${this.padTo}`);
    validateCodec(this.codec);
    checkRecipients(opts.recipients);
    this.recipients = [...opts.recipients];
    this.key = this.random(KEY_BYTES);
    this.clipId = this.random(CLIP_ID_BYTES);
  }

  /** Index of the next chunk. */
  get nextIndex(): number {
    return this.index;
  }

  /** True once the final chunk is sealed. */
  get done(): boolean {
    return this.finished;
  }

  /** A copy of the clip's content key (as secret as the audio): a toy keeps it to re-seal queued chunks [PLK-4.6]. */
  contentKey(): Uint8Array {
    return this.key.slice();
  }

  /** Zeroes the content key; no chunk can be sealed after. */
  destroy(): void {
    this.key.fill(0);
    this.finished = true;
  }

  /** Seals the next chunk [PLK-14.2]. */
  seal(input: ChunkInput): Uint8Array {
    if (this.finished) throw new PlushlinkError('PLK_E_FIELD', 'the clip already has its final chunk');
    assertBytes(input.ogg, 'ogg');
    checkIndex(this.index);
    if (this.index === CHUNK_LIMITS.maxChunks - 1 && !input.final)
      throw new PlushlinkError(
        'PLK_E_LIMIT',
        `chunk ${this.index} is the last a clip may have: it must be final`,
      );
    checkInt(input.durationMs, CHUNK_LIMITS.maxChunkDurationMs, 'durationMs');
    checkInt(input.sequence, LIMITS.maxSequence, 'sequence');
    checkInt(input.createdAt, LIMITS.maxTimestampMs, 'createdAt');
    if (this.index > 0 && input.sequence <= this.lastSequence)
      throw new PlushlinkError('PLK_E_FIELD', `sequence ${input.sequence} is not above ${this.lastSequence}`);
    if (this.index > 0 && input.createdAt < this.lastCreatedAt)
      throw new PlushlinkError('PLK_E_FIELD', 'createdAt goes backwards');
    if (this.payloadBytes + input.ogg.length > CHUNK_LIMITS.maxClipPayloadBytes)
      throw new PlushlinkError('PLK_E_LIMIT', `clip exceeds ${CHUNK_LIMITS.maxClipPayloadBytes} bytes`);
    if (this.durationMs + input.durationMs > CHUNK_LIMITS.maxClipDurationMs)
      throw new PlushlinkError('PLK_E_LIMIT', `clip exceeds ${CHUNK_LIMITS.maxClipDurationMs} ms`);
    const padded = padChunk(input.ogg, this.padTo);
    const bodyNonce = this.random(SECRETBOX_NONCE_BYTES);
    const body = secretboxSeal(padded, bodyNonce, this.key);
    const sealedKeys =
      this.index === 0
        ? this.recipients.map((r) => sealedBoxSeal(this.crypto, this.key, r.boxPublicKey, this.random))
        : null;
    const { bytes, chainHash } = writeChunk(this.crypto, {
      sender: this.sender,
      clipId: this.clipId,
      sequence: input.sequence,
      createdAt: input.createdAt,
      codec: this.codec,
      durationMs: input.durationMs,
      index: this.index,
      final: input.final,
      previous: this.previous,
      recipients: this.recipients,
      sealedKeys,
      bodyNonce,
      body,
    });
    this.previous = chainHash;
    this.index++;
    this.lastSequence = input.sequence;
    this.lastCreatedAt = input.createdAt;
    this.payloadBytes += input.ogg.length;
    this.durationMs += input.durationMs;
    if (input.final) this.finished = true;
    return bytes;
  }
}

export interface SealedChunkedClip {
  readonly clipId: Uint8Array;
  /** The content key (as secret as the audio); zero it when no re-seal can be needed. */
  readonly contentKey: Uint8Array;
  /** In sending order; the last one is final. */
  readonly chunks: readonly Uint8Array[];
}

/**
 * [PLK-14] A whole clip at once: chunk i gets sequence `sequence + i`, every chunk `createdAt`,
 * the last one the final flag.
 */
export function sealChunkedClip(
  opts: ChunkedClipOptions & {
    readonly chunks: readonly { readonly ogg: Uint8Array; readonly durationMs: number }[];
    readonly sequence: number;
    readonly createdAt: number;
  },
): SealedChunkedClip {
  if (!Array.isArray(opts.chunks) || opts.chunks.length === 0)
    throw new PlushlinkError('PLK_E_FIELD', 'a clip has at least one chunk');
  if (opts.chunks.length > CHUNK_LIMITS.maxChunks)
    throw new PlushlinkError('PLK_E_LIMIT', `${opts.chunks.length} chunks, max ${CHUNK_LIMITS.maxChunks}`);
  const sealer = new ChunkedClipSealer(opts);
  const chunks = opts.chunks.map((c, i) =>
    sealer.seal({
      ogg: c.ogg,
      durationMs: c.durationMs,
      sequence: opts.sequence + i,
      createdAt: opts.createdAt,
      final: i === opts.chunks.length - 1,
    }),
  );
  const contentKey = sealer.contentKey();
  sealer.destroy();
  return { clipId: sealer.clipId, contentKey, chunks };
}

/**
 * [PLK-4.6] [PLK-14.6] The same chunks (clip id, sequence numbers, times, nonces, bodies) sealed to
 * other recipients: chunk 0's key entries anew, every chunk's recipient list, chain and signature.
 * `chunks` must be the clip from chunk 0 on, consecutive; only the sender can do it.
 */
export function resealChunks(opts: {
  readonly sender: PrivateIdentity;
  readonly chunks: readonly Uint8Array[];
  readonly contentKey: Uint8Array;
  readonly recipients: readonly PublicIdentity[];
  readonly random?: RandomSource;
  readonly crypto?: CryptoSuite;
}): Uint8Array[] {
  const crypto = opts.crypto ?? defaultCrypto();
  const random = opts.random ?? systemRandom;
  assertBytes(opts.contentKey, 'contentKey', KEY_BYTES);
  checkRecipients(opts.recipients);
  const decoded = opts.chunks.map((b) => decodeChunk(b));
  const first = decoded[0];
  if (first?.header.index !== 0) throw new PlushlinkError('PLK_E_FIELD', 're-sealing starts at chunk 0');
  let previous: Uint8Array = ZERO_CHAIN;
  return decoded.map((d, i) => {
    const h = d.header;
    if (h.sender !== opts.sender.id)
      throw new PlushlinkError('PLK_E_WRONG_ENDPOINT', 'only the sender can re-seal its clip');
    if (h.index !== i || !bytesEqual(h.clipId, first.header.clipId))
      throw new PlushlinkError('PLK_E_FIELD', 're-sealed chunks must be one clip, consecutive');
    // The content key must be the one the bodies were sealed with.
    secretboxOpen(d.body, h.bodyNonce, opts.contentKey);
    const sealedKeys =
      i === 0
        ? opts.recipients.map((r) => sealedBoxSeal(crypto, opts.contentKey, r.boxPublicKey, random))
        : null;
    const out = writeChunk(crypto, {
      sender: opts.sender,
      clipId: h.clipId,
      sequence: h.sequence,
      createdAt: h.createdAt,
      codec: h.codec,
      durationMs: h.durationMs,
      index: h.index,
      final: h.final,
      previous,
      recipients: opts.recipients,
      sealedKeys,
      bodyNonce: h.bodyNonce,
      body: d.body,
    });
    previous = out.chainHash;
    return out.bytes;
  });
}

/**
 * One chunk laid out from explicit fields, with none of the sender rules of PLK-14.6 (sequence
 * order, final chunk, chain): what vectors and receiver tests use to build chunks a correct
 * sender never makes. `previous` is the chain hash it links to (zero bytes for chunk 0).
 */
export function sealChunkRaw(opts: {
  readonly sender: PrivateIdentity;
  readonly recipients: readonly PublicIdentity[];
  readonly clipId: Uint8Array;
  readonly contentKey: Uint8Array;
  readonly index: number;
  readonly final: boolean;
  readonly previous: Uint8Array;
  readonly sequence: number;
  readonly createdAt: number;
  readonly durationMs: number;
  readonly ogg: Uint8Array;
  readonly codec?: CodecParams;
  readonly padTo?: number;
  readonly random?: RandomSource;
  readonly crypto?: CryptoSuite;
}): { readonly bytes: Uint8Array; readonly chainHash: Uint8Array } {
  const crypto = opts.crypto ?? defaultCrypto();
  const random = opts.random ?? systemRandom;
  assertBytes(opts.clipId, 'clipId', CLIP_ID_BYTES);
  assertBytes(opts.contentKey, 'contentKey', KEY_BYTES);
  assertBytes(opts.previous, 'previous', CHAIN_HASH_BYTES);
  checkIndex(opts.index);
  checkRecipients(opts.recipients);
  const codec = opts.codec ?? DEFAULT_CODEC;
  validateCodec(codec);
  const bodyNonce = random(SECRETBOX_NONCE_BYTES);
  const body = secretboxSeal(padChunk(opts.ogg, opts.padTo ?? 0), bodyNonce, opts.contentKey);
  const sealedKeys =
    opts.index === 0
      ? opts.recipients.map((r) => sealedBoxSeal(crypto, opts.contentKey, r.boxPublicKey, random))
      : null;
  return writeChunk(crypto, {
    sender: opts.sender,
    clipId: opts.clipId,
    sequence: opts.sequence,
    createdAt: opts.createdAt,
    codec,
    durationMs: opts.durationMs,
    index: opts.index,
    final: opts.final,
    previous: opts.previous,
    recipients: opts.recipients,
    sealedKeys,
    bodyNonce,
    body,
  });
}

// ---- reading ---------------------------------------------------------------------------------

/** [PLK-14.2] Structural decode within the limits of PLK-14.5, in the order of PLK-10.1; no signature check, no decryption. */
export function decodeChunk(bytes: Uint8Array): DecodedChunk {
  if (!(bytes instanceof Uint8Array)) throw new PlushlinkError('PLK_E_TYPE', 'chunk must be bytes');
  if (bytes.length > CHUNK_LIMITS.maxChunkBytes)
    throw new PlushlinkError(
      'PLK_E_LIMIT',
      `chunk is ${bytes.length} bytes, max ${CHUNK_LIMITS.maxChunkBytes}`,
    );
  const r = new ByteReader(bytes);
  const type = r.u8('type');
  if (type !== MSG.CLIP) throw new PlushlinkError('PLK_E_MSG_TYPE', `chunk: got 0x${type.toString(16)}`);
  const version = r.u8('version');
  if (version !== CHUNKED_VERSION) throw new PlushlinkError('PLK_E_VERSION', `chunk version ${version}`);
  const { sender, clipId, sequence, createdAt, codec } = readClipHeader(r);
  const durationMs = r.u32('duration');
  if (durationMs > CHUNK_LIMITS.maxChunkDurationMs)
    throw new PlushlinkError('PLK_E_LIMIT', `chunk duration ${durationMs} ms`);
  const index = r.u16('chunk index');
  checkIndex(index);
  const flags = r.u8('flags');
  if ((flags & ~CHUNK_FLAG_FINAL) !== 0)
    throw new PlushlinkError('PLK_E_FIELD', `reserved chunk flags 0x${flags.toString(16)}`);
  const final = (flags & CHUNK_FLAG_FINAL) !== 0;
  if (index === CHUNK_LIMITS.maxChunks - 1 && !final)
    throw new PlushlinkError('PLK_E_LIMIT', `chunk ${index} is the last a clip may have and is not final`);
  const previous = r.raw(CHAIN_HASH_BYTES, 'previous chain hash');
  const zero = bytesEqual(previous, ZERO_CHAIN);
  if (index === 0 && !zero) throw new PlushlinkError('PLK_E_FIELD', 'chunk 0 links to a previous chunk');
  if (index > 0 && zero) throw new PlushlinkError('PLK_E_FIELD', `chunk ${index} links to nothing`);
  const n = r.u8('recipient count');
  if (n < 1 || n > LIMITS.maxRecipients) throw new PlushlinkError('PLK_E_LIMIT', `recipient count ${n}`);
  const recipients: ChunkRecipient[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < n; i++) {
    const id = idFromBytes(r.raw(ID_BYTES, 'recipient id'));
    if (seen.has(id)) throw new PlushlinkError('PLK_E_FIELD', 'duplicate recipient');
    seen.add(id);
    recipients.push(index === 0 ? { id, sealedKey: r.raw(SEALED_KEY_BYTES, 'sealed key') } : { id });
  }
  const bodyNonce = r.raw(SECRETBOX_NONCE_BYTES, 'body nonce');
  const bodyLength = r.u32('body length');
  if (bodyLength - SECRETBOX_MAC_BYTES > CHUNK_LIMITS.maxChunkPaddedBytes)
    throw new PlushlinkError('PLK_E_LIMIT', `body length ${bodyLength}`);
  if (!isChunkBucket(bodyLength - SECRETBOX_MAC_BYTES))
    throw new PlushlinkError('PLK_E_PADDING', `body length ${bodyLength} is not a chunk bucket plus MAC`);
  const body = r.raw(bodyLength, 'body');
  const signedEnd = r.offset;
  const signature = r.raw(SIGNATURE_BYTES, 'signature');
  r.end('chunk');
  return {
    header: {
      version,
      sender,
      clipId,
      sequence,
      createdAt,
      codec,
      durationMs,
      index,
      final,
      previous,
      recipients,
      bodyNonce,
    },
    body,
    signed: bytes.subarray(0, signedEnd),
    signature,
    size: bytes.length,
    deliveryId: chunkDeliveryId(clipId, index),
  };
}

/** [PLK-14.2] Verifies the sender's signature; throws PLK_E_BAD_SIGNATURE. */
export function verifyChunk(
  chunk: Pick<DecodedChunk, 'signed' | 'signature'>,
  senderSignPublicKey: Uint8Array,
  crypto: CryptoSuite = defaultCrypto(),
): void {
  verifyBody(crypto, senderSignPublicKey, CHUNK_CONTEXT.CHUNK, chunk.signed, chunk.signature, 'clip chunk');
}

/** [PLK-14.3] The clip's content key from chunk 0, for `recipient`; PLK_E_NOT_RECIPIENT or PLK_E_DECRYPT. */
export function openChunkKey(
  chunk0: DecodedChunk,
  recipient: PrivateIdentity,
  crypto: CryptoSuite = defaultCrypto(),
): Uint8Array {
  if (chunk0.header.index !== 0) throw new PlushlinkError('PLK_E_FIELD', 'the content key is in chunk 0');
  const entry = chunk0.header.recipients.find((r) => r.id === recipient.id);
  if (!entry) throw new PlushlinkError('PLK_E_NOT_RECIPIENT', recipient.id);
  if (!entry.sealedKey) throw new PlushlinkError('PLK_E_DECRYPT', 'no sealed key');
  const key = sealedBoxOpen(crypto, entry.sealedKey, recipient.boxPublicKey, recipient.boxSecret);
  if (key.length !== KEY_BYTES) throw new PlushlinkError('PLK_E_DECRYPT', 'content key has the wrong size');
  return key;
}

/** [PLK-14.3] Decrypts and unpads a chunk's payload with the clip's content key. */
export function openChunkBody(chunk: DecodedChunk, contentKey: Uint8Array): Uint8Array {
  return unpadChunk(secretboxOpen(chunk.body, chunk.header.bodyNonce, contentKey));
}

/** Header fields as JSON-safe values, never secrets (for `plushlink clip inspect`, logs). */
export function describeChunk(chunk: DecodedChunk): Record<string, unknown> {
  const h = chunk.header;
  return {
    type: 'clip-chunk',
    version: h.version,
    experimental: true,
    sender: h.sender,
    clipId: toHex(h.clipId),
    index: h.index,
    final: h.final,
    deliveryId: toHex(chunk.deliveryId),
    sequence: h.sequence,
    createdAt: new Date(h.createdAt).toISOString(),
    codec: h.codec,
    durationMs: h.durationMs,
    previous: toHex(h.previous),
    recipients: h.recipients.map((r) => r.id),
    paddedBodyBytes: chunk.body.length - SECRETBOX_MAC_BYTES,
    chunkBytes: chunk.size,
  };
}

// ---- byte accounting (for the protocol lab) ---------------------------------------------------------

/**
 * How one chunk's bytes split up; the parts add up to its size. payload: the Ogg Opus bytes it
 * carries; padding: filler up to the bucket; sealedKeys: the content key sealed to each recipient
 * (chunk 0 only); signature; header: everything else (ids, sequence, codec, index, flags, chain
 * hash, nonce, lengths, MAC).
 */
export interface ChunkParts {
  readonly size: number;
  readonly payload: number;
  readonly padding: number;
  readonly sealedKeys: number;
  readonly signature: number;
  readonly header: number;
}

function parts(index: number, recipients: number, payload: number, padded: number): ChunkParts {
  const size = chunkSize(index, recipients, padded);
  const sealedKeys = index === 0 ? recipients * SEALED_KEY_BYTES : 0;
  const padding = padded - 4 - payload;
  return {
    size,
    payload,
    padding,
    sealedKeys,
    signature: SIGNATURE_BYTES,
    header: size - payload - padding - sealedKeys - SIGNATURE_BYTES,
  };
}

/** The parts of a real chunk, given the length of the payload sealed in it (known to its sender or a recipient). */
export function chunkParts(chunk: Uint8Array, payloadBytes: number): ChunkParts {
  const d = decodeChunk(chunk);
  const padded = d.body.length - SECRETBOX_MAC_BYTES;
  if (!Number.isSafeInteger(payloadBytes) || payloadBytes < 0 || payloadBytes + 4 > padded)
    throw new RangeError(`payloadBytes ${payloadBytes} does not fit the chunk's padded ${padded} bytes`);
  return parts(d.header.index, d.header.recipients.length, payloadBytes, padded);
}

/**
 * [PLK-14.11] The byte cost of a clip cut into chunks of the given payload sizes, without sealing
 * anything: per chunk and in total (the same arithmetic the sealer's layout follows; a test keeps
 * them equal).
 */
export function chunkedOverhead(opts: {
  readonly recipients: number;
  readonly payloadBytes: readonly number[];
  readonly padTo?: number;
}): { readonly chunks: readonly ChunkParts[]; readonly total: ChunkParts } {
  if (!Number.isInteger(opts.recipients) || opts.recipients < 1 || opts.recipients > LIMITS.maxRecipients)
    throw new RangeError(`recipients must be 1..${LIMITS.maxRecipients}`);
  if (opts.payloadBytes.length < 1 || opts.payloadBytes.length > CHUNK_LIMITS.maxChunks)
    throw new RangeError(`a clip has 1..${CHUNK_LIMITS.maxChunks} chunks`);
  const chunks = opts.payloadBytes.map((p, i) =>
    parts(i, opts.recipients, p, chunkPaddedSize(p, opts.padTo ?? 0)),
  );
  const sum = (k: keyof ChunkParts): number => chunks.reduce((s, c) => s + c[k], 0);
  return {
    chunks,
    total: {
      size: sum('size'),
      payload: sum('payload'),
      padding: sum('padding'),
      sealedKeys: sum('sealedKeys'),
      signature: sum('signature'),
      header: sum('header'),
    },
  };
}

// ---- the version module --------------------------------------------------------------------------

/** Version 2 as the registry sees it [PLK-14.1]. */
export const CHUNKED_CLIP_VERSION: ClipVersion = {
  version: CHUNKED_VERSION,
  name: 'chunked clip',
  status: 'experimental',
  clause: 'PLK-14',
  maxObjectBytes: CHUNK_LIMITS.maxChunkBytes,
  decode(bytes): ClipObject {
    const d = decodeChunk(bytes);
    return { ...d, storeId: d.deliveryId };
  },
  verify(object, key, crypto) {
    verifyChunk(object, key, crypto);
  },
  describe(object) {
    const s = object.signed;
    return describeChunk(decodeChunk(new Uint8Array(s.buffer, s.byteOffset, object.size)));
  },
};

// ---- receiving ---------------------------------------------------------------------------------

/** A verified, opened chunk a recipient may play now (its predecessors all played) [PLK-14.8]. */
export interface PlayableChunk {
  readonly sender: EndpointId;
  /** Hex of the clip id. */
  readonly clipId: string;
  readonly index: number;
  readonly final: boolean;
  readonly sequence: number;
  readonly createdAt: number;
  /** Chunk 0's creation time: the clip's start. */
  readonly clipCreatedAt: number;
  readonly durationMs: number;
  /** Audio of the clip playable once this chunk is, ms from its start. */
  readonly playableMs: number;
  /** This chunk's Ogg Opus bytes. */
  readonly ogg: Uint8Array;
  readonly deliveryId: Uint8Array;
  readonly bytes: number;
}

export interface CompletedClip {
  readonly sender: EndpointId;
  readonly clipId: string;
  readonly clipIdBytes: Uint8Array;
  readonly chunks: number;
  /** The whole Ogg Opus stream: every chunk's payload, in order. */
  readonly ogg: Uint8Array;
  readonly durationMs: number;
  readonly firstSequence: number;
  readonly createdAt: number;
  /** Bytes of all its chunks on the wire. */
  readonly bytes: number;
  readonly codec: CodecParams;
}

/** A clip given up: truncated, or a chunk that breaks its chain or order [PLK-14.8]. */
export interface FailedClip {
  readonly sender: EndpointId;
  readonly clipId: string;
  readonly error: PlushlinkError;
  /** Chunks of it that were played before it failed. */
  readonly playedChunks: number;
}

/** A chunk dropped without being played (it deserves an unopenable receipt [PLK-6.3]). */
export interface DroppedChunk {
  readonly sender: EndpointId;
  readonly clipId: string;
  readonly index: number;
  readonly deliveryId: Uint8Array;
  readonly error: PlushlinkError;
}

/**
 * What a received chunk did. applied: verified, linked and opened (`playable` lists it, then any
 * held chunks it released); held: ahead of its clip's next index, kept until the gap fills (the
 * reordering notice is `error`, PLK_E_CHUNK_ORDER; none for a second copy of a held chunk);
 * duplicate: exactly a chunk already played; refused: `error` says why.
 */
export type ChunkOutcome = 'applied' | 'held' | 'duplicate' | 'refused';

export interface ReceiveResult {
  readonly outcome: ChunkOutcome;
  /** The decoded chunk, when it decoded. */
  readonly chunk?: DecodedChunk;
  readonly error?: PlushlinkError;
  readonly playable: readonly PlayableChunk[];
  readonly completed: readonly CompletedClip[];
  readonly failed: readonly FailedClip[];
  readonly dropped: readonly DroppedChunk[];
}

export interface ChunkReceiverOptions {
  readonly recipient: PrivateIdentity;
  /** The public identity of a sender we accept clips from (the family), by id. */
  readonly senders: (id: EndpointId) => PublicIdentity | undefined;
  readonly crypto?: CryptoSuite;
  /** Chunks held ahead of a gap, in all; default 64. */
  readonly maxHeldChunks?: number;
  /** Bytes of held chunks, in all; default 4 MiB. */
  readonly maxHeldBytes?: number;
  /** Clips in progress at once; default 16 (the least recently active is truncated beyond). */
  readonly maxOpenClips?: number;
  /** Finished clips remembered to refuse replays; default 4096 (beyond, a per-sender sequence floor). */
  readonly rememberClips?: number;
  /** Received chunks remembered to tell duplicates from conflicts; default 65 536. */
  readonly rememberChunks?: number;
}

interface Assembly {
  readonly sender: EndpointId;
  readonly key: string;
  readonly clipId: Uint8Array;
  readonly contentKey: Uint8Array;
  readonly recipients: string;
  readonly codec: CodecParams;
  readonly firstSequence: number;
  readonly createdAt: number;
  next: number;
  chain: Uint8Array;
  lastSequence: number;
  lastCreatedAt: number;
  readonly payload: Uint8Array[];
  payloadBytes: number;
  durationMs: number;
  bytes: number;
  lastAt: number;
}

interface Held {
  readonly chunk: DecodedChunk;
  readonly at: number;
  readonly order: number;
}

interface Closed {
  readonly sender: EndpointId;
  readonly state: 'completed' | 'failed';
  readonly error?: PlushlinkError;
  readonly lastSequence: number;
}

interface Collect {
  playable: PlayableChunk[];
  completed: CompletedClip[];
  failed: FailedClip[];
  dropped: DroppedChunk[];
}

const recipientKey = (h: ChunkHeader): string => h.recipients.map((r) => r.id).join(',');
const clipKeyOf = (h: ChunkHeader): string => `${h.sender}:${toHex(h.clipId)}`;

function positive(name: string, v: number | undefined, dflt: number): number {
  const x = v ?? dflt;
  if (!Number.isSafeInteger(x) || x < 1) throw new RangeError(`${name} must be a positive integer`);
  return x;
}

/**
 * [PLK-14.8] A recipient's view of version 2: verifies every chunk on arrival, plays a clip from
 * chunk 0 on in index order, holds chunks that arrive ahead of a gap (bounded), and reports
 * truncation, reordering, replays and broken chains as typed PlushlinkErrors. All state is this
 * object's; time is whatever the caller passes (`now`), so a seeded run replays exactly.
 */
export class ChunkReceiver {
  private readonly me: PrivateIdentity;
  private readonly senders: (id: EndpointId) => PublicIdentity | undefined;
  private readonly crypto: CryptoSuite;
  private readonly maxHeld: number;
  private readonly maxHeldBytes: number;
  private readonly maxOpen: number;
  private readonly rememberClips: number;
  private readonly rememberChunks: number;
  private readonly open = new Map<string, Assembly>();
  private readonly held = new Map<string, Map<number, Held>>();
  private heldCount = 0;
  private heldBytes = 0;
  private arrivals = 0;
  private readonly closed = new Map<string, Closed>();
  /** "sender:deliveryId" → hex chain hash of every chunk applied (bounded). */
  private readonly seen = new Map<string, string>();
  /** Per sender: sequences at or below this belong to clips forgotten from `closed` [PLK-14.8]. */
  private readonly floors = new Map<EndpointId, number>();

  constructor(opts: ChunkReceiverOptions) {
    this.me = opts.recipient;
    this.senders = opts.senders;
    this.crypto = opts.crypto ?? defaultCrypto();
    this.maxHeld = positive('maxHeldChunks', opts.maxHeldChunks, 64);
    this.maxHeldBytes = positive('maxHeldBytes', opts.maxHeldBytes, 4 * 1024 * 1024);
    this.maxOpen = positive('maxOpenClips', opts.maxOpenClips, 16);
    this.rememberClips = positive('rememberClips', opts.rememberClips, 4096);
    this.rememberChunks = positive('rememberChunks', opts.rememberChunks, 65_536);
  }

  /** Clips in progress (chunk 0 played, final not yet). */
  get openClips(): number {
    return this.open.size;
  }

  /** Chunks held ahead of a gap. */
  get heldChunks(): number {
    return this.heldCount;
  }

  /** Handles one received chunk; never throws on any input. `now` is the caller's clock (ms). */
  receive(bytes: Uint8Array, now: number): ReceiveResult {
    const out: Collect = { playable: [], completed: [], failed: [], dropped: [] };
    let chunk: DecodedChunk;
    try {
      chunk = decodeChunk(bytes);
    } catch (err) {
      return { outcome: 'refused', error: asPlushlinkError(err), ...out };
    }
    const refuse = (error: PlushlinkError): ReceiveResult => ({ outcome: 'refused', chunk, error, ...out });
    try {
      const h = chunk.header;
      const sender = this.senders(h.sender);
      if (!sender) return refuse(new PlushlinkError('PLK_E_WRONG_ENDPOINT', `chunk from ${h.sender}`));
      verifyChunk(chunk, sender.signPublicKey, this.crypto);
      if (!h.recipients.some((r) => r.id === this.me.id))
        return refuse(new PlushlinkError('PLK_E_NOT_RECIPIENT', this.me.id));
      const clipKey = clipKeyOf(h);
      const chain = toHex(chunkChainHash(chunk));
      const what = `chunk ${h.index} of clip ${toHex(h.clipId).slice(0, 12)}`;
      // [PLK-14.8] exactly a chunk received before: a duplicate (at-least-once delivery, PLK-8.2).
      const seen = this.seen.get(`${h.sender}:${toHex(chunk.deliveryId)}`);
      const waiting = this.held.get(clipKey)?.get(h.index);
      const known = seen ?? (waiting ? toHex(chunkChainHash(waiting.chunk)) : undefined);
      if (known !== undefined) {
        // A copy of a chunk still held stays held: it is receipted once it is played.
        if (known === chain) return { outcome: seen !== undefined ? 'duplicate' : 'held', chunk, ...out };
        return refuse(
          new PlushlinkError('PLK_E_CHUNK_CHAIN', `${what} differs from the one received before`),
        );
      }
      const closed = this.closed.get(clipKey);
      if (closed?.state === 'completed')
        return refuse(new PlushlinkError('PLK_E_CHUNK_REPLAY', `${what}: the clip was already received`));
      if (closed?.state === 'failed' && closed.error)
        return refuse(
          new PlushlinkError(closed.error.code, `${what}: the clip failed before (${closed.error.message})`),
        );
      const floor = this.floors.get(h.sender) ?? 0;
      if (h.sequence <= floor)
        return refuse(
          new PlushlinkError('PLK_E_CHUNK_REPLAY', `${what}: sequence ${h.sequence} is not above ${floor}`),
        );
      const assembly = this.open.get(clipKey);
      if (!assembly && h.index === 0) {
        const error = this.start(chunk, chain, now, out);
        if (error) return refuse(error);
      } else if (assembly && h.index === assembly.next) {
        const error = this.apply(assembly, chunk, chain, now, out);
        if (error) return refuse(error);
      } else if (!assembly || h.index > assembly.next) {
        const expected = assembly ? assembly.next : 0;
        this.hold(chunk, now, out);
        return {
          outcome: 'held',
          chunk,
          error: new PlushlinkError('PLK_E_CHUNK_ORDER', `${what} arrived before chunk ${expected}: held`),
          ...out,
        };
      } else {
        return refuse(
          new PlushlinkError('PLK_E_CHUNK_CHAIN', `${what} conflicts with the chunk already played`),
        );
      }
      return { outcome: 'applied', chunk, ...out };
    } catch (err) {
      return refuse(asPlushlinkError(err));
    }
  }

  /**
   * [PLK-14.8] Gives up clips that received nothing for `idleMs` (truncated) and held chunks that
   * waited that long for their gap (order); the caller runs this on its own clock.
   */
  expireIdle(now: number, idleMs: number): { failed: FailedClip[]; dropped: DroppedChunk[] } {
    const out: Collect = { playable: [], completed: [], failed: [], dropped: [] };
    for (const a of [...this.open.values()]) {
      if (now - a.lastAt >= idleMs)
        this.fail(
          a,
          new PlushlinkError('PLK_E_CHUNK_TRUNCATED', `${this.name(a)}: no chunk for ${idleMs} ms`),
          out,
        );
    }
    for (const [clipKey, m] of [...this.held]) {
      for (const [index, held] of [...m]) {
        if (now - held.at >= idleMs && !this.open.has(clipKey))
          this.dropHeld(
            clipKey,
            index,
            new PlushlinkError('PLK_E_CHUNK_ORDER', `chunk ${index}: its clip never started`),
            out,
          );
      }
    }
    return { failed: out.failed, dropped: out.dropped };
  }

  /** Ends every clip in progress (truncated) and drops every held chunk: the receiver stops. */
  close(): { failed: FailedClip[]; dropped: DroppedChunk[] } {
    return this.expireIdle(Number.POSITIVE_INFINITY, 0);
  }

  private name(a: Pick<Assembly, 'clipId'>): string {
    return `clip ${toHex(a.clipId).slice(0, 12)}`;
  }

  /** Chunk 0: unseal the key, open, start the assembly [PLK-14.3]. */
  private start(chunk: DecodedChunk, chain: string, now: number, out: Collect): PlushlinkError | undefined {
    const h = chunk.header;
    const clipKey = clipKeyOf(h);
    let contentKey: Uint8Array;
    let payload: Uint8Array;
    try {
      contentKey = openChunkKey(chunk, this.me, this.crypto);
      payload = openChunkBody(chunk, contentKey);
    } catch (err) {
      const error = asPlushlinkError(err);
      this.close1(clipKey, { sender: h.sender, state: 'failed', error, lastSequence: h.sequence });
      this.dropAllHeld(clipKey, error, out);
      out.failed.push({ sender: h.sender, clipId: toHex(h.clipId), error, playedChunks: 0 });
      return error;
    }
    if (this.open.size >= this.maxOpen) {
      let oldest: Assembly | undefined;
      for (const a of this.open.values()) if (!oldest || a.lastAt < oldest.lastAt) oldest = a;
      if (oldest)
        this.fail(
          oldest,
          new PlushlinkError('PLK_E_CHUNK_TRUNCATED', `${this.name(oldest)}: too many clips in progress`),
          out,
        );
    }
    const a: Assembly = {
      sender: h.sender,
      key: clipKey,
      clipId: h.clipId.slice(),
      contentKey,
      recipients: recipientKey(h),
      codec: h.codec,
      firstSequence: h.sequence,
      createdAt: h.createdAt,
      next: 0,
      chain: ZERO_CHAIN,
      lastSequence: h.sequence,
      lastCreatedAt: h.createdAt,
      payload: [],
      payloadBytes: 0,
      durationMs: 0,
      bytes: 0,
      lastAt: now,
    };
    this.open.set(clipKey, a);
    this.accept(a, chunk, payload, chain, now, out);
    return undefined;
  }

  /** Chunk `a.next` of an assembly: link, order and limits, then open [PLK-14.4] [PLK-14.8]. */
  private apply(
    a: Assembly,
    chunk: DecodedChunk,
    chain: string,
    now: number,
    out: Collect,
  ): PlushlinkError | undefined {
    const h = chunk.header;
    const what = `chunk ${h.index} of ${this.name(a)}`;
    let error: PlushlinkError | undefined;
    let payload: Uint8Array | undefined;
    if (!bytesEqual(h.previous, a.chain))
      error = new PlushlinkError('PLK_E_CHUNK_CHAIN', `${what} does not link to chunk ${h.index - 1}`);
    else if (recipientKey(h) !== a.recipients || !sameCodec(h.codec, a.codec))
      error = new PlushlinkError('PLK_E_CHUNK_CHAIN', `${what} changes the clip's recipients or codec`);
    else if (h.sequence <= a.lastSequence)
      error = new PlushlinkError(
        'PLK_E_CHUNK_ORDER',
        `${what}: sequence ${h.sequence} is not above ${a.lastSequence}`,
      );
    else if (h.createdAt < a.lastCreatedAt)
      error = new PlushlinkError('PLK_E_CHUNK_ORDER', `${what} was created before chunk ${h.index - 1}`);
    else if (a.durationMs + h.durationMs > CHUNK_LIMITS.maxClipDurationMs)
      error = new PlushlinkError(
        'PLK_E_LIMIT',
        `${this.name(a)} exceeds ${CHUNK_LIMITS.maxClipDurationMs} ms`,
      );
    else {
      try {
        payload = openChunkBody(chunk, a.contentKey);
        if (a.payloadBytes + payload.length > CHUNK_LIMITS.maxClipPayloadBytes)
          error = new PlushlinkError(
            'PLK_E_LIMIT',
            `${this.name(a)} exceeds ${CHUNK_LIMITS.maxClipPayloadBytes} bytes`,
          );
      } catch (err) {
        error = asPlushlinkError(err);
      }
    }
    if (error || !payload) {
      const e = error ?? new PlushlinkError('PLK_E_DECRYPT', what);
      this.fail(a, e, out);
      return e;
    }
    this.accept(a, chunk, payload, chain, now, out);
    return undefined;
  }

  /** Records an applied chunk, completes the clip on its final chunk, then releases held successors. */
  private accept(
    a: Assembly,
    chunk: DecodedChunk,
    payload: Uint8Array,
    chain: string,
    now: number,
    out: Collect,
  ): void {
    const h = chunk.header;
    a.next = h.index + 1;
    a.chain = chunkChainHash(chunk);
    a.lastSequence = h.sequence;
    a.lastCreatedAt = h.createdAt;
    a.payload.push(payload.slice());
    a.payloadBytes += payload.length;
    a.durationMs += h.durationMs;
    a.bytes += chunk.size;
    a.lastAt = now;
    this.remember(`${h.sender}:${toHex(chunk.deliveryId)}`, chain);
    out.playable.push({
      sender: h.sender,
      clipId: toHex(h.clipId),
      index: h.index,
      final: h.final,
      sequence: h.sequence,
      createdAt: h.createdAt,
      clipCreatedAt: a.createdAt,
      durationMs: h.durationMs,
      playableMs: a.durationMs,
      ogg: payload,
      deliveryId: chunk.deliveryId,
      bytes: chunk.size,
    });
    if (h.final) {
      this.complete(a, out);
      return;
    }
    const next = this.held.get(a.key)?.get(a.next);
    if (next) {
      this.takeHeld(a.key, a.next);
      const nh = next.chunk.header;
      const e = this.apply(a, next.chunk, toHex(chunkChainHash(next.chunk)), now, out);
      if (e)
        out.dropped.push({
          sender: nh.sender,
          clipId: toHex(nh.clipId),
          index: nh.index,
          deliveryId: next.chunk.deliveryId,
          error: e,
        });
    }
  }

  /** [PLK-14.8] The final chunk: the clip is whole. */
  private complete(a: Assembly, out: Collect): void {
    this.open.delete(a.key);
    a.contentKey.fill(0);
    this.close1(a.key, { sender: a.sender, state: 'completed', lastSequence: a.lastSequence });
    out.completed.push({
      sender: a.sender,
      clipId: toHex(a.clipId),
      clipIdBytes: a.clipId,
      chunks: a.next,
      ogg: concatBytes(...a.payload),
      durationMs: a.durationMs,
      firstSequence: a.firstSequence,
      createdAt: a.createdAt,
      bytes: a.bytes,
      codec: a.codec,
    });
    this.dropAllHeld(a.key, new PlushlinkError('PLK_E_CHUNK_REPLAY', 'held chunk of a completed clip'), out);
  }

  private fail(a: Assembly, error: PlushlinkError, out: Collect): void {
    this.open.delete(a.key);
    a.contentKey.fill(0);
    this.close1(a.key, { sender: a.sender, state: 'failed', error, lastSequence: a.lastSequence });
    out.failed.push({ sender: a.sender, clipId: toHex(a.clipId), error, playedChunks: a.next });
    this.dropAllHeld(a.key, error, out);
  }

  private close1(clipKey: string, c: Closed): void {
    this.closed.delete(clipKey);
    this.closed.set(clipKey, c);
    while (this.closed.size > this.rememberClips) {
      const first = this.closed.entries().next();
      if (first.done) break;
      const [k, old] = first.value;
      this.closed.delete(k);
      this.floors.set(old.sender, Math.max(this.floors.get(old.sender) ?? 0, old.lastSequence));
    }
  }

  private remember(key: string, chain: string): void {
    this.seen.set(key, chain);
    while (this.seen.size > this.rememberChunks) {
      const first = this.seen.keys().next();
      if (first.done) break;
      this.seen.delete(first.value);
    }
  }

  /** Keeps a chunk that arrived ahead of its clip's next index; beyond the bounds the oldest held chunk is given up. */
  private hold(chunk: DecodedChunk, now: number, out: Collect): void {
    const clipKey = clipKeyOf(chunk.header);
    while (this.heldCount + 1 > this.maxHeld || this.heldBytes + chunk.size > this.maxHeldBytes) {
      let oldest: { key: string; index: number; order: number } | undefined;
      for (const [key, m] of this.held)
        for (const [index, h] of m)
          if (!oldest || h.order < oldest.order) oldest = { key, index, order: h.order };
      if (!oldest) break;
      const error = new PlushlinkError(
        'PLK_E_CHUNK_ORDER',
        `chunk ${oldest.index}: gave up waiting for the chunks before it`,
      );
      const a = this.open.get(oldest.key);
      if (a) this.fail(a, error, out);
      else this.dropHeld(oldest.key, oldest.index, error, out);
    }
    let m = this.held.get(clipKey);
    if (!m) {
      m = new Map();
      this.held.set(clipKey, m);
    }
    m.set(chunk.header.index, { chunk, at: now, order: this.arrivals++ });
    this.heldCount++;
    this.heldBytes += chunk.size;
  }

  private takeHeld(clipKey: string, index: number): Held | undefined {
    const m = this.held.get(clipKey);
    const h = m?.get(index);
    if (!m || !h) return undefined;
    m.delete(index);
    if (m.size === 0) this.held.delete(clipKey);
    this.heldCount--;
    this.heldBytes -= h.chunk.size;
    return h;
  }

  private dropHeld(clipKey: string, index: number, error: PlushlinkError, out: Collect): void {
    const h = this.takeHeld(clipKey, index);
    if (!h) return;
    const hh = h.chunk.header;
    out.dropped.push({
      sender: hh.sender,
      clipId: toHex(hh.clipId),
      index,
      deliveryId: h.chunk.deliveryId,
      error,
    });
  }

  private dropAllHeld(clipKey: string, error: PlushlinkError, out: Collect): void {
    for (const index of [...(this.held.get(clipKey)?.keys() ?? [])])
      this.dropHeld(clipKey, index, error, out);
  }
}

function asPlushlinkError(err: unknown): PlushlinkError {
  if (err instanceof PlushlinkError) return err;
  return new PlushlinkError('PLK_E_FIELD', err instanceof Error ? err.message : String(err), { cause: err });
}

export interface OpenedChunkedClip extends CompletedClip {
  /** Audio playable after each chunk, ms (the first entry is what plays after chunk 0). */
  readonly playableMs: readonly number[];
}

/**
 * [PLK-14.8] Verifies and opens one whole clip given as its chunks (in order or not): the
 * reference of what a recipient plays. Throws the first PlushlinkError (PLK_E_CHUNK_TRUNCATED
 * when the final chunk is missing).
 */
export function openChunkedClip(
  chunks: readonly Uint8Array[],
  opts: {
    readonly recipient: PrivateIdentity;
    readonly sender: PublicIdentity;
    readonly crypto?: CryptoSuite;
  },
): OpenedChunkedClip {
  const rx = new ChunkReceiver({
    recipient: opts.recipient,
    senders: (id) => (id === opts.sender.id ? opts.sender : undefined),
    ...(opts.crypto ? { crypto: opts.crypto } : {}),
    maxHeldChunks: CHUNK_LIMITS.maxChunks,
    maxHeldBytes: 64 * 1024 * 1024,
  });
  const playable: number[] = [];
  let done: CompletedClip | undefined;
  for (const bytes of chunks) {
    const r = rx.receive(bytes, 0);
    if (r.outcome === 'refused') throw r.error ?? new PlushlinkError('PLK_E_FIELD', 'chunk refused');
    const failure = r.failed[0] ?? r.dropped[0];
    if (failure) throw failure.error;
    for (const p of r.playable) playable.push(p.playableMs);
    if (r.completed[0]) {
      if (done) throw new PlushlinkError('PLK_E_CHUNK_REPLAY', 'more than one clip');
      done = r.completed[0];
    }
  }
  if (!done) {
    const end = rx.close();
    throw (
      end.failed[0]?.error ??
      end.dropped[0]?.error ??
      new PlushlinkError('PLK_E_CHUNK_TRUNCATED', 'no chunk 0')
    );
  }
  return { ...done, playableMs: playable };
}
