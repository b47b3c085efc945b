// Delivery receipt: a recipient's signed acknowledgement of one clip [PLK-6].
import { ByteReader, ByteWriter, toHex } from './bytes.ts';
import { type CryptoSuite, defaultCrypto } from './crypto.ts';
import { PlushlinkError } from './errors.ts';
import { idFromBytes, idToBytes, type PrivateIdentity } from './identity.ts';
import {
  CLIP_ID_BYTES,
  CONTEXT,
  ID_BYTES,
  LIMITS,
  MSG,
  PROTOCOL_VERSION,
  RECEIPT_BYTES,
  SIGNATURE_BYTES,
} from './limits.ts';
import { signBody, verifyBody } from './signed.ts';
import type { EndpointId } from './types.ts';

export interface Receipt {
  /** The recipient that signed the receipt. */
  readonly recipient: EndpointId;
  /** The clip's sender. */
  readonly sender: EndpointId;
  readonly clipId: Uint8Array;
  readonly receivedAt: number;
  readonly signature: Uint8Array;
  readonly body: Uint8Array;
}

/** [PLK-6.1] 130 bytes: type, version, recipient, sender, clip id, received-at, signature. */
export function createReceipt(opts: {
  recipient: PrivateIdentity;
  sender: EndpointId;
  clipId: Uint8Array;
  receivedAt: number;
  crypto?: CryptoSuite;
}): Uint8Array {
  if (opts.clipId.length !== CLIP_ID_BYTES)
    throw new PlushlinkError('PLK_E_FIELD', 'clip id must be 16 bytes');
  if (
    !Number.isSafeInteger(opts.receivedAt) ||
    opts.receivedAt < 0 ||
    opts.receivedAt > LIMITS.maxTimestampMs
  ) {
    throw new PlushlinkError('PLK_E_FIELD', 'receivedAt out of range');
  }
  const w = new ByteWriter(RECEIPT_BYTES);
  w.u8(MSG.RECEIPT).u8(PROTOCOL_VERSION).raw(idToBytes(opts.recipient.id)).raw(idToBytes(opts.sender));
  w.raw(opts.clipId).u64(opts.receivedAt);
  const body = w.bytes.subarray(0, w.offset);
  w.raw(signBody(opts.crypto ?? defaultCrypto(), opts.recipient.signSeed, CONTEXT.RECEIPT, body));
  return w.bytes;
}

export function decodeReceipt(bytes: Uint8Array): Receipt {
  if (!(bytes instanceof Uint8Array)) throw new PlushlinkError('PLK_E_TYPE', 'receipt must be bytes');
  if (bytes.length > RECEIPT_BYTES)
    throw new PlushlinkError('PLK_E_LIMIT', `receipt is ${bytes.length} bytes`);
  const r = new ByteReader(bytes);
  const type = r.u8('type');
  if (type !== MSG.RECEIPT) throw new PlushlinkError('PLK_E_MSG_TYPE', `receipt: got 0x${type.toString(16)}`);
  const version = r.u8('version');
  if (version !== PROTOCOL_VERSION) throw new PlushlinkError('PLK_E_VERSION', `receipt version ${version}`);
  const recipient = idFromBytes(r.raw(ID_BYTES, 'recipient'));
  const sender = idFromBytes(r.raw(ID_BYTES, 'sender'));
  const clipId = r.raw(CLIP_ID_BYTES, 'clip id');
  const receivedAt = r.u64('received at');
  if (receivedAt > LIMITS.maxTimestampMs) throw new PlushlinkError('PLK_E_FIELD', 'received at out of range');
  const bodyEnd = r.offset;
  const signature = r.raw(SIGNATURE_BYTES, 'signature');
  r.end('receipt');
  return { recipient, sender, clipId, receivedAt, signature, body: bytes.subarray(0, bodyEnd) };
}

/** [PLK-6.2] Decodes and verifies with the recipient's signing key. */
export function verifyReceipt(
  bytes: Uint8Array,
  recipientSignPublicKey: Uint8Array,
  crypto = defaultCrypto(),
): Receipt {
  const receipt = decodeReceipt(bytes);
  verifyBody(crypto, recipientSignPublicKey, CONTEXT.RECEIPT, receipt.body, receipt.signature, 'receipt');
  return receipt;
}

export function describeReceipt(r: Receipt): Record<string, unknown> {
  return {
    type: 'receipt',
    recipient: r.recipient,
    sender: r.sender,
    clipId: toHex(r.clipId),
    receivedAt: new Date(r.receivedAt).toISOString(),
  };
}
