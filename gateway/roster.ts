// Family rosters from the gateway: signed once per family and version, sent after the proof on every connect and to every connected member when the family changes [PLK-4.6].
import type { Client } from 'aedes';
import { createRoster } from '../shared/roster.ts';
import { inboxTopic } from '../shared/topics.ts';
import type { EndpointId } from '../shared/types.ts';
import type { GatewayContext } from './context.ts';
import { publishTo } from './forward.ts';
import type { EndpointRecord, FamilyId } from './interfaces.ts';

/**
 * Signed rosters by family. A roster lists the family's non-revoked members and carries the
 * newest registry change number the gateway has seen as its version, so versions only grow; one
 * signature serves every member (each checks that it is listed).
 */
export class Rosters {
  /** Signed roster per family, with the registry change number its members were read at. */
  private readonly cache = new Map<
    FamilyId,
    { version: number; key: string; bytes: Uint8Array; registry: number }
  >();
  /** The newest registry change seen (set by the registry watch). */
  version = 0;

  constructor(
    private readonly ctx: Pick<GatewayContext, 'store' | 'identity' | 'clock' | 'crypto' | 'states'>,
  ) {}

  /**
   * The current roster of `endpoint`'s family, or null when it has none (or no live member).
   * `endpoint` is the record read when the connection authenticated: an endpoint's family, once
   * set, never changes (another family is refused, STORE_OTHER_FAMILY; revocation and erasure keep
   * or remove it, and forFamily reads the members as they stand), so the store is read again only
   * for an endpoint that had none then and may have joined one since (~15 µs per connect saved).
   */
  async forEndpoint(endpoint: EndpointRecord): Promise<Uint8Array | null> {
    const family = endpoint.familyId ?? (await this.ctx.store.getEndpoint(endpoint.id))?.familyId;
    if (!family) return null;
    return this.forFamily(family);
  }

  /**
   * The family's roster as the registry stands now: an admin change made a moment ago, before the
   * registry watch saw it, must already show. Every change of a family's members (added, revoked,
   * erased) commits with a registry change whose number only grows (PostgreSQL: under the registry
   * lock, so in number order), so while the newest number is the one seen when the members were
   * last read, they are still those members and the signed roster is reused: one indexed read per
   * connect instead of two (the members' read was ~95 µs of a storm's ~1.4 ms per connect). The
   * number is read before the members, so a change that commits in between can only make the
   * entry look older than it is, never newer.
   */
  async forFamily(family: FamilyId): Promise<Uint8Array | null> {
    const latest = await this.ctx.store.latestRegistryChange();
    const version = Math.max(latest, this.version);
    const hit = this.cache.get(family);
    if (hit && hit.registry === latest && hit.version === version) return hit.bytes;
    const all = await this.ctx.store.familyMembers(family);
    const members = all.filter((m) => !m.revoked);
    if (members.length === 0) {
      this.cache.delete(family);
      return null;
    }
    const key = members.map((m) => m.id).join(',');
    if (hit && hit.version === version && hit.key === key) {
      this.cache.set(family, { ...hit, registry: latest });
      return hit.bytes;
    }
    const bytes = createRoster({
      gateway: this.ctx.identity,
      version,
      issuedAt: this.ctx.clock(),
      members: members.map((m) => ({
        role: m.role,
        id: m.id,
        signPublicKey: m.signPublicKey,
        boxPublicKey: m.boxPublicKey,
      })),
      crypto: this.ctx.crypto,
    });
    if (this.cache.size >= 100_000) this.cache.clear();
    this.cache.set(family, { version, key, bytes, registry: latest });
    return bytes;
  }

  /** [PLK-12.7] Sends the family's new roster to each of its connected members. */
  async push(family: FamilyId, connected: (id: EndpointId) => readonly Client[]): Promise<number> {
    this.cache.delete(family);
    const members = await this.ctx.store.familyMembers(family);
    const roster = await this.forFamily(family);
    if (!roster) return 0;
    let sent = 0;
    for (const m of members) {
      if (m.revoked) continue;
      for (const client of connected(m.id)) {
        if (!this.ctx.states.get(client)?.proofSent) continue;
        publishTo(client, inboxTopic(m.id), roster).catch(() => {});
        sent++;
      }
    }
    return sent;
  }
}
