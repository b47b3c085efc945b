// AES-128 block cipher and AES-CMAC (RFC 4493) on top of Node's crypto, for the LE Secure Connections functions.
import { createCipheriv } from 'node:crypto';

/*
 * Why hand-written: Node's crypto has AES but no CMAC (OpenSSL's EVP_MAC "CMAC" is not exposed by
 * node:crypto), and pulling a dependency for ~30 lines of a fully specified algorithm is not worth
 * it. The code follows RFC 4493 §2.3–2.4 step by step and is verified against all four RFC 4493 §4
 * test vectors and against the Bluetooth Core Spec Vol 3 Part H Appendix D sample data (test/ble).
 * The BLE model is a simulator: none of this protects real user data (that is shared/envelope.ts).
 */

const BLOCK = 16;
const RB = 0x87; // RFC 4493 §2.3: constant Rb for 128-bit blocks

function checkKey(key: Uint8Array): void {
  if (!(key instanceof Uint8Array)) throw new TypeError('key must be a Uint8Array');
  if (key.length !== BLOCK) throw new RangeError(`key must be 16 bytes, got ${key.length}`);
}

/** AES-128 encryption of one 16-byte block (the spec's security function `e`, Vol 3 Part H §2.2.1). */
export function aes128(key: Uint8Array, block: Uint8Array): Uint8Array {
  checkKey(key);
  if (!(block instanceof Uint8Array) || block.length !== BLOCK)
    throw new RangeError('block must be 16 bytes');
  const cipher = createCipheriv('aes-128-ecb', key, null);
  cipher.setAutoPadding(false);
  return new Uint8Array(Buffer.concat([cipher.update(block), cipher.final()]));
}

/** Left shift of a 16-byte block by one bit (RFC 4493 §2.3, "<<"). */
function shiftLeft(b: Uint8Array): Uint8Array {
  const out = new Uint8Array(BLOCK);
  for (let i = 0; i < BLOCK; i++) out[i] = ((b[i]! << 1) | (i + 1 < BLOCK ? b[i + 1]! >>> 7 : 0)) & 0xff;
  return out;
}

/** RFC 4493 §2.3 Generate_Subkey: K1, K2 from L = AES(K, 0^128). */
function subkeys(key: Uint8Array): [Uint8Array, Uint8Array] {
  const l = aes128(key, new Uint8Array(BLOCK));
  const k1 = shiftLeft(l);
  if (l[0]! & 0x80) k1[BLOCK - 1]! ^= RB;
  const k2 = shiftLeft(k1);
  if (k1[0]! & 0x80) k2[BLOCK - 1]! ^= RB;
  return [k1, k2];
}

/** AES-CMAC (RFC 4493 §2.4) with a 128-bit key; returns the full 16-byte tag. */
export function aesCmac(key: Uint8Array, message: Uint8Array): Uint8Array {
  checkKey(key);
  if (!(message instanceof Uint8Array)) throw new TypeError('message must be a Uint8Array');
  const [k1, k2] = subkeys(key);
  const n = Math.max(1, Math.ceil(message.length / BLOCK));
  const complete = message.length > 0 && message.length % BLOCK === 0;
  const last = new Uint8Array(BLOCK);
  const tail = message.subarray((n - 1) * BLOCK);
  if (complete) {
    for (let i = 0; i < BLOCK; i++) last[i] = tail[i]! ^ k1[i]!;
  } else {
    last.set(tail);
    last[tail.length] = 0x80; // padding 10^i
    for (let i = 0; i < BLOCK; i++) last[i]! ^= k2[i]!;
  }
  // CBC-MAC over M_1 .. M_{n-1}, M_last with a zero IV, done by one ECB pass per block.
  const cipher = createCipheriv('aes-128-ecb', key, null);
  cipher.setAutoPadding(false);
  let x: Uint8Array = new Uint8Array(BLOCK);
  const y = new Uint8Array(BLOCK);
  for (let b = 0; b < n; b++) {
    const m = b === n - 1 ? last : message.subarray(b * BLOCK, (b + 1) * BLOCK);
    for (let i = 0; i < BLOCK; i++) y[i] = x[i]! ^ m[i]!;
    x = new Uint8Array(cipher.update(y));
  }
  cipher.final();
  return x;
}
