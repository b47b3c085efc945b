// The bottleneck verdict's "other processes" share: host CPU minus the generator and minus the system under test when it runs as a process of its own.
import { describe, expect, it } from 'vitest';
import { contentionText, otherProcessesPercent, parseProcStat } from '../../scripts/loadtest/session.ts';

describe('otherProcessesPercent', () => {
  it('does not count a forked gateway (a process of its own) as a neighbour', () => {
    // 2 cores, 1 s: the host 60 % busy = 1.2 cores; the generator used 0.45 of a core, the
    // gateway 0.75: nothing else ran.
    const base = { hostBusy: 0.6, ownCpuMs: 450, wallMs: 1000, cores: 2 };
    expect(otherProcessesPercent({ ...base, targetCpuPercent: 75 })).toBe(0);
    // Before the target was taken out, the gateway itself read as 37.5 % of "other processes".
    expect(otherProcessesPercent({ ...base, targetCpuPercent: null })).toBe(37.5);
  });

  it('still sees a real neighbour, and never goes below zero', () => {
    // Host 90 % busy of 2 cores = 1.8 cores: generator 0.4, gateway 0.8, a neighbour 0.6 (30 %).
    expect(
      otherProcessesPercent({ hostBusy: 0.9, ownCpuMs: 400, wallMs: 1000, cores: 2, targetCpuPercent: 80 }),
    ).toBe(30);
    // Sampling skew can make the parts exceed the host's figure: 0, not negative.
    expect(
      otherProcessesPercent({ hostBusy: 0.3, ownCpuMs: 500, wallMs: 1000, cores: 2, targetCpuPercent: 40 }),
    ).toBe(0);
  });
});

describe('host CPU from /proc/stat', () => {
  it("counts the hypervisor's steal apart from this machine's busy time, and guest time once", () => {
    // user nice system idle iowait irq softirq steal guest guest_nice
    expect(parseProcStat('cpu  100 0 50 800 10 0 5 35 20 0')).toEqual({ busy: 155, steal: 35, total: 1000 });
    expect(parseProcStat('intr 1 2 3')).toBeNull();
  });

  it('calls a run contended by neighbours or by steal, and says which', () => {
    expect(contentionText({ othersPercent: 5, stealPercent: 2, hostPercent: 60 })).toBeNull();
    expect(contentionText({ othersPercent: 25, stealPercent: 2, hostPercent: 89 })).toBe(
      "other processes used 25 % of the machine's CPU during the run (host 89 % busy)",
    );
    expect(contentionText({ othersPercent: 3, stealPercent: 22, hostPercent: 70 })).toBe(
      'the hypervisor took 22 % of the machine (steal) during the run (host 70 % busy)',
    );
    expect(contentionText({ othersPercent: 21, stealPercent: 12, hostPercent: 95 })).toBe(
      "other processes used 21 % of the machine's CPU and the hypervisor took 12 % (steal) during the run (host 95 % busy)",
    );
  });
});
