// The hot-path registry cache: current while the change feed is tailed, invalidated by each change in it, never extended for unknown endpoints or overtaken reads [PLK-12.7].
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RegistryCache } from '../../gateway/ingest.ts';
import type { EndpointRecord, FamilyId, GatewayStore } from '../../gateway/interfaces.ts';
import { openSqliteStore } from '../../gateway/store/sqlite.ts';
import { toBase32 } from '../../shared/bytes.ts';
import { generateIdentity, type PrivateIdentity } from '../../shared/identity.ts';
import { seededRandom } from '../../shared/random.ts';
import {
  closed,
  type Harness,
  inbox,
  makeClip,
  registerEndpoint,
  sleep,
  startHarness,
} from './helpers/harness.ts';

const NOW = 1_700_000_000_000;
const TTL = 1000;
const rnd = seededRandom('test/gateway/registry-cache');

/** Counts the store's registry reads, and can make the change feed fail. */
interface Counted {
  readonly store: GatewayStore;
  readonly reads: { getEndpoint: number; familyMembers: number };
  failFeed: boolean;
  /** Held getEndpoint reads: resolved by the test. */
  hold: boolean;
  readonly held: (() => void)[];
}

function counted(inner: GatewayStore): Counted {
  const c: Counted = {
    store: inner,
    reads: { getEndpoint: 0, familyMembers: 0 },
    failFeed: false,
    hold: false,
    held: [],
  };
  const store = new Proxy(inner, {
    get(target, prop, receiver) {
      const v: unknown = Reflect.get(target, prop, receiver);
      if (typeof v !== 'function') return v;
      const fn = v as (...a: unknown[]) => unknown;
      if (prop === 'getEndpoint') {
        return async (...a: unknown[]) => {
          c.reads.getEndpoint++;
          const rec = await fn.apply(target, a);
          if (c.hold) await new Promise<void>((r) => c.held.push(r));
          return rec;
        };
      }
      if (prop === 'familyMembers') {
        return (...a: unknown[]) => {
          c.reads.familyMembers++;
          return fn.apply(target, a);
        };
      }
      if (prop === 'registryChanges') {
        return (...a: unknown[]) =>
          c.failFeed ? Promise.reject(new Error('feed unavailable (test)')) : fn.apply(target, a);
      }
      return fn.bind(target);
    },
  });
  return Object.assign(c, { store });
}

const register = (store: GatewayStore, who: PrivateIdentity, family?: FamilyId): Promise<void> =>
  registerEndpoint(store, who, NOW, family);

