// A hand-made load-test report for unit tests of thresholds and the HTML report (no run needed).

import type { LoadtestReport, RunSummary, TimePoint } from '../../scripts/loadtest/types.ts';
import { newHistogram, recordMs, summarize } from '../../sim/stats.ts';

function point(t: number, phase: string, over: Partial<TimePoint> = {}): TimePoint {
  return {
    t,
    dt: 1,
    phase,
    clipsSent: 10,
    clipsAcked: 10,
    clipsDelivered: 10,
    errors: 0,
    mbAcked: 0.02,
    connects: 0,
    connected: 8,
    pubackP50Ms: 2,
    pubackP99Ms: 4,
    e2eP50Ms: 3,
    e2eP99Ms: 6,
    gatewayCpuPercent: 20,
    gatewayRssMb: 100,
    gatewayHeapMb: 40,
    generatorCpuPercent: 10,
    generatorLagP99Ms: 2,
    hostCpuPercent: 30,
    otherProcessesCpuPercent: 1,
    gatewayLagP99Ms: 3,
    offeredPerSec: 10,
    errorsByKind: {},
    ...over,
  };
}

/** A storm run of 8 toys: 1000 clips sent, 990 acknowledged, 10 PUBACK timeouts, 2 clips lost, 1 held for an offline parent. */
export function sampleReport(): LoadtestReport {
  const e2e = newHistogram();
  for (let i = 1; i <= 988; i++) recordMs(e2e, 1 + (i % 50) / 10);
  const lat = summarize(e2e);
  const run: RunSummary = {
    target: { kind: 'embedded', url: 'mqtt://127.0.0.1:1' },
    phaseMs: 4000,
    totals: {
      clipsSent: 1000,
      clipsAcked: 990,
      clipsDelivered: 988,
      duplicates: 0,
      bytesSent: 1,
      bytesAcked: 1,
      connects: 16,
      connectFailures: 0,
      receiptsSent: 988,
      notSent: 0,
      errors: 10,
      lost: 2,
      held: 1,
    },
    errors: { 'puback-timeout': 10, 'not-sent:inflight-limit': 3 },
    throughput: { clipsPerSec: 247.5, mbPerSec: 0.5 },
    latency: { connect: lat, puback: lat, e2e: lat },
    e2eHistogram: [
      { fromMs: 1, toMs: 2, count: 400 },
      { fromMs: 2, toMs: 4, count: 500 },
      { fromMs: 4, toMs: 8, count: 88 },
    ],
    gateway: {
      source: 'process',
      cpuPercentMean: 20,
      cpuPercentMax: 40,
      rssMbMax: 100,
      heapMbMax: 40,
      eventLoopLagP99MaxMs: 5,
      eventLoopLagMaxMs: 9,
    },
    generator: {
      workers: [],
      bottleneck: false,
      verdict: 'neither saturated',
      hostCpuPercentMean: 30,
      otherProcessesCpuPercentMean: 1,
    },
    timeline: [
      point(1, 'connect-toys', {
        connects: 8,
        clipsSent: 0,
        clipsAcked: 0,
        clipsDelivered: 0,
        offeredPerSec: 0,
      }),
      point(2, 'before-storm'),
      point(3, 'before-storm', { errors: 4, errorsByKind: { 'puback-timeout': 4 } }),
      point(4, 'after-storm', {
        connects: 8,
        errors: 6,
        errorsByKind: { 'puback-timeout': 6, 'not-sent:inflight-limit': 3 },
      }),
      point(5, 'after-storm', { offeredPerSec: 20, clipsSent: 20, clipsAcked: 20, clipsDelivered: 20 }),
    ],
    phases: [
      { name: 'connect-toys', fromS: 0.2, toS: 1.1 },
      { name: 'before-storm', fromS: 1.1, toS: 3.1 },
      { name: 'storm', fromS: 3.1, toS: 3.3 },
      { name: 'after-storm', fromS: 3.3, toS: 5.3 },
    ],
  };
  return {
    tool: 'plushlink loadtest',
    version: 1,
    startedAt: '2026-12-01T00:00:00.000Z',
    finishedAt: '2026-12-01T00:00:06.000Z',
    interrupted: false,
    options: { seed: 'fixture', seal: 'full' },
    audio: {
      clips: 4,
      clipSeconds: 1,
      oggBytesMean: 2000,
      envelopeBytesMean: 2100,
      sealing: 'sealed per clip',
      source: 'synthetic speech',
    },
    fleet: { toys: 8, parents: 2, attackers: 0, workers: 1 },
    run,
    scenario: {
      name: 'storm',
      storm: {
        atS: 3.1,
        toys: 8,
        back: 8,
        failed: 0,
        allBackMs: 180,
        connectsPerSec: 44,
        authFailures: 0,
        connect: lat,
      },
    },
    notes: [],
  };
}
