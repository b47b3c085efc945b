// Family roster: the gateway-signed list of an endpoint's family members, so that toys seal to the current parents [PLK-4.6].
import { assertBytes, ByteReader, ByteWriter, bytesEqual } from './bytes.ts';
import { type CryptoSuite, defaultCrypto } from './crypto.ts';
import { PlushlinkError } from './errors.ts';
import {
  deriveEndpointId,
  idFromBytes,
  idToBytes,
  type PrivateIdentity,
  type PublicIdentity,
} from './identity.ts';
import { CONTEXT, ID_BYTES, KEY_BYTES, LIMITS, MSG, PROTOCOL_VERSION, SIGNATURE_BYTES } from './limits.ts';
import { signBody, verifyBody } from './signed.ts';
import type { EndpointId } from './types.ts';

/** [PLK-4.6] Most members in one roster (16 toys and 16 parents). */
export const MAX_ROSTER_MEMBERS = 32;
const MEMBER_BYTES = 1 + ID_BYTES + KEY_BYTES + KEY_BYTES; // 85
const HEAD_BYTES = 1 + 1 + ID_BYTES + 8 + 8 + 1; // 39
const ROLE_CODE = { toy: 1, parent: 2 } as const;

export type RosterRole = keyof typeof ROLE_CODE;

export interface RosterMemberInfo extends PublicIdentity {
  readonly role: RosterRole;
}

export interface SignedRoster {
  readonly gatewayId: EndpointId;
  /** Increasing: an endpoint ignores a roster older than the one it holds. */
  readonly version: number;
  readonly issuedAt: number;
  readonly members: readonly RosterMemberInfo[];
  readonly body: Uint8Array;
  readonly signature: Uint8Array;
}

/** Largest roster in bytes. */
export const MAX_ROSTER_BYTES = HEAD_BYTES + MAX_ROSTER_MEMBERS * MEMBER_BYTES + SIGNATURE_BYTES;

function checkInt(v: number, field: string): void {
  if (!Number.isSafeInteger(v) || v < 0 || v > LIMITS.maxTimestampMs)
    throw new PlushlinkError('PLK_E_FIELD', `${field} must be an integer in [0, 2^53 − 1]`);
}

/** [PLK-4.6] The gateway signs the family's non-revoked members (ordered by id). */
export function createRoster(opts: {
  gateway: PrivateIdentity;
  version: number;
  issuedAt: number;
  members: readonly PublicIdentity[];
  crypto?: CryptoSuite;
}): Uint8Array {
  checkInt(opts.version, 'version');
  checkInt(opts.issuedAt, 'issuedAt');
  const n = opts.members.length;
  if (n < 1 || n > MAX_ROSTER_MEMBERS)
    throw new PlushlinkError('PLK_E_LIMIT', `roster members must number 1..${MAX_ROSTER_MEMBERS}, got ${n}`);
  const members = [...opts.members].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const w = new ByteWriter(HEAD_BYTES + n * MEMBER_BYTES + SIGNATURE_BYTES);
  w.u8(MSG.ROSTER).u8(PROTOCOL_VERSION).raw(idToBytes(opts.gateway.id)).u64(opts.version).u64(opts.issuedAt);
  w.u8(n);
  let last = '';
  for (const m of members) {
    if (m.role !== 'toy' && m.role !== 'parent')
      throw new PlushlinkError('PLK_E_FIELD', `roster member role ${String(m.role)}`);
    if (m.id === last) throw new PlushlinkError('PLK_E_FIELD', 'duplicate roster member');
    last = m.id;
    assertBytes(m.signPublicKey, 'signPublicKey', KEY_BYTES);
    assertBytes(m.boxPublicKey, 'boxPublicKey', KEY_BYTES);
    w.u8(ROLE_CODE[m.role]).raw(idToBytes(m.id)).raw(m.signPublicKey).raw(m.boxPublicKey);
  }
  const body = w.bytes.subarray(0, w.offset);
  w.raw(signBody(opts.crypto ?? defaultCrypto(), opts.gateway.signSeed, CONTEXT.ROSTER, body));
  return w.bytes;
}

