// Store helpers shared by every GatewayStore: typed store errors and input validation at the boundary [PLK-1][PLK-12].

import { CodedError } from '../../shared/errors.ts';
import { deriveEndpointId, isEndpointId } from '../../shared/identity.ts';
import { KEY_BYTES } from '../../shared/limits.ts';
import type { EndpointId } from '../../shared/types.ts';
import type { ClipRecord, EndpointRole, FamilyId, NewEndpoint } from '../interfaces.ts';

export type StoreErrorCode =
  | 'STORE_UNKNOWN_FAMILY'
  | 'STORE_UNKNOWN_ENDPOINT'
  | 'STORE_ENDPOINT_EXISTS'
  | 'STORE_FAMILY_EXISTS'
  | 'STORE_OTHER_FAMILY'
  | 'STORE_REVOKED'
  | 'STORE_TOMBSTONED'
  | 'STORE_CLOSED'
  | 'STORE_SYNC_FAILED'
  /** PostgreSQL store: the database did not answer or the write's commit did not come back (nothing acknowledged). */
  | 'STORE_UNAVAILABLE'
  /** PostgreSQL store: the server would not make commits durable (fsync or synchronous_commit off). */
  | 'STORE_NOT_DURABLE'
  /** The database schema is newer than this code, or belongs to another gateway. */
  | 'STORE_SCHEMA';

/** A refused store operation (not a bug): stable code, one-line message. */
export class StoreError extends CodedError<StoreErrorCode> {}

const FAMILY_RE = /^f[a-z2-7]{26}$/;

/** "f" + 26 lowercase base32 characters (16 random bytes): pseudonymous, never a name. */
export function isFamilyId(value: unknown): value is FamilyId {
  return typeof value === 'string' && FAMILY_RE.test(value);
}

export function parseFamilyId(value: unknown, field = 'family'): FamilyId {
  if (!isFamilyId(value))
    throw new TypeError(`${field} is not a PlushLink family id ("f" + 26 base32 chars)`);
  return value;
}

export function checkEndpointId(value: unknown, field = 'endpoint'): EndpointId {
  if (!isEndpointId(value)) throw new TypeError(`${field} is not a PlushLink endpoint id`);
  return value;
}

const ROLES: readonly EndpointRole[] = ['toy', 'parent'];

export function checkRole(value: unknown): EndpointRole {
  if (typeof value !== 'string' || !ROLES.includes(value as EndpointRole)) {
    throw new TypeError(`role must be one of ${ROLES.join(', ')}`);
  }
  return value as EndpointRole;
}

export function checkNonceKey(value: unknown): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > 200)
    throw new TypeError('nonce key must be a string of 1..200 characters');
  return value;
}

function checkTime(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`${field} must be a non-negative integer (ms), got ${String(value)}`);
  }
  return value;
}

function checkKey(value: unknown, field: string): Uint8Array {
  if (!(value instanceof Uint8Array)) throw new TypeError(`${field} must be a Uint8Array`);
  if (value.length !== KEY_BYTES)
    throw new RangeError(`${field} must be ${KEY_BYTES} bytes, got ${value.length}`);
  return value;
}

/** Checks a registration: valid role, 32-byte keys, and an id that derives from the signing key [PLK-1.2]. */
export function checkNewEndpoint(rec: NewEndpoint): void {
  if (!rec || typeof rec !== 'object') throw new TypeError('endpoint record must be an object');
  checkEndpointId(rec.id, 'id');
  checkRole(rec.role);
  checkKey(rec.signPublicKey, 'signPublicKey');
  checkKey(rec.boxPublicKey, 'boxPublicKey');
  checkTime(rec.createdAt, 'createdAt');
  if (deriveEndpointId(rec.signPublicKey) !== rec.id) {
    throw new RangeError('id does not derive from signPublicKey [PLK-1.2]');
  }
}

const CLIP_ID_RE = /^[0-9a-f]{32}$/;

export function checkClipId(value: unknown): string {
  if (typeof value !== 'string' || !CLIP_ID_RE.test(value)) {
    throw new TypeError('clipId must be 32 lowercase hex characters (16 bytes)');
  }
  return value;
}

export function checkClip(clip: ClipRecord, recipients: readonly EndpointId[]): void {
  if (!clip || typeof clip !== 'object') throw new TypeError('clip must be an object');
  checkEndpointId(clip.sender, 'sender');
  checkClipId(clip.clipId);
  if (!Number.isSafeInteger(clip.sequence) || clip.sequence < 0) {
    throw new RangeError(`sequence must be a non-negative safe integer, got ${String(clip.sequence)}`);
  }
  checkTime(clip.createdAt, 'createdAt');
  checkTime(clip.receivedAt, 'receivedAt');
  if (!(clip.envelope instanceof Uint8Array)) throw new TypeError('envelope must be a Uint8Array');
  if (!Array.isArray(recipients) || recipients.length < 1)
    throw new RangeError('a clip needs at least one recipient');
  const seen = new Set<string>();
  for (const r of recipients) {
    checkEndpointId(r, 'recipient');
    if (seen.has(r)) throw new RangeError('duplicate recipient');
    seen.add(r);
  }
}

/** [PLK-12.9] The recipients receipted in transit: distinct, each one of `recipients`. */
export function checkReceipted(recipients: readonly EndpointId[], receipted: readonly EndpointId[]): void {
  if (!Array.isArray(receipted)) throw new TypeError('receipted must be an array');
  const seen = new Set<string>();
  for (const r of receipted) {
    if (!recipients.includes(r)) throw new RangeError('a receipted recipient is not a recipient of the clip');
    if (seen.has(r)) throw new RangeError('duplicate receipted recipient');
    seen.add(r);
  }
}

export function checkLimit(limit: unknown): number {
  if (typeof limit !== 'number' || !Number.isSafeInteger(limit) || limit < 1) {
    throw new RangeError(`limit must be a positive integer, got ${String(limit)}`);
  }
  return limit;
}

export { checkTime };
