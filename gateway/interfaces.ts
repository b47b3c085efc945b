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

/**
 * A change of the registry that running gateways must act on at once [PLK-12.7]: a revoked or
 * erased endpoint loses its session, a family whose members changed gets a new roster.
 */
export interface RegistryChange {
  /** Increasing: a gateway tails the changes after the last one it has seen. */
  readonly seq: number;
  readonly kind: 'revoked' | 'erased' | 'member-added';
  readonly endpoint: EndpointId;
  /** The endpoint's family (null for an erased one: erasure keeps no family data). */
  readonly family: FamilyId | null;
  readonly at: number;
}

/** What a receipt did: marked a pending delivery, repeated an earlier receipt, or named no delivery of this recipient. */
export type DeliveryMark = 'delivered' | 'already' | 'unknown';

/** A stored connect-token nonce [PLK-3.5]. */
export interface StoredNonce {
  readonly key: string;
  readonly endpoint: EndpointId;
  readonly expiresAt: number;
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

/** [PLK-12.9] `acceptClip`'s decision, known before the write: `new` means it would be stored. */
export type ClipVerdict = 'new' | 'retransmit' | 'duplicate' | 'replay';

export interface AcceptOptions {
  /**
   * [PLK-12.9] Recipients whose receipt arrived while the clip was in transit (forwarded before
   * its commit): no pending delivery is stored for them. When that is every recipient, the body is
   * not stored at all — only the clip id and sequence number (PLK-8.1, PLK-8.2). Each must be one
   * of the recipients. Only stores that offer `clipVerdict` accept it.
   */
  readonly receipted?: readonly EndpointId[];
  /**
   * [PLK-12.9] A hint: the write need not start a commit of its own, but may join the next one
   * another write asks for (the embedded SQLite store waits at most 20 ms). Durable, as ever, when
   * the promise resolves. For a clip whose recipients already have it, so the PUBACK can wait.
   */
  readonly lazy?: boolean;
}

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
  /**
   * Marks revoked (the row is kept) and leaves a tombstone, so the id can never be registered
   * again [PLK-12.5]; records a `revoked` registry change. False when unknown.
   */
  revokeEndpoint(id: EndpointId, now: number): Promise<boolean>;
  /** True when `id` was revoked or erased: registering it again is refused (STORE_TOMBSTONED). */
  isTombstoned(id: EndpointId): Promise<boolean>;

  createFamily(id: FamilyId, now: number): Promise<void>;
  /** An endpoint belongs to at most one family; adding it to a second one throws. Records `member-added`. */
  addFamilyMember(family: FamilyId, endpoint: EndpointId, now: number): Promise<void>;
  familyMembers(family: FamilyId): Promise<EndpointRecord[]>;
  listFamilies(): Promise<{ id: FamilyId; members: number }[]>;
  /**
   * Erases every trace of the family: its members' clips (sent or addressed to them),
   * deliveries, sequence numbers, the members' registry rows and the family itself. Each member
   * id stays as a tombstone (the id only: no key, no family, no time of its own) and an `erased`
   * registry change.
   */
  eraseFamily(family: FamilyId, now: number): Promise<{ clips: number; endpoints: number }>;
  /** Registry changes with seq > `after`, oldest first, at most `limit` [PLK-12.7]. */
  registryChanges(after: number, limit: number): Promise<RegistryChange[]>;
  /** The seq of the newest registry change (0 when none). */
  latestRegistryChange(): Promise<number>;

