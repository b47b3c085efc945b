// The parent's keys in this browser: Ed25519 and X25519 pairs made by WebCrypto with non-extractable private halves, kept in IndexedDB; the page signs and opens clips without the private bytes ever reaching JavaScript [PLK-1.1].
import { bytesEqual } from '../../shared/bytes.ts';
import { type CryptoSuite, sealedBoxOpen, secretboxOpen, tweetnaclSuite } from '../../shared/crypto-nacl.ts';
import { decodeClip, type OpenedClip, verifyClip } from '../../shared/envelope.ts';
import { PlushlinkError } from '../../shared/errors.ts';
import { deriveEndpointId, type PrivateIdentity, type PublicIdentity } from '../../shared/identity.ts';
import { KEY_BYTES, SIGNATURE_BYTES } from '../../shared/limits.ts';
import { unpad } from '../../shared/padding.ts';
import { signedMessage } from '../../shared/signed.ts';
import { WebError } from './errors.ts';
import type { PageStore } from './store.ts';

/** The page's key pairs: public halves as bytes, private halves as CryptoKeys nobody can export. */
export interface BrowserKeys {
  readonly identity: PublicIdentity;
  readonly signKey: CryptoKey;
  readonly boxKey: CryptoKey;
  readonly createdAt: number;
}

/** What IndexedDB holds (structured clone keeps a CryptoKey non-extractable). */
interface StoredKeys {
  readonly v: 1;
  readonly signPrivate: CryptoKey;
  readonly boxPrivate: CryptoKey;
  readonly signPublic: Uint8Array;
  readonly boxPublic: Uint8Array;
  readonly createdAt: number;
}

const KEYS = 'keys';
const nacl = tweetnaclSuite();
const ZERO_KEY = new Uint8Array(KEY_BYTES);

/** Why this browser cannot hold the parent's keys, or undefined when it can. */
export function keyStoreProblem(): WebError | undefined {
  if (!globalThis.isSecureContext)
    return new WebError(
      'WEB_INSECURE',
      'This page must be opened over HTTPS, or as http://localhost / http://127.0.0.1: browsers keep keys and the microphone for secure pages only.',
    );
  if (!globalThis.crypto?.subtle)
    return new WebError('WEB_UNSUPPORTED', 'This browser has no WebCrypto: it cannot hold the parent key.');
  return undefined;
}

function isStoredKeys(v: unknown): v is StoredKeys {
  if (typeof v !== 'object' || v === null) return false;
  const s = v as Partial<StoredKeys>;
  return (
    s.v === 1 &&
    s.signPrivate instanceof CryptoKey &&
    s.boxPrivate instanceof CryptoKey &&
    s.signPublic instanceof Uint8Array &&
    s.signPublic.length === KEY_BYTES &&
    s.boxPublic instanceof Uint8Array &&
    s.boxPublic.length === KEY_BYTES &&
    typeof s.createdAt === 'number'
  );
}

function fromStored(s: StoredKeys): BrowserKeys {
  if (
    s.signPrivate.extractable ||
    s.boxPrivate.extractable ||
    s.signPrivate.algorithm.name !== 'Ed25519' ||
    s.boxPrivate.algorithm.name !== 'X25519'
  )
    throw new WebError('WEB_STORAGE', 'the stored keys are not this page’s non-extractable key pairs');
  return {
    identity: {
      role: 'parent',
      id: deriveEndpointId(s.signPublic),
      signPublicKey: s.signPublic,
      boxPublicKey: s.boxPublic,
    },
    signKey: s.signPrivate,
    boxKey: s.boxPrivate,
    createdAt: s.createdAt,
  };
}

/**
 * [PLK-1.1] The keys this browser made the first time it opened the page, or new ones: made here,
 * with `extractable: false`, so that no script — the page's own included — can read the private
 * bytes; only their public halves ever leave (as the identity code [PLK-1.5]).
 */
export async function loadOrCreateKeys(store: PageStore): Promise<{ keys: BrowserKeys; created: boolean }> {
  const problem = keyStoreProblem();
  if (problem) throw problem;
  const stored = await store.get(KEYS);
  if (stored !== undefined) {
    if (!isStoredKeys(stored)) throw new WebError('WEB_STORAGE', 'the stored keys are damaged');
    return { keys: fromStored(stored), created: false };
  }
  let sign: CryptoKeyPair;
  let box: CryptoKeyPair;
  try {
    sign = await crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify']);
    box = (await crypto.subtle.generateKey({ name: 'X25519' }, false, ['deriveBits'])) as CryptoKeyPair;
  } catch (err) {
    throw new WebError('WEB_UNSUPPORTED', 'This browser cannot make Ed25519 and X25519 keys (WebCrypto).', {
      cause: err,
    });
  }
  const value: StoredKeys = {
    v: 1,
    signPrivate: sign.privateKey,
    boxPrivate: box.privateKey,
    signPublic: new Uint8Array(await crypto.subtle.exportKey('raw', sign.publicKey)),
    boxPublic: new Uint8Array(await crypto.subtle.exportKey('raw', box.publicKey)),
    createdAt: Date.now(),
  };
  await store.put(KEYS, value);
  return { keys: fromStored(value), created: true };
}

