// Identity codes: an endpoint's role and public keys as one line to copy, for registering a key pair made where it lives (the browser page) [PLK-1.5].
import { fromBase64Url, toBase64Url } from './base64url.ts';
import { bytesEqual, concatBytes, utf8 } from './bytes.ts';
import { sha256 } from './crypto.ts';
import { PlushlinkError } from './errors.ts';
import { deriveEndpointId, type PublicIdentity } from './identity.ts';
import { KEY_BYTES } from './limits.ts';
import type { Role } from './types.ts';

/** [PLK-1.5] Every identity code starts with this. */
export const IDENTITY_CODE_PREFIX = 'plkid1.';
/** [PLK-1.5] Role byte, as in the roster [PLK-4.6]. */
const ROLE_BYTE: Readonly<Record<'toy' | 'parent', number>> = { toy: 1, parent: 2 };
const CHECK_BYTES = 5;
const CHECK_PREFIX = utf8('plushlink/v1/identity-code\0');

/** [PLK-1.5] The check: the first 5 bytes of SHA-256(context ‖ 0x00 ‖ role ‖ both public keys). */
function check(head: Uint8Array): Uint8Array {
  return sha256(concatBytes(CHECK_PREFIX, head)).subarray(0, CHECK_BYTES);
}
const CODE_BYTES = 1 + KEY_BYTES + KEY_BYTES + CHECK_BYTES; // 70
/** Length of an identity code: the prefix and 94 base64url characters. */
export const IDENTITY_CODE_CHARS = IDENTITY_CODE_PREFIX.length + Math.ceil((CODE_BYTES * 4) / 3);

/**
 * [PLK-1.5] `plkid1.` ‖ base64url(role ‖ Ed25519 public key ‖ X25519 public key ‖ check). Public
 * values only: it is safe to show, copy and paste. The check catches a code mangled in transit.
 */
export function identityCode(identity: PublicIdentity): string {
  if (identity.role !== 'toy' && identity.role !== 'parent')
    throw new PlushlinkError('PLK_E_FIELD', `identity codes are for toys and parents, not ${identity.role}`);
  const head = concatBytes(
    Uint8Array.of(ROLE_BYTE[identity.role]),
    identity.signPublicKey,
    identity.boxPublicKey,
  );
  return `${IDENTITY_CODE_PREFIX}${toBase64Url(concatBytes(head, check(head)))}`;
}

/** True when `text` has the shape of an identity code (not that it is valid). */
export function looksLikeIdentityCode(text: string): boolean {
  return typeof text === 'string' && text.startsWith(IDENTITY_CODE_PREFIX);
}

/**
 * [PLK-1.5] Parses an identity code; its role must be `role` (the one it is registered as), and
 * its check must match (PLK_E_ID_MISMATCH otherwise). The id is derived from the signing key.
 */
export function parseIdentityCode(code: string, role: 'toy' | 'parent'): PublicIdentity {
  if (typeof code !== 'string') throw new PlushlinkError('PLK_E_TYPE', 'identity code must be a string');
  const text = code.trim();
  if (!looksLikeIdentityCode(text) || text.length !== IDENTITY_CODE_CHARS)
    throw new PlushlinkError(
      'PLK_E_FIELD',
      `an identity code is "${IDENTITY_CODE_PREFIX}" and ${IDENTITY_CODE_CHARS - IDENTITY_CODE_PREFIX.length} base64url characters`,
    );
  const raw = fromBase64Url(text.slice(IDENTITY_CODE_PREFIX.length), 'identity code');
  if (raw.length !== CODE_BYTES)
    throw new PlushlinkError('PLK_E_FIELD', 'identity code has the wrong length');
  const roleByte = raw[0]!;
  const codeRole: Role | undefined = roleByte === 1 ? 'toy' : roleByte === 2 ? 'parent' : undefined;
  if (codeRole === undefined) throw new PlushlinkError('PLK_E_FIELD', `identity code role byte ${roleByte}`);
  if (codeRole !== role)
    throw new PlushlinkError('PLK_E_FIELD', `the identity code is a ${codeRole}'s, not a ${role}'s`);
  const signPublicKey = raw.slice(1, 1 + KEY_BYTES);
  const boxPublicKey = raw.slice(1 + KEY_BYTES, 1 + 2 * KEY_BYTES);
  if (!bytesEqual(check(raw.subarray(0, 1 + 2 * KEY_BYTES)), raw.subarray(1 + 2 * KEY_BYTES)))
    throw new PlushlinkError('PLK_E_ID_MISMATCH', 'the identity code was changed or mistyped');
  return { role: codeRole, id: deriveEndpointId(signPublicKey), signPublicKey, boxPublicKey };
}
