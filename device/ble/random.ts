// Seeded deterministic random source for the BLE link model (loss draws, nonces, test keys): not for real secrets.
import type { RandomSource } from '../../shared/types.ts';

/**
 * SplitMix32-style generator (Steele, Lea & Flood 2014, 32-bit variant). Small, fast, and the same
 * sequence for the same seed on every platform: a seeded run of the link model replays exactly.
 * It is NOT a CSPRNG: production code injects `crypto.randomBytes` as its {@link RandomSource}.
 */
export class SeededRandom {
  private state: number;

  constructor(seed: number) {
    if (!Number.isInteger(seed)) throw new TypeError(`seed must be an integer, got ${seed}`);
    this.state = seed >>> 0;
  }

  /** Next 32-bit unsigned integer. */
  nextUint32(): number {
    this.state = (this.state + 0x9e3779b9) >>> 0;
    let z = this.state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  }

  /** Uniform float in [0, 1). */
  nextFloat(): number {
    return this.nextUint32() / 0x1_0000_0000;
  }

  /** `length` pseudo-random bytes. */
  bytes(length: number): Uint8Array {
    if (!Number.isInteger(length) || length < 0)
      throw new RangeError(`length must be a non-negative integer`);
    const out = new Uint8Array(length);
    for (let i = 0; i < length; i += 4) {
      const w = this.nextUint32();
      for (let j = 0; j < 4 && i + j < length; j++) out[i + j] = (w >>> (8 * j)) & 0xff;
    }
    return out;
  }

  /** This generator as a {@link RandomSource} (bound function). */
  get source(): RandomSource {
    return (length: number) => this.bytes(length);
  }
}