/** Forgets the keys (the parent's "use a new key" button): the gateway must register the new id. */
export async function forgetKeys(store: PageStore): Promise<void> {
  await store.delete(KEYS);
}

/**
 * Builds a signed wire object with the shared layout code and signs it with the WebCrypto key.
 * Every signed object ends with a 64-byte Ed25519 signature over `context || 0x00 || body`, body
 * being every byte before it [PLK-2.3]: `build` runs once with a suite whose `sign` records that
 * message and leaves the slot empty; the page then signs the message and fills the slot.
 * Signatures are deterministic (RFC 8032), so the bytes are those a file key would give.
 */
export async function signWithKeys(
  keys: BrowserKeys,
  context: string,
  build: (signer: { readonly identity: PrivateIdentity; readonly crypto: CryptoSuite }) => Uint8Array,
): Promise<Uint8Array> {
  const messages: Uint8Array<ArrayBuffer>[] = [];
  const deferred: CryptoSuite = {
    ...nacl,
    name: 'webcrypto-deferred',
    signPublicKey() {
      throw new WebError('WEB_SIGN', 'the page has no signing seed');
    },
    sign(_seed, message) {
      messages.push(Uint8Array.from(message));
      return new Uint8Array(SIGNATURE_BYTES);
    },
  };
  // The stand-in secrets are never used: `sign` above ignores them and nothing else reads them.
  const identity: PrivateIdentity = { ...keys.identity, signSeed: ZERO_KEY, boxSecret: ZERO_KEY };
  const bytes = build({ identity, crypto: deferred });
  const message = messages[0];
  const body = bytes.subarray(0, bytes.length - SIGNATURE_BYTES);
  if (messages.length !== 1 || !message || !bytesEqual(message, signedMessage(context, body)))
    throw new WebError('WEB_SIGN', `the ${context} object does not end with its signature`);
  let signature: Uint8Array;
  try {
    signature = new Uint8Array(await crypto.subtle.sign('Ed25519', keys.signKey, message));
  } catch (err) {
    throw new WebError('WEB_SIGN', 'the browser could not sign with the parent key', { cause: err });
  }
  if (!nacl.verify(keys.identity.signPublicKey, message, signature))
    throw new WebError('WEB_SIGN', 'the browser’s signature does not verify with the parent key');
  bytes.set(signature, bytes.length - SIGNATURE_BYTES);
  return bytes;
}

/** X25519(private box key, peer) in WebCrypto; an all-zero (low-order) result is PLK_E_DECRYPT. */
async function x25519(keys: BrowserKeys, peer: Uint8Array): Promise<Uint8Array> {
  try {
    const pub = await crypto.subtle.importKey('raw', Uint8Array.from(peer), { name: 'X25519' }, true, []);
    return new Uint8Array(await crypto.subtle.deriveBits({ name: 'X25519', public: pub }, keys.boxKey, 256));
  } catch (err) {
    throw new PlushlinkError('PLK_E_DECRYPT', 'X25519 with this sealed key failed', { cause: err });
  }
}

/**
 * [PLK-5.6] Opens a clip addressed to this page: decode, sender as expected, signature verified
 * (all before any private-key operation), our recipient entry, the content key unsealed with the
 * WebCrypto X25519 key, the body decrypted and unpadded. Throws PlushlinkError like openClip.
 */
export async function openClipWithKeys(
  keys: BrowserKeys,
  bytes: Uint8Array,
  sender: PublicIdentity,
): Promise<OpenedClip> {
  const clip = decodeClip(bytes);
  if (clip.header.sender !== sender.id)
    throw new PlushlinkError(
      'PLK_E_WRONG_ENDPOINT',
      `clip is from ${clip.header.sender}, expected ${sender.id}`,
    );
  verifyClip(clip, sender.signPublicKey, nacl);
  const entry = clip.header.recipients.find((r) => r.id === keys.identity.id);
  if (!entry) throw new PlushlinkError('PLK_E_NOT_RECIPIENT', keys.identity.id);
  // [PLK-5.3] crypto_box_seal_open: the DH with the ephemeral key is the one private-key step.
  const ephemeral = entry.sealedKey.subarray(0, KEY_BYTES);
  const shared = await x25519(keys, ephemeral);
  const once: CryptoSuite = {
    ...nacl,
    x25519(_secret, publicKey) {
      if (!bytesEqual(publicKey, ephemeral)) throw new PlushlinkError('PLK_E_DECRYPT', 'unexpected key');
      return shared;
    },
  };
  const contentKey = sealedBoxOpen(once, entry.sealedKey, keys.identity.boxPublicKey, ZERO_KEY);
  shared.fill(0);
  if (contentKey.length !== KEY_BYTES)
    throw new PlushlinkError('PLK_E_DECRYPT', 'content key has the wrong size');
  const padded = secretboxOpen(clip.body, clip.header.bodyNonce, contentKey);
  contentKey.fill(0);
  return { header: clip.header, ogg: unpad(padded) };
}
