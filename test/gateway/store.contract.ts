// GatewayStore contract: written once, run against every store implementation (SQLite, memory, ...) [PLK-12].
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ClipRecord, FamilyId, GatewayStore, NewEndpoint } from '../../gateway/interfaces.ts';
import { StoreError } from '../../gateway/store/common.ts';
import { toBase32, toHex } from '../../shared/bytes.ts';
import { generateIdentity } from '../../shared/identity.ts';
import { seededRandom } from '../../shared/random.ts';
import type { EndpointId } from '../../shared/types.ts';
import { expectCodeAsync } from '../helpers/errors.ts';

const rnd = seededRandom('store-contract');

export function newEndpoint(role: 'toy' | 'parent', createdAt = 1000): NewEndpoint {
  const id = generateIdentity(role, rnd);
  return { id: id.id, role, signPublicKey: id.signPublicKey, boxPublicKey: id.boxPublicKey, createdAt };
}

export function newFamilyId(): FamilyId {
  return `f${toBase32(rnd(16))}` as FamilyId;
}

export function newClip(sender: EndpointId, sequence: number, receivedAt = 5000, size = 64): ClipRecord {
  const envelope = rnd(size);
  return { sender, clipId: toHex(rnd(16)), sequence, createdAt: receivedAt - 10, receivedAt, envelope };
}

