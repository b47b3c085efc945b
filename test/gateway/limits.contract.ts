// RateLimiter and NonceStore contracts (injected clock): written once, run against the in-memory implementations (test/gateway/limits.test.ts) and the Redis ones (test/cluster/redis-limits.test.ts) [PLK-3.5][PLK-9.2].
import { describe, expect, it } from 'vitest';
import type { NonceStore, RateLimiter } from '../../gateway/interfaces.ts';

/** Contract for any RateLimiter built with capacity 5 and 10 tokens/s. */
export function runRateLimiterContract(name: string, make: () => RateLimiter): void {
  describe(`RateLimiter contract: ${name}`, () => {
    it('allows a burst up to capacity, then refuses', async () => {
      const rl = make();
      const t = 1_000_000;
      for (let i = 0; i < 5; i++) expect(await rl.take('a', 1, t)).toBe(true);
      expect(await rl.take('a', 1, t)).toBe(false);
    });
    it('refills at the configured rate, never above capacity', async () => {
      const rl = make();
      let t = 1_000_000;
      for (let i = 0; i < 5; i++) await rl.take('a', 1, t);
      t += 99;
      expect(await rl.take('a', 1, t)).toBe(false); // 0.99 tokens
      t += 1;
      expect(await rl.take('a', 1, t)).toBe(true); // 100 ms = 1 token
      t += 3_600_000;
      for (let i = 0; i < 5; i++) expect(await rl.take('a', 1, t)).toBe(true);
      expect(await rl.take('a', 1, t)).toBe(false);
    });
    it('keys are independent; costs are honoured; a cost above capacity never passes', async () => {
      const rl = make();
      const t = 5_000;
      expect(await rl.take('a', 5, t)).toBe(true);
      expect(await rl.take('a', 1, t)).toBe(false);
      expect(await rl.take('b', 3, t)).toBe(true);
      expect(await rl.take('b', 3, t)).toBe(false); // a refused take costs nothing
      expect(await rl.take('b', 2, t)).toBe(true);
      expect(await rl.take('c', 6, t + 1e9)).toBe(false);
    });
    it('a clock going backwards does not mint tokens', async () => {
      const rl = make();
      for (let i = 0; i < 5; i++) await rl.take('a', 1, 10_000);
      expect(await rl.take('a', 1, 5_000)).toBe(false);
      expect(await rl.take('a', 1, 10_050)).toBe(false);
      expect(await rl.take('a', 1, 10_100)).toBe(true);
    });
    it('rejects invalid costs', async () => {
      const rl = make();
      await expect(rl.take('a', 0, 1)).rejects.toThrow(RangeError);
      await expect(rl.take('a', Number.NaN, 1)).rejects.toThrow(RangeError);
      await expect(rl.take('a', -1, 1)).rejects.toThrow(RangeError);
    });
  });
}

export function runNonceStoreContract(name: string, make: () => NonceStore): void {
  describe(`NonceStore contract: ${name}`, () => {
    it('refuses a nonce seen before it expires, accepts it again after', async () => {
      const ns = make();
      expect(await ns.add('ep:00', 'ep', 2_000, 1_000)).toBe('fresh');
      expect(await ns.add('ep:00', 'ep', 2_000, 1_500)).toBe('replay');
      expect(await ns.add('ep:00', 'ep', 2_000, 2_000)).toBe('replay');
      expect(await ns.add('ep:01', 'ep', 2_000, 1_500)).toBe('fresh');
      expect(await ns.add('ep:00', 'ep', 4_000, 2_001)).toBe('fresh'); // the old token is stale by now anyway
    });
    it('one endpoint cannot use up the cache for the others: a per-endpoint quota [PLK-3.5]', async () => {
      const ns = make();
      let fresh = 0;
      let quota = 0;
      for (let i = 0; i < 500; i++) {
        const r = await ns.add(`greedy:${i}`, 'greedy', 100_000, 1_000 + i);
        if (r === 'fresh') fresh++;
        else if (r === 'quota') quota++;
      }
      expect(fresh).toBeGreaterThan(0);
      expect(fresh).toBeLessThan(500);
      expect(quota).toBe(500 - fresh);
      expect(await ns.add('victim:0', 'victim', 100_000, 2_000)).toBe('fresh');
      // Once the greedy endpoint's nonces expire it may connect again.
      expect(await ns.add('greedy:again', 'greedy', 300_000, 100_001)).toBe('fresh');
    });
  });
}
