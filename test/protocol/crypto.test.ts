// Crypto seam: Node's crypto and tweetnacl agree byte for byte on Ed25519 and X25519, and refuse low-order points.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fromHex, toHex } from '../../shared/bytes.ts';
import {
  boxBeforeNm,
  type CryptoSuite,
  nodeCryptoSuite,
  sealedBoxOpen,
  sealedBoxSeal,
  tweetnaclSuite,
} from '../../shared/crypto.ts';
import { seededRandom } from '../../shared/random.ts';
import { expectCode } from '../helpers/errors.ts';
import { fcParams } from '../helpers/fc.ts';

const node = nodeCryptoSuite();
const nacl = tweetnaclSuite();
const SUITES: readonly CryptoSuite[] = [node, nacl];

const key32 = fc.uint8Array({ minLength: 32, maxLength: 32 });
const message = fc.uint8Array({ maxLength: 1024 });

/** Curve25519 points of small order, incl. the non-canonical p-1, p, p+1 (libsodium's X25519 blocklist). */
const LOW_ORDER = [
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0100000000000000000000000000000000000000000000000000000000000000',
  'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800',
  '5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
];

describe('Ed25519: node and tweetnacl are interchangeable', () => {
  it('identical public keys and signatures; each verifies the other', () => {
    fc.assert(
      fc.property(key32, message, (seed, msg) => {
        const pk = node.signPublicKey(seed);
        expect(toHex(nacl.signPublicKey(seed))).toBe(toHex(pk));
        const sNode = node.sign(seed, msg);
        const sNacl = nacl.sign(seed, msg);
        expect(toHex(sNacl)).toBe(toHex(sNode));
        expect(node.verify(pk, msg, sNacl)).toBe(true);
        expect(nacl.verify(pk, msg, sNode)).toBe(true);
      }),
      fcParams({ numRuns: 25 }),
    );
  });

  it('both refuse a signature with any bit flipped, or over another message', () => {
    fc.assert(
      fc.property(key32, message, fc.nat(511), (seed, msg, bit) => {
        const pk = node.signPublicKey(seed);
        const sig = node.sign(seed, msg);
        const bad = sig.slice();
        bad[bit >> 3]! ^= 1 << (bit & 7);
        const other = Uint8Array.from([...msg, 0]);
        for (const s of SUITES) {
          expect(s.verify(pk, msg, bad)).toBe(false);
          expect(s.verify(pk, other, sig)).toBe(false);
        }
      }),
      fcParams({ numRuns: 12 }),
    );
  });

  it('both return false (never throw) for wrong-size keys and signatures', () => {
    const seed = new Uint8Array(32).fill(7);
    const pk = node.signPublicKey(seed);
    const sig = node.sign(seed, new Uint8Array(3));
    for (const s of SUITES) {
      expect(s.verify(pk.subarray(0, 31), new Uint8Array(3), sig)).toBe(false);
      expect(s.verify(pk, new Uint8Array(3), sig.subarray(0, 63))).toBe(false);
      expect(s.verify(new Uint8Array(32), new Uint8Array(3), sig)).toBe(false);
    }
  });

  it('both refuse a wrong-size seed with a typed error', () => {
    for (const s of SUITES) {
      expectCode(() => s.signPublicKey(new Uint8Array(31)), 'PLK_E_FIELD');
      expectCode(() => s.sign(new Uint8Array(33), new Uint8Array(1)), 'PLK_E_FIELD');
    }
  });
});

describe('X25519: node and tweetnacl are interchangeable', () => {
  it('identical public keys and shared secrets (both directions)', () => {
    fc.assert(
      fc.property(key32, key32, (a, b) => {
        const pa = node.boxPublicKey(a);
        const pb = node.boxPublicKey(b);
        expect(toHex(nacl.boxPublicKey(a))).toBe(toHex(pa));
        const ab = node.x25519(a, pb);
        expect(toHex(nacl.x25519(a, pb))).toBe(toHex(ab));
        expect(toHex(nacl.x25519(b, pa))).toBe(toHex(ab));
        expect(toHex(boxBeforeNm(nacl, a, pb))).toBe(toHex(boxBeforeNm(node, b, pa)));
      }),
      fcParams({ numRuns: 25 }),
    );
  });

  it('RFC 7748 §6.1 Diffie-Hellman vector', () => {
    const a = fromHex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a');
    const b = fromHex('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb');
    for (const s of SUITES) {
      expect(toHex(s.boxPublicKey(a))).toBe(
        '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a',
      );
      expect(toHex(s.boxPublicKey(b))).toBe(
        'de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f',
      );
      expect(toHex(s.x25519(a, s.boxPublicKey(b)))).toBe(
        '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742',
      );
    }
  });

  it('low-order public keys are refused with PLK_E_DECRYPT by both suites', () => {
    const secret = seededRandom('low-order')(32);
    for (const s of SUITES) {
      for (const hex of LOW_ORDER) {
        expectCode(() => s.x25519(secret, fromHex(hex)), 'PLK_E_DECRYPT');
        expectCode(() => boxBeforeNm(s, secret, fromHex(hex)), 'PLK_E_DECRYPT');
      }
    }
  });

  it('a sealed box with a low-order ephemeral key, or sealed to a low-order key, is refused', () => {
    const random = seededRandom('sealed-low-order');
    const sk = random(32);
    const pk = node.boxPublicKey(sk);
    for (const s of SUITES) {
      const sealed = sealedBoxSeal(s, new Uint8Array(32).fill(1), pk, random);
      expect(sealedBoxOpen(s, sealed, pk, sk)).toEqual(new Uint8Array(32).fill(1));
      for (const hex of LOW_ORDER) {
        const forged = sealed.slice();
        forged.set(fromHex(hex), 0);
        expectCode(() => sealedBoxOpen(s, forged, pk, sk), 'PLK_E_DECRYPT');
        expectCode(() => sealedBoxSeal(s, new Uint8Array(32), fromHex(hex), random), 'PLK_E_DECRYPT');
      }
    }
  });

  it('sealed boxes made by one suite open with the other', () => {
    fc.assert(
      fc.property(key32, fc.uint8Array({ maxLength: 64 }), fc.string(), (sk, msg, seed) => {
        const pk = nacl.boxPublicKey(sk);
        const sealed = sealedBoxSeal(node, msg, pk, seededRandom(seed));
        expect(sealedBoxSeal(nacl, msg, pk, seededRandom(seed))).toEqual(sealed);
        expect(sealedBoxOpen(nacl, sealed, pk, sk)).toEqual(msg);
      }),
      fcParams({ numRuns: 15 }),
    );
  });
});
