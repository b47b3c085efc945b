// The Redis nonce cache and rate limiter against the same contracts as the in-memory ones, plus what only Redis has: TTLs within the token window, one cache for every node, failing closed [PLK-3.5][PLK-9.2].
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectRedis, RedisError, RedisNonceStore, RedisRateLimiter } from '../../gateway/cluster/redis.ts';
import type { StoredNonce } from '../../gateway/interfaces.ts';
import { runNonceStoreContract, runRateLimiterContract } from '../gateway/limits.contract.ts';
import { type RedisEngine, startRedis } from '../helpers/engines.ts';
import { expectCodeAsync } from '../helpers/errors.ts';

let engine: RedisEngine;
let redis: Redis;
let prefixes = 0;
/** Each store on a key prefix of its own, so every contract test starts empty on one server. */
const prefix = (): string => `t${++prefixes}`;

beforeAll(async () => {
  engine = await startRedis();
  redis = await connectRedis(engine.url);
}, 30_000);
afterAll(async () => {
  redis?.disconnect();
  await engine?.destroy();
});

runRateLimiterContract(
  'RedisRateLimiter',
  () => new RedisRateLimiter(redis, { name: 'contract', prefix: prefix(), capacity: 5, refillPerSecond: 10 }),
);
runNonceStoreContract('RedisNonceStore', () => new RedisNonceStore(redis, { prefix: prefix() }));

describe('Redis specifics', () => {
  it('a nonce key lives no longer than the token window it covers, and is shared by every node [PLK-3.5]', async () => {
    const p = prefix();
    const a = new RedisNonceStore(redis, { prefix: p });
    const other = await connectRedis(engine.url);
    try {
      const b = new RedisNonceStore(other, { prefix: p }); // a second node: its own connection, same Redis
      const now = Date.now();
      expect(await a.add('ep:1', 'ep', now + 120_000, now)).toBe('fresh');
      expect(await b.add('ep:1', 'ep', now + 120_000, now + 1)).toBe('replay');
      const ttl = await redis.pttl(`${p}:n:{ep}:ep:1`);
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(120_000);
      const setTtl = await redis.pttl(`${p}:nq:{ep}`);
      expect(setTtl).toBeGreaterThan(0);
      expect(setTtl).toBeLessThanOrEqual(120_000);
    } finally {
      other.disconnect();
    }
  });

  it('concurrent adds of one nonce from two connections: exactly one is fresh (one atomic script)', async () => {
    const p = prefix();
    const other = await connectRedis(engine.url);
    try {
      const stores = [new RedisNonceStore(redis, { prefix: p }), new RedisNonceStore(other, { prefix: p })];
      const now = Date.now();
      const outcomes = await Promise.all(
        Array.from({ length: 40 }, (_, i) => stores[i % 2]!.add('ep:race', 'ep', now + 60_000, now)),
      );
      expect(outcomes.filter((o) => o === 'fresh')).toHaveLength(1);
      expect(outcomes.filter((o) => o === 'replay')).toHaveLength(39);
    } finally {
      other.disconnect();
    }
  });

  it('rate-limit buckets are shared: what one node takes, another cannot take again [PLK-9.2]', async () => {
    const p = prefix();
    const opts = { name: 'clips', prefix: p, capacity: 3, refillPerSecond: 0.001 };
    const other = await connectRedis(engine.url);
    try {
      const [a, b] = [new RedisRateLimiter(redis, opts), new RedisRateLimiter(other, opts)];
      const now = Date.now();
      const taken = await Promise.all(
        Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).take('ep', 1, now)),
      );
      expect(taken.filter(Boolean)).toHaveLength(3);
      expect(await redis.pttl(`${p}:rl:clips:{ep}`)).toBeGreaterThan(0);
    } finally {
      other.disconnect();
    }
  });

  it('a nonce Redis forgot is still refused when the ledger (PostgreSQL) has it [PLK-3.5]', async () => {
    const claimed = new Map<string, StoredNonce>();
    const ledger = {
      async claimNonce(n: StoredNonce, now: number): Promise<boolean> {
        const old = claimed.get(n.key);
        if (old && old.expiresAt >= now) return false;
        claimed.set(n.key, n);
        return true;
      },
    };
    const p = prefix();
    const ns = new RedisNonceStore(redis, { prefix: p, ledger });
    const now = Date.now();
    expect(await ns.add('ep:2', 'ep', now + 60_000, now)).toBe('fresh');
    await redis.del(`${p}:n:{ep}:ep:2`, `${p}:nq:{ep}`); // what a restart without AOF does
    expect(await ns.add('ep:2', 'ep', now + 60_000, now + 5)).toBe('replay');
  });

  it('Redis gone: every add and take rejects (the gateway refuses: fail closed), and works again once it is back', async () => {
    const own = await startRedis();
    const conn = await connectRedis(own.url, { commandTimeoutMs: 500 });
    try {
      const ns = new RedisNonceStore(conn, { prefix: 'x' });
      const rl = new RedisRateLimiter(conn, {
        name: 'connect',
        prefix: 'x',
        capacity: 5,
        refillPerSecond: 1,
      });
      const now = Date.now();
      expect(await ns.add('ep:a', 'ep', now + 60_000, now)).toBe('fresh');
      await own.kill();
      await expectCodeAsync(ns.add('ep:b', 'ep', now + 60_000, now), 'REDIS_UNAVAILABLE', RedisError);
      await expectCodeAsync(rl.take('ep', 1, now), 'REDIS_UNAVAILABLE', RedisError);
      await own.start();
      // Reconnection is ioredis' own (in the background): wait for it, bounded.
      const t0 = Date.now();
      while (conn.status !== 'ready') {
        if (Date.now() - t0 > 20_000) throw new Error('did not reconnect');
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(await ns.add('ep:c', 'ep', now + 60_000, now)).toBe('fresh');
      expect(await rl.take('ep', 1, now)).toBe(true);
    } finally {
      conn.disconnect();
      await own.destroy();
    }
  });

  it('refuses a URL that is not redis:// and an unreachable server, with one line', async () => {
    await expectCodeAsync(connectRedis('http://127.0.0.1:1'), 'REDIS_OPTIONS', RedisError);
    await expectCodeAsync(
      connectRedis('redis://127.0.0.1:1', { connectTimeoutMs: 1000 }),
      'REDIS_UNAVAILABLE',
      RedisError,
    );
  });
});
