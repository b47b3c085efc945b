// In-process rate limiting (token buckets, bounded with LRU eviction) and the connect-nonce replay store [PLK-3.5].
import type { NonceOutcome, NonceStore, RateLimiter } from './interfaces.ts';

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

/**
 * [PLK-3.5] Connect-token nonces, remembered until their token leaves the timestamp window.
 * Bounded; fails closed (refuses) when full of unexpired nonces.
 */
export class MemoryNonceStore implements NonceStore {
  /** Nonce key → expiry (ms), in insertion order. */
  private readonly entries = new Map<string, number>();

  constructor(readonly capacity = 200_000) {
    if (!Number.isInteger(capacity) || capacity < 1)
      throw new RangeError('capacity must be a positive integer');
  }

  get size(): number {
    return this.entries.size;
  }

  /** Synchronous form of add(). */
  addSync(key: string, expiresAt: number, now: number): NonceOutcome {
    if (typeof key !== 'string' || key.length === 0) throw new TypeError('key must be a non-empty string');
    if (!Number.isFinite(expiresAt) || !Number.isFinite(now))
      throw new TypeError('expiresAt and now must be finite (ms)');
    const seen = this.entries.get(key);
    if (seen !== undefined && seen >= now) return 'replay';
    if (seen === undefined && this.entries.size >= this.capacity) {
      this.sweep(now);
      if (this.entries.size >= this.capacity) return 'full';
    }
    this.entries.delete(key);
    this.entries.set(key, expiresAt);
    return 'fresh';
  }

  /** Drops every expired entry; runs only when the cache is full. */
  private sweep(now: number): void {
    for (const [k, exp] of this.entries) if (exp < now) this.entries.delete(k);
  }

  add(key: string, expiresAt: number, now: number): Promise<NonceOutcome> {
    try {
      return Promise.resolve(this.addSync(key, expiresAt, now));
    } catch (err) {
      return Promise.reject(err);
    }
  }
}
