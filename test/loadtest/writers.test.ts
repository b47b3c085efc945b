// Unit tests of the CSV/JSON report writers, the latency statistics and the loopback safety check.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CliError } from '../../scripts/cli-util.ts';
import { csvField, timelineCsv, toCsv, writeReportFiles } from '../../scripts/loadtest/report-json-csv.ts';
import { checkTarget, isLoopbackHost } from '../../scripts/loadtest/safety.ts';
import type { LoadtestReport, RunSummary, TimePoint } from '../../scripts/loadtest/types.ts';
import {
  addEncoded,
  encodeHistogram,
  logBuckets,
  newHistogram,
  recordMs,
  summarize,
} from '../../sim/stats.ts';
import { expectCode } from '../helpers/errors.ts';

describe('CSV', () => {
  it('quotes only when needed (RFC 4180)', () => {
    expect(csvField('plain')).toBe('plain');
    expect(csvField('a,b')).toBe('"a,b"');
    expect(csvField('say "hi"')).toBe('"say ""hi"""');
    expect(csvField('line\nbreak')).toBe('"line\nbreak"');
    expect(csvField(null)).toBe('');
    expect(csvField(Number.NaN)).toBe('');
    expect(csvField(1.5)).toBe('1.5');
  });
  it('writes a header and CRLF rows and refuses ragged rows', () => {
    expect(toCsv(['a', 'b'], [[1, 'x,y']])).toBe('a,b\r\n1,"x,y"\r\n');
    expect(() => toCsv(['a', 'b'], [[1]])).toThrow(RangeError);
  });
});

describe('latency statistics', () => {
  it('orders percentiles and survives a trip between threads', () => {
    const h = newHistogram();
    for (let i = 1; i <= 10_000; i++) recordMs(h, i / 100);
    const s = summarize(h);
    expect(s.count).toBe(10_000);
    expect(s.p50).toBeGreaterThan(49);
    expect(s.p50).toBeLessThan(51);
    expect(s.p50).toBeLessThanOrEqual(s.p90);
    expect(s.p90).toBeLessThanOrEqual(s.p99);
    expect(s.p99).toBeLessThanOrEqual(s.p999);
    expect(s.p999).toBeLessThanOrEqual(s.max);
    const copy = newHistogram();
    addEncoded(copy, encodeHistogram(h));
    const c = summarize(copy);
    // Percentiles survive exactly; max is rounded to its HDR bucket (3 significant digits).
    expect({ ...c, max: 0 }).toEqual({ ...s, max: 0 });
    expect(Math.abs(c.max - s.max) / s.max).toBeLessThan(1e-3);
    addEncoded(copy, '');
    expect(copy.totalCount).toBe(10_000);
    const buckets = logBuckets(h, 20);
    expect(buckets.reduce((a, b) => a + b.count, 0)).toBe(10_000);
  });
  it('summarizes an empty histogram as zeros', () => {
    expect(summarize(newHistogram()).count).toBe(0);
    expect(logBuckets(newHistogram())).toEqual([]);
  });
});

describe('safety', () => {
  it('recognizes loopback hosts', () => {
    for (const h of ['127.0.0.1', '127.3.2.1', 'localhost', '::1', '[::1]', '::ffff:127.0.0.1'])
      expect(isLoopbackHost(h)).toBe(true);
    for (const h of ['10.0.0.1', '8.8.8.8', 'example.com', '::', '0.0.0.0', '128.0.0.1'])
      expect(isLoopbackHost(h)).toBe(false);
  });
  it('refuses remote targets unless allowed', () => {
    expect(() => checkTarget('embedded', false)).not.toThrow();
    expect(() => checkTarget('mqtt://127.0.0.1:1883', false)).not.toThrow();
    expect(() => checkTarget('mqtt://192.168.1.2:1883', false)).toThrow(/non-loopback/);
    expect(() => checkTarget('mqtt://192.168.1.2:1883', true)).not.toThrow();
    expect(() => checkTarget('http://127.0.0.1', false)).toThrow(/mqtt/);
    // Nodes of one gateway (docs/SCALING.md): each URL is checked; embedded/forked are not nodes.
    expect(() => checkTarget('mqtt://127.0.0.1:1,mqtt://127.0.0.2:2', false)).not.toThrow();
    expect(() => checkTarget('mqtt://127.0.0.1:1,mqtt://192.168.1.2:2', false)).toThrow(/non-loopback/);
    expect(() => checkTarget('mqtt://127.0.0.1:1,embedded', false)).toThrow(/list of mqtt/);
    expect(() => checkTarget('mqtt://127.0.0.1:1,', false)).toThrow(/list of mqtt/);
    const usage = expectCode(() => checkTarget('nonsense', false), 'CLI_USAGE', CliError);
    expect(usage.exitCode).toBe(2);
    expect(usage.message).toMatch(/must be "embedded", "forked" or an mqtt:\/\/ URL/);
  });
});

