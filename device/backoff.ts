// Reconnect backoff: capped exponential growth with full jitter (AWS "Exponential Backoff and Jitter"), pure and seeded.
import type { RandomSource } from '../shared/types.ts';

export interface BackoffOptions {
  /** Ceiling of the first delay, ms. Default 250. */
  readonly baseMs?: number;
  /** Largest ceiling any delay may reach, ms. Default 30 000. */
  readonly capMs?: number;
  /** Growth factor per attempt. Default 2. */
  readonly factor?: number;
}

export interface BackoffSettings {
  readonly baseMs: number;
  readonly capMs: number;
  readonly factor: number;
}

export const DEFAULT_BACKOFF: BackoffSettings = Object.freeze({ baseMs: 250, capMs: 30_000, factor: 2 });

/** Fills defaults and validates (TypeError / RangeError naming the field). */
export function backoffSettings(opts: BackoffOptions = {}): BackoffSettings {
  const s = { ...DEFAULT_BACKOFF, ...opts };
  for (const [name, v] of Object.entries(s)) {
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new TypeError(`${name} must be a finite number`);
  }
  if (s.baseMs <= 0) throw new RangeError(`baseMs must be > 0, got ${s.baseMs}`);
  if (s.capMs < s.baseMs) throw new RangeError(`capMs must be ≥ baseMs, got ${s.capMs}`);
  if (s.factor < 1) throw new RangeError(`factor must be ≥ 1, got ${s.factor}`);
  return Object.freeze(s);
}

/** Uniform float in [0, 1) from 48 random bits of a RandomSource. */
export function uniform01(random: RandomSource): number {
  const b = random(6);
  let v = 0;
  for (let i = 0; i < 6; i++) v = v * 256 + (b[i] ?? 0);
  return v / 2 ** 48;
}

/** Upper bound of the delay before retry number `attempt` (0-based): min(cap, base · factor^attempt). */
export function backoffCeiling(attempt: number, settings: BackoffSettings = DEFAULT_BACKOFF): number {
  if (!Number.isInteger(attempt) || attempt < 0)
    throw new RangeError(`attempt must be a non-negative integer, got ${attempt}`);
  // factor^attempt overflows to Infinity for large attempts; min() keeps it at the cap.
  return Math.min(settings.capMs, settings.baseMs * settings.factor ** attempt);
}

/** Full jitter: a uniform delay in [0, ceiling(attempt)), whole milliseconds. */
export function fullJitterDelay(attempt: number, settings: BackoffSettings, random: RandomSource): number {
  return Math.floor(uniform01(random) * backoffCeiling(attempt, settings));
}

/** Stateful helper: next() grows the ceiling, reset() after a successful connection. */
export class Backoff {
  readonly settings: BackoffSettings;
  private exponent = 0;
  private count = 0;
  constructor(
    private readonly random: RandomSource,
    opts: BackoffOptions = {},
  ) {
    if (typeof random !== 'function') throw new TypeError('random must be a RandomSource');
    this.settings = backoffSettings(opts);
  }
  /** Number of delays handed out since the last reset. */
  get attempt(): number {
    return this.count;
  }
  next(): number {
    const d = fullJitterDelay(this.exponent, this.settings, this.random);
    // Stop growing the exponent once the cap is reached (no overflow, no wasted work).
    if (backoffCeiling(this.exponent, this.settings) < this.settings.capMs) this.exponent++;
    this.count++;
    return d;
  }
  reset(): void {
    this.exponent = 0;
    this.count = 0;
  }
}
