// In-process rate limiting (token buckets, bounded with LRU eviction) and the connect-nonce replay store [PLK-3.5].
import type { EndpointId } from '../shared/types.ts';
import type { NonceOutcome, NonceStore, RateLimiter, StoredNonce } from './interfaces.ts';

export interface TokenBucketOptions {
  /** Bucket size: the largest burst. */
  capacity: number;
  /** Tokens added per second. */
  refillPerSecond: number;
  /** Most keys tracked at once (default 100,000). */
  maxKeys?: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

/** How many old buckets one new key may inspect looking for an idle, full one to evict. */
const EVICTION_SCAN = 32;

/**
 * Token buckets by key. Memory is bounded by `maxKeys`: a new key may only evict a bucket that
 * has refilled completely (an idle key loses nothing by being forgotten, since a new bucket
 * starts full). When none of the least recently used buckets is full, the new key is refused
 * (fail closed): spraying fresh keys can neither grow memory nor reset other keys' limits.
 */
export class MemoryRateLimiter implements RateLimiter {
  readonly capacity: number;
  readonly refillPerMs: number;
  readonly maxKeys: number;
  /** Map order = least recently used first. */
  private readonly buckets = new Map<string, Bucket>();

  constructor(opts: TokenBucketOptions) {
    if (!opts || typeof opts !== 'object') throw new TypeError('options must be an object');
    const { capacity, refillPerSecond, maxKeys = 100_000 } = opts;
    if (typeof capacity !== 'number' || !Number.isFinite(capacity) || capacity <= 0) {
      throw new RangeError(`capacity must be a positive number, got ${String(capacity)}`);
    }
    if (typeof refillPerSecond !== 'number' || !Number.isFinite(refillPerSecond) || refillPerSecond < 0) {
      throw new RangeError(`refillPerSecond must be a non-negative number, got ${String(refillPerSecond)}`);
    }
    if (!Number.isSafeInteger(maxKeys) || maxKeys < 1)
      throw new RangeError(`maxKeys must be a positive integer, got ${maxKeys}`);
    this.capacity = capacity;
    this.refillPerMs = refillPerSecond / 1000;
    this.maxKeys = maxKeys;
  }

  get size(): number {
    return this.buckets.size;
  }

  private level(b: Bucket, now: number): number {
    const elapsed = Math.max(0, now - b.at); // a clock going backwards never mints tokens
    return Math.min(this.capacity, b.tokens + elapsed * this.refillPerMs);
  }

  /** Synchronous form of take() for hot paths. */
  tryTake(key: string, cost: number, now: number): boolean {
    if (typeof key !== 'string') throw new TypeError('key must be a string');
    if (typeof cost !== 'number' || !Number.isFinite(cost) || cost <= 0) {
      throw new RangeError(`cost must be a positive number, got ${String(cost)}`);
    }
    if (typeof now !== 'number' || !Number.isFinite(now))
      throw new TypeError('now must be a finite number (ms)');
    let b = this.buckets.get(key);
    if (b) {
      b.tokens = this.level(b, now);
      b.at = Math.max(b.at, now);
      this.buckets.delete(key); // move to most recently used
    } else {
      if (this.buckets.size >= this.maxKeys && !this.evictOne(now)) return false;
      b = { tokens: this.capacity, at: now };
    }
    this.buckets.set(key, b);
    if (b.tokens < cost) return false;
    b.tokens -= cost;
    return true;
  }

