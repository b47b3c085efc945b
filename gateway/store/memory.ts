// In-memory GatewayStore for tests and simulations: same contract as the SQLite store, nothing durable [PLK-12].
import { open } from 'node:fs/promises';
import { toHex } from '../../shared/bytes.ts';
import type { EndpointId } from '../../shared/types.ts';
import type {
  AcceptOptions,
  AcceptResult,
  ClipRecord,
  ClipVerdict,
  DeliveryMark,
  EndpointRecord,
  FamilyId,
  GatewayStore,
  NewEndpoint,
  PendingDelivery,
  RegistryChange,
  StoredNonce,
} from '../interfaces.ts';
import {
  checkClip,
  checkClipId,
  checkEndpointId,
  checkLimit,
  checkNewEndpoint,
  checkNonceKey,
  checkReceipted,
  checkTime,
  parseFamilyId,
  StoreError,
} from './common.ts';

interface StoredClip {
  readonly clip: ClipRecord;
  /** recipient → delivered_at (null while pending); insertion order = acceptance order. */
  readonly deliveries: Map<EndpointId, number | null>;
}

const clipKey = (sender: string, clipId: string): string => `${sender}/${clipId}`;

/** Keeps copies of every byte array it is given or returns, like a real store would. */
const copy = (b: Uint8Array): Uint8Array => new Uint8Array(b);

export class MemoryStore implements GatewayStore {
  private readonly endpoints = new Map<EndpointId, EndpointRecord>();
  private readonly families = new Map<FamilyId, number>();
  /** Insertion order of the Map = acceptance order (pendingFor is oldest first). */
  private readonly clips = new Map<string, StoredClip>();
  private readonly sequences = new Map<EndpointId, number>();
  /** [PLK-8.2] accepted clip ids (key → sequence, received at), kept until retention. */
  private readonly accepted = new Map<string, { sender: EndpointId; sequence: number; receivedAt: number }>();
  private readonly tombstones = new Set<EndpointId>();
  private readonly changes: RegistryChange[] = [];
  private readonly nonces = new Map<string, StoredNonce>();
  private readonly meta = new Map<string, string>();
  private closed = false;

  private change(kind: RegistryChange['kind'], endpoint: EndpointId, family: FamilyId | null, at: number) {
    this.changes.push({ seq: (this.changes.at(-1)?.seq ?? 0) + 1, kind, endpoint, family, at });
  }

  private live(): void {
    if (this.closed) throw new StoreError('STORE_CLOSED', 'store is closed');
  }

  private insert(rec: NewEndpoint): void {
    if (this.endpoints.has(rec.id))
      throw new StoreError('STORE_ENDPOINT_EXISTS', `endpoint ${rec.id} is already registered`);
    if (this.tombstones.has(rec.id))
      throw new StoreError(
        'STORE_TOMBSTONED',
        `endpoint ${rec.id} was revoked or erased and cannot be registered again`,
      );
    this.endpoints.set(rec.id, {
      id: rec.id,
      role: rec.role,
      signPublicKey: copy(rec.signPublicKey),
      boxPublicKey: copy(rec.boxPublicKey),
      familyId: null,
      revoked: false,
      createdAt: rec.createdAt,
    });
  }

  async addEndpoint(rec: NewEndpoint): Promise<void> {
    this.live();
    checkNewEndpoint(rec);
    this.insert(rec);
  }

  async addEndpoints(recs: readonly NewEndpoint[]): Promise<void> {
    this.live();
    const ids = new Set<string>();
    for (const r of recs) {
      checkNewEndpoint(r);
      if (this.endpoints.has(r.id) || ids.has(r.id)) {
        throw new StoreError('STORE_ENDPOINT_EXISTS', `endpoint ${r.id} is already registered`);
      }
      if (this.tombstones.has(r.id))
        throw new StoreError(
          'STORE_TOMBSTONED',
          `endpoint ${r.id} was revoked or erased and cannot be registered again`,
        );
      ids.add(r.id);
    }
    for (const r of recs) this.insert(r);
  }

  async getEndpoint(id: EndpointId): Promise<EndpointRecord | undefined> {
    this.live();
    return this.endpoints.get(id);
  }

