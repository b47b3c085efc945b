// BLE pairing crypto toolbox: P-256 ECDH and f4, f5, f6, g2 (Core Spec v5.x Vol 3 Part H §2.2.5–2.2.9).
import { createECDH } from 'node:crypto';
import type { RandomSource } from '../../shared/types.ts';
import { aesCmac } from './cmac.ts';

/*
 * Byte order: every function here takes and returns values the way the Core Spec writes them in
 * §2.2 and in the Appendix D sample data, most significant octet first. SMP PDUs carry the same
 * values least significant octet first; smp.ts reverses at the PDU boundary.
 */

/** f5 SALT (Vol 3 Part H §2.2.7). */
const F5_SALT = Uint8Array.from(Buffer.from('6c888391aaf5a53860370bdb5a6083be', 'hex'));
/** f5 keyID "btle" (Vol 3 Part H §2.2.7). */
const F5_KEY_ID = Uint8Array.of(0x62, 0x74, 0x6c, 0x65);

function need(name: string, v: Uint8Array, len: number): void {
  if (!(v instanceof Uint8Array)) throw new TypeError(`${name} must be a Uint8Array`);
  if (v.length !== len) throw new RangeError(`${name} must be ${len} bytes, got ${v.length}`);
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** f4(U, V, X, Z) = AES-CMAC_X(U || V || Z): confirm value (§2.2.6). U, V: 32 B; X: 16 B; Z: one octet. */
export function f4(u: Uint8Array, v: Uint8Array, x: Uint8Array, z: number): Uint8Array {
  need('U', u, 32);
  need('V', v, 32);
  need('X', x, 16);
  if (!Number.isInteger(z) || z < 0 || z > 0xff) throw new RangeError('Z must be one octet');
  return aesCmac(x, concat(u, v, Uint8Array.of(z)));
}

/** f5(W, N1, N2, A1, A2): MacKey and LTK from the DHKey (§2.2.7). W: 32 B; N1, N2: 16 B; A1, A2: 7 B. */
export function f5(
  w: Uint8Array,
  n1: Uint8Array,
  n2: Uint8Array,
  a1: Uint8Array,
  a2: Uint8Array,
): { macKey: Uint8Array; ltk: Uint8Array } {
  need('W', w, 32);
  need('N1', n1, 16);
  need('N2', n2, 16);
  need('A1', a1, 7);
  need('A2', a2, 7);
  const t = aesCmac(F5_SALT, w);
  const length = Uint8Array.of(0x01, 0x00); // 256 bits
  const macKey = aesCmac(t, concat(Uint8Array.of(0), F5_KEY_ID, n1, n2, a1, a2, length));
  const ltk = aesCmac(t, concat(Uint8Array.of(1), F5_KEY_ID, n1, n2, a1, a2, length));
  return { macKey, ltk };
}

/** f6(W, N1, N2, R, IOcap, A1, A2) = AES-CMAC_W(N1 || N2 || R || IOcap || A1 || A2): DHKey check (§2.2.8). */
export function f6(
  w: Uint8Array,
  n1: Uint8Array,
  n2: Uint8Array,
  r: Uint8Array,
  ioCap: Uint8Array,
  a1: Uint8Array,
  a2: Uint8Array,
): Uint8Array {
  need('W', w, 16);
  need('N1', n1, 16);
  need('N2', n2, 16);
  need('R', r, 16);
  need('IOcap', ioCap, 3);
  need('A1', a1, 7);
  need('A2', a2, 7);
  return aesCmac(w, concat(n1, n2, r, ioCap, a1, a2));
}

/** g2(U, V, X, Y) = AES-CMAC_X(U || V || Y) mod 2^32 (§2.2.9): the raw 32-bit value. */
export function g2Raw(u: Uint8Array, v: Uint8Array, x: Uint8Array, y: Uint8Array): number {
  need('U', u, 32);
  need('V', v, 32);
  need('X', x, 16);
  need('Y', y, 16);
  const mac = aesCmac(x, concat(u, v, y));
  return ((mac[12]! << 24) | (mac[13]! << 16) | (mac[14]! << 8) | mac[15]!) >>> 0;
}

/** The six-digit numeric comparison value: g2(...) mod 10^6 (§2.3.5.6.2), 0..999999. */
export function g2(u: Uint8Array, v: Uint8Array, x: Uint8Array, y: Uint8Array): number {
  return g2Raw(u, v, x, y) % 1_000_000;
}

/** Formats a numeric comparison value as the six digits a user sees (leading zeros kept). */
export function formatSixDigits(value: number): string {
  if (!Number.isInteger(value) || value < 0 || value > 999_999)
    throw new RangeError('value must be 0..999999');
  return value.toString().padStart(6, '0');
}

/** A P-256 key pair; coordinates most significant octet first, 32 bytes each. */
export interface P256KeyPair {
  readonly privateKey: Uint8Array;
  readonly x: Uint8Array;
  readonly y: Uint8Array;
}

/** Order n of the P-256 group (FIPS 186-4 D.1.2.3). */
const P256_N = Buffer.from('ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551', 'hex');

/** Key pair from an explicit private key (e.g. the spec's debug keys in tests). */
export function p256FromPrivate(privateKey: Uint8Array): P256KeyPair {
  need('privateKey', privateKey, 32);
  const ecdh = createECDH('prime256v1');
  ecdh.setPrivateKey(privateKey);
  const pub = ecdh.getPublicKey(); // 0x04 || X || Y
  return {
    privateKey: Uint8Array.from(privateKey),
    x: Uint8Array.from(pub.subarray(1, 33)),
    y: Uint8Array.from(pub.subarray(33, 65)),
  };
}

/** Fresh key pair whose private scalar comes from `random` (rejection sampling into [1, n-1]). */
export function generateP256KeyPair(random: RandomSource): P256KeyPair {
  for (;;) {
    const d = random(32);
    const b = Buffer.from(d);
    if (b.every((x) => x === 0) || Buffer.compare(b, P256_N) >= 0) continue;
    return p256FromPrivate(d);
  }
}

/**
 * DHKey = x-coordinate of d·PK_peer (§2.3.5.6.1). Node validates that the peer point is on the curve
 * and throws otherwise; we turn that into `undefined` so the caller fails pairing (the check whose
 * absence was CVE-2018-5383, "invalid curve" attack on the public key exchange).
 */
export function p256Dh(own: P256KeyPair, peerX: Uint8Array, peerY: Uint8Array): Uint8Array | undefined {
  need('peerX', peerX, 32);
  need('peerY', peerY, 32);
  const ecdh = createECDH('prime256v1');
  ecdh.setPrivateKey(own.privateKey);
  try {
    const secret = ecdh.computeSecret(Buffer.concat([Buffer.of(4), peerX, peerY]));
    return Uint8Array.from(secret);
  } catch {
    return undefined;
  }
}
