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

function validateCodec(c: CodecParams): void {
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
  const random = opts.random ?? systemRandom;
  const crypto = opts.crypto ?? defaultCrypto();
  const codec = opts.codec ?? DEFAULT_CODEC;
  assertBytes(opts.ogg, 'ogg');
  validateCodec(codec);
  validateInt(opts.sequence, LIMITS.maxSequence, 'sequence');
  validateInt(opts.createdAt, LIMITS.maxTimestampMs, 'createdAt');
  validateInt(opts.durationMs, LIMITS.maxDurationMs, 'durationMs');
  const n = opts.recipients.length;
  if (n < 1 || n > LIMITS.maxRecipients) {
    throw new PlushlinkError('PLK_E_LIMIT', `recipients must number 1..${LIMITS.maxRecipients}, got ${n}`);
  }
  if (new Set(opts.recipients.map((r) => r.id)).size !== n) {
    throw new PlushlinkError('PLK_E_FIELD', 'duplicate recipient');
  }
  const padded = pad(opts.ogg);
  const contentKey = random(KEY_BYTES);
  const clipId = random(CLIP_ID_BYTES);
  const bodyNonce = random(SECRETBOX_NONCE_BYTES);
  const sealedKeys = opts.recipients.map((r) => sealedBoxSeal(crypto, contentKey, r.boxPublicKey, random));
  const body = secretboxSeal(padded, bodyNonce, contentKey);
  contentKey.fill(0);

  const w = new ByteWriter(envelopeSize(n, padded.length));
  w.u8(MSG.CLIP).u8(PROTOCOL_VERSION).raw(idToBytes(opts.sender.id)).raw(clipId);
  w.u64(opts.sequence).u64(opts.createdAt);
  w.u8(CODEC.OPUS_OGG).u8(codec.channels).u32(codec.sampleRate).u32(codec.bitrate);
  w.u16(Math.round(codec.frameMs * 10)).u32(opts.durationMs);
  w.u8(n);
  opts.recipients.forEach((r, i) => {
    w.raw(idToBytes(r.id)).raw(sealedKeys[i]!);
  });
  w.raw(bodyNonce).u32(body.length).raw(body);
  const signed = w.bytes.subarray(0, w.offset);
  w.raw(signBody(crypto, opts.sender.signSeed, CONTEXT.CLIP, signed));
  return w.bytes;
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