  /** Highest accepted sequence number for a sender, 0 when none (survives restarts) [PLK-8.1]. */
  lastSequence(sender: EndpointId): Promise<number>;
  /**
   * Atomically: a clip accepted before (same sender, clip id and sequence, within the retention
   * period, even if since delivered) is a `retransmit`; otherwise refuses unless clip.sequence >
   * lastSequence(sender); stores the clip and one pending delivery per recipient; advances the
   * sequence. Durable when the promise resolves (the gateway sends PUBACK only after that).
   */
  acceptClip(
    clip: ClipRecord,
    recipients: readonly EndpointId[],
    opts?: AcceptOptions,
  ): Promise<AcceptResult>;
  /**
   * [PLK-12.9] What `acceptClip` would decide for this clip now, from committed state alone (writes
   * still queued are not seen: the caller accounts for its own). Synchronous and read-only. Offered
   * only by stores whose clips are written by this process (embedded SQLite, memory); a store
   * shared by several gateways leaves it out, and its clips are never forwarded before the commit.
   */
  clipVerdict?(sender: EndpointId, clipId: string, sequence: number): ClipVerdict;
  /** Undelivered clips for a recipient, oldest first. */
  pendingFor(recipient: EndpointId, limit: number): Promise<PendingDelivery[]>;
  /**
   * Records a receipt [PLK-6.2]; deletes the clip once every recipient has receipted. `already`:
   * this recipient receipted it before (or the clip is gone after every delivery, its id still
   * remembered); `unknown`: no delivery of this clip to this recipient exists.
   */
  markDelivered(recipient: EndpointId, sender: EndpointId, clipId: string, at: number): Promise<DeliveryMark>;
  /**
   * [PLK-12.4] Moves a pending delivery aside (a recipient that cannot open the clip, or a clip
   * delivered too often without a receipt) so that it never blocks the recipient's backlog;
   * deletes the clip when nothing else is pending. False when no such pending delivery exists.
   */
  setAside(recipient: EndpointId, sender: EndpointId, clipId: string, at: number): Promise<boolean>;
  /**
   * Retention: deletes clips received before `before` that are still undelivered, and forgets
   * accepted clip ids that old (kept to recognise retransmissions); returns the count of clips.
   */
  expireUndelivered(before: number): Promise<number>;
  /** Number of pending (undelivered) deliveries. */
  backlog(): Promise<number>;
  /**
   * [PLK-3.5] Connect-token nonces, durable before the connection is accepted, so that a token
   * captured before a restart (clean or SIGKILL) cannot be replayed after it.
   */
  recordNonce(nonce: StoredNonce): Promise<void>;
  /** Nonces that have not expired at `now` (a restarting gateway loads them); expired ones are dropped. */
  loadNonces(now: number): Promise<StoredNonce[]>;
  /** Facts about this data directory (e.g. `gateway_id`: the identity the data belongs to). */
  getMeta(key: string): Promise<string | undefined>;
  setMeta(key: string, value: string): Promise<void>;
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

/**
 * fresh: recorded now (durably, where the store persists); replay: seen and unexpired; quota: the
 * endpoint already holds its quota of unexpired nonces; full: no room, refused (fail closed).
 */
export type NonceOutcome = 'fresh' | 'replay' | 'quota' | 'full';

/** Connect-token nonce replay cache [PLK-3.5]. */
export interface NonceStore {
  /** Records `key` of `endpoint` until `expiresAt`; resolves only once it is recorded. */
  add(key: string, endpoint: string, expiresAt: number, now: number): Promise<NonceOutcome>;
}

/**
 * What a gateway node shares with the other nodes of a cluster beyond the store (gateway/cluster/):
 * Aedes' pub/sub (`mq`, e.g. mqemitter-redis) and persistence (e.g. aedes-persistence-redis), so
 * MQTT sessions and publishes cross nodes; a broker id unique to this node and run (Aedes
 * de-duplicates deliveries per broker id and counter); and a signal when the bus may have
 * lost deliveries, after which every local inbox's backlog is sent again [PLK-12.4].
 */
export interface ClusterBroker {
  readonly brokerId: string;
  /** Aedes' `mq` option (an MQEmitter). */
  readonly mq: unknown;
  /** Aedes' `persistence` option (Aedes' in-memory default when absent). */
  readonly persistence?: unknown;
  /**
   * Registers what to run whenever live deliveries may have been lost in transit: the shared bus
   * reconnected after an outage, or another node vanished (crashed) between a PUBACK and its forward.
   */
  onDeliveryGap(listener: () => void): void;
}
