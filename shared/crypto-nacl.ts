// Crypto seam, the portable part: the CryptoSuite interface, the tweetnacl suite and the NaCl constructions (sealed box, secretbox) [PLK-2.3] [PLK-5.3].
import { blake2b } from '@noble/hashes/blake2.js';
import nacl from 'tweetnacl';
import { assertBytes, concatBytes } from './bytes.ts';
import { PlushlinkError } from './errors.ts';
import {
  KEY_BYTES,
  SEALED_KEY_BYTES,
  SECRETBOX_MAC_BYTES,
  SECRETBOX_NONCE_BYTES,
  SIGNATURE_BYTES,
} from './limits.ts';
import type { RandomSource } from './types.ts';

/*
 * Nothing here touches a Node built-in, so a browser bundle (web/) can use it as it is. The
 * Node-only part (Node's OpenSSL-backed suite, SHA-256 through node:crypto) is crypto-node.ts;
 * crypto.ts re-exports both and keeps the process-wide default.
 */

/**
 * The primitive operations a PlushLink endpoint or gateway needs. Both implementations produce
 * byte-identical results (Ed25519 per RFC 8032 is deterministic; X25519 per RFC 7748).
 */
export interface CryptoSuite {
  readonly name: string;
  /** Ed25519 public key for a 32-byte private seed. */
  signPublicKey(seed: Uint8Array): Uint8Array;
  /** Ed25519 signature (64 bytes) of `message` with the 32-byte private seed. */
  sign(seed: Uint8Array, message: Uint8Array): Uint8Array;
  verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean;
  /** X25519 public key for a 32-byte secret. */
  boxPublicKey(secret: Uint8Array): Uint8Array;
  /** X25519 shared point; throws PLK_E_DECRYPT for an all-zero (small-order) result. */
  x25519(secret: Uint8Array, publicKey: Uint8Array): Uint8Array;
}

/** True when every byte is zero (constant time in the length). */
export function isAllZero(b: Uint8Array): boolean {
  let acc = 0;
  for (const x of b) acc |= x;
  return acc === 0;
}

/** tweetnacl (pure JavaScript): the reference and the portable fallback. */
export function tweetnaclSuite(): CryptoSuite {
  const secretKeys = new WeakMap<Uint8Array, Uint8Array>();
  const full = (seed: Uint8Array): Uint8Array => {
    let sk = secretKeys.get(seed);
    if (!sk) {
      sk = nacl.sign.keyPair.fromSeed(seed).secretKey;
      secretKeys.set(seed, sk);
    }
    return sk;
  };
  return {
    name: 'tweetnacl',
    signPublicKey(seed) {
      assertBytes(seed, 'seed', KEY_BYTES);
      return nacl.sign.keyPair.fromSeed(seed).publicKey;
    },
    sign(seed, message) {
      assertBytes(seed, 'seed', KEY_BYTES);
      return nacl.sign.detached(message, full(seed));
    },
    verify(publicKey, message, signature) {
      if (publicKey.length !== KEY_BYTES || signature.length !== SIGNATURE_BYTES) return false;
      return nacl.sign.detached.verify(message, signature, publicKey);
    },
    boxPublicKey(secret) {
      assertBytes(secret, 'secret', KEY_BYTES);
      return nacl.scalarMult.base(secret);
    },
    x25519(secret, publicKey) {
      assertBytes(secret, 'secret', KEY_BYTES);
      assertBytes(publicKey, 'publicKey', KEY_BYTES);
      const shared = nacl.scalarMult(secret, publicKey);
      if (isAllZero(shared)) throw new PlushlinkError('PLK_E_DECRYPT', 'X25519 with a low-order public key');
      return shared;
    },
  };
}

type HSalsa = (out: Uint8Array, inp: Uint8Array, k: Uint8Array, c: Uint8Array) => number;
const hsalsa20 = (nacl as unknown as { lowlevel: { crypto_core_hsalsa20: HSalsa } }).lowlevel
  .crypto_core_hsalsa20;
const SIGMA = new TextEncoder().encode('expand 32-byte k');
const ZERO16 = new Uint8Array(16);

/** crypto_box_beforenm: HSalsa20(X25519(secret, public), 0) — identical to NaCl/libsodium. */
export function boxBeforeNm(suite: CryptoSuite, secret: Uint8Array, publicKey: Uint8Array): Uint8Array {
  const shared = suite.x25519(secret, publicKey);
  const k = new Uint8Array(32);
  hsalsa20(k, ZERO16, shared, SIGMA);
  return k;
}

/** crypto_secretbox (XSalsa20-Poly1305): MAC (16) || ciphertext, as libsodium's easy API [PLK-5.4]. */
export function secretboxSeal(message: Uint8Array, nonce: Uint8Array, key: Uint8Array): Uint8Array {
  return nacl.secretbox(message, nonce, key);
}

/** Opens a crypto_secretbox; throws PLK_E_DECRYPT when the MAC does not verify. */
export function secretboxOpen(box: Uint8Array, nonce: Uint8Array, key: Uint8Array): Uint8Array {
  if (
    box.length < SECRETBOX_MAC_BYTES ||
    nonce.length !== SECRETBOX_NONCE_BYTES ||
    key.length !== KEY_BYTES
  ) {
    throw new PlushlinkError('PLK_E_DECRYPT', 'secretbox input has the wrong size');
  }
  const out = nacl.secretbox.open(box, nonce, key);
  if (!out) throw new PlushlinkError('PLK_E_DECRYPT', 'secretbox authentication failed');
  return out;
}

/** libsodium's sealed-box nonce: BLAKE2b-192(ephemeral_pk || recipient_pk) [PLK-5.3]. */
function sealNonce(ephemeralPk: Uint8Array, recipientPk: Uint8Array): Uint8Array {
  return blake2b(concatBytes(ephemeralPk, recipientPk), { dkLen: SECRETBOX_NONCE_BYTES });
}

/** crypto_box_seal: ephemeral_pk (32) || crypto_box(message) — interoperable with libsodium [PLK-5.3]. */
export function sealedBoxSeal(
  suite: CryptoSuite,
  message: Uint8Array,
  recipientPk: Uint8Array,
  random: RandomSource,
): Uint8Array {
  const esk = random(KEY_BYTES);
  const epk = suite.boxPublicKey(esk);
  const k = boxBeforeNm(suite, esk, recipientPk);
  esk.fill(0);
  return concatBytes(epk, secretboxSeal(message, sealNonce(epk, recipientPk), k));
}

/** crypto_box_seal_open; throws PLK_E_DECRYPT on any failure. */
export function sealedBoxOpen(
  suite: CryptoSuite,
  sealed: Uint8Array,
  recipientPk: Uint8Array,
  recipientSk: Uint8Array,
): Uint8Array {
  if (sealed.length < KEY_BYTES + SECRETBOX_MAC_BYTES)
    throw new PlushlinkError('PLK_E_DECRYPT', 'sealed box too short');
  const epk = sealed.subarray(0, KEY_BYTES);
  const k = boxBeforeNm(suite, recipientSk, epk);
  return secretboxOpen(sealed.subarray(KEY_BYTES), sealNonce(epk, recipientPk), k);
}

export const SEALED_OVERHEAD = SEALED_KEY_BYTES - KEY_BYTES;
