// Link timing model: hand-computed airtimes and transfer times, validation, and monotonicity properties.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SeededRandom } from '../../device/ble/random.ts';
import {
  estimateTransfer,
  fragment,
  type LinkParams,
  LinkScheduler,
  linkParams,
  losslessTimeUs,
  packetAirtimeUs,
  packetsPerEvent,
  simulateTransfer,
  validateLinkParams,
} from '../../device/ble/timing.ts';
import { fcParams } from '../helpers/fc.ts';

describe('on-air time of one LL packet (Vol 6 Part B §2.1, §2.4)', () => {
  it('1M PHY, 27-byte payload, unencrypted: (1+4+2+27+3) octets = 37 octets = 296 bits = 296 µs', () => {
    expect(packetAirtimeUs(27, '1M', false)).toBe(296);
  });
  it('1M PHY, 27-byte payload, encrypted: + 4-byte MIC = 41 octets = 328 µs', () => {
    expect(packetAirtimeUs(27, '1M', true)).toBe(328);
  });
  it('empty packet carries no MIC even on an encrypted link: (1+4+2+0+3) octets = 80 µs', () => {
    expect(packetAirtimeUs(0, '1M', true)).toBe(80);
  });
  it('2M PHY, 251-byte payload, encrypted: (2+4+2+251+4+3) = 266 octets = 2128 bits at 2 bit/µs = 1064 µs', () => {
    expect(packetAirtimeUs(251, '2M', true)).toBe(1064);
  });
});

describe('transfer time at defaults (MTU 23, DL 27, 1M, 30 ms, 4 packets/event, encrypted)', () => {
  const p = linkParams();
  it('20 bytes: one ATT PDU (3+20), one L2CAP PDU (4+23 = 27), one LL packet: 80 + 150 + 328 = 558 µs', () => {
    const e = estimateTransfer(20, p);
    expect(e.attPdus).toBe(1);
    expect(e.llPackets).toBe(1);
    expect(e.expectedUs).toBe(558);
  });
  it('100 bytes: 5 PDUs of 20 bytes, 5 LL packets, 4 per event -> 2 events: 30 000 + 558 µs', () => {
    // exchange slot = 80 + 150 + 328 + 150 = 708 µs; floor(30000 / 708) = 42 > 4, so k = 4
    expect(packetsPerEvent(p)).toBe(4);
    const e = estimateTransfer(100, p);
    expect(e.llPackets).toBe(5);
    expect(e.connectionEvents).toBe(2);
    expect(e.expectedUs).toBe(30_558);
  });
  it('fragmentation: a 24-byte ATT PDU (MTU 24) needs two 27-byte-DL LL packets: 4+24 = 28 = 27 + 1', () => {
    const f = fragment(21, linkParams({ attMtu: 24 }));
    expect(f.attPdus).toEqual([24]);
    expect(f.llPayloads).toEqual([27, 1]);
  });
  it('packets per event limited by the interval: at 7.5 ms with max 100, floor(7500 / 708) = 10', () => {
    expect(packetsPerEvent(linkParams({ connectionIntervalMs: 7.5, maxPacketsPerEvent: 100 }))).toBe(10);
  });
  it('loss: q = (1 - 0.1)^2 = 0.81, expected time = T0 / q', () => {
    const e = estimateTransfer(100, linkParams({ lossProbability: 0.1 }));
    expect(e.expectedUs).toBeCloseTo(30_558 / 0.81, 6);
    expect(e.expectedAttempts).toBeCloseTo(5 / 0.81, 9);
  });
});

describe('validation names the field', () => {
  const cases: [Partial<LinkParams>, RegExp][] = [
    [{ attMtu: 22 }, /attMtu/],
    [{ attMtu: 518 }, /attMtu/],
    [{ connectionIntervalMs: 7 }, /connectionIntervalMs/],
    [{ connectionIntervalMs: 8 }, /connectionIntervalMs/],
    [{ connectionIntervalMs: 4001.25 }, /connectionIntervalMs/],
    [{ phy: 'coded' as '1M' }, /phy/],
    [{ maxPacketsPerEvent: 0 }, /maxPacketsPerEvent/],
    [{ llDataLength: 26 }, /llDataLength/],
    [{ llDataLength: 252 }, /llDataLength/],
    [{ lossProbability: 1 }, /lossProbability/],
    [{ lossProbability: -0.1 }, /lossProbability/],
  ];
  it.each(cases)('%o', (override, re) => {
    expect(() => linkParams(override)).toThrow(RangeError);
    expect(() => linkParams(override)).toThrow(re);
  });
  it('accepts the extremes', () => {
    expect(() => linkParams({ attMtu: 517, connectionIntervalMs: 4000, llDataLength: 251 })).not.toThrow();
    expect(() => linkParams({ attMtu: 23, connectionIntervalMs: 7.5, llDataLength: 27 })).not.toThrow();
    expect(() => validateLinkParams({ ...linkParams(), attMtu: 1.5 })).toThrow(/attMtu/);
  });
});