describe('RegistryCache on a real SQLite store', () => {
  let dir: string;
  let c: Counted;
  let cache: RegistryCache;
  const toy = generateIdentity('toy', rnd);
  const mum = generateIdentity('parent', rnd);
  const family = `f${toBase32(rnd(16))}` as FamilyId;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'plk-regcache-'));
    c = counted(openSqliteStore(join(dir, 'store')));
    await c.store.createFamily(family, NOW);
    await register(c.store, toy, family);
    await register(c.store, mum, family);
    cache = new RegistryCache(c.store, TTL);
  });
  afterEach(async () => {
    await c.store.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('without a confirmed feed an entry is current for its TTL only', async () => {
    await cache.endpoint(toy.id, NOW);
    await cache.members(family, NOW);
    await cache.endpoint(toy.id, NOW + TTL - 1);
    await cache.members(family, NOW + TTL - 1);
    expect(c.reads).toEqual({ getEndpoint: 1, familyMembers: 1 });
    await cache.endpoint(toy.id, NOW + TTL);
    await cache.members(family, NOW + TTL);
    expect(c.reads).toEqual({ getEndpoint: 2, familyMembers: 2 });
  });

  it('while the feed is confirmed an entry stays current past its TTL, until a change invalidates it', async () => {
    cache.confirm(NOW);
    expect((await cache.endpoint(toy.id, NOW))?.revoked).toBe(false);
    await cache.members(family, NOW);
    for (let t = NOW + 500; t < NOW + 10_000; t += 500) {
      cache.confirm(t);
      await cache.endpoint(toy.id, t + 400);
      await cache.members(family, t + 400);
    }
    expect(c.reads).toEqual({ getEndpoint: 1, familyMembers: 1 });

    // A revocation: the feed's change invalidates the entry; the next read sees it.
    await c.store.revokeEndpoint(toy.id, NOW + 10_000);
    cache.invalidate(toy.id, family);
    cache.confirm(NOW + 10_000);
    expect((await cache.endpoint(toy.id, NOW + 10_000))?.revoked).toBe(true);
    expect((await cache.members(family, NOW + 10_000)).find((m) => m.id === toy.id)?.revoked).toBe(true);
    expect(c.reads).toEqual({ getEndpoint: 2, familyMembers: 2 });
  });

  it('once the feed stops being confirmed, entries expire TTL after the last confirmation', async () => {
    cache.confirm(NOW);
    await cache.endpoint(toy.id, NOW);
    await cache.endpoint(toy.id, NOW + 5000 - 1); // beyond its own TTL, within the confirmation's
    expect(c.reads.getEndpoint).toBe(2);
    cache.confirm(NOW + 5000);
    await cache.endpoint(toy.id, NOW + 5000 + TTL - 1);
    expect(c.reads.getEndpoint).toBe(2);
    await cache.endpoint(toy.id, NOW + 5000 + TTL);
    expect(c.reads.getEndpoint).toBe(3);
  });

  it('an endpoint not registered is remembered for the TTL only, whatever the feed says', async () => {
    const late = generateIdentity('parent', rnd);
    cache.confirm(NOW);
    expect(await cache.endpoint(late.id, NOW)).toBeUndefined();
    await register(c.store, late); // provisioning is not a registry change
    cache.confirm(NOW + TTL);
    expect(await cache.endpoint(late.id, NOW + TTL - 1)).toBeUndefined();
    expect((await cache.endpoint(late.id, NOW + TTL)) as EndpointRecord).toMatchObject({ id: late.id });
  });

  it('a read that an invalidation overtook is not cached', async () => {
    cache.confirm(NOW);
    c.hold = true;
    const pending = cache.endpoint(toy.id, NOW);
    while (c.held.length === 0) await sleep(1);
    // The change lands while the read is in flight, and is applied before the read returns.
    await c.store.revokeEndpoint(toy.id, NOW);
    cache.invalidate(toy.id, family);
    c.hold = false;
    c.held.shift()?.();
    expect((await pending)?.revoked).toBe(false); // what the read saw
    expect((await cache.endpoint(toy.id, NOW + 1))?.revoked).toBe(true);
    expect(c.reads.getEndpoint).toBe(2);
  });
});

describe('RegistryCache fed by the gateway’s registry watch', () => {
  let h: Harness;
  let c: Counted | undefined;
  beforeEach(async () => {
    h = await startHarness({ registryWatchMs: 20 }, (s) => {
      c = counted(s);
      return c.store;
    });
  });
  afterEach(async () => {
    await h.close();
  });

  it('clips minutes apart read the sender once; a revocation still counts at once; a failing feed lets entries expire', async () => {
    const cnt = c as Counted;
    const f = await h.family();
    const toy = await h.connect(f.toy);
    const mumBox = inbox(await h.connect(f.mum));
    const dad = await h.connect(f.dad);
    inbox(dad);
    await toy.publishClip(makeClip(f.toy, [f.mum, f.dad], { now: h.clock.now }));
    await mumBox.wait(1);
    const reads = cnt.reads.getEndpoint;

    // A minute later (the watch confirms the feed at the new time within a poll or two).
    for (let i = 2; i <= 4; i++) {
      h.clock.now += 60_000;
      await sleep(100);
      await toy.publishClip(makeClip(f.toy, [f.mum, f.dad], { now: h.clock.now }));
      await mumBox.wait(i);
    }
    expect(cnt.reads.getEndpoint).toBe(reads);

    // The change feed fails: the cached entries expire TTL after the last good poll.
    cnt.failFeed = true;
    await sleep(100);
    h.clock.now += 60_000;
    await toy.publishClip(makeClip(f.toy, [f.mum, f.dad], { now: h.clock.now }));
    await mumBox.wait(5);
    expect(cnt.reads.getEndpoint).toBeGreaterThan(reads);
    cnt.failFeed = false;

    // Revoking dad (as the admin CLI would, in the store): his session is cut by the watch, and
    // the next clip to him is refused although every cached entry was confirmed a moment ago.
    await sleep(100);
    await h.store.revokeEndpoint(f.dad.id, h.clock.now);
    await closed(dad.client);
    toy.publishClip(makeClip(f.toy, [f.mum, f.dad], { now: h.clock.now })).catch(() => {});
    await closed(toy.client);
    expect(
      h.audit.events.find((e) => e.endpoint === f.toy.id && e.kind === 'clip.refused')?.detail?.reason,
    ).toBe('recipient-revoked');
  });
});
