// Small end-to-end load tests against the embedded gateway: report consistency, attacks refused, CLI and Ctrl-C.
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { DEFAULT_TRANSIT_HOLD_MS } from '../../gateway/transit.ts';
import { toLoadtestOptions } from '../../scripts/commands/loadtest.ts';
import { loadtestOptions } from '../../scripts/loadtest/options.ts';
import { runText, transitHoldText } from '../../scripts/loadtest/report-text.ts';
import { runLoadtest } from '../../scripts/loadtest/runner.ts';
import { isClipError } from '../../scripts/loadtest/session.ts';
import { startEmbeddedGateway } from '../../scripts/loadtest/targets.ts';
import type { LoadtestOptions, LoadtestReport, RunSummary } from '../../scripts/loadtest/types.ts';
import type { LatencySummary } from '../../sim/stats.ts';
import { expectUsageError as usageError } from '../helpers/errors.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** A small, quick fleet: only what differs from the CLI defaults (scripts/loadtest/options.ts). */
const base: LoadtestOptions = loadtestOptions({
  toys: 24,
  connectRate: 0,
  clipRate: 12,
  clipSeconds: 1,
  durationMs: 2000,
  seed: 'vitest',
  rampStepMs: 1000,
  rampFactor: 2,
  rampMaxSteps: 2,
  attackShare: 0.3,
  parentsOpen: true,
  progress: false,
  maxRunMs: 60_000,
});

function expectOrdered(s: LatencySummary): void {
  expect(s.p50).toBeLessThanOrEqual(s.p90);
  expect(s.p90).toBeLessThanOrEqual(s.p99);
  expect(s.p99).toBeLessThanOrEqual(s.p999);
  expect(s.p999).toBeLessThanOrEqual(s.max);
}

function expectConsistent(r: RunSummary): void {
  const t = r.totals;
  const clipErrors = Object.entries(r.errors)
    .filter(([k]) => isClipError(k))
    .reduce((a, [, v]) => a + v, 0);
  expect(t.clipsSent).toBeGreaterThan(0);
  // every sent clip ends acknowledged or as a counted error
  expect(t.clipsSent).toBe(t.clipsAcked + clipErrors);
  expect(t.errors).toBe(clipErrors);
  // no legitimate clip lost: every acknowledged clip reached its parent exactly once
  expect(t.lost).toBe(0);
  expect(t.clipsDelivered).toBe(t.clipsAcked);
  expect(r.latency.puback.count).toBe(t.clipsAcked);
  expect(r.latency.e2e.count).toBe(t.clipsDelivered);
  expectOrdered(r.latency.connect);
  expectOrdered(r.latency.puback);
  expectOrdered(r.latency.e2e);
  expect(r.timeline.length).toBeGreaterThan(0);
}