/** [PLK-4.6] Structural decode within limits (ids must derive from their keys, ordered, unique). */
export function decodeRoster(bytes: Uint8Array): SignedRoster {
  if (!(bytes instanceof Uint8Array)) throw new PlushlinkError('PLK_E_TYPE', 'roster must be bytes');
  if (bytes.length > MAX_ROSTER_BYTES)
    throw new PlushlinkError('PLK_E_LIMIT', `roster is ${bytes.length} bytes, max ${MAX_ROSTER_BYTES}`);
  const r = new ByteReader(bytes);
  const type = r.u8('type');
  if (type !== MSG.ROSTER) throw new PlushlinkError('PLK_E_MSG_TYPE', `roster: got 0x${type.toString(16)}`);
  const version = r.u8('version');
  if (version !== PROTOCOL_VERSION) throw new PlushlinkError('PLK_E_VERSION', `roster version ${version}`);
  const gatewayId = idFromBytes(r.raw(ID_BYTES, 'gateway id'));
  const rosterVersion = r.u64('roster version');
  const issuedAt = r.u64('issued at');
  if (issuedAt > LIMITS.maxTimestampMs) throw new PlushlinkError('PLK_E_FIELD', 'issued at out of range');
  const n = r.u8('member count');
  if (n < 1 || n > MAX_ROSTER_MEMBERS) throw new PlushlinkError('PLK_E_LIMIT', `roster member count ${n}`);
  const members: RosterMemberInfo[] = [];
  let last = '';
  for (let i = 0; i < n; i++) {
    const code = r.u8('member role');
    const role: RosterRole | undefined = code === 1 ? 'toy' : code === 2 ? 'parent' : undefined;
    if (!role) throw new PlushlinkError('PLK_E_FIELD', `roster member role ${code}`);
    const id = idFromBytes(r.raw(ID_BYTES, 'member id'));
    const signPublicKey = r.raw(KEY_BYTES, 'member signing key');
    const boxPublicKey = r.raw(KEY_BYTES, 'member box key');
    if (id <= last)
      throw new PlushlinkError('PLK_E_FIELD', 'roster members must be unique and ordered by id');
    last = id;
    if (deriveEndpointId(signPublicKey) !== id) throw new PlushlinkError('PLK_E_ID_MISMATCH', id);
    members.push({ role, id, signPublicKey, boxPublicKey });
  }
  const bodyEnd = r.offset;
  const signature = r.raw(SIGNATURE_BYTES, 'signature');
  r.end('roster');
  return {
    gatewayId,
    version: rosterVersion,
    issuedAt,
    members,
    body: bytes.subarray(0, bodyEnd),
    signature,
  };
}

/**
 * [PLK-4.6] What an endpoint checks before it adopts a roster: signed by its pinned gateway,
 * listing the endpoint itself. (The version check against the roster it holds is the caller's.)
 */
export function verifyRoster(
  bytes: Uint8Array,
  opts: { gateway: PublicIdentity; endpointId: EndpointId; crypto?: CryptoSuite },
): SignedRoster {
  const roster = decodeRoster(bytes);
  if (roster.gatewayId !== opts.gateway.id) throw new PlushlinkError('PLK_E_WRONG_GATEWAY');
  verifyBody(
    opts.crypto ?? defaultCrypto(),
    opts.gateway.signPublicKey,
    CONTEXT.ROSTER,
    roster.body,
    roster.signature,
    'roster',
  );
  if (!roster.members.some((m) => m.id === opts.endpointId))
    throw new PlushlinkError('PLK_E_WRONG_ENDPOINT', 'the roster does not list this endpoint');
  return roster;
}

/** True when two member lists hold the same ids with the same keys. */
export function sameMembers(a: readonly PublicIdentity[], b: readonly PublicIdentity[]): boolean {
  if (a.length !== b.length) return false;
  const byId = new Map(b.map((m) => [m.id, m]));
  return a.every((m) => {
    const o = byId.get(m.id);
    return (
      o !== undefined &&
      bytesEqual(o.signPublicKey, m.signPublicKey) &&
      bytesEqual(o.boxPublicKey, m.boxPublicKey)
    );
  });
}
