// Bounded pool of Opus encoders keyed by settings, so a fleet of toys shares a few native encoders.
import { CodecError } from './errors.ts';
import {
  createEncoder,
  encoderSettingsKey,
  normalizeEncoderSettings,
  type OpusEncoder,
  type OpusEncoderSettings,
} from './opus.ts';

export interface EncoderPoolOptions {
  /** Maximum live encoders (idle + in use). Default 64. */
  readonly maxEncoders?: number;
  /** Maximum callers queued in acquire(). Default 10,000. */
  readonly maxWaiters?: number;
  /** Encoder factory (tests inject fakes). Default: createEncoder. */
  readonly create?: (settings: OpusEncoderSettings) => OpusEncoder;
}

export interface EncoderPoolStats {
  readonly live: number;
  readonly idle: number;
  readonly inUse: number;
  readonly waiting: number;
  readonly created: number;
  readonly reused: number;
  readonly evicted: number;
}

interface Waiter {
  readonly key: string;
  readonly settings: OpusEncoderSettings;
  readonly resolve: (e: OpusEncoder) => void;
  readonly reject: (err: Error) => void;
}

/**
 * acquire() hands out an encoder with the requested settings, reusing an idle one (reset with
 * OPUS_RESET_STATE, so no state leaks from one clip into the next) or creating one while under the bound.
 * At the bound, an idle encoder with other settings is evicted; if none is idle the caller waits (FIFO).
 */
export class EncoderPool {
  private readonly max: number;
  private readonly maxWaiters: number;
  private readonly create: (settings: OpusEncoderSettings) => OpusEncoder;
  /** Idle encoders per key, in least-recently-released order across keys (Map keeps insertion order). */
  private readonly idle = new Map<OpusEncoder, string>();
  private readonly busy = new Set<OpusEncoder>();
  private readonly waiters: Waiter[] = [];
  private counters = { created: 0, reused: 0, evicted: 0 };
  private closed = false;

  constructor(opts: EncoderPoolOptions = {}) {
    this.max = opts.maxEncoders ?? 64;
    if (!Number.isInteger(this.max) || this.max < 1 || this.max > 100_000) {
      throw new RangeError(`maxEncoders must be an integer in [1, 100000], got ${this.max}`);
    }
    this.maxWaiters = opts.maxWaiters ?? 10_000;
    if (!Number.isInteger(this.maxWaiters) || this.maxWaiters < 0)
      throw new RangeError('maxWaiters must be a non-negative integer');
    this.create = opts.create ?? createEncoder;
  }

  /** Returns an encoder now, or undefined if the pool is at its bound with nothing idle to evict. */
  tryAcquire(settings: Partial<OpusEncoderSettings> = {}): OpusEncoder | undefined {
    const s = normalizeEncoderSettings(settings);
    return this.take(s, encoderSettingsKey(s));
  }

  /** Returns an encoder, waiting for a release when the pool is saturated. */
  acquire(settings: Partial<OpusEncoderSettings> = {}): Promise<OpusEncoder> {
    const s = normalizeEncoderSettings(settings);
    const key = encoderSettingsKey(s);
    const got = this.take(s, key);
    if (got) return Promise.resolve(got);
    if (this.waiters.length >= this.maxWaiters) {
      return Promise.reject(
        new CodecError('POOL_EXHAUSTED', `encoder pool saturated: ${this.waiters.length} callers waiting`),
      );
    }
    return new Promise((resolve, reject) => this.waiters.push({ key, settings: s, resolve, reject }));
  }

  /** Gives an encoder back; it is reset and handed to the next waiter or kept idle. */
  release(encoder: OpusEncoder): void {
    if (!this.busy.delete(encoder))
      throw new RangeError('release() of an encoder not acquired from this pool');
    if (this.closed || encoder.destroyed) {
      encoder.destroy();
      return;
    }
    encoder.reset();
    const key = encoderSettingsKey(encoder.settings);
    this.idle.set(encoder, key);
    this.serveWaiters();
  }

  /** Runs `fn` with a pooled encoder and always releases it. */
  async use<T>(
    settings: Partial<OpusEncoderSettings>,
    fn: (encoder: OpusEncoder) => Promise<T> | T,
  ): Promise<T> {
    const enc = await this.acquire(settings);
    try {
      return await fn(enc);
    } finally {
      this.release(enc);
    }
  }

  stats(): EncoderPoolStats {
    return {
      live: this.idle.size + this.busy.size,
      idle: this.idle.size,
      inUse: this.busy.size,
      waiting: this.waiters.length,
      ...this.counters,
    };
  }

  /** Destroys idle encoders; busy ones are destroyed on release. Pending waiters are rejected. */
  close(): void {
    this.closed = true;
    for (const enc of this.idle.keys()) enc.destroy();
    this.idle.clear();
    const waiters = this.waiters.splice(0);
    for (const w of waiters) w.reject(new CodecError('POOL_EXHAUSTED', 'encoder pool closed while waiting'));
  }

  private take(s: OpusEncoderSettings, key: string): OpusEncoder | undefined {
    if (this.closed) throw new CodecError('POOL_EXHAUSTED', 'encoder pool is closed');
    for (const [enc, k] of this.idle) {
      if (k === key) {
        this.idle.delete(enc);
        this.busy.add(enc);
        this.counters.reused++;
        return enc;
      }
    }
    if (this.idle.size + this.busy.size >= this.max) {
      const oldest = this.idle.keys().next();
      if (oldest.done) return undefined;
      this.idle.delete(oldest.value);
      oldest.value.destroy();
      this.counters.evicted++;
    }
    const enc = this.create(s);
    this.busy.add(enc);
    this.counters.created++;
    return enc;
  }

  private serveWaiters(): void {
    // Each pass either serves the head waiter or stops; bounded by the queue length.
    while (this.waiters.length > 0) {
      const w = this.waiters[0]!;
      const enc = this.take(w.settings, w.key);
      if (!enc) return;
      this.waiters.shift();
      w.resolve(enc);
    }
  }
}
