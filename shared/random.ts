// Random sources: the system CSPRNG for real use, and a seeded deterministic stream for tests and replays.
import { createHash, randomBytes } from 'node:crypto';
import type { RandomSource } from './types.ts';

export const systemRandom: RandomSource = (length) => new Uint8Array(randomBytes(length));

/**
 * Deterministic byte stream: SHA-256(seed || counter) blocks. For tests, vectors and seeded
 * simulations only: the same seed gives the same bytes, so it must never protect real secrets.
 */
export function seededRandom(seed: string | Uint8Array): RandomSource {
  const seedBytes = typeof seed === 'string' ? new TextEncoder().encode(seed) : seed;
  let counter = 0;
  let pool = new Uint8Array(0);
  let pos = 0;
  return (length) => {
    const out = new Uint8Array(length);
    let filled = 0;
    while (filled < length) {
      if (pos >= pool.length) {
        const ctr = Buffer.alloc(8);
        ctr.writeBigUInt64BE(BigInt(counter++));
        pool = new Uint8Array(createHash('sha256').update(seedBytes).update(ctr).digest());
        pos = 0;
      }
      const n = Math.min(length - filled, pool.length - pos);
      out.set(pool.subarray(pos, pos + n), filled);
      filled += n;
      pos += n;
    }
    return out;
  };
}
