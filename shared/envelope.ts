// Sealed clip envelope: signed, end-to-end encrypted voice clip addressed to a family's endpoints [PLK-5].
import { assertBytes, ByteReader, ByteWriter, toHex } from './bytes.ts';
import {
  type CryptoSuite,
  defaultCrypto,
  sealedBoxOpen,
  sealedBoxSeal,
  secretboxOpen,
  secretboxSeal,
} from './crypto.ts';
import { PlushlinkError } from './errors.ts';
import { idFromBytes, idToBytes, type PrivateIdentity, type PublicIdentity } from './identity.ts';
import {
  CLIP_ID_BYTES,
  CONTEXT,
  ID_BYTES,
  KEY_BYTES,
  LIMITS,
  MSG,
  PROTOCOL_VERSION,
  SEALED_KEY_BYTES,
  SECRETBOX_MAC_BYTES,
  SECRETBOX_NONCE_BYTES,
  SIGNATURE_BYTES,
} from './limits.ts';
import { isBucketSize, pad, unpad } from './padding.ts';
import { systemRandom } from './random.ts';
import { signBody, verifyBody } from './signed.ts';
import type { EndpointId, RandomSource } from './types.ts';

/** [PLK-5.2] Codec identifiers. */
export const CODEC = { OPUS_OGG: 1 } as const;
const SAMPLE_RATES = [8000, 12000, 16000, 24000, 48000];
const FRAME_TENTHS = [25, 50, 100, 200, 400, 600];

export interface CodecParams {
  readonly codec: 'opus-ogg';
  readonly channels: 1 | 2;
  readonly sampleRate: number;
  /** Target bitrate in bit/s. */
  readonly bitrate: number;
  readonly frameMs: number;
}

export const DEFAULT_CODEC: CodecParams = {
  codec: 'opus-ogg',
  channels: 1,
  sampleRate: 16000,
  bitrate: 24000,
  frameMs: 20,
};

export interface RecipientEntry {
  readonly id: EndpointId;
  /** crypto_box_seal(content key) to the recipient's X25519 key (80 bytes). */
  readonly sealedKey: Uint8Array;
}

export interface ClipHeader {
  readonly version: number;
  readonly sender: EndpointId;
  readonly clipId: Uint8Array;
  readonly sequence: number;
  readonly createdAt: number;
  readonly codec: CodecParams;
  readonly durationMs: number;
  readonly recipients: readonly RecipientEntry[];
  readonly bodyNonce: Uint8Array;
}

export interface DecodedEnvelope {
  readonly header: ClipHeader;
  /** crypto_secretbox output: MAC (16) || ciphertext of the padded Ogg Opus bytes. */
  readonly body: Uint8Array;
  /** Every byte before the signature: what the signature covers (after the context prefix). */
  readonly signed: Uint8Array;
  readonly signature: Uint8Array;
  readonly size: number;
}

const FIXED_HEAD = 1 + 1 + ID_BYTES + CLIP_ID_BYTES + 8 + 8; // type..createdAt = 54
const CODEC_BYTES = 1 + 1 + 4 + 4 + 2 + 4; // 16
const RECIPIENT_BYTES = ID_BYTES + SEALED_KEY_BYTES; // 100

/** Size in bytes of an envelope with `recipients` entries and a padded body of `paddedBytes`. */
export function envelopeSize(recipients: number, paddedBytes: number): number {
  return (
    FIXED_HEAD +
    CODEC_BYTES +
    1 +
    recipients * RECIPIENT_BYTES +
    SECRETBOX_NONCE_BYTES +
    4 +
    paddedBytes +
    SECRETBOX_MAC_BYTES +
    SIGNATURE_BYTES
  );
}

/** [PLK-5.2] The codec parameters a clip may carry (v1 envelopes and v2 chunks alike). */
export function validateCodec(c: CodecParams): void {
  if (c.codec !== 'opus-ogg') throw new PlushlinkError('PLK_E_FIELD', `codec ${String(c.codec)}`);
  if (c.channels !== 1 && c.channels !== 2) throw new PlushlinkError('PLK_E_FIELD', `channels ${c.channels}`);
  if (!SAMPLE_RATES.includes(c.sampleRate))
    throw new PlushlinkError('PLK_E_FIELD', `sample rate ${c.sampleRate}`);
  if (!Number.isInteger(c.bitrate) || c.bitrate < 500 || c.bitrate > 512_000) {
    throw new PlushlinkError('PLK_E_FIELD', `bitrate ${c.bitrate}`);
  }
  if (!FRAME_TENTHS.includes(Math.round(c.frameMs * 10)) || Math.round(c.frameMs * 10) !== c.frameMs * 10) {
    throw new PlushlinkError('PLK_E_FIELD', `frame duration ${c.frameMs} ms`);
  }
}

