// The air's virtual time agrees with the timing model; runs replay exactly from the seed.
import { describe, expect, it } from 'vitest';
import { Air, bleAddress } from '../../device/ble/air.ts';
import { estimateTransfer, exchangeUs, type LinkParams } from '../../device/ble/timing.ts';
import { bytes, world } from './helpers.ts';

async function downloadTimed(seed: number, params: Partial<LinkParams>, mtu: number, size: number) {
  const clip = bytes(size, seed);
  const w = world(seed, { clip });
  w.toy.pressPairingButton();
  const link = w.phone.connect(w.toy, params);
  expect((await link.pair()).ok).toBe(true);
  await link.exchangeMtu(mtu);
  await link.enableClipNotifications();
  await link.startRecording();
  let t0 = -1;
  w.air.sniff((f) => {
    if (f.from === 'peripheral' && t0 < 0) t0 = f.atUs;
  });
  const got = await link.stopRecordingAndDownload();
  expect(got).toEqual(clip);
  return { w, elapsedUs: w.air.nowUs - t0, link };
}

describe('air and timing model', () => {
  it('a 30 kB clip download takes the modelled time (plus at most one interval to the anchor)', async () => {
    const params = { attMtu: 23, connectionIntervalMs: 30, maxPacketsPerEvent: 4 };
    const { elapsedUs, link } = await downloadTimed(61, params, 247, 30_000);
    const p = link.connection.params;
    expect(p.attMtu).toBe(247);
    // the stream carries the 4-byte length header too, and the Write Response goes first
    const e = estimateTransfer(30_004, p);
    const slot = exchangeUs(p.llDataLength, p.phy, true);
    expect(elapsedUs).toBeGreaterThanOrEqual(e.losslessUs);
    expect(elapsedUs).toBeLessThanOrEqual(e.losslessUs + p.connectionIntervalMs * 1000 + 2 * slot);
  });

  it('2M PHY with DLE is faster on the air too', async () => {
    const slow = await downloadTimed(62, {}, 23, 8000);
    const fast = await downloadTimed(62, { phy: '2M', llDataLength: 251 }, 247, 8000);
    expect(fast.elapsedUs).toBeLessThan(slow.elapsedUs / 5);
  });

  it('with loss, the same seed gives the same virtual time, another seed another one', async () => {
    const params = { lossProbability: 0.2 };
    const a = await downloadTimed(63, params, 185, 5000);
    const b = await downloadTimed(63, params, 185, 5000);
    const c = await downloadTimed(64, params, 185, 5000);
    expect(a.w.air.nowUs).toBe(b.w.air.nowUs);
    expect(c.w.air.nowUs).not.toBe(a.w.air.nowUs);
  });

  it('validates link parameters at connect, naming the field', () => {
    const air = new Air();
    const w = world(65);
    expect(() => air.connect(bleAddress('aa:bb:cc:dd:ee:ff'), w.toy, { connectionIntervalMs: 5 })).toThrow(
      /connectionIntervalMs/,
    );
    expect(() => bleAddress('not an address')).toThrow(RangeError);
  });
});
