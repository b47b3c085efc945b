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
  private readonly cache = new Map<FamilyId, { version: number; key: string; bytes: Uint8Array }>();
  /** The newest registry change seen (set by the registry watch). */
  version = 0;

  constructor(private readonly ctx: GatewayContext) {}

  /** The current roster of `endpoint`'s family, or null when it has none (or no live member). */
  async forEndpoint(endpoint: EndpointRecord): Promise<Uint8Array | null> {
    const rec = await this.ctx.store.getEndpoint(endpoint.id);
    if (!rec?.familyId) return null;
    return this.forFamily(rec.familyId);
  }

  /**
   * The family's roster, from a fresh read of the registry (an admin change made a moment ago,
   * before the registry watch saw it, must already show). Signed again only when the members or
   * the registry version changed.
   */
  async forFamily(family: FamilyId): Promise<Uint8Array | null> {
    const [all, latest] = await Promise.all([
      this.ctx.store.familyMembers(family),
      this.ctx.store.latestRegistryChange(),
    ]);
    const members = all.filter((m) => !m.revoked);
    if (members.length === 0) {
      this.cache.delete(family);
      return null;
    }
    const version = Math.max(latest, this.version);
    const key = members.map((m) => m.id).join(',');
    const hit = this.cache.get(family);
    if (hit && hit.version === version && hit.key === key) return hit.bytes;
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
    this.cache.set(family, { version, key, bytes });
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
