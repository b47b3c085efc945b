// The in-memory RateLimiter and NonceStore: the shared contracts (limits.contract.ts) and their own bounds [PLK-3.5].

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MemoryNonceStore, MemoryRateLimiter } from '../../gateway/limits.ts';
import { openSqliteStore } from '../../gateway/store/sqlite.ts';
import { runNonceStoreContract, runRateLimiterContract } from './limits.contract.ts';
import { newEndpoint } from './store.contract.ts';

runRateLimiterContract(
  'MemoryRateLimiter',
  () => new MemoryRateLimiter({ capacity: 5, refillPerSecond: 10 }),
);
runNonceStoreContract('MemoryNonceStore', () => new MemoryNonceStore());

describe('MemoryRateLimiter bounds', () => {
  it('evicts idle full buckets first when maxKeys is reached', () => {
    const rl = new MemoryRateLimiter({ capacity: 2, refillPerSecond: 1, maxKeys: 3 });
    expect(rl.tryTake('a', 1, 0)).toBe(true);
    expect(rl.tryTake('b', 1, 0)).toBe(true);
    expect(rl.tryTake('c', 1, 0)).toBe(true);
    // At t=500 no bucket has refilled: a new key cannot push out a limited one (fail closed).
    expect(rl.tryTake('d', 1, 500)).toBe(false);
    expect(rl.size).toBe(3);
    // At t=1000 'a', 'b' and 'c' are full again: the least recently used one is evicted.
    expect(rl.tryTake('d', 1, 1000)).toBe(true);
    expect(rl.size).toBe(3);
  });

  it('spraying fresh keys neither grows memory nor resets a limited key', () => {
    const rl = new MemoryRateLimiter({ capacity: 3, refillPerSecond: 0.001, maxKeys: 100 });
    for (let i = 0; i < 3; i++) expect(rl.tryTake('victim-limited', 1, 0)).toBe(true);
    for (let i = 0; i < 10_000; i++) rl.tryTake(`spray-${i}`, 1, i);
    expect(rl.size).toBeLessThanOrEqual(100);
    expect(rl.tryTake('victim-limited', 1, 10_000)).toBe(false);
  });

  it('validates its options', () => {
    expect(() => new MemoryRateLimiter({ capacity: 0, refillPerSecond: 1 })).toThrow(RangeError);
    expect(() => new MemoryRateLimiter({ capacity: 1, refillPerSecond: -1 })).toThrow(RangeError);
    expect(() => new MemoryRateLimiter({ capacity: 1, refillPerSecond: 1, maxKeys: 0 })).toThrow(RangeError);
  });
});

describe('MemoryNonceStore bounds', () => {
  it('fails closed when full of unexpired nonces, recovers once they expire', async () => {
    const ns = new MemoryNonceStore(3);
    for (const k of ['a', 'b', 'c']) expect(await ns.add(k, k, 100, 0)).toBe('fresh');
    expect(await ns.add('d', 'd', 100, 50)).toBe('full');
    expect(await ns.add('a', 'a', 100, 50)).toBe('replay');
    expect(await ns.add('d', 'd', 200, 101)).toBe('fresh');
    expect(ns.size).toBe(1);
  });

  it('quota: at most perEndpoint unexpired nonces per endpoint, others unaffected', async () => {
    const ns = new MemoryNonceStore(100, { perEndpoint: 2 });
    expect(await ns.add('x:1', 'x', 100, 0)).toBe('fresh');
    expect(await ns.add('x:2', 'x', 150, 0)).toBe('fresh');
    expect(await ns.add('x:3', 'x', 200, 10)).toBe('quota');
    expect(await ns.add('y:1', 'y', 200, 10)).toBe('fresh');
    expect(await ns.add('x:3', 'x', 200, 101)).toBe('fresh'); // x:1 expired
  });

  it('persisted: durable before it resolves, loaded after a restart, so a token stays refused [PLK-3.5]', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'plk-nonce-'));
    try {
      let store = openSqliteStore(dir);
      const id = newEndpoint('toy').id;
      const ns = await MemoryNonceStore.open(100, { persist: store, now: 1000 });
      expect(await ns.add(`${id}:aa`, id, 61_000, 1000)).toBe('fresh');
      await store.close(); // the process dies here: what was acknowledged must be on disk
      store = openSqliteStore(dir);
      const after = await MemoryNonceStore.open(100, { persist: store, now: 2000 });
      expect(after.size).toBe(1);
      expect(await after.add(`${id}:aa`, id, 61_000, 2000)).toBe('replay');
      expect(await after.add(`${id}:bb`, id, 61_000, 2000)).toBe('fresh');
      // Expired nonces are not loaded.
      const later = await MemoryNonceStore.open(100, { persist: store, now: 70_000 });
      expect(later.size).toBe(0);
      // A store that cannot write: nothing is recorded, the caller fails closed.
      await store.close();
      await expect(later.add(`${id}:cc`, id, 130_000, 70_000)).rejects.toThrow(/closed/);
      expect(later.size).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