function validateInt(value: number, max: number, field: string): void {
  if (!Number.isSafeInteger(value) || value < 0 || value > max) {
    throw new PlushlinkError('PLK_E_FIELD', `${field} must be an integer in [0, ${max}], got ${value}`);
  }
}

export interface SealClipOptions {
  sender: PrivateIdentity;
  recipients: readonly PublicIdentity[];
  /** Per-sender sequence number, strictly increasing [PLK-8.1]. */
  sequence: number;
  createdAt: number;
  durationMs: number;
  codec?: CodecParams;
  /** Ogg Opus bytes (RFC 7845). */
  ogg: Uint8Array;
  random?: RandomSource;
  crypto?: CryptoSuite;
}

/** [PLK-5] Pads, encrypts, seals the content key to each recipient and signs. */
export function sealClip(opts: SealClipOptions): Uint8Array {
  const sealed = sealClipKeepingKey(opts);
  sealed.contentKey.fill(0);
  return sealed.envelope;
}

/**
 * sealClip, also returning the content key: a toy keeps it with the envelope in its outbox so that
 * it can re-seal the clip to a new roster without the audio [PLK-4.6]. It is as secret as the clip.
 */
export function sealClipKeepingKey(opts: SealClipOptions): { envelope: Uint8Array; contentKey: Uint8Array } {
  const random = opts.random ?? systemRandom;
  const crypto = opts.crypto ?? defaultCrypto();
  const codec = opts.codec ?? DEFAULT_CODEC;
  assertBytes(opts.ogg, 'ogg');
  validateCodec(codec);
  validateInt(opts.sequence, LIMITS.maxSequence, 'sequence');
  validateInt(opts.createdAt, LIMITS.maxTimestampMs, 'createdAt');
  validateInt(opts.durationMs, LIMITS.maxDurationMs, 'durationMs');
  checkRecipients(opts.recipients);
  const padded = pad(opts.ogg);
  const contentKey = random(KEY_BYTES);
  const clipId = random(CLIP_ID_BYTES);
  const bodyNonce = random(SECRETBOX_NONCE_BYTES);
  const body = secretboxSeal(padded, bodyNonce, contentKey);
  const envelope = writeEnvelope(crypto, random, {
    sender: opts.sender,
    clipId,
    sequence: opts.sequence,
    createdAt: opts.createdAt,
    codec,
    durationMs: opts.durationMs,
    recipients: opts.recipients,
    contentKey,
    bodyNonce,
    body,
  });
  return { envelope, contentKey };
}

/**
 * [PLK-4.6] The same clip (clip id, sequence number, creation time, codec, body) sealed to other
 * recipients: the content key sealed anew to each, and a new signature. Only the sender can do
 * it (it needs the content key and signs with its own key).
 */
export function resealClip(opts: {
  sender: PrivateIdentity;
  envelope: Uint8Array;
  contentKey: Uint8Array;
  recipients: readonly PublicIdentity[];
  random?: RandomSource;
  crypto?: CryptoSuite;
}): Uint8Array {
  const crypto = opts.crypto ?? defaultCrypto();
  assertBytes(opts.contentKey, 'contentKey', KEY_BYTES);
  const clip = decodeClip(opts.envelope);
  const h = clip.header;
  if (h.sender !== opts.sender.id)
    throw new PlushlinkError('PLK_E_WRONG_ENDPOINT', 'only the sender can re-seal its clip');
  checkRecipients(opts.recipients);
  // The content key must be the one the body was sealed with.
  secretboxOpen(clip.body, h.bodyNonce, opts.contentKey);
  return writeEnvelope(crypto, opts.random ?? systemRandom, {
    sender: opts.sender,
    clipId: h.clipId,
    sequence: h.sequence,
    createdAt: h.createdAt,
    codec: h.codec,
    durationMs: h.durationMs,
    recipients: opts.recipients,
    contentKey: opts.contentKey,
    bodyNonce: h.bodyNonce,
    body: clip.body,
  });
}

