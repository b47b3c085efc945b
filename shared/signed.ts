// Signature framing shared by every signed wire object: Ed25519 over context || 0x00 || body [PLK-2.3].
import { assertBytes, concatBytes, utf8 } from './bytes.ts';
import type { CryptoSuite } from './crypto.ts';
import { PlushlinkError } from './errors.ts';
import { SIGNATURE_BYTES } from './limits.ts';

const prefixes = new Map<string, Uint8Array>();
function prefix(context: string): Uint8Array {
  let p = prefixes.get(context);
  if (!p) {
    p = utf8(`${context}\0`);
    prefixes.set(context, p);
  }
  return p;
}

/** The exact bytes an Ed25519 signature covers [PLK-2.3]. */
export function signedMessage(context: string, body: Uint8Array): Uint8Array {
  return concatBytes(prefix(context), body);
}

/**
 * The signed bytes for one verification at a time, in a reused buffer: verification is synchronous
 * and keeps nothing, so an 18.7 kB envelope needs no fresh 18.7 kB copy per check (each one memory
 * outside V8's heap that brings its next mark-compact closer). Only wire bytes pass through it.
 */
let scratch = new Uint8Array(0);
const SCRATCH_MAX = 256 * 1024;
function signedView(context: string, body: Uint8Array): Uint8Array {
  const p = prefix(context);
  const n = p.length + body.length;
  if (n > SCRATCH_MAX) return concatBytes(p, body);
  if (scratch.length < n) scratch = new Uint8Array(Math.max(n, 32 * 1024));
  scratch.set(p, 0);
  scratch.set(body, p.length);
  return scratch.subarray(0, n);
}

export function signBody(
  crypto: CryptoSuite,
  seed: Uint8Array,
  context: string,
  body: Uint8Array,
): Uint8Array {
  return crypto.sign(seed, signedMessage(context, body));
}

/** Verifies `signature` over `body`; throws PLK_E_BAD_SIGNATURE when it does not verify. */
export function verifyBody(
  crypto: CryptoSuite,
  publicKey: Uint8Array,
  context: string,
  body: Uint8Array,
  signature: Uint8Array,
  what: string,
): void {
  assertBytes(publicKey, `${what} public key`);
  assertBytes(signature, `${what} signature`);
  if (
    signature.length !== SIGNATURE_BYTES ||
    !crypto.verify(publicKey, signedView(context, body), signature)
  ) {
    throw new PlushlinkError('PLK_E_BAD_SIGNATURE', what);
  }
}