  async listEndpoints(): Promise<EndpointRecord[]> {
    this.live();
    return [...this.endpoints.values()].sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : 1));
  }

  async revokeEndpoint(id: EndpointId, now: number): Promise<boolean> {
    this.live();
    checkEndpointId(id);
    checkTime(now, 'now');
    const rec = this.endpoints.get(id);
    if (!rec) return false;
    this.endpoints.set(id, { ...rec, revoked: true });
    this.tombstones.add(id);
    this.change('revoked', id, rec.familyId, now);
    return true;
  }

  async isTombstoned(id: EndpointId): Promise<boolean> {
    this.live();
    return this.tombstones.has(id);
  }

  async createFamily(id: FamilyId, now: number): Promise<void> {
    this.live();
    parseFamilyId(id);
    checkTime(now, 'now');
    if (this.families.has(id)) throw new StoreError('STORE_FAMILY_EXISTS', `family ${id} already exists`);
    this.families.set(id, now);
  }

  async addFamilyMember(family: FamilyId, endpoint: EndpointId, now: number): Promise<void> {
    this.live();
    parseFamilyId(family);
    checkEndpointId(endpoint);
    checkTime(now, 'now');
    if (!this.families.has(family)) throw new StoreError('STORE_UNKNOWN_FAMILY', `no family ${family}`);
    const ep = this.endpoints.get(endpoint);
    if (!ep) throw new StoreError('STORE_UNKNOWN_ENDPOINT', `no endpoint ${endpoint}`);
    if (ep.revoked) throw new StoreError('STORE_REVOKED', `endpoint ${endpoint} is revoked`);
    if (ep.familyId === family) return;
    if (ep.familyId !== null) {
      throw new StoreError('STORE_OTHER_FAMILY', `endpoint ${endpoint} already belongs to another family`);
    }
    this.endpoints.set(endpoint, { ...ep, familyId: family });
    this.change('member-added', endpoint, family, now);
  }

  async familyMembers(family: FamilyId): Promise<EndpointRecord[]> {
    return (await this.listEndpoints()).filter((e) => e.familyId === family);
  }

  async listFamilies(): Promise<{ id: FamilyId; members: number }[]> {
    this.live();
    const counts = new Map<FamilyId, number>();
    for (const e of this.endpoints.values())
      if (e.familyId) counts.set(e.familyId, (counts.get(e.familyId) ?? 0) + 1);
    return [...this.families.entries()]
      .sort((a, b) => a[1] - b[1] || (a[0] < b[0] ? -1 : 1))
      .map(([id]) => ({ id, members: counts.get(id) ?? 0 }));
  }

  async eraseFamily(family: FamilyId, now: number): Promise<{ clips: number; endpoints: number }> {
    this.live();
    parseFamilyId(family);
    checkTime(now, 'now');
    if (!this.families.has(family)) throw new StoreError('STORE_UNKNOWN_FAMILY', `no family ${family}`);
    const members = new Set<EndpointId>();
    for (const e of this.endpoints.values()) if (e.familyId === family) members.add(e.id);
    let clips = 0;
    for (const [k, c] of this.clips) {
      if (members.has(c.clip.sender) || [...c.deliveries.keys()].some((r) => members.has(r))) {
        this.clips.delete(k);
        clips++;
      }
    }
    for (const [k, a] of this.accepted) if (members.has(a.sender)) this.accepted.delete(k);
    for (const [k, n] of this.nonces) if (members.has(n.endpoint)) this.nonces.delete(k);
    for (const m of members) {
      this.sequences.delete(m);
      this.endpoints.delete(m);
    }
    this.families.delete(family);
    for (let i = 0; i < this.changes.length; i++) {
      const c = this.changes[i]!;
      if (c.family === family) this.changes[i] = { ...c, family: null };
    }
    for (const m of members) {
      this.tombstones.add(m);
      this.change('erased', m, null, now);
    }
    return { clips, endpoints: members.size };
  }

  async registryChanges(after: number, limit: number): Promise<RegistryChange[]> {
    this.live();
    checkTime(after, 'after');
    checkLimit(limit);
    return this.changes.filter((c) => c.seq > after).slice(0, limit);
  }

  async latestRegistryChange(): Promise<number> {
    this.live();
    return this.changes.at(-1)?.seq ?? 0;
  }

  async recordNonce(nonce: StoredNonce): Promise<void> {
    this.live();
    checkNonceKey(nonce.key);
    checkEndpointId(nonce.endpoint);
    checkTime(nonce.expiresAt, 'expiresAt');
    this.nonces.set(nonce.key, { ...nonce });
  }

  async loadNonces(now: number): Promise<StoredNonce[]> {
    this.live();
    checkTime(now, 'now');
    for (const [k, n] of this.nonces) if (n.expiresAt < now) this.nonces.delete(k);
    return [...this.nonces.values()];
  }

  async getMeta(key: string): Promise<string | undefined> {
    this.live();
    return this.meta.get(key);
  }

  async setMeta(key: string, value: string): Promise<void> {
    this.live();
    if (typeof key !== 'string' || key.length === 0 || key.length > 100) throw new TypeError('meta key');
    if (typeof value !== 'string' || value.length > 10_000) throw new TypeError('meta value');
    this.meta.set(key, value);
  }

  async lastSequence(sender: EndpointId): Promise<number> {
    this.live();
    return this.sequences.get(sender) ?? 0;
  }

  async acceptClip(
    clip: ClipRecord,
    recipients: readonly EndpointId[],
    opts?: AcceptOptions,
  ): Promise<AcceptResult> {
    this.live();
    const receipted = opts?.receipted ?? [];
    checkClip(clip, recipients);
    checkReceipted(recipients, receipted);
    const key = clipKey(clip.sender, clip.clipId);
    const verdict = this.clipVerdict(clip.sender, clip.clipId, clip.sequence);
    if (verdict === 'retransmit') return { ok: true, retransmit: true };
    if (verdict !== 'new') return { ok: false, reason: verdict };
    // [PLK-12.9] receipted by every recipient in transit: only the id and sequence are kept.
    if (receipted.length < recipients.length)
      this.clips.set(key, {
        clip: { ...clip, envelope: copy(clip.envelope) },
        deliveries: new Map(recipients.map((r) => [r, receipted.includes(r) ? clip.receivedAt : null])),
      });
    this.sequences.set(clip.sender, clip.sequence);
    this.accepted.set(key, { sender: clip.sender, sequence: clip.sequence, receivedAt: clip.receivedAt });
    return { ok: true };
  }

  /** [PLK-12.9] What acceptClip would decide now. */
  clipVerdict(sender: EndpointId, clipId: string, sequence: number): ClipVerdict {
    this.live();
    const seen = this.accepted.get(clipKey(sender, clipId));
    if (seen) return seen.sequence === sequence ? 'retransmit' : 'duplicate';
    return sequence <= (this.sequences.get(sender) ?? 0) ? 'replay' : 'new';
  }

  async pendingFor(recipient: EndpointId, limit: number): Promise<PendingDelivery[]> {
    this.live();
    checkLimit(limit);
    const out: PendingDelivery[] = [];
    for (const c of this.clips.values()) {
      if (out.length >= limit) break;
      if (c.deliveries.get(recipient) === null) {
        out.push({
          recipient,
          sender: c.clip.sender,
          clipId: c.clip.clipId,
          receivedAt: c.clip.receivedAt,
          envelope: c.clip.envelope,
        });
      }
    }
    return out;
  }

  async markDelivered(
    recipient: EndpointId,
    sender: EndpointId,
    clipId: string,
    at: number,
  ): Promise<DeliveryMark> {
    this.live();
    checkEndpointId(recipient, 'recipient');
    checkEndpointId(sender, 'sender');
    checkClipId(clipId);
    checkTime(at, 'at');
    const key = clipKey(sender, clipId);
    const c = this.clips.get(key);
    // [PLK-6.2] see SqliteStore: a clip gone after every delivery is still remembered by its id.
    if (!c) return this.accepted.has(key) ? 'already' : 'unknown';
    if (!c.deliveries.has(recipient)) return 'unknown';
    if (c.deliveries.get(recipient) !== null) return 'already';
    c.deliveries.set(recipient, at);
    if ([...c.deliveries.values()].every((v) => v !== null)) this.clips.delete(key); // [PLK-12.5]
    return 'delivered';
  }

  async setAside(recipient: EndpointId, sender: EndpointId, clipId: string, at: number): Promise<boolean> {
    this.live();
    checkEndpointId(recipient, 'recipient');
    checkEndpointId(sender, 'sender');
    checkClipId(clipId);
    checkTime(at, 'at');
    const key = clipKey(sender, clipId);
    const c = this.clips.get(key);
    if (!c || c.deliveries.get(recipient) !== null) return false;
    c.deliveries.set(recipient, at);
    if ([...c.deliveries.values()].every((v) => v !== null)) this.clips.delete(key);
    return true;
  }

  async expireUndelivered(before: number): Promise<number> {
    this.live();
    checkTime(before, 'before');
    for (const [k, a] of this.accepted) if (a.receivedAt < before) this.accepted.delete(k);
    let n = 0;
    for (const [k, c] of this.clips) {
      if (c.clip.receivedAt < before) {
        this.clips.delete(k);
        n++;
      }
    }
    return n;
  }

  async backlog(): Promise<number> {
    this.live();
    let n = 0;
    for (const c of this.clips.values()) for (const v of c.deliveries.values()) if (v === null) n++;
    return n;
  }

  /** Writes a JSON snapshot (mode 0600, never overwriting): nothing here is durable otherwise. */
  async backup(path: string): Promise<void> {
    this.live();
    const snapshot = {
      endpoints: [...this.endpoints.values()].map((e) => ({
        ...e,
        signPublicKey: toHex(e.signPublicKey),
        boxPublicKey: toHex(e.boxPublicKey),
      })),
      families: [...this.families.entries()],
      sequences: [...this.sequences.entries()],
      clips: [...this.clips.values()].map((c) => ({
        ...c.clip,
        envelope: toHex(c.clip.envelope),
        deliveries: [...c.deliveries.entries()],
      })),
    };
    const fh = await open(path, 'wx', 0o600);
    try {
      await fh.writeFile(JSON.stringify(snapshot));
    } finally {
      await fh.close();
    }
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
