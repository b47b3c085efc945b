// JSON and CSV writers for load-test reports (RFC 4180 quoting; numbers written as plain decimals).
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { LatencySummary } from '../../sim/stats.ts';
import type { LoadtestReport, RunSummary, TimePoint } from './types.ts';

export type CsvCell = string | number | boolean | null | undefined;

/** One CSV field: quoted when it holds a comma, quote, CR or LF; quotes doubled (RFC 4180). */
export function csvField(value: CsvCell): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : '';
  const s = String(value);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** CSV text with a header row; CRLF line ends as RFC 4180 says. */
export function toCsv(header: readonly string[], rows: readonly (readonly CsvCell[])[]): string {
  for (const r of rows) {
    if (r.length !== header.length)
      throw new RangeError(`row has ${r.length} cells, header has ${header.length}`);
  }
  return [header, ...rows]
    .map((r) => r.map(csvField).join(','))
    .join('\r\n')
    .concat('\r\n');
}

type ScalarColumn = Exclude<keyof TimePoint, 'errorsByKind'>;

const TIMELINE_COLUMNS: readonly ScalarColumn[] = [
  't',
  'dt',
  'phase',
  'clipsSent',
  'clipsAcked',
  'clipsDelivered',
  'errors',
  'mbAcked',
  'connects',
  'connected',
  'pubackP50Ms',
  'pubackP99Ms',
  'e2eP50Ms',
  'e2eP99Ms',
  'gatewayCpuPercent',
  'gatewayRssMb',
  'gatewayHeapMb',
  'generatorCpuPercent',
  'generatorLagP99Ms',
  'hostCpuPercent',
  'otherProcessesCpuPercent',
  'gatewayLagP99Ms',
  'offeredPerSec',
  'hostStealPercent',
];

/** "kind=n;kind=n" (the interval's errors by kind), empty when none. */
const errorKinds = (p: TimePoint): string =>
  Object.entries(p.errorsByKind ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(';');

/** Every run's per-second timeline in one table, told apart by the `target` column. */
export function timelineCsv(runs: readonly Pick<RunSummary, 'target' | 'timeline'>[]): string {
  return toCsv(
    ['target', ...TIMELINE_COLUMNS, 'errorsByKind'],
    runs.flatMap((r) =>
      r.timeline.map((p) => [r.target.kind, ...TIMELINE_COLUMNS.map((c) => p[c]), errorKinds(p)]),
    ),
  );
}

const LAT_COLS: readonly (keyof LatencySummary)[] = [
  'count',
  'min',
  'mean',
  'p50',
  'p90',
  'p99',
  'p999',
  'max',
];

/** One row per (target, metric) with counts, throughput and latency percentiles in ms. */
export function summaryCsv(runs: readonly RunSummary[]): string {
  const rows: CsvCell[][] = [];
  for (const r of runs) {
    for (const [metric, s] of Object.entries(r.latency) as [string, LatencySummary][]) {
      rows.push([
        r.target.kind,
        r.target.url,
        metric,
        r.totals.clipsSent,
        r.totals.clipsAcked,
        r.totals.clipsDelivered,
        r.totals.errors,
        r.totals.lost,
        r.totals.held,
        r.throughput.clipsPerSec,
        r.throughput.mbPerSec,
        ...LAT_COLS.map((c) => s[c]),
      ]);
    }
  }
  return toCsv(
    [
      'target',
      'url',
      'metric',
      'sent',
      'acked',
      'delivered',
      'errors',
      'lost',
      'held',
      'clips_per_s',
      'mb_per_s',
      ...LAT_COLS.map((c) => (c === 'count' ? 'samples' : `${c}_ms`)),
    ],
    rows,
  );
}

export function errorsCsv(runs: readonly RunSummary[]): string {
  const rows: CsvCell[][] = [];
  for (const r of runs) for (const [k, v] of Object.entries(r.errors)) rows.push([r.target.kind, k, v]);
  return toCsv(['target', 'error', 'count'], rows);
}

export function reportJson(report: LoadtestReport): string {
  return `${JSON.stringify(report, null, 2)}\n`;
}

/** Writes report.json, summary.csv, timeline.csv, errors.csv (and report.html when given) to `dir`. */
export async function writeReportFiles(
  dir: string,
  report: LoadtestReport,
  html?: string,
): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const runs = [report.run, ...(report.compare?.runs ?? [])];
  const files: [string, string][] = [
    ['report.json', reportJson(report)],
    ['summary.csv', summaryCsv(runs)],
    ['timeline.csv', timelineCsv(runs)],
    ['errors.csv', errorsCsv(runs)],
  ];
  if (html !== undefined) files.push(['report.html', html]);
  const written: string[] = [];
  for (const [name, text] of files) {
    const path = join(dir, name);
    await writeFile(path, text);
    written.push(path);
  }
  return written;
}