const arbParams: fc.Arbitrary<LinkParams> = fc
  .record({
    attMtu: fc.integer({ min: 23, max: 517 }),
    steps: fc.integer({ min: 6, max: 320 }), // 7.5 .. 400 ms
    phy: fc.constantFrom<'1M' | '2M'>('1M', '2M'),
    maxPacketsPerEvent: fc.integer({ min: 1, max: 40 }),
    llDataLength: fc.integer({ min: 27, max: 251 }),
    lossProbability: fc.double({ min: 0, max: 0.5, noNaN: true }),
    encrypted: fc.boolean(),
  })
  .map(({ steps, ...r }) => linkParams({ ...r, connectionIntervalMs: steps * 1.25 }));

const arbBytes = fc.integer({ min: 1, max: 40_000 });
const runs = (): ReturnType<typeof fcParams> => fcParams({ numRuns: 150 });

describe('monotonicity (fast-check)', () => {
  it('2M PHY is never slower than 1M', () => {
    fc.assert(
      fc.property(arbParams, arbBytes, (p, n) => {
        const t1 = estimateTransfer(n, { ...p, phy: '1M' }).expectedUs;
        const t2 = estimateTransfer(n, { ...p, phy: '2M' }).expectedUs;
        return t2 <= t1;
      }),
      runs(),
    );
  });

  it('more loss is never faster', () => {
    fc.assert(
      fc.property(arbParams, arbBytes, fc.double({ min: 0, max: 0.4, noNaN: true }), (p, n, extra) => {
        const a = estimateTransfer(n, p).expectedUs;
        const b = estimateTransfer(n, { ...p, lossProbability: p.lossProbability + extra }).expectedUs;
        return b >= a;
      }),
      runs(),
    );
  });

  it('more packets per event is never slower', () => {
    fc.assert(
      fc.property(arbParams, arbBytes, fc.integer({ min: 0, max: 50 }), (p, n, extra) => {
        const a = estimateTransfer(n, p).expectedUs;
        const b = estimateTransfer(n, { ...p, maxPacketsPerEvent: p.maxPacketsPerEvent + extra }).expectedUs;
        return b <= a;
      }),
      runs(),
    );
  });

  it('a bigger MTU is never slower when the LL data length carries a whole ATT PDU (DLE, 251)', () => {
    fc.assert(
      fc.property(
        arbParams,
        arbBytes,
        fc.integer({ min: 23, max: 247 }),
        fc.integer({ min: 0, max: 224 }),
        (p, n, mtu, extra) => {
          const q = { ...p, llDataLength: 251 };
          const a = estimateTransfer(n, { ...q, attMtu: mtu }).expectedUs;
          const b = estimateTransfer(n, { ...q, attMtu: Math.min(247, mtu + extra) }).expectedUs;
          return b <= a;
        },
      ),
      runs(),
    );
  });

  it('…but not in general: MTU 24 on a 27-byte LL data length is slower than MTU 23 (a real effect)', () => {
    // MTU 23: 40 B -> 2 PDUs of 20 B -> L2CAP 27 B each -> 2 LL packets.
    // MTU 24: 40 B -> 21 + 19 B -> L2CAP 28 + 26 B -> 27+1 and 26 -> 3 LL packets.
    const a = estimateTransfer(40, linkParams({ attMtu: 23 }));
    const b = estimateTransfer(40, linkParams({ attMtu: 24 }));
    expect(a.llPackets).toBe(2);
    expect(b.llPackets).toBe(3);
    expect(b.expectedUs).toBeGreaterThan(a.expectedUs);
  });
});

describe('packet-by-packet scheduler and seeded simulation', () => {
  it('without loss the scheduler reproduces the closed formula', () => {
    fc.assert(
      fc.property(arbParams, arbBytes, (p0, n) => {
        const p = { ...p0, lossProbability: 0 };
        const f = fragment(n, p);
        return new LinkScheduler(p).send(0, f.llPayloads) === losslessTimeUs(f.llPayloads, p);
      }),
      runs(),
    );
  });

  it('a seeded run replays exactly', () => {
    const p = linkParams({ lossProbability: 0.2 });
    const a = simulateTransfer(30_000, p, new SeededRandom(42));
    const b = simulateTransfer(30_000, p, new SeededRandom(42));
    expect(a).toEqual(b);
    expect(a.attempts).toBeGreaterThan(a.llPackets);
  });

  it('the mean of seeded runs agrees with the expected-value formula within 3 %', () => {
    const p = linkParams({ lossProbability: 0.15, attMtu: 247, llDataLength: 251 });
    const e = estimateTransfer(30_000, p);
    let sum = 0;
    const runsN = 200;
    for (let s = 0; s < runsN; s++) sum += simulateTransfer(30_000, p, new SeededRandom(s)).timeUs;
    expect(Math.abs(sum / runsN - e.expectedUs) / e.expectedUs).toBeLessThan(0.03);
  });

  it('a link that is busy continues the stream; an idle one waits for the next anchor', () => {
    const p = linkParams();
    const s = new LinkScheduler(p);
    expect(s.send(0, [27])).toBe(558);
    // idle at 1000 µs: next anchor is 30 000 µs
    expect(s.send(1000, [27])).toBe(30_558);
    // queued while busy: continues in the same event, 708 µs later
    expect(s.send(30_000, [27])).toBe(30_558 + 708);
  });
});
