// Registers a simulated fleet with a gateway through its admin API (public keys and families only, audited).
import { type BulkRegistration, registerFamilies } from '../gateway/admin.ts';
import type { AuditLog, GatewayStore } from '../gateway/interfaces.ts';
import { familyPublics, type Roster } from './roster.ts';

/**
 * Registers every member's public identity and every family of `roster` (idempotent: a re-run
 * against the same gateway data skips what is known). The gateway's store can be opened beside a
 * running gateway (SQLite WAL, busy timeout). One audit event for the batch, tagged `source`.
 */
export function registerRoster(
  store: GatewayStore,
  audit: AuditLog,
  roster: Roster,
  opts: { now?: number; source?: string } = {},
): Promise<BulkRegistration> {
  return registerFamilies(
    store,
    audit,
    roster.families.map((f) => ({ id: f.id, members: familyPublics(f) })),
    { source: opts.source ?? 'fleet', ...(opts.now !== undefined ? { now: opts.now } : {}) },
  );
}
