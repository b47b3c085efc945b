// The one-line verdict that ends every fleet and demo run: "ok: N/N delivered" only when nothing expected is missing, given up or failing.
import { describe, expect, it } from 'vitest';
import { type FleetStats, fleetVerdict } from '../../sim/fleet-runner.ts';
import { emptySummary } from '../../sim/stats.ts';

const base: FleetStats = {
  elapsedMs: 2000,
  endpoints: 9,
  online: 9,
  peakOnline: 9,
  connects: 9,
  retries: 0,
  clipsSent: 10,
  clipsAcked: 10,
  clipsAbandoned: 0,
  clipsResumed: 0,
  deliveriesExpected: 16,
  delivered: 16,
  duplicates: 0,
  backlogDelivered: 0,
  receipts: 16,
  envelopeBytes: 60_000,
  errors: 0,
  errorKinds: {},
  errorSamples: {},
  latency: emptySummary(),
  ackLatency: emptySummary(),
  eventLoopDelay: { p50: 0, p99: 0, max: 0 },
  neverOnline: 0,
  stopTimeouts: 0,
  interrupted: false,
  speech: 'synthetic speech',
  link: 'wifi',
};

describe('fleetVerdict', () => {
  it('is ok when everything sealed was stored and delivered; retries and an early stop are noted, not failures', () => {
    expect(fleetVerdict(base)).toEqual({
      ok: true,
      problems: [],
      line: 'ok: 16/16 delivered (9/9 endpoints connected)',
    });
    const v = fleetVerdict({
      ...base,
      retries: 3,
      errors: 3,
      errorKinds: { 'connect:CONNECT_REFUSED': 3 },
      interrupted: true,
    });
    expect(v.line).toBe('ok: 16/16 delivered (9/9 endpoints connected, 3 connect retries, stopped early)');
    expect(
      fleetVerdict({ ...base, clipsSent: 0, clipsAcked: 0, deliveriesExpected: 0, delivered: 0 }).ok,
    ).toBe(true);
  });

  it('names every shortfall, missing deliveries first', () => {
    const v = fleetVerdict({
      ...base,
      delivered: 13,
      clipsAcked: 7,
      clipsAbandoned: 2,
      neverOnline: 1,
      errors: 7,
      errorKinds: { 'connect:CONNECT_REFUSED': 5, 'publish:OUTBOX_REFUSED': 2 },
      errorSamples: { 'connect:CONNECT_REFUSED': 'Connection refused: Not authorized' },
      stopTimeouts: 1,
    });
    expect(v.ok).toBe(false);
    expect(v.line).toBe(
      'FAILED: 3 of 16 deliveries missing; 1 of 10 clips not stored by the gateway; ' +
        '2 clips given up after repeated refusals; ' +
        '1 of 9 endpoints never connected (connect:CONNECT_REFUSED×5: Connection refused: Not authorized); ' +
        '2 errors (publish:OUTBOX_REFUSED×2); 1 endpoints did not stop in time',
    );
  });
});