function checkRecipients(recipients: readonly PublicIdentity[]): void {
  const n = recipients.length;
  if (n < 1 || n > LIMITS.maxRecipients) {
    throw new PlushlinkError('PLK_E_LIMIT', `recipients must number 1..${LIMITS.maxRecipients}, got ${n}`);
  }
  if (new Set(recipients.map((r) => r.id)).size !== n) {
    throw new PlushlinkError('PLK_E_FIELD', 'duplicate recipient');
  }
}

/** [PLK-5.1] Lays out the header, the sealed keys and the body, and signs. */
function writeEnvelope(
  crypto: CryptoSuite,
  random: RandomSource,
  e: {
    sender: PrivateIdentity;
    clipId: Uint8Array;
    sequence: number;
    createdAt: number;
    codec: CodecParams;
    durationMs: number;
    recipients: readonly PublicIdentity[];
    contentKey: Uint8Array;
    bodyNonce: Uint8Array;
    body: Uint8Array;
  },
): Uint8Array {
  const n = e.recipients.length;
  const sealedKeys = e.recipients.map((r) => sealedBoxSeal(crypto, e.contentKey, r.boxPublicKey, random));
  const w = new ByteWriter(envelopeSize(n, e.body.length - SECRETBOX_MAC_BYTES));
  w.u8(MSG.CLIP).u8(PROTOCOL_VERSION).raw(idToBytes(e.sender.id)).raw(e.clipId);
  w.u64(e.sequence).u64(e.createdAt);
  w.u8(CODEC.OPUS_OGG).u8(e.codec.channels).u32(e.codec.sampleRate).u32(e.codec.bitrate);
  w.u16(Math.round(e.codec.frameMs * 10)).u32(e.durationMs);
  w.u8(n);
  e.recipients.forEach((r, i) => {
    w.raw(idToBytes(r.id)).raw(sealedKeys[i]!);
  });
  w.raw(e.bodyNonce).u32(e.body.length).raw(e.body);
  const signed = w.bytes.subarray(0, w.offset);
  w.raw(signBody(crypto, e.sender.signSeed, CONTEXT.CLIP, signed));
  return w.bytes;
}

/**
 * [PLK-5.2] The header fields after type and version that v1 envelopes and v2 chunks share —
 * sender, clip id, sequence, created-at and codec parameters — read and checked in that order.
 */
export function readClipHeader(r: ByteReader): {
  sender: EndpointId;
  clipId: Uint8Array;
  sequence: number;
  createdAt: number;
  codec: CodecParams;
} {
  const sender = idFromBytes(r.raw(ID_BYTES, 'sender'));
  const clipId = r.raw(CLIP_ID_BYTES, 'clip id');
  const sequence = r.u64('sequence');
  const createdAt = r.u64('created at');
  if (createdAt > LIMITS.maxTimestampMs) throw new PlushlinkError('PLK_E_FIELD', 'created at out of range');
  const codecId = r.u8('codec');
  if (codecId !== CODEC.OPUS_OGG) throw new PlushlinkError('PLK_E_FIELD', `unknown codec ${codecId}`);
  const channels = r.u8('channels');
  const sampleRate = r.u32('sample rate');
  const bitrate = r.u32('bitrate');
  const frameTenths = r.u16('frame duration');
  const codec: CodecParams = {
    codec: 'opus-ogg',
    channels: channels as 1 | 2,
    sampleRate,
    bitrate,
    frameMs: frameTenths / 10,
  };
  validateCodec(codec);
  return { sender, clipId, sequence, createdAt, codec };
}

