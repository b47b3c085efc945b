// Storm and ramp scenarios at toy scale: every toy comes back, ramp steps are recorded and a knee is reported.
import { describe, expect, it } from 'vitest';
import { loadtestOptions } from '../../scripts/loadtest/options.ts';
import { runLoadtest } from '../../scripts/loadtest/runner.ts';
import type { LoadtestOptions } from '../../scripts/loadtest/types.ts';

/** A small, quick fleet: only what differs from the CLI defaults (scripts/loadtest/options.ts). */
const base: LoadtestOptions = loadtestOptions({
  toys: 16,
  connectRate: 0,
  clipRate: 8,
  clipSeconds: 1,
  durationMs: 2000,
  scenario: 'storm',
  seed: 'vitest-scenarios',
  rampTargetP99Ms: 60_000,
  rampStepMs: 1000,
  rampFactor: 2,
  rampMaxSteps: 2,
  seal: 'resign',
  progress: false,
  maxRunMs: 60_000,
});

describe('scenarios', () => {
  it('storm: every toy drops and comes back, authenticated, and traffic resumes', {
    timeout: 60_000,
  }, async () => {
    const rep = await runLoadtest(base);
    const st = rep.scenario.storm;
    expect(st).toBeDefined();
    if (!st) return;
    expect(st.toys).toBe(16);
    expect(st.back).toBe(16);
    expect(st.failed).toBe(0);
    expect(st.authFailures).toBe(0);
    expect(st.allBackMs).toBeGreaterThan(0);
    expect(st.connect.count).toBe(16);
    expect(st.connect.p50).toBeLessThanOrEqual(st.connect.max);
    expect(rep.run.totals.lost).toBe(0);
    expect(rep.run.totals.clipsDelivered).toBe(rep.run.totals.clipsAcked);
    expect(rep.run.timeline.some((p) => p.phase === 'after-storm' && p.clipsAcked > 0)).toBe(true);
    // the storm happens between the two halves of --duration, and the report says when
    const phases = rep.run.phases ?? [];
    const names = phases.map((p) => p.name);
    const before = phases[names.indexOf('before-storm')];
    const after = phases[names.indexOf('after-storm')];
    expect(names.indexOf('before-storm')).toBeLessThan(names.indexOf('storm'));
    expect(names.indexOf('storm')).toBeLessThan(names.indexOf('after-storm'));
    expect(st.atS).toBeGreaterThanOrEqual(before?.toS ?? Number.NaN);
    expect(st.atS).toBeLessThanOrEqual(after?.fromS ?? Number.NaN);
    expect(before?.offeredPerSec).toBe(8);
    expect(after?.offeredPerSec).toBe(8);
  });

  it('ramp: raises the rate step by step and reports the knee', { timeout: 60_000 }, async () => {
    // --ramp-steps allows 10, but only two 1 s steps fit in --duration 2s
    const rep = await runLoadtest({ ...base, scenario: 'ramp', rampMaxSteps: 10 });
    const ramp = rep.scenario.ramp;
    expect(ramp).toBeDefined();
    if (!ramp) return;
    expect(ramp.steps.length).toBeGreaterThanOrEqual(1);
    expect(ramp.steps.length).toBeLessThanOrEqual(2);
    expect(rep.run.phases?.filter((p) => p.name.startsWith('ramp ')).map((p) => p.offeredPerSec)).toEqual(
      [8, 16].slice(0, ramp.steps.length),
    );
    expect(ramp.steps[0]?.clipRate).toBe(8);
    if (ramp.steps.length === 2) expect(ramp.steps[1]?.clipRate).toBe(16);
    expect(ramp.note.length).toBeGreaterThan(0);
    expect(rep.run.totals.lost).toBe(0);
  });
});