describe('plushlink loadtest (embedded gateway)', () => {
  it('steady: sent = acked + errors, nothing lost, percentiles ordered', { timeout: 60_000 }, async () => {
    const rep = await runLoadtest(base);
    expect(rep.interrupted).toBe(false);
    expectConsistent(rep.run);
    expect(rep.run.totals.clipsAcked).toBeGreaterThan(0);
    expect(rep.run.totals.connects).toBe(24 + 6);
    expect(rep.run.gateway.source).toBe('process');
    expect(rep.run.generator.workers).toHaveLength(2);
    expect(rep.fleet.parents).toBe(6);
    // the hold for clips in transit the figures were measured with [PLK-12.9]
    expect(rep.run.target.transitHoldMs).toBe(DEFAULT_TRANSIT_HOLD_MS);
    expect(runText(rep.run).split('\n')[0]).toMatch(/clips in transit: hold 10 ms$/);
  });

  it('PLK_LOADTEST_TRANSIT_HOLD_MS sets the hold of the gateway it starts, and the report says which', async () => {
    const saved = process.env.PLK_LOADTEST_TRANSIT_HOLD_MS;
    try {
      for (const [v, want] of [
        ['off', null],
        ['0', 0],
        ['40', 40],
      ] as const) {
        process.env.PLK_LOADTEST_TRANSIT_HOLD_MS = v;
        const t = await startEmbeddedGateway();
        try {
          expect(t.info.transitHoldMs).toBe(want);
        } finally {
          await t.close();
        }
      }
    } finally {
      if (saved === undefined) delete process.env.PLK_LOADTEST_TRANSIT_HOLD_MS;
      else process.env.PLK_LOADTEST_TRANSIT_HOLD_MS = saved;
    }
    expect(transitHoldText({ kind: 'aedes', url: 'mqtt://127.0.0.1:1' })).toBe('');
    expect(transitHoldText({ kind: 'external', url: 'mqtt://127.0.0.1:1', transitHoldMs: 'unknown' })).toBe(
      'clips in transit: hold as set on that gateway (not known here)',
    );
    expect(transitHoldText({ kind: 'forked', url: 'mqtt://127.0.0.1:1', transitHoldMs: null })).toBe(
      'clips in transit: off (forwarded after their commit)',
    );
  });

  it('attack: every attack is refused and counted, legitimate clips still all delivered', {
    timeout: 60_000,
  }, async () => {
    const rep = await runLoadtest({
      ...base,
      scenario: 'attack',
      seal: 'resign',
      seed: 'vitest-attack',
      attackShare: 0.4,
    });
    expectConsistent(rep.run);
    const a = rep.scenario.attack;
    expect(a).toBeDefined();
    if (!a) return;
    expect(a.attempted).toBeGreaterThanOrEqual(6);
    expect(a.leaked).toBe(0);
    expect(a.inconclusive).toBe(0);
    expect(a.refused).toBe(a.attempted);
    for (const v of Object.values(a.byKind)) expect(v.refused).toBe(v.attempted);
    expect(Object.keys(a.byKind).length).toBe(6);
    // the gateway saw them too
    expect(Object.keys(a.gatewayCounters ?? {}).length).toBeGreaterThan(0);
  });

  it('CLI: writes JSON, CSV and a script-free HTML report; Ctrl-C stops and still reports', {
    timeout: 90_000,
  }, async () => {
    const out = await mkdtemp(join(tmpdir(), 'plk-lt-cli-'));
    try {
      const child = spawn(
        process.execPath,
        [
          'bin/plushlink.js',
          'loadtest',
          '--toys',
          '8',
          '--clip-rate',
          '8',
          '--clip-seconds',
          '1',
          '--duration',
          '60s',
          '--connect-rate',
          '0',
          '--out',
          out,
          '--no-progress',
        ],
        { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let stderr = '';
      let stdout = '';
      child.stdout.on('data', (d: Buffer) => {
        stdout += d.toString();
      });
      const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
      await new Promise<void>((res, rej) => {
        const timer = setTimeout(() => rej(new Error(`no traffic started: ${stderr}`)), 60_000);
        child.stderr.on('data', (d: Buffer) => {
          stderr += d.toString();
          if (/connected \d+ toys/.test(stderr)) {
            clearTimeout(timer);
            setTimeout(res, 1200);
          }
        });
      });
      child.kill('SIGINT');
      const code = await exited;
      expect(code).toBe(0);
      expect(stderr).toMatch(/interrupted/);
      expect(stdout).toMatch(/INTERRUPTED/);
      const rep = JSON.parse(await readFile(join(out, 'report.json'), 'utf8')) as LoadtestReport;
      expect(rep.interrupted).toBe(true);
      // an interrupted run that failed nothing exits 0, and says so
      expect(rep.result).toEqual({ status: 'passed', exitCode: 0, reasons: [] });
      expect(stdout.trimEnd().split('\n').at(-1)).toBe('result: passed');
      const t = rep.run.totals;
      const clipErrors = Object.entries(rep.run.errors)
        .filter(([k]) => isClipError(k))
        .reduce((x, [, v]) => x + v, 0);
      expect(t.clipsSent).toBe(t.clipsAcked + clipErrors);
      const html = await readFile(join(out, 'report.html'), 'utf8');
      expect(html).toMatch(/^<!doctype html>/);
      expect(html).not.toMatch(/<script|<link|@import|https?:\/\/(?!www\.w3\.org\/2000\/svg)/i);
      expect((html.match(/<svg /g) ?? []).length).toBeGreaterThanOrEqual(6);
      expect(await readFile(join(out, 'timeline.csv'), 'utf8')).toMatch(/^target,t,dt,phase,/);
      expect(await readFile(join(out, 'summary.csv'), 'utf8')).toMatch(/^target,url,metric,/);
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  });

  it('refuses a non-loopback target with a one-line usage error', () => {
    const raw = { gateway: 'mqtt://10.1.2.3:1883', seal: 'full' } as Parameters<typeof toLoadtestOptions>[0];
    expect(usageError(() => toLoadtestOptions(raw)).message).toMatch(
      /^refusing to load-test non-loopback target 10\.1\.2\.3 [^\n]*$/,
    );
  });

  it('an external gateway takes its identity from --gateway-data when --gateway-identity is not given', () => {
    const base = { gateway: 'mqtt://127.0.0.1:1883', seal: 'full' } as Parameters<
      typeof toLoadtestOptions
    >[0];
    const fromData = toLoadtestOptions({ ...base, gatewayData: 'some/data' });
    expect(fromData.gatewayIdentityFile).toBe(resolve('some/data', 'gateway', 'identity.json'));
    expect(fromData.gatewayDataDir).toBe('some/data');
    // An explicit identity wins.
    expect(
      toLoadtestOptions({ ...base, gatewayData: 'd', gatewayIdentity: 'id.json' }).gatewayIdentityFile,
    ).toBe('id.json');
    // Neither: a one-line usage error that names both ways.
    expect(usageError(() => toLoadtestOptions(base)).message).toBe(
      'an external --gateway needs --gateway-identity <identity.json> or --gateway-data <dir> to check its proof',
    );
  });
});