/** [PLK-5.1] Structural decode within limits; does not verify the signature or decrypt. */
export function decodeClip(bytes: Uint8Array): DecodedEnvelope {
  if (!(bytes instanceof Uint8Array)) throw new PlushlinkError('PLK_E_TYPE', 'envelope must be bytes');
  if (bytes.length > LIMITS.maxEnvelopeBytes) {
    throw new PlushlinkError(
      'PLK_E_LIMIT',
      `envelope is ${bytes.length} bytes, max ${LIMITS.maxEnvelopeBytes}`,
    );
  }
  const r = new ByteReader(bytes);
  const type = r.u8('type');
  if (type !== MSG.CLIP) throw new PlushlinkError('PLK_E_MSG_TYPE', `envelope: got 0x${type.toString(16)}`);
  const version = r.u8('version');
  if (version !== PROTOCOL_VERSION) throw new PlushlinkError('PLK_E_VERSION', `envelope version ${version}`);
  const { sender, clipId, sequence, createdAt, codec } = readClipHeader(r);
  const durationMs = r.u32('duration');
  if (durationMs > LIMITS.maxDurationMs) throw new PlushlinkError('PLK_E_LIMIT', `duration ${durationMs} ms`);
  const n = r.u8('recipient count');
  if (n < 1 || n > LIMITS.maxRecipients) throw new PlushlinkError('PLK_E_LIMIT', `recipient count ${n}`);
  const recipients: RecipientEntry[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < n; i++) {
    const id = idFromBytes(r.raw(ID_BYTES, 'recipient id'));
    if (seen.has(id)) throw new PlushlinkError('PLK_E_FIELD', 'duplicate recipient');
    seen.add(id);
    recipients.push({ id, sealedKey: r.raw(SEALED_KEY_BYTES, 'sealed key') });
  }
  const bodyNonce = r.raw(SECRETBOX_NONCE_BYTES, 'body nonce');
  const bodyLength = r.u32('body length');
  if (!isBucketSize(bodyLength - SECRETBOX_MAC_BYTES)) {
    throw new PlushlinkError('PLK_E_PADDING', `body length ${bodyLength} is not a bucket plus MAC`);
  }
  const body = r.raw(bodyLength, 'body');
  const signedEnd = r.offset;
  const signature = r.raw(SIGNATURE_BYTES, 'signature');
  r.end('envelope');
  return {
    header: { version, sender, clipId, sequence, createdAt, codec, durationMs, recipients, bodyNonce },
    body,
    signed: bytes.subarray(0, signedEnd),
    signature,
    size: bytes.length,
  };
}

/** [PLK-5.5] Verifies the sender's signature; throws PLK_E_BAD_SIGNATURE. */
export function verifyClip(
  clip: DecodedEnvelope,
  senderSignPublicKey: Uint8Array,
  crypto = defaultCrypto(),
): void {
  verifyBody(crypto, senderSignPublicKey, CONTEXT.CLIP, clip.signed, clip.signature, 'clip envelope');
}

export interface OpenedClip {
  readonly header: ClipHeader;
  readonly ogg: Uint8Array;
}

/** [PLK-5.6] Decode, verify against the expected sender, unseal our key, decrypt, unpad. */
export function openClip(
  bytes: Uint8Array,
  opts: { recipient: PrivateIdentity; sender: PublicIdentity; crypto?: CryptoSuite },
): OpenedClip {
  const crypto = opts.crypto ?? defaultCrypto();
  const clip = decodeClip(bytes);
  if (clip.header.sender !== opts.sender.id) {
    throw new PlushlinkError(
      'PLK_E_WRONG_ENDPOINT',
      `clip is from ${clip.header.sender}, expected ${opts.sender.id}`,
    );
  }
  verifyClip(clip, opts.sender.signPublicKey, crypto);
  const entry = clip.header.recipients.find((r) => r.id === opts.recipient.id);
  if (!entry) throw new PlushlinkError('PLK_E_NOT_RECIPIENT', opts.recipient.id);
  const contentKey = sealedBoxOpen(
    crypto,
    entry.sealedKey,
    opts.recipient.boxPublicKey,
    opts.recipient.boxSecret,
  );
  if (contentKey.length !== KEY_BYTES)
    throw new PlushlinkError('PLK_E_DECRYPT', 'content key has the wrong size');
  const padded = secretboxOpen(clip.body, clip.header.bodyNonce, contentKey);
  contentKey.fill(0);
  return { header: clip.header, ogg: unpad(padded) };
}

/** Header fields as JSON-safe values, never secrets (for `plushlink clip inspect`, logs). */
export function describeClip(clip: DecodedEnvelope): Record<string, unknown> {
  const h = clip.header;
  return {
    type: 'clip',
    version: h.version,
    sender: h.sender,
    clipId: toHex(h.clipId),
    sequence: h.sequence,
    createdAt: new Date(h.createdAt).toISOString(),
    codec: h.codec,
    durationMs: h.durationMs,
    recipients: h.recipients.map((r) => r.id),
    paddedBodyBytes: clip.body.length - SECRETBOX_MAC_BYTES,
    envelopeBytes: clip.size,
  };
}
