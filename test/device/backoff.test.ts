// Backoff tests: ceilings grow and cap, full-jitter delays stay in bounds and are uniform, seeded runs replay.
import { describe, expect, it } from 'vitest';
import {
  Backoff,
  backoffCeiling,
  backoffSettings,
  fullJitterDelay,
  uniform01,
} from '../../device/backoff.ts';
import { seededRandom } from '../../shared/random.ts';

describe('backoff ceilings', () => {
  it('doubles from base and stops at the cap', () => {
    const s = backoffSettings({ baseMs: 100, capMs: 5000 });
    expect([0, 1, 2, 3, 4, 5, 6, 7].map((a) => backoffCeiling(a, s))).toEqual([
      100, 200, 400, 800, 1600, 3200, 5000, 5000,
    ]);
    expect(backoffCeiling(10_000, s)).toBe(5000); // no overflow
  });

  it('refuses bad settings and attempts', () => {
    expect(() => backoffSettings({ baseMs: 0 })).toThrow(RangeError);
    expect(() => backoffSettings({ baseMs: 100, capMs: 50 })).toThrow(RangeError);
    expect(() => backoffSettings({ factor: 0.5 })).toThrow(RangeError);
    expect(() => backoffSettings({ baseMs: Number.NaN })).toThrow(TypeError);
    expect(() => backoffCeiling(-1)).toThrow(RangeError);
    expect(() => backoffCeiling(1.5)).toThrow(RangeError);
  });
});

describe('full jitter', () => {
  it('stays within [0, ceiling) on every attempt', () => {
    const s = backoffSettings({ baseMs: 50, capMs: 2000 });
    const rnd = seededRandom('bounds');
    for (let attempt = 0; attempt < 20; attempt++) {
      const ceiling = backoffCeiling(attempt, s);
      const ds = Array.from({ length: 500 }, () => fullJitterDelay(attempt, s, rnd));
      expect(Math.min(...ds)).toBeGreaterThanOrEqual(0);
      expect(Math.max(...ds)).toBeLessThan(ceiling);
      expect(ds.every(Number.isInteger)).toBe(true);
    }
  });

  it('is uniform over [0, ceiling): chi-square over 10 bins, mean ≈ ceiling / 2', () => {
    const s = backoffSettings({ baseMs: 1000, capMs: 1000 });
    const rnd = seededRandom('uniformity');
    const n = 20_000;
    const bins = new Array<number>(10).fill(0);
    let sum = 0;
    for (let i = 0; i < n; i++) {
      const d = fullJitterDelay(0, s, rnd);
      sum += d;
      bins[Math.floor(d / 100)]! += 1;
    }
    const expected = n / 10;
    const chi2 = bins.reduce((acc, o) => acc + (o - expected) ** 2 / expected, 0);
    expect(chi2).toBeLessThan(27.9); // p = 0.001 for 9 degrees of freedom
    expect(Math.abs(sum / n - 500)).toBeLessThan(10);
  });

  it('uniform01 lies in [0, 1)', () => {
    expect(uniform01(() => new Uint8Array(6))).toBe(0);
    expect(uniform01(() => new Uint8Array(6).fill(255))).toBeLessThan(1);
  });
});

describe('Backoff', () => {
  it('replays exactly with the same seed and differs with another', () => {
    const run = (seed: string) => {
      const b = new Backoff(seededRandom(seed), { baseMs: 100, capMs: 10_000 });
      return Array.from({ length: 12 }, () => b.next());
    };
    expect(run('a')).toEqual(run('a'));
    expect(run('a')).not.toEqual(run('b'));
  });

  it('grows, caps, counts attempts and resets', () => {
    const b = new Backoff(() => new Uint8Array(6).fill(255), { baseMs: 100, capMs: 1000 });
    const delays = Array.from({ length: 8 }, () => b.next());
    expect(delays).toEqual([99, 199, 399, 799, 999, 999, 999, 999]);
    expect(b.attempt).toBe(8);
    b.reset();
    expect(b.attempt).toBe(0);
    expect(b.next()).toBe(99);
  });
});
