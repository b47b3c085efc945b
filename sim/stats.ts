// Latency statistics on HDR histograms (µs resolution): summaries, merging, transport between threads.
import * as hdr from 'hdr-histogram-js';

export type Histogram = hdr.Histogram;

export interface LatencySummary {
  count: number;
  /** Milliseconds. */
  min: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}

/** 1 µs .. 1 h at 3 significant digits. */
export function newHistogram(): Histogram {
  return hdr.build({
    bitBucketSize: 32,
    autoResize: true,
    lowestDiscernibleValue: 1,
    highestTrackableValue: 3_600_000_000,
    numberOfSignificantValueDigits: 3,
  });
}

/** Records a latency in milliseconds (stored as integer µs, at least 1). */
export function recordMs(h: Histogram, ms: number): void {
  if (!Number.isFinite(ms) || ms < 0) return;
  h.recordValue(Math.max(1, Math.round(ms * 1000)));
}

const round3 = (x: number): number => Math.round(x * 1000) / 1000;

export function emptySummary(): LatencySummary {
  return { count: 0, min: 0, mean: 0, p50: 0, p90: 0, p99: 0, p999: 0, max: 0 };
}

/**
 * Percentile summary in ms. HDR percentiles are monotone in the percentile, and max is taken from
 * the same histogram, so p50 ≤ p90 ≤ p99 ≤ p99.9 ≤ max holds by construction.
 */
export function summarize(h: Histogram): LatencySummary {
  const count = h.totalCount;
  if (count === 0) return emptySummary();
  const at = (p: number): number => h.getValueAtPercentile(p) / 1000;
  const p50 = at(50);
  const p90 = Math.max(p50, at(90));
  const p99 = Math.max(p90, at(99));
  const p999 = Math.max(p99, at(99.9));
  const max = Math.max(p999, h.maxValue / 1000);
  return {
    count,
    min: round3(h.minNonZeroValue / 1000),
    mean: round3(h.mean / 1000),
    p50: round3(p50),
    p90: round3(p90),
    p99: round3(p99),
    p999: round3(p999),
    max: round3(max),
  };
}

export function encodeHistogram(h: Histogram): string {
  return h.totalCount === 0 ? '' : hdr.encodeIntoCompressedBase64(h);
}

/** Adds an encoded histogram (from another thread) into `into`; '' is an empty histogram. */
export function addEncoded(into: Histogram, encoded: string): void {
  if (encoded === '') return;
  const other = hdr.decodeFromCompressedBase64(encoded, 32, false);
  into.add(other);
  other.destroy();
}

/** Log-spaced buckets between the histogram's min and max for plotting (count per bucket). */
export function logBuckets(h: Histogram, buckets = 40): { fromMs: number; toMs: number; count: number }[] {
  if (h.totalCount === 0) return [];
  const lo = Math.max(1, h.minNonZeroValue);
  const hi = Math.max(lo * 1.0001, h.maxValue);
  const ratio = (hi / lo) ** (1 / buckets);
  const edges: number[] = [];
  for (let i = 0; i <= buckets; i++) edges.push(lo * ratio ** i);
  const out: { fromMs: number; toMs: number; count: number }[] = [];
  // HDR counts below a value: percentile rank difference × total.
  let prev = 0;
  for (let i = 0; i < buckets; i++) {
    const edge = edges[i + 1] ?? hi;
    const below = i === buckets - 1 ? h.totalCount : countAtOrBelow(h, edge);
    out.push({ fromMs: round3((edges[i] ?? lo) / 1000), toMs: round3(edge / 1000), count: below - prev });
    prev = below;
  }
  return out;
}

/** Number of recorded values ≤ value, by binary search on the percentile function. */
function countAtOrBelow(h: Histogram, value: number): number {
  let lo = 0;
  let hi = h.totalCount;
  // find largest k such that valueAtRank(k) ≤ value
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    const v = h.getValueAtPercentile((mid / h.totalCount) * 100);
    if (v <= value) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** Mean of finite numbers, null when none. */
export function mean(values: readonly (number | null)[]): number | null {
  const v = values.filter((x): x is number => x !== null && Number.isFinite(x));
  return v.length === 0 ? null : v.reduce((a, b) => a + b, 0) / v.length;
}

export function maxOf(values: readonly (number | null)[]): number | null {
  const v = values.filter((x): x is number => x !== null && Number.isFinite(x));
  return v.length === 0 ? null : Math.max(...v);
}