  take(key: string, cost: number, now: number): Promise<boolean> {
    try {
      return Promise.resolve(this.tryTake(key, cost, now));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Evicts the least recently used full bucket among the first few; busy ones move to the back. */
  private evictOne(now: number): boolean {
    let scanned = 0;
    for (const [k, b] of this.buckets) {
      if (scanned++ >= EVICTION_SCAN) break;
      this.buckets.delete(k);
      if (this.level(b, now) >= this.capacity) return true;
      this.buckets.set(k, b); // still draining: keep it, look again later
    }
    return false;
  }
}

/** Where nonces are made durable (the gateway's store) and read back after a restart. */
export interface NoncePersistence {
  recordNonce(nonce: StoredNonce): Promise<void>;
  loadNonces(now: number): Promise<StoredNonce[]>;
}

export interface NonceStoreOptions {
  /** Most unexpired nonces (= connects within the token window) per endpoint; default 64. */
  readonly perEndpoint?: number;
  /** Make every nonce durable before `add` resolves (and load them in `open`). In memory only when absent. */
  readonly persist?: NoncePersistence;
}

/**
 * [PLK-3.5] Connect-token nonces, remembered until their token leaves the timestamp window.
 * Bounded; fails closed (refuses) when full of unexpired nonces, and refuses an endpoint that
 * holds its quota of unexpired nonces (so one key cannot fill the cache for everyone). With
 * `persist`, a nonce is durable before `add` resolves and `open` loads the unexpired ones, so a
 * token captured before a restart (clean or SIGKILL) stays refused after it.
 */
export class MemoryNonceStore implements NonceStore {
  /** Nonce key → its endpoint and expiry (ms), in insertion order. */
  private readonly entries = new Map<string, { readonly endpoint: string; readonly expiresAt: number }>();
  /** Endpoint → expiries of its nonces (may hold expired ones until looked at). */
  private readonly byEndpoint = new Map<string, number[]>();
  readonly perEndpoint: number;
  private readonly persist: NoncePersistence | undefined;

  constructor(
    readonly capacity = 200_000,
    opts: NonceStoreOptions = {},
  ) {
    if (!Number.isInteger(capacity) || capacity < 1)
      throw new RangeError('capacity must be a positive integer');
    this.perEndpoint = opts.perEndpoint ?? 64;
    if (!Number.isInteger(this.perEndpoint) || this.perEndpoint < 1)
      throw new RangeError('perEndpoint must be a positive integer');
    this.persist = opts.persist;
  }

  /** A store with the unexpired nonces of `opts.persist` loaded (a restarting gateway). */
  static async open(capacity: number, opts: NonceStoreOptions & { now: number }): Promise<MemoryNonceStore> {
    const store = new MemoryNonceStore(capacity, opts);
    if (opts.persist) {
      for (const n of await opts.persist.loadNonces(opts.now)) {
        if (store.entries.size >= capacity) break;
        store.insert(n.key, n.endpoint, n.expiresAt);
      }
    }
    return store;
  }

  get size(): number {
    return this.entries.size;
  }

  private insert(key: string, endpoint: string, expiresAt: number): void {
    this.entries.delete(key);
    this.entries.set(key, { endpoint, expiresAt });
    let list = this.byEndpoint.get(endpoint);
    if (!list) {
      list = [];
      this.byEndpoint.set(endpoint, list);
    }
    list.push(expiresAt);
  }

  /** Unexpired nonces of `endpoint` (drops the expired ones it finds). */
  private held(endpoint: string, now: number): number {
    const list = this.byEndpoint.get(endpoint);
    if (!list) return 0;
    const live = list.filter((e) => e >= now);
    if (live.length === 0) this.byEndpoint.delete(endpoint);
    else if (live.length !== list.length) this.byEndpoint.set(endpoint, live);
    return live.length;
  }

  /** Synchronous check-and-record in memory (no persistence). */
  addSync(key: string, endpoint: string, expiresAt: number, now: number): NonceOutcome {
    if (typeof key !== 'string' || key.length === 0) throw new TypeError('key must be a non-empty string');
    if (typeof endpoint !== 'string' || endpoint.length === 0)
      throw new TypeError('endpoint must be a non-empty string');
    if (!Number.isFinite(expiresAt) || !Number.isFinite(now))
      throw new TypeError('expiresAt and now must be finite (ms)');
    const seen = this.entries.get(key);
    if (seen !== undefined && seen.expiresAt >= now) return 'replay';
    if (this.held(endpoint, now) >= this.perEndpoint) return 'quota';
    if (seen === undefined && this.entries.size >= this.capacity) {
      this.sweep(now);
      if (this.entries.size >= this.capacity) return 'full';
    }
    this.insert(key, endpoint, expiresAt);
    return 'fresh';
  }

  /** Drops every expired entry; runs only when the cache is full. */
  private sweep(now: number): void {
    for (const [k, e] of this.entries) if (e.expiresAt < now) this.entries.delete(k);
    for (const endpoint of [...this.byEndpoint.keys()]) this.held(endpoint, now);
  }

  async add(key: string, endpoint: string, expiresAt: number, now: number): Promise<NonceOutcome> {
    const outcome = this.addSync(key, endpoint, expiresAt, now);
    if (outcome !== 'fresh' || !this.persist) return outcome;
    try {
      await this.persist.recordNonce({ key, endpoint: endpoint as EndpointId, expiresAt });
    } catch (err) {
      // Not durable: forget it in memory too, and let the caller fail closed.
      this.entries.delete(key);
      const list = this.byEndpoint.get(endpoint);
      const at = list?.lastIndexOf(expiresAt) ?? -1;
      if (list && at >= 0) list.splice(at, 1);
      throw err;
    }
    return 'fresh';
  }
}
