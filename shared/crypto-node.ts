// Crypto seam, the Node part: Ed25519 and X25519 through Node's built-in crypto (OpenSSL), and SHA-256 [PLK-2.3].
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  type KeyObject,
  sign as nodeSign,
  verify as nodeVerify,
} from 'node:crypto';
import { assertBytes, toHex } from './bytes.ts';
import { type CryptoSuite, isAllZero } from './crypto-nacl.ts';
import { PlushlinkError } from './errors.ts';
import { KEY_BYTES, SIGNATURE_BYTES } from './limits.ts';

/*
 * The only module of shared/ that imports node:crypto. A browser bundle swaps it for a module
 * with the same exports (web/src/platform-crypto.ts: tweetnacl and @noble/hashes), so the
 * protocol code above it runs unchanged in both.
 */

/**
 * Raw keys enter and leave Node's KeyObject through JWK, not DER: OpenSSL 3's DER decoder costs
 * ~1 ms per key here, the JWK path (EVP_PKEY_new_raw_*_key) ~20x less, which matters because
 * every sealing makes a fresh ephemeral X25519 key. Node imports an OKP private JWK from `d`
 * alone and only type-checks `x` (lib/internal/crypto/keys.js), re-deriving the public half;
 * so `x` is left empty rather than trusted. A test checks derived keys against tweetnacl.
 */
type OkpCurve = 'Ed25519' | 'X25519';
const b64url = (b: Uint8Array): string =>
  Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64url');

function okpPrivate(crv: OkpCurve, d: Uint8Array): KeyObject {
  return createPrivateKey({ key: { kty: 'OKP', crv, d: b64url(d), x: '' }, format: 'jwk' });
}

function okpPublic(crv: OkpCurve, x: Uint8Array): KeyObject {
  return createPublicKey({ key: { kty: 'OKP', crv, x: b64url(x) }, format: 'jwk' });
}

function rawPublic(key: KeyObject): Uint8Array {
  const { x } = key.export({ format: 'jwk' });
  return new Uint8Array(Buffer.from(x ?? '', 'base64url'));
}

/** Bounded cache of parsed public keys: the gateway verifies many clips per sender. */
class KeyCache {
  private readonly map = new Map<string, KeyObject>();
  constructor(private readonly max: number) {}
  get(raw: Uint8Array, make: () => KeyObject): KeyObject {
    const k = toHex(raw);
    let v = this.map.get(k);
    if (!v) {
      v = make();
      if (this.map.size >= this.max) {
        const first = this.map.keys().next().value;
        if (first !== undefined) this.map.delete(first);
      }
      this.map.set(k, v);
    }
    return v;
  }
}

/** Node's built-in crypto (OpenSSL): the hot-path default. */
export function nodeCryptoSuite(): CryptoSuite {
  const signers = new WeakMap<Uint8Array, KeyObject>();
  const verifiers = new KeyCache(100_000);
  // Parsed X25519 keys: a sealing reuses the ephemeral secret's KeyObject for its public key and
  // its DH, and recipients' public keys repeat across clips.
  const boxSecrets = new WeakMap<Uint8Array, KeyObject>();
  const boxPublics = new KeyCache(10_000);
  const boxPrivate = (secret: Uint8Array): KeyObject => {
    let k = boxSecrets.get(secret);
    if (!k) {
      k = okpPrivate('X25519', secret);
      boxSecrets.set(secret, k);
    }
    return k;
  };
  const signer = (seed: Uint8Array): KeyObject => {
    let k = signers.get(seed);
    if (!k) {
      k = okpPrivate('Ed25519', seed);
      signers.set(seed, k);
    }
    return k;
  };
  return {
    name: 'node',
    signPublicKey(seed) {
      assertBytes(seed, 'seed', KEY_BYTES);
      return rawPublic(createPublicKey(signer(seed)));
    },
    sign(seed, message) {
      assertBytes(seed, 'seed', KEY_BYTES);
      return new Uint8Array(nodeSign(null, message, signer(seed)));
    },
    verify(publicKey, message, signature) {
      if (publicKey.length !== KEY_BYTES || signature.length !== SIGNATURE_BYTES) return false;
      let key: KeyObject;
      try {
        key = verifiers.get(publicKey, () => okpPublic('Ed25519', publicKey));
      } catch {
        return false;
      }
      try {
        return nodeVerify(null, message, key, signature);
      } catch {
        return false;
      }
    },
    boxPublicKey(secret) {
      assertBytes(secret, 'secret', KEY_BYTES);
      return rawPublic(createPublicKey(boxPrivate(secret)));
    },
    x25519(secret, publicKey) {
      assertBytes(secret, 'secret', KEY_BYTES);
      assertBytes(publicKey, 'publicKey', KEY_BYTES);
      try {
        const pub = boxPublics.get(publicKey, () => okpPublic('X25519', publicKey));
        const shared = new Uint8Array(diffieHellman({ privateKey: boxPrivate(secret), publicKey: pub }));
        if (isAllZero(shared)) throw new Error('all-zero');
        return shared;
      } catch {
        throw new PlushlinkError('PLK_E_DECRYPT', 'X25519 with a low-order public key');
      }
    },
  };
}

/** The suite `defaultCrypto()` uses on this platform: Node's crypto. */
export function platformCryptoSuite(): CryptoSuite {
  return nodeCryptoSuite();
}

/** SHA-256 (FIPS 180-4) through Node's crypto. */
export function sha256(data: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(data).digest());
}