export function runStoreContract(name: string, makeStore: () => Promise<GatewayStore>): void {
  describe(`GatewayStore contract: ${name}`, () => {
    let store: GatewayStore;
    beforeEach(async () => {
      store = await makeStore();
    });
    afterEach(async () => {
      await store.close();
    });

    /** A family with one toy and two parents, registered and joined. */
    async function family(): Promise<{ id: FamilyId; toy: EndpointId; mum: EndpointId; dad: EndpointId }> {
      const id = newFamilyId();
      await store.createFamily(id, 100);
      const [toy, mum, dad] = [newEndpoint('toy'), newEndpoint('parent'), newEndpoint('parent')];
      for (const e of [toy, mum, dad]) {
        await store.addEndpoint(e);
        await store.addFamilyMember(id, e.id, 1);
      }
      return { id, toy: toy.id, mum: mum.id, dad: dad.id };
    }

    it('registers, reads and lists endpoints; refuses a second registration and a forged id', async () => {
      const e = newEndpoint('toy', 2000);
      await store.addEndpoint(e);
      const got = await store.getEndpoint(e.id);
      expect(got).toEqual({ ...e, familyId: null, revoked: false });
      expect(await store.getEndpoint(newEndpoint('toy').id)).toBeUndefined();
      await expect(store.addEndpoint(e)).rejects.toThrow(/already registered/);
      const other = newEndpoint('parent');
      await expect(store.addEndpoint({ ...other, id: e.id })).rejects.toThrow(/derive/);
      await expect(store.addEndpoint({ ...other, signPublicKey: new Uint8Array(31) })).rejects.toThrow(
        RangeError,
      );
      const f = newEndpoint('parent', 1000);
      await store.addEndpoint(f);
      expect((await store.listEndpoints()).map((x) => x.id)).toEqual([f.id, e.id]);
    });

    it('registers endpoints in bulk, all or nothing', async () => {
      const [a, b] = [newEndpoint('toy'), newEndpoint('parent')];
      await store.addEndpoints([a, b]);
      expect((await store.getEndpoint(b.id))?.role).toBe('parent');
      const c = newEndpoint('toy');
      await expectCodeAsync(store.addEndpoints([c, a]), 'STORE_ENDPOINT_EXISTS', StoreError);
      expect(await store.getEndpoint(c.id)).toBeUndefined();
    });

    it('revokes: kept (so the id cannot be re-registered), flagged, false when unknown', async () => {
      const e = newEndpoint('toy');
      await store.addEndpoint(e);
      expect(await store.revokeEndpoint(e.id, 1)).toBe(true);
      expect((await store.getEndpoint(e.id))?.revoked).toBe(true);
      expect(await store.revokeEndpoint(newEndpoint('toy').id, 1)).toBe(false);
      await expect(store.addEndpoint(e)).rejects.toThrow(/already registered/);
      const fam = newFamilyId();
      await store.createFamily(fam, 1);
      await expect(store.addFamilyMember(fam, e.id, 1)).rejects.toThrow(/revoked/);
    });

    it('families: pseudonymous ids, one family per endpoint, member counts', async () => {
      await expect(store.createFamily('the-smiths' as FamilyId, 1)).rejects.toThrow(TypeError);
      const a = newFamilyId();
      const b = newFamilyId();
      await store.createFamily(a, 1);
      await store.createFamily(b, 2);
      await expect(store.createFamily(a, 3)).rejects.toThrow(/already exists/);
      const e = newEndpoint('toy');
      await store.addEndpoint(e);
      await store.addFamilyMember(a, e.id, 1);
      await store.addFamilyMember(a, e.id, 1); // idempotent
      await expect(store.addFamilyMember(b, e.id, 1)).rejects.toThrow(/another family/);
      await expect(store.addFamilyMember(newFamilyId(), e.id, 1)).rejects.toThrow(/no family/);
      await expect(store.addFamilyMember(a, newEndpoint('toy').id, 1)).rejects.toThrow(/no endpoint/);
      expect((await store.getEndpoint(e.id))?.familyId).toBe(a);
      expect((await store.familyMembers(a)).map((m) => m.id)).toEqual([e.id]);
      expect(await store.familyMembers(b)).toEqual([]);
      expect(await store.listFamilies()).toEqual([
        { id: a, members: 1 },
        { id: b, members: 0 },
      ]);
    });

    it('sequence numbers are strictly increasing per sender across calls [PLK-8.1]', async () => {
      const f = await family();
      expect(await store.lastSequence(f.toy)).toBe(0);
      expect(await store.acceptClip(newClip(f.toy, 0), [f.mum])).toEqual({ ok: false, reason: 'replay' });
      expect(await store.acceptClip(newClip(f.toy, 5), [f.mum])).toEqual({ ok: true });
      expect(await store.lastSequence(f.toy)).toBe(5);
      expect(await store.acceptClip(newClip(f.toy, 5), [f.mum])).toEqual({ ok: false, reason: 'replay' });
      expect(await store.acceptClip(newClip(f.toy, 4), [f.mum])).toEqual({ ok: false, reason: 'replay' });
      expect(await store.acceptClip(newClip(f.toy, 6), [f.mum])).toEqual({ ok: true });
      // Another sender has its own counter.
      expect(await store.acceptClip(newClip(f.mum, 1), [f.toy])).toEqual({ ok: true });
      expect(await store.lastSequence(f.toy)).toBe(6);
      expect(await store.lastSequence(f.mum)).toBe(1);
      // Concurrent submissions of the same sequence number: exactly one wins.
      const results = await Promise.all([7, 7, 7].map(() => store.acceptClip(newClip(f.toy, 7), [f.mum])));
      expect(results.filter((r) => r.ok)).toHaveLength(1);
    });

    it('refuses a duplicate clip id with a fresh sequence, and stores nothing for it', async () => {
      const f = await family();
      const c = newClip(f.toy, 1);
      expect(await store.acceptClip(c, [f.mum])).toEqual({ ok: true });
      expect(await store.acceptClip({ ...c, sequence: 2 }, [f.mum, f.dad])).toEqual({
        ok: false,
        reason: 'duplicate',
      });
      expect(await store.lastSequence(f.toy)).toBe(1);
      expect(await store.backlog()).toBe(1);
      expect(await store.pendingFor(f.dad, 10)).toEqual([]);
    });

    it('acknowledges a resend of an accepted clip without storing it twice, even after delivery [PLK-8.2]', async () => {
      const f = await family();
      const c = newClip(f.toy, 1);
      expect(await store.acceptClip(c, [f.mum])).toEqual({ ok: true });
      expect(await store.acceptClip(c, [f.mum])).toEqual({ ok: true, retransmit: true });
      expect(await store.backlog()).toBe(1);
      expect(await store.pendingFor(f.mum, 10)).toHaveLength(1);
      // Delivered and deleted: a late resend is still recognised, not refused as a replay.
      expect(await store.markDelivered(f.mum, f.toy, c.clipId, c.receivedAt + 1)).toBe('delivered');
      expect(await store.backlog()).toBe(0);
      expect(await store.acceptClip(c, [f.mum])).toEqual({ ok: true, retransmit: true });
      expect(await store.pendingFor(f.mum, 10)).toEqual([]);
      // Past retention the clip id is forgotten and the old sequence number is a replay.
      await store.expireUndelivered(c.receivedAt + 1);
      expect(await store.acceptClip(c, [f.mum])).toEqual({ ok: false, reason: 'replay' });
    });

    it('clipVerdict: what acceptClip would decide, from committed state [PLK-12.9]', async () => {
      const f = await family();
      const c = newClip(f.toy, 1);
      if (!store.clipVerdict) {
        // A shared store offers no verdict, so no clip is ever receipted in transit on it.
        await expect(store.acceptClip(c, [f.mum], { receipted: [f.mum] })).rejects.toThrow(RangeError);
        expect(await store.lastSequence(f.toy)).toBe(0);
        return;
      }
      expect(store.clipVerdict(f.toy, c.clipId, 1)).toBe('new');
      expect(await store.acceptClip(c, [f.mum])).toEqual({ ok: true });
      expect(store.clipVerdict(f.toy, c.clipId, 1)).toBe('retransmit');
      expect(store.clipVerdict(f.toy, c.clipId, 2)).toBe('duplicate');
      const other = newClip(f.toy, 1);
      expect(store.clipVerdict(f.toy, other.clipId, 1)).toBe('replay');
      expect(store.clipVerdict(f.toy, other.clipId, 2)).toBe('new');
      expect(store.clipVerdict(f.mum, other.clipId, 1)).toBe('new'); // per sender
      expect(await store.acceptClip({ ...other, sequence: 1 }, [f.mum])).toEqual({
        ok: false,
        reason: 'replay',
      });
    });

    it('receipted in transit by every recipient: only the id and sequence are kept [PLK-12.9]', async () => {
      if (!store.clipVerdict) return; // see above: refused by a shared store
      const f = await family();
      const c = newClip(f.toy, 1);
      expect(await store.acceptClip(c, [f.mum, f.dad], { receipted: [f.dad, f.mum] })).toEqual({ ok: true });
      expect(await store.backlog()).toBe(0);
      expect(await store.pendingFor(f.mum, 10)).toEqual([]);
      expect(await store.lastSequence(f.toy)).toBe(1);
      // Its id is remembered like a delivered clip's: a resend is a retransmit, a repeated receipt already.
      expect(await store.acceptClip(c, [f.mum, f.dad])).toEqual({ ok: true, retransmit: true });
      expect(await store.markDelivered(f.mum, f.toy, c.clipId, 7000)).toBe('already');
      expect(await store.backlog()).toBe(0);
      expect(await store.expireUndelivered(Number.MAX_SAFE_INTEGER)).toBe(0);
    });

    it('receipted in transit by some recipients: the others wait for it as usual [PLK-12.9]', async () => {
      if (!store.clipVerdict) return;
      const f = await family();
      const c = newClip(f.toy, 1);
      expect(await store.acceptClip(c, [f.mum, f.dad], { receipted: [f.mum] })).toEqual({ ok: true });
      expect(await store.pendingFor(f.mum, 10)).toEqual([]);
      expect((await store.pendingFor(f.dad, 10)).map((d) => d.envelope)).toEqual([c.envelope]);
      expect(await store.backlog()).toBe(1);
      expect(await store.markDelivered(f.mum, f.toy, c.clipId, 7000)).toBe('already'); // a resent receipt
      expect(await store.markDelivered(f.dad, f.toy, c.clipId, 7001)).toBe('delivered');
      expect(await store.backlog()).toBe(0);
      await expect(store.acceptClip(newClip(f.toy, 2), [f.mum], { receipted: [f.dad] })).rejects.toThrow(
        /not a recipient/,
      );
      await expect(
        store.acceptClip(newClip(f.toy, 2), [f.mum, f.dad], { receipted: [f.mum, f.mum] }),
      ).rejects.toThrow(/duplicate receipted/);
      expect(await store.lastSequence(f.toy)).toBe(1);
    });

    it('validates clips at the boundary', async () => {
      const f = await family();
      await expect(store.acceptClip(newClip(f.toy, 1), [])).rejects.toThrow(RangeError);
      await expect(store.acceptClip({ ...newClip(f.toy, 1), clipId: 'xyz' }, [f.mum])).rejects.toThrow(
        TypeError,
      );
      await expect(store.acceptClip(newClip(f.toy, 1), [f.mum, f.mum])).rejects.toThrow(
        /duplicate recipient/,
      );
      await expect(store.pendingFor(f.mum, 0)).rejects.toThrow(RangeError);
      expect(await store.lastSequence(f.toy)).toBe(0);
    });

    it('pending deliveries: per recipient, oldest first, limited, exact envelope bytes', async () => {
      const f = await family();
      const clips = [1, 2, 3, 4].map((s) => newClip(f.toy, s, 5000 + s, 100 + s));
      for (const c of clips) expect(await store.acceptClip(c, [f.mum, f.dad])).toEqual({ ok: true });
      const fromMum = newClip(f.mum, 1, 6000);
      await store.acceptClip(fromMum, [f.toy]);
      const p = await store.pendingFor(f.mum, 10);
      expect(p.map((d) => d.clipId)).toEqual(clips.map((c) => c.clipId));
      expect(p[0]).toEqual({
        recipient: f.mum,
        sender: f.toy,
        clipId: clips[0]!.clipId,
        receivedAt: clips[0]!.receivedAt,
        envelope: clips[0]!.envelope,
      });
      expect((await store.pendingFor(f.mum, 2)).map((d) => d.clipId)).toEqual([
        clips[0]!.clipId,
        clips[1]!.clipId,
      ]);
      expect((await store.pendingFor(f.toy, 10)).map((d) => d.clipId)).toEqual([fromMum.clipId]);
      expect(await store.backlog()).toBe(9);
    });

    it('markDelivered: per recipient, idempotent, unknown for strangers; clip deleted once all receipted [PLK-6.2][PLK-12.5]', async () => {
      const f = await family();
      const c = newClip(f.toy, 1);
      await store.acceptClip(c, [f.mum, f.dad]);
      expect(await store.markDelivered(f.mum, f.toy, c.clipId, 7000)).toBe('delivered');
      expect(await store.markDelivered(f.mum, f.toy, c.clipId, 7001)).toBe('already'); // repeated receipt
      expect(await store.pendingFor(f.mum, 10)).toEqual([]);
      expect((await store.pendingFor(f.dad, 10)).map((d) => d.clipId)).toEqual([c.clipId]);
      expect(await store.backlog()).toBe(1);
      expect(await store.markDelivered(f.toy, f.toy, c.clipId, 7000)).toBe('unknown'); // not a recipient
      expect(await store.markDelivered(f.dad, f.toy, newClip(f.toy, 9).clipId, 7000)).toBe('unknown'); // never accepted
      expect(await store.markDelivered(f.dad, f.toy, c.clipId, 7002)).toBe('delivered');
      expect(await store.backlog()).toBe(0);
      // The clip is gone, its id still remembered: a late repeat is acknowledged, nothing pending again.
      expect(await store.markDelivered(f.dad, f.toy, c.clipId, 7003)).toBe('already');
      expect(await store.backlog()).toBe(0);
      expect(await store.lastSequence(f.toy)).toBe(1);
      expect(await store.expireUndelivered(Number.MAX_SAFE_INTEGER)).toBe(0);
      // Past retention the id is forgotten too: the receipt is unknown.
      expect(await store.markDelivered(f.dad, f.toy, c.clipId, 7004)).toBe('unknown');
    });

    it('setAside: a pending delivery leaves the backlog without a receipt; the clip goes when nothing is pending [PLK-12.4]', async () => {
      const f = await family();
      const c = newClip(f.toy, 1);
      const d = newClip(f.toy, 2);
      await store.acceptClip(c, [f.mum, f.dad]);
      await store.acceptClip(d, [f.mum]);
      expect(await store.setAside(f.mum, f.toy, c.clipId, 8000)).toBe(true);
      expect((await store.pendingFor(f.mum, 10)).map((p) => p.clipId)).toEqual([d.clipId]);
      expect(await store.setAside(f.mum, f.toy, c.clipId, 8001)).toBe(false); // no longer pending
      expect(await store.setAside(f.toy, f.toy, c.clipId, 8001)).toBe(false); // not a recipient
      expect(await store.markDelivered(f.dad, f.toy, c.clipId, 8002)).toBe('delivered');
      expect(await store.backlog()).toBe(1); // c is gone, d waits
      expect(await store.setAside(f.mum, f.toy, d.clipId, 8003)).toBe(true);
      expect(await store.backlog()).toBe(0);
      expect(await store.pendingFor(f.mum, 10)).toEqual([]);
    });

    it('tombstones: a revoked or erased id can never be registered again, with any keys [PLK-12.5]', async () => {
      const f = await family();
      const mum = (await store.getEndpoint(f.mum))!;
      expect(await store.isTombstoned(f.toy)).toBe(false);
      expect(await store.revokeEndpoint(f.toy, 100)).toBe(true);
      expect(await store.isTombstoned(f.toy)).toBe(true);
      const famId = (await store.getEndpoint(f.mum))!.familyId!;
      expect(await store.eraseFamily(famId, 101)).toMatchObject({ endpoints: 3 });
      for (const id of [f.toy, f.mum, f.dad]) {
        expect(await store.getEndpoint(id)).toBeUndefined();
        expect(await store.isTombstoned(id)).toBe(true);
      }
      // The same keys again (an id is the hash of its signing key, so it can only come back with them).
      const again = {
        id: mum.id,
        role: mum.role,
        signPublicKey: mum.signPublicKey,
        boxPublicKey: mum.boxPublicKey,
        createdAt: 2,
      };
      await expectCodeAsync(store.addEndpoint(again), 'STORE_TOMBSTONED', StoreError);
      await expectCodeAsync(store.addEndpoints([newEndpoint('toy'), again]), 'STORE_TOMBSTONED', StoreError);
    });

    it('registry changes: revoke, member added and erase, in order; erase keeps no family id [PLK-12.7]', async () => {
      const before = await store.latestRegistryChange();
      const f = await family();
      const famId = (await store.getEndpoint(f.mum))!.familyId!;
      await store.revokeEndpoint(f.dad, 200);
      await store.eraseFamily(famId, 201);
      const changes = await store.registryChanges(before, 100);
      expect(changes.map((c) => c.kind)).toEqual([
        'member-added',
        'member-added',
        'member-added',
        'revoked',
        'erased',
        'erased',
        'erased',
      ]);
      expect(changes.every((c, i) => i === 0 || c.seq > changes[i - 1]!.seq)).toBe(true);
      expect(changes.map((c) => c.family)).toEqual([null, null, null, null, null, null, null]);
      expect(changes[3]).toMatchObject({ endpoint: f.dad, at: 200 });
      expect(new Set(changes.slice(4).map((c) => c.endpoint))).toEqual(new Set([f.toy, f.mum, f.dad]));
      expect(await store.latestRegistryChange()).toBe(changes.at(-1)!.seq);
      expect(await store.registryChanges(changes[1]!.seq, 2)).toEqual(changes.slice(2, 4));
    });

    it('registry changes of a live family name it; revoking an unknown id records nothing', async () => {
      const before = await store.latestRegistryChange();
      const f = await family();
      const famId = (await store.getEndpoint(f.mum))!.familyId!;
      expect(await store.revokeEndpoint(newEndpoint('toy').id, 300)).toBe(false);
      await store.revokeEndpoint(f.mum, 301);
      const changes = await store.registryChanges(before, 100);
      expect(changes.map((c) => [c.kind, c.family])).toEqual([
        ['member-added', famId],
        ['member-added', famId],
        ['member-added', famId],
        ['revoked', famId],
      ]);
    });

    it('nonces: durable until they expire, dropped with an erased family [PLK-3.5]', async () => {
      const f = await family();
      await store.recordNonce({ key: `${f.toy}:aa`, endpoint: f.toy, expiresAt: 5000 });
      await store.recordNonce({ key: `${f.toy}:bb`, endpoint: f.toy, expiresAt: 9000 });
      await store.recordNonce({ key: `${f.mum}:cc`, endpoint: f.mum, expiresAt: 9000 });
      expect((await store.loadNonces(6000)).map((n) => n.key).sort()).toEqual(
        [`${f.mum}:cc`, `${f.toy}:bb`].sort(),
      );
      expect((await store.loadNonces(4000)).map((n) => n.key)).toHaveLength(2); // the expired one is gone for good
      await store.eraseFamily((await store.getEndpoint(f.mum))!.familyId!, 7000);
      expect(await store.loadNonces(6000)).toEqual([]);
      await expect(store.recordNonce({ key: '', endpoint: f.toy, expiresAt: 1 })).rejects.toThrow(TypeError);
    });

    it('meta: facts about the data directory', async () => {
      expect(await store.getMeta('gateway_id')).toBeUndefined();
      await store.setMeta('gateway_id', 'abc');
      await store.setMeta('gateway_id', 'def');
      expect(await store.getMeta('gateway_id')).toBe('def');
    });

    it('expireUndelivered deletes old undelivered clips only', async () => {
      const f = await family();
      const old = newClip(f.toy, 1, 1000);
      const fresh = newClip(f.toy, 2, 9000);
      await store.acceptClip(old, [f.mum, f.dad]);
      await store.acceptClip(fresh, [f.mum]);
      await store.markDelivered(f.mum, f.toy, old.clipId, 1500); // partly delivered: still undelivered
      expect(await store.expireUndelivered(1000)).toBe(0); // strictly before
      expect(await store.expireUndelivered(5000)).toBe(1);
      expect((await store.pendingFor(f.dad, 10)).length).toBe(0);
      expect((await store.pendingFor(f.mum, 10)).map((d) => d.clipId)).toEqual([fresh.clipId]);
      expect(await store.backlog()).toBe(1);
      expect(await store.lastSequence(f.toy)).toBe(2); // sequence numbers are never expired
    });

    it('eraseFamily removes everything of the family and nothing of another family [PLK-12.5]', async () => {
      const a = await family();
      const b = await family();
      const loner = newEndpoint('toy');
      await store.addEndpoint(loner);
      for (let s = 1; s <= 3; s++) {
        await store.acceptClip(newClip(a.toy, s), [a.mum, a.dad]);
        await store.acceptClip(newClip(b.toy, s), [b.mum]);
      }
      await store.acceptClip(newClip(a.mum, 1), [a.toy]);
      const bParent = newClip(b.dad, 1);
      await store.acceptClip(bParent, [b.toy]);
      const bBefore = {
        members: await store.familyMembers(b.id),
        mum: await store.pendingFor(b.mum, 100),
        toy: await store.pendingFor(b.toy, 100),
        seq: await store.lastSequence(b.toy),
      };
      expect(await store.eraseFamily(a.id, 1)).toEqual({ clips: 4, endpoints: 3 });
      for (const m of [a.toy, a.mum, a.dad]) {
        expect(await store.getEndpoint(m)).toBeUndefined();
        expect(await store.pendingFor(m, 100)).toEqual([]);
        expect(await store.lastSequence(m)).toBe(0);
      }
      expect(await store.familyMembers(a.id)).toEqual([]);
      expect((await store.listFamilies()).map((f) => f.id)).toEqual([b.id]);
      await expect(store.eraseFamily(a.id, 1)).rejects.toThrow(/no family/);
      expect(await store.familyMembers(b.id)).toEqual(bBefore.members);
      expect(await store.pendingFor(b.mum, 100)).toEqual(bBefore.mum);
      expect(await store.pendingFor(b.toy, 100)).toEqual(bBefore.toy);
      expect(await store.lastSequence(b.toy)).toBe(bBefore.seq);
      expect(await store.getEndpoint(loner.id)).toBeDefined();
      expect(await store.backlog()).toBe(4);
    });

    it('backlog counts pending deliveries, not clips', async () => {
      const f = await family();
      expect(await store.backlog()).toBe(0);
      await store.acceptClip(newClip(f.toy, 1), [f.mum, f.dad]);
      await store.acceptClip(newClip(f.toy, 2), [f.mum]);
      expect(await store.backlog()).toBe(3);
    });

    it('many concurrent writes all settle in order', async () => {
      const f = await family();
      const clips = Array.from({ length: 300 }, (_, i) => newClip(f.toy, i + 1));
      const results = await Promise.all(clips.map((c) => store.acceptClip(c, [f.mum])));
      expect(results.every((r) => r.ok)).toBe(true);
      expect(await store.lastSequence(f.toy)).toBe(300);
      expect((await store.pendingFor(f.mum, 1000)).map((d) => d.clipId)).toEqual(clips.map((c) => c.clipId));
      await Promise.all(clips.map((c) => store.markDelivered(f.mum, f.toy, c.clipId, 9)));
      expect(await store.backlog()).toBe(0);
    });
  });
}
