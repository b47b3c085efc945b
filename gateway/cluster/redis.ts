// What gateway nodes share fast, in Redis: the connect-nonce replay cache and the rate-limit buckets, each one atomic Lua script, failing closed [PLK-3.5][PLK-9.2].
import { Redis, type RedisOptions } from 'ioredis';
import { CodedError } from '../../shared/errors.ts';
import type { EndpointId } from '../../shared/types.ts';
import type { NonceOutcome, NonceStore, RateLimiter, StoredNonce } from '../interfaces.ts';
import type { TokenBucketOptions } from '../limits.ts';

export type RedisErrorCode = 'REDIS_UNAVAILABLE' | 'REDIS_OPTIONS';

/** Redis did not answer (or answered nonsense): the caller fails closed. */
export class RedisError extends CodedError<RedisErrorCode> {}

/**
 * A connection for commands whose answer decides a refusal: no offline queue (a command sent while
 * Redis is unreachable fails at once instead of waiting for it), one try, a timeout, and endless
 * reconnection in the background. Resolves once connected; rejects when Redis is not reachable
 * within `connectTimeoutMs` (a node does not start without its shared state).
 */
export async function connectRedis(
  url: string,
  opts: {
    readonly connectTimeoutMs?: number;
    readonly commandTimeoutMs?: number;
    readonly name?: string;
  } = {},
): Promise<Redis> {
  if (typeof url !== 'string' || !/^rediss?:\/\//.test(url)) {
    throw new RedisError(
      'REDIS_OPTIONS',
      `redis url must start with redis:// or rediss://, got ${String(url)}`,
    );
  }
  const redis = new Redis(url, failClosedOptions(opts));
  redis.on('error', () => {}); // reported through failed commands; reconnection goes on
  try {
    await waitReady(redis, opts.connectTimeoutMs ?? 5000);
  } catch (err) {
    redis.disconnect();
    throw new RedisError('REDIS_UNAVAILABLE', `redis ${redactUrl(url)} is not reachable (${String(err)})`, {
      cause: err,
    });
  }
  return redis;
}

/** ioredis options of a fail-closed connection (see connectRedis). */
export function failClosedOptions(
  opts: { readonly commandTimeoutMs?: number; readonly name?: string } = {},
): RedisOptions {
  return {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: opts.commandTimeoutMs ?? 2000,
    connectTimeout: 2000,
    retryStrategy: (times: number) => Math.min(50 * times, 1000),
    lazyConnect: false,
    ...(opts.name ? { connectionName: opts.name } : {}),
  };
}

function waitReady(redis: Redis, timeoutMs: number): Promise<void> {
  if (redis.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      cleanup();
      reject(new Error(`not ready after ${timeoutMs} ms`));
    }, timeoutMs);
    let last: unknown;
    const onErr = (e: unknown) => {
      last = e;
    };
    const onReady = () => {
      cleanup();
      resolve();
    };
    const onEnd = () => {
      cleanup();
      reject(last ?? new Error('connection ended'));
    };
    const cleanup = () => {
      clearTimeout(t);
      redis.off('ready', onReady);
      redis.off('error', onErr);
      redis.off('end', onEnd);
    };
    redis.on('ready', onReady);
    redis.on('error', onErr);
    redis.on('end', onEnd);
  });
}

/** The URL without a password, for messages. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^@/]*)@/, '//***@');
}

/**
 * [PLK-3.5] KEYS[1] the nonce, KEYS[2] the endpoint's set of unexpired nonce expiries (same hash
 * slot: `{endpoint}`); ARGV now, expiresAt, quota, member. Atomically: a remembered nonce whose
 * expiry (its value) is not past `now` is a replay; an endpoint holding its quota of unexpired
 * nonces is refused; otherwise SET PX with the token's remaining window as TTL, and the expiry
 * joins the endpoint's set. Expiry is decided against the caller's clock (the value), the TTL only
 * frees memory — so the gateway's injected clock, not Redis', says when a token is stale.
 */
