// Random sources: the system CSPRNG for real use, and a seeded deterministic stream for tests and replays.
import { concatBytes } from './bytes.ts';
import { sha256 } from './crypto.ts';
import type { RandomSource } from './types.ts';

/** getRandomValues fills at most 65 536 bytes per call (WebCrypto). */
const MAX_RANDOM_CALL = 65_536;

/**
 * The platform CSPRNG through WebCrypto's getRandomValues, which Node (its OpenSSL RAND) and every
 * browser provide: the same module serves the gateway, the simulators and the browser page (web/).
 */
export const systemRandom: RandomSource = (length) => {
  const out = new Uint8Array(length);
  for (let off = 0; off < length; off += MAX_RANDOM_CALL)
    globalThis.crypto.getRandomValues(out.subarray(off, Math.min(length, off + MAX_RANDOM_CALL)));
  return out;
};

/**
 * Deterministic byte stream: SHA-256(seed || counter) blocks. For tests, vectors and seeded
 * simulations only: the same seed gives the same bytes, so it must never protect real secrets.
 */
export function seededRandom(seed: string | Uint8Array): RandomSource {
  const seedBytes = typeof seed === 'string' ? new TextEncoder().encode(seed) : seed;
  let counter = 0;
  let pool: Uint8Array = new Uint8Array(0);
  let pos = 0;
  const ctr = new Uint8Array(8);
  const view = new DataView(ctr.buffer);
  return (length) => {
    const out = new Uint8Array(length);
    let filled = 0;
    while (filled < length) {
      if (pos >= pool.length) {
        view.setBigUint64(0, BigInt(counter++));
        pool = sha256(concatBytes(seedBytes, ctr));
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
