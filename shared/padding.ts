// Body padding: Padmé size buckets hide a clip's exact length from the gateway and the network [PLK-7].
import { assertBytes } from './bytes.ts';
import { PlushlinkError } from './errors.ts';
import { LIMITS } from './limits.ts';

/**
 * [PLK-7.1] Padmé (Nikitin et al., "Reducing Metadata Leakage from Encrypted Files and
 * Communication with PURBs", PETS 2019): rounds L up so that only O(log log L) bits of the
 * length leak, at most 12 % overhead. Never below LIMITS.minPaddedBytes.
 */
export function padmeSize(length: number): number {
  if (!Number.isSafeInteger(length) || length < 0)
    throw new RangeError('length must be a non-negative integer');
  const l = Math.max(length, LIMITS.minPaddedBytes);
  const e = Math.floor(Math.log2(l));
  const s = Math.floor(Math.log2(e)) + 1;
  const lastBits = e - s;
  const mask = 2 ** lastBits - 1;
  return Math.ceil(l / (mask + 1)) * (mask + 1);
}

/** True when `size` is a bucket a sender may produce [PLK-7.1]. */
export function isBucketSize(size: number): boolean {
  return size >= LIMITS.minPaddedBytes && size <= LIMITS.maxPaddedBytes && padmeSize(size) === size;
}

/** [PLK-7.2] padded = u32 BE length || content || zeros, total a Padmé bucket of 4 + length. */
export function pad(content: Uint8Array): Uint8Array {
  assertBytes(content, 'content');
  if (content.length > LIMITS.maxClipPlaintextBytes) {
    throw new PlushlinkError(
      'PLK_E_LIMIT',
      `clip is ${content.length} bytes, max ${LIMITS.maxClipPlaintextBytes}`,
    );
  }
  const out = new Uint8Array(padmeSize(4 + content.length));
  new DataView(out.buffer).setUint32(0, content.length);
  out.set(content, 4);
  return out;
}

/** Inverse of pad(); the filler must be all zero and the size a bucket. Returns a view. */
export function unpad(padded: Uint8Array): Uint8Array {
  assertBytes(padded, 'padded');
  if (!isBucketSize(padded.length))
    throw new PlushlinkError('PLK_E_PADDING', `size ${padded.length} is not a bucket`);
  const len = new DataView(padded.buffer, padded.byteOffset, padded.byteLength).getUint32(0);
  if (len > padded.length - 4 || padmeSize(4 + len) !== padded.length) {
    throw new PlushlinkError('PLK_E_PADDING', `length field ${len} does not fit bucket ${padded.length}`);
  }
  let acc = 0;
  for (let i = 4 + len; i < padded.length; i++) acc |= padded[i]!;
  if (acc !== 0) throw new PlushlinkError('PLK_E_PADDING', 'non-zero filler');
  return padded.subarray(4, 4 + len);
}