const NONCE_SCRIPT = `
local now = tonumber(ARGV[1])
local exp = tonumber(ARGV[2])
local quota = tonumber(ARGV[3])
local seen = tonumber(redis.call('GET', KEYS[1]))
if seen ~= nil and seen >= now then return 'replay' end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[1])
if redis.call('ZCARD', KEYS[2]) >= quota then return 'quota' end
local ttl = exp - now
if ttl < 1 then ttl = 1 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ttl)
redis.call('ZADD', KEYS[2], exp, ARGV[4])
if redis.call('PTTL', KEYS[2]) < ttl then redis.call('PEXPIRE', KEYS[2], ttl) end
return 'fresh'
`;

/**
 * A token bucket per key: KEYS[1] a hash {t: tokens, a: last refill time}; ARGV capacity,
 * refill per ms, cost, now, ttl ms. Refills for the time elapsed (never for a clock going
 * backwards), takes `cost` if there is enough, and lets an idle bucket expire once it would be
 * full again (a new bucket starts full, so forgetting it loses nothing). Returns 1 or 0.
 */
const BUCKET_SCRIPT = `
local cap = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
local b = redis.call('HMGET', KEYS[1], 't', 'a')
local tokens = tonumber(b[1])
local at = tonumber(b[2])
if tokens == nil or at == nil then
  tokens = cap
  at = now
end
local elapsed = now - at
if elapsed < 0 then elapsed = 0 end
tokens = math.min(cap, tokens + elapsed * rate)
if now > at then at = now end
local ok = 0
if tokens >= cost then
  tokens = tokens - cost
  ok = 1
end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'a', tostring(at))
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return ok
`;

interface PlkRedis extends Redis {
  plkNonce(
    nonceKey: string,
    setKey: string,
    now: number,
    exp: number,
    quota: number,
    member: string,
  ): Promise<string>;
  plkBucket(
    key: string,
    cap: number,
    ratePerMs: number,
    cost: number,
    now: number,
    ttl: number,
  ): Promise<number>;
}

/** Registers the scripts (EVALSHA, with a fallback to EVAL after a Redis restart forgot them). */
function withScripts(redis: Redis): PlkRedis {
  const r = redis as PlkRedis;
  if (typeof r.plkNonce !== 'function') {
    redis.defineCommand('plkNonce', { numberOfKeys: 2, lua: NONCE_SCRIPT });
    redis.defineCommand('plkBucket', { numberOfKeys: 1, lua: BUCKET_SCRIPT });
  }
  return r;
}

/** Where nonces are recorded durably and cluster-wide (PostgresStore.claimNonce): false means a replay. */
export interface NonceLedger {
  claimNonce(nonce: StoredNonce, now: number): Promise<boolean>;
}

export interface RedisNonceStoreOptions {
  /** Most unexpired nonces per endpoint; default 64 [PLK-3.5]. */
  readonly perEndpoint?: number;
  /** Key prefix (one per gateway sharing a Redis); default `plk`. */
  readonly prefix?: string;
  /**
   * [PLK-3.5] The durable record: a nonce fresh in Redis is also claimed there before `add`
   * resolves, so a token captured before a Redis restart (which loses what AOF had not synced) is
   * still refused after it. Without one, the nonce is only as durable as Redis.
   */
  readonly ledger?: NonceLedger;
}

/**
 * [PLK-3.5] The replay cache of every node: atomic in Redis (one script: replay check, per-endpoint
 * quota, SET NX PX), then durable in the ledger. Redis unreachable → `add` rejects, and the connect
 * is refused with CONNACK 3 (fail closed). There is no global capacity: the per-endpoint quota
 * bounds Redis memory by (registered endpoints × quota), and only a correctly signed token of a
 * registered endpoint reaches the cache.
 */
export class RedisNonceStore implements NonceStore {
  private readonly redis: PlkRedis;
  readonly perEndpoint: number;
  private readonly prefix: string;
  private readonly ledger: NonceLedger | undefined;

  constructor(redis: Redis, opts: RedisNonceStoreOptions = {}) {
    this.redis = withScripts(redis);
    this.perEndpoint = opts.perEndpoint ?? 64;
    if (!Number.isInteger(this.perEndpoint) || this.perEndpoint < 1)
      throw new RangeError('perEndpoint must be a positive integer');
    this.prefix = opts.prefix ?? 'plk';
    this.ledger = opts.ledger;
  }

