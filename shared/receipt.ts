// Delivery receipts: a recipient's signed acknowledgement of one clip, or its signed report that it cannot open it [PLK-6].
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

/** opened: the clip was verified, opened and played [PLK-6.1]; unopenable: it cannot be [PLK-6.3]. */
export type ReceiptStatus = 'opened' | 'unopenable';

const TYPE_OF: Readonly<Record<ReceiptStatus, number>> = { opened: MSG.RECEIPT, unopenable: MSG.UNOPENABLE };
const CONTEXT_OF: Readonly<Record<ReceiptStatus, string>> = {
  opened: CONTEXT.RECEIPT,
  unopenable: CONTEXT.UNOPENABLE,
};

export interface Receipt {
  readonly status: ReceiptStatus;
  /** The recipient that signed the receipt. */
  readonly recipient: EndpointId;
  /** The clip's sender. */
  readonly sender: EndpointId;
  readonly clipId: Uint8Array;
  readonly receivedAt: number;
  readonly signature: Uint8Array;
  readonly body: Uint8Array;
}

/**
 * [PLK-6.1] 130 bytes: type, version, recipient, sender, clip id, received-at, signature. With
 * `status: 'unopenable'` [PLK-6.3] the same layout with type 0x05 and its own signature context.
 */
export function createReceipt(opts: {
  recipient: PrivateIdentity;
  sender: EndpointId;
  clipId: Uint8Array;
  receivedAt: number;
  status?: ReceiptStatus;
  crypto?: CryptoSuite;
}): Uint8Array {
  const status = opts.status ?? 'opened';
  if (status !== 'opened' && status !== 'unopenable')
    throw new PlushlinkError('PLK_E_FIELD', 'status must be opened or unopenable');
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
  w.u8(TYPE_OF[status]).u8(PROTOCOL_VERSION).raw(idToBytes(opts.recipient.id)).raw(idToBytes(opts.sender));
  w.raw(opts.clipId).u64(opts.receivedAt);
  const body = w.bytes.subarray(0, w.offset);
  w.raw(signBody(opts.crypto ?? defaultCrypto(), opts.recipient.signSeed, CONTEXT_OF[status], body));
  return w.bytes;
}

export function decodeReceipt(bytes: Uint8Array): Receipt {
  if (!(bytes instanceof Uint8Array)) throw new PlushlinkError('PLK_E_TYPE', 'receipt must be bytes');
  // [PLK-10.1] fixed size: the length first — longer is LIMIT, shorter TRUNCATED.
  if (bytes.length > RECEIPT_BYTES)
    throw new PlushlinkError('PLK_E_LIMIT', `receipt is ${bytes.length} bytes`);
  if (bytes.length < RECEIPT_BYTES)
    throw new PlushlinkError('PLK_E_TRUNCATED', `receipt is ${bytes.length} bytes, needs ${RECEIPT_BYTES}`);
  const r = new ByteReader(bytes);
  const type = r.u8('type');
  if (type !== MSG.RECEIPT && type !== MSG.UNOPENABLE)
    throw new PlushlinkError('PLK_E_MSG_TYPE', `receipt: got 0x${type.toString(16)}`);
  const status: ReceiptStatus = type === MSG.RECEIPT ? 'opened' : 'unopenable';
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
  return { status, recipient, sender, clipId, receivedAt, signature, body: bytes.subarray(0, bodyEnd) };
}

/** [PLK-6.2] Decodes and verifies with the recipient's signing key. */
export function verifyReceipt(
  bytes: Uint8Array,
  recipientSignPublicKey: Uint8Array,
  crypto = defaultCrypto(),
): Receipt {
  const receipt = decodeReceipt(bytes);
  verifyBody(
    crypto,
    recipientSignPublicKey,
    CONTEXT_OF[receipt.status],
    receipt.body,
    receipt.signature,
    'receipt',
  );
  return receipt;
}

export function describeReceipt(r: Receipt): Record<string, unknown> {
  return {
    type: r.status === 'opened' ? 'receipt' : 'unopenable-receipt',
    recipient: r.recipient,
    sender: r.sender,
    clipId: toHex(r.clipId),
    receivedAt: new Date(r.receivedAt).toISOString(),
  };
}
