// Seams of the gateway: everything gateway nodes would have to share sits behind these interfaces [PLK-12].
import type { Brand, EndpointId } from '../shared/types.ts';

/** Pseudonymous family id: "f" + 26 lowercase base32 chars of 16 random bytes. Never a name. */
export type FamilyId = Brand<string, 'FamilyId'>;
export type EndpointRole = 'toy' | 'parent';

export interface EndpointRecord {
  readonly id: EndpointId;
  readonly role: EndpointRole;
  readonly signPublicKey: Uint8Array;
  readonly boxPublicKey: Uint8Array;
  readonly familyId: FamilyId | null;
  readonly revoked: boolean;
  readonly createdAt: number;
}

export type NewEndpoint = Omit<EndpointRecord, 'familyId' | 'revoked'>;

/** An accepted envelope as stored: ciphertext plus the pseudonymous header fields routing needs. */
export interface ClipRecord {
  readonly sender: EndpointId;
  /** Hex of the 16-byte clip id. */
  readonly clipId: string;
  readonly sequence: number;
  readonly createdAt: number;
  readonly receivedAt: number;
  /** The whole envelope exactly as received (signed, encrypted). */
  readonly envelope: Uint8Array;
}

export interface PendingDelivery {
  readonly recipient: EndpointId;
  readonly sender: EndpointId;
  readonly clipId: string;
  readonly receivedAt: number;
  readonly envelope: Uint8Array;
}

/**
 * `retransmit`: this exact clip (sender, clip id, sequence) was accepted before — it is durable,
 * so the gateway acknowledges it again and stores nothing (a QoS 1 resend after a lost PUBACK)
 * [PLK-8.2]. `duplicate`: the clip id was used before with another sequence number.
 */
export type AcceptResult =
  | { readonly ok: true; readonly retransmit?: true }
  | { readonly ok: false; readonly reason: 'replay' | 'duplicate' };

/**
 * Registry, clips, deliveries and per-sender sequence numbers. Every method is async so that a
 * shared implementation (PostgreSQL, Redis, ...) can stand in for the embedded SQLite one. One
 * contract test suite (test/gateway/store.contract.ts) runs against every implementation.
 */
export interface GatewayStore {
  addEndpoint(rec: NewEndpoint): Promise<void>;
  /** Registers many endpoints at once, all or nothing (fleet provisioning). */
  addEndpoints(recs: readonly NewEndpoint[]): Promise<void>;
  getEndpoint(id: EndpointId): Promise<EndpointRecord | undefined>;
  listEndpoints(): Promise<EndpointRecord[]>;
  /** Marks revoked (kept so the id can never be re-registered); false when unknown. */
  revokeEndpoint(id: EndpointId): Promise<boolean>;

  createFamily(id: FamilyId, now: number): Promise<void>;
  /** An endpoint belongs to at most one family; adding it to a second one throws. */
  addFamilyMember(family: FamilyId, endpoint: EndpointId): Promise<void>;
  familyMembers(family: FamilyId): Promise<EndpointRecord[]>;
  listFamilies(): Promise<{ id: FamilyId; members: number }[]>;
  /**
   * Erases every trace of the family: its members' clips (sent or addressed to them),
   * deliveries, sequence numbers, the members' registry rows and the family itself.
   */
  eraseFamily(family: FamilyId): Promise<{ clips: number; endpoints: number }>;

  /** Highest accepted sequence number for a sender, 0 when none (survives restarts) [PLK-8.1]. */
  lastSequence(sender: EndpointId): Promise<number>;
  /**
   * Atomically: a clip accepted before (same sender, clip id and sequence, within the retention
   * period, even if since delivered) is a `retransmit`; otherwise refuses unless clip.sequence >
   * lastSequence(sender); stores the clip and one pending delivery per recipient; advances the
   * sequence. Durable when the promise resolves (the gateway sends PUBACK only after that).
   */
  acceptClip(clip: ClipRecord, recipients: readonly EndpointId[]): Promise<AcceptResult>;
  /** Undelivered clips for a recipient, oldest first. */
  pendingFor(recipient: EndpointId, limit: number): Promise<PendingDelivery[]>;
  /** Records a receipt; deletes the clip once every recipient has receipted. False when unknown. */
  markDelivered(recipient: EndpointId, sender: EndpointId, clipId: string, at: number): Promise<boolean>;
  /**
   * Retention: deletes clips received before `before` that are still undelivered, and forgets
   * accepted clip ids that old (kept to recognise retransmissions); returns the count of clips.
   */
  expireUndelivered(before: number): Promise<number>;
  /** Number of pending (undelivered) deliveries. */
  backlog(): Promise<number>;
  /** Consistent online backup to `path`. */
  backup(path: string): Promise<void>;
  close(): Promise<void>;
}

export interface AuditEvent {
  readonly at: number;
  /** e.g. auth.refused, clip.refused, clip.accepted, endpoint.provisioned, family.erased. */
  readonly kind: string;
  readonly endpoint?: EndpointId | undefined;
  /** Reasons, codes, counts — never key material, never plaintext. */
  readonly detail?: Readonly<Record<string, string | number | boolean>> | undefined;
}

export interface AuditVerifyResult {
  readonly ok: boolean;
  readonly rows: number;
  /** Sequence number of the first row that fails, when not ok. */
  readonly firstBadRow?: number;
  readonly reason?: string;
}

/** Append-only, hash-chained audit log [PLK-12.2]. */
export interface AuditLog {
  append(event: AuditEvent): Promise<void>;
  verify(): Promise<AuditVerifyResult>;
  close(): Promise<void>;
}

/** Token-bucket rate limiting by key (source address, endpoint id, ...). */
export interface RateLimiter {
  /** Takes `cost` tokens from `key`'s bucket; false when not enough are left. */
  take(key: string, cost: number, now: number): Promise<boolean>;
}

/** fresh: recorded now; replay: seen and unexpired; full: no room, refused (fail closed). */
export type NonceOutcome = 'fresh' | 'replay' | 'full';

/** Connect-token nonce replay cache [PLK-3.5]. */
export interface NonceStore {
  /** Records `key` until `expiresAt`: `fresh`, or `replay` when present, or `full` (refused: fail closed). */
  add(key: string, expiresAt: number, now: number): Promise<NonceOutcome>;
}