function point(t: number): TimePoint {
  return {
    t,
    dt: 1,
    phase: 'steady',
    clipsSent: 10,
    clipsAcked: 10,
    clipsDelivered: 9,
    errors: 0,
    mbAcked: 0.2,
    connects: 0,
    connected: 4,
    pubackP50Ms: 1.5,
    pubackP99Ms: 3,
    e2eP50Ms: null,
    e2eP99Ms: null,
    gatewayCpuPercent: 12,
    gatewayRssMb: 100,
    gatewayHeapMb: 50,
    generatorCpuPercent: 5,
    generatorLagP99Ms: 1,
    hostCpuPercent: 30,
    otherProcessesCpuPercent: 1,
    gatewayLagP99Ms: 2,
  };
}

describe('report files', () => {
  it('writes JSON that parses back and CSVs with one header', async () => {
    const s = summarize(newHistogram());
    const run: RunSummary = {
      target: { kind: 'embedded', url: 'mqtt://127.0.0.1:1' },
      phaseMs: 2000,
      totals: {
        clipsSent: 20,
        clipsAcked: 20,
        clipsDelivered: 20,
        duplicates: 0,
        bytesSent: 1,
        bytesAcked: 1,
        connects: 4,
        connectFailures: 0,
        receiptsSent: 20,
        notSent: 0,
        errors: 0,
        lost: 0,
        held: 0,
      },
      errors: { 'a,b': 1 },
      throughput: { clipsPerSec: 10, mbPerSec: 0.1 },
      latency: { connect: s, puback: s, e2e: s },
      e2eHistogram: [],
      gateway: {
        source: 'process',
        cpuPercentMean: 1,
        cpuPercentMax: 2,
        rssMbMax: 3,
        heapMbMax: 4,
        eventLoopLagP99MaxMs: 5,
        eventLoopLagMaxMs: 6,
      },
      generator: {
        workers: [],
        bottleneck: false,
        verdict: 'ok',
        hostCpuPercentMean: 1,
        otherProcessesCpuPercentMean: 0,
      },
      timeline: [point(1), point(2)],
    };
    const report: LoadtestReport = {
      tool: 'plushlink loadtest',
      version: 1,
      startedAt: 'a',
      finishedAt: 'b',
      interrupted: false,
      options: { seed: 'x' },
      audio: { clips: 1, clipSeconds: 1, oggBytesMean: 1, envelopeBytesMean: 1, sealing: 'x' },
      fleet: { toys: 4, parents: 1, attackers: 0, workers: 1 },
      run,
      scenario: { name: 'steady' },
      compare: { runs: [{ ...run, target: { kind: 'aedes', url: 'mqtt://127.0.0.1:2' } }], ratios: [] },
      notes: [],
    };
    const dir = await mkdtemp(join(tmpdir(), 'plk-lt-writers-'));
    try {
      const files = await writeReportFiles(dir, report, '<html></html>');
      expect(files.map((f) => f.slice(dir.length + 1)).sort()).toEqual(
        ['errors.csv', 'report.html', 'report.json', 'summary.csv', 'timeline.csv'].sort(),
      );
      expect(JSON.parse(await readFile(join(dir, 'report.json'), 'utf8'))).toEqual(report);
      const tl = (await readFile(join(dir, 'timeline.csv'), 'utf8')).trimEnd().split('\r\n');
      expect(tl.length).toBe(1 + 4);
      expect(tl.filter((l) => l.startsWith('target,')).length).toBe(1);
      expect(tl[1]?.startsWith('embedded,1,1,steady,10,10,9,0,0.2,0,4,1.5,3,,,12')).toBe(true);
      const summary = (await readFile(join(dir, 'summary.csv'), 'utf8')).trimEnd().split('\r\n');
      expect(summary.length).toBe(1 + 6);
      expect(await readFile(join(dir, 'errors.csv'), 'utf8')).toContain('"a,b",1');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    expect(timelineCsv([]).trimEnd().split('\r\n').length).toBe(1);
  });
});
