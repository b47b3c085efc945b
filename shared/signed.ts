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
    !crypto.verify(publicKey, signedMessage(context, body), signature)
  ) {
    throw new PlushlinkError('PLK_E_BAD_SIGNATURE', what);
  }
}