  async add(key: string, endpoint: string, expiresAt: number, now: number): Promise<NonceOutcome> {
    if (typeof key !== 'string' || key.length === 0 || key.length > 200)
      throw new TypeError('key must be a string of 1..200 characters');
    if (typeof endpoint !== 'string' || endpoint.length === 0 || /[{}]/.test(endpoint))
      throw new TypeError('endpoint must be a non-empty string without braces');
    if (!Number.isSafeInteger(expiresAt) || !Number.isSafeInteger(now))
      throw new TypeError('expiresAt and now must be integers (ms)');
    let outcome: string;
    try {
      outcome = await this.redis.plkNonce(
        `${this.prefix}:n:{${endpoint}}:${key}`,
        `${this.prefix}:nq:{${endpoint}}`,
        now,
        expiresAt,
        this.perEndpoint,
        key,
      );
    } catch (err) {
      throw new RedisError('REDIS_UNAVAILABLE', `nonce cache unavailable (${String(err)})`, { cause: err });
    }
    if (outcome !== 'fresh') {
      if (outcome === 'replay' || outcome === 'quota') return outcome;
      throw new RedisError('REDIS_UNAVAILABLE', `nonce script returned ${outcome}`);
    }
    // Durable before the CONNACK; the ledger is the last word on a replay Redis forgot.
    if (
      this.ledger &&
      !(await this.ledger.claimNonce({ key, endpoint: endpoint as EndpointId, expiresAt }, now))
    )
      return 'replay';
    return 'fresh';
  }
}

export interface RedisRateLimiterOptions extends TokenBucketOptions {
  /** The limiter's name in its keys (connect, clips, bytes, receipts). */
  readonly name: string;
  readonly prefix?: string;
}

/**
 * [PLK-9.2] Token buckets shared by every node: one script call per `take` (read, refill, take,
 * write back, expire when idle). Redis unreachable → `take` rejects, and the caller refuses.
 */
export class RedisRateLimiter implements RateLimiter {
  private readonly redis: PlkRedis;
  readonly capacity: number;
  readonly refillPerMs: number;
  private readonly ttlMs: number;
  private readonly keyPrefix: string;

  constructor(redis: Redis, opts: RedisRateLimiterOptions) {
    this.redis = withScripts(redis);
    const { capacity, refillPerSecond } = opts;
    if (typeof capacity !== 'number' || !Number.isFinite(capacity) || capacity <= 0)
      throw new RangeError(`capacity must be a positive number, got ${String(capacity)}`);
    if (typeof refillPerSecond !== 'number' || !Number.isFinite(refillPerSecond) || refillPerSecond < 0)
      throw new RangeError(`refillPerSecond must be a non-negative number, got ${String(refillPerSecond)}`);
    if (!/^[a-z][a-z0-9-]{0,31}$/.test(opts.name)) throw new TypeError('name must be a short lowercase word');
    this.capacity = capacity;
    this.refillPerMs = refillPerSecond / 1000;
    // An idle bucket is full again after capacity / rate: then it may be forgotten.
    // At least a minute, so that a bucket is not forgotten between two takes of a slow caller
    // (the refill is computed from the caller's clock, the expiry from Redis').
    this.ttlMs =
      refillPerSecond > 0
        ? Math.min(86_400_000, Math.max(60_000, Math.ceil((capacity / refillPerSecond) * 1000) + 1000))
        : 86_400_000;
    this.keyPrefix = `${opts.prefix ?? 'plk'}:rl:${opts.name}`;
  }

  async take(key: string, cost: number, now: number): Promise<boolean> {
    if (typeof key !== 'string' || key.length === 0 || key.length > 200 || /[{}]/.test(key))
      throw new TypeError('key must be a string of 1..200 characters without braces');
    if (typeof cost !== 'number' || !Number.isFinite(cost) || cost <= 0)
      throw new RangeError(`cost must be a positive number, got ${String(cost)}`);
    if (typeof now !== 'number' || !Number.isFinite(now))
      throw new TypeError('now must be a finite number (ms)');
    try {
      const ok = await this.redis.plkBucket(
        `${this.keyPrefix}:{${key}}`,
        this.capacity,
        this.refillPerMs,
        cost,
        Math.floor(now),
        this.ttlMs,
      );
      return ok === 1;
    } catch (err) {
      throw new RedisError('REDIS_UNAVAILABLE', `rate limiter unavailable (${String(err)})`, { cause: err });
    }
  }
}
