// Tests of the gateway's family rosters: members read again only after a registry change, and an admin change made a moment ago already shows [PLK-4.6] [PLK-12.7].
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { newFamilyId } from '../../gateway/admin.ts';
import type { FamilyId, GatewayStore } from '../../gateway/interfaces.ts';
import { Rosters } from '../../gateway/roster.ts';
import { MemoryStore } from '../../gateway/store/memory.ts';
import { openSqliteStore } from '../../gateway/store/sqlite.ts';
import { defaultCrypto } from '../../shared/crypto.ts';
import { generateIdentity, type PrivateIdentity } from '../../shared/identity.ts';
import { seededRandom } from '../../shared/random.ts';
import { decodeRoster } from '../../shared/roster.ts';
import { registerEndpoint } from './helpers/harness.ts';

const rnd = seededRandom('test/gateway/roster');
const gateway = generateIdentity('gateway', rnd);
const FAMILY: FamilyId = newFamilyId(rnd);

const STORES: readonly [string, (dir: string) => GatewayStore][] = [
  ['MemoryStore', () => new MemoryStore()],
  ['SqliteStore', (dir) => openSqliteStore(join(dir, 'store'))],
];

const register = (store: GatewayStore, who: PrivateIdentity, at: number): Promise<void> =>
  registerEndpoint(store, who, at, FAMILY);

/** A toy registered without a family, and its record as read then. */
async function addLoner(store: GatewayStore, at: number) {
  const loner = generateIdentity('toy', rnd);
  await registerEndpoint(store, loner, at);
  return { loner, rec: await store.getEndpoint(loner.id) };
}

const memberIds = (bytes: Uint8Array | null): string[] =>
  bytes ? decodeRoster(bytes).members.map((m) => m.id) : [];

for (const [name, open] of STORES) {
  describe(`rosters on ${name}`, () => {
    let dir: string;
    let store: GatewayStore;
    let rosters: Rosters;
    const toy = generateIdentity('toy', rnd);
    const mum = generateIdentity('parent', rnd);

    beforeEach(async () => {
      dir = mkdtempSync(join(tmpdir(), 'plushlink-roster-'));
      store = open(dir);
      await store.createFamily(FAMILY, 1);
      await register(store, toy, 2);
      await register(store, mum, 3);
      rosters = new Rosters({
        store,
        identity: gateway,
        clock: () => 1_000,
        crypto: defaultCrypto(),
        states: new WeakMap(),
      });
    });

    afterEach(async () => {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    });

    it('reads the family once while the registry does not change (one read per connect saved)', async () => {
      const reads = vi.spyOn(store, 'familyMembers');
      const first = await rosters.forFamily(FAMILY);
      const second = await rosters.forFamily(FAMILY);
      const third = await rosters.forFamily(FAMILY);
      expect(reads).toHaveBeenCalledTimes(1);
      expect(second).toBe(first);
      expect(third).toBe(first);
      expect(memberIds(first).sort()).toEqual([toy.id, mum.id].sort());
    });

    it('shows a member added a moment ago, before any registry watch or push', async () => {
      const before = await rosters.forFamily(FAMILY);
      const dad = generateIdentity('parent', rnd);
      await register(store, dad, 4);
      const after = await rosters.forFamily(FAMILY);
      expect(memberIds(before)).not.toContain(dad.id);
      expect(memberIds(after)).toContain(dad.id);
      expect(decodeRoster(after!).version).toBeGreaterThan(decodeRoster(before!).version);
    });

    it('drops a member revoked a moment ago, and has no roster once every member is gone', async () => {
      await rosters.forFamily(FAMILY);
      await store.revokeEndpoint(mum.id, 5);
      expect(memberIds(await rosters.forFamily(FAMILY))).toEqual([toy.id]);
      await store.revokeEndpoint(toy.id, 6);
      expect(await rosters.forFamily(FAMILY)).toBeNull();
    });

    it('forEndpoint follows the endpoint into its family', async () => {
      const { loner, rec } = await addLoner(store, 7);
      expect(await rosters.forEndpoint(rec!)).toBeNull();
      await rosters.forFamily(FAMILY); // cached before the loner joins
      await store.addFamilyMember(FAMILY, loner.id, 8);
      expect(memberIds(await rosters.forEndpoint(rec!))).toContain(loner.id);
    });

    it('forEndpoint reads the endpoint again only when it had no family when authenticated', async () => {
      // A family, once set, never changes (STORE_OTHER_FAMILY): the connect's record is enough.
      const reads = vi.spyOn(store, 'getEndpoint');
      const rec = await store.getEndpoint(toy.id);
      reads.mockClear();
      expect(memberIds(await rosters.forEndpoint(rec!)).sort()).toEqual([toy.id, mum.id].sort());
      expect(reads).not.toHaveBeenCalled();
      // Without one, the store says whether it has joined one since.
      const { loner, rec: lonerRec } = await addLoner(store, 9);
      reads.mockClear();
      await store.addFamilyMember(FAMILY, loner.id, 10);
      expect(memberIds(await rosters.forEndpoint(lonerRec!))).toContain(loner.id);
      expect(reads).toHaveBeenCalledTimes(1);
    });
  });
}
