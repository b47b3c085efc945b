// Protocol lab runs: determinism per seed, lower bitrate → fewer bytes and worse quality, byte totals that add up, BLE vs Wi-Fi, v1 first audio.
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../sim/lab/config.ts';
import { BYTE_CATEGORIES, type LabReport, runLab } from '../../sim/lab/simulate.ts';

const FIXTURE = new URL('../fixtures/speech-16k.wav', import.meta.url).pathname;

/** A short day: 2 clips out, 1 in, 2 s each (the real encoder runs on every clip). */
function small(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name: 'small',
    seed: 3,
    speech: 'synthetic',
    codec: { complexity: 0 },
    usage: { clipsSentPerDay: 2, clipSeconds: 2, clipsReceivedPerDay: 1 },
    ...over,
  };
}

const run = (raw: Record<string, unknown>): Promise<LabReport> => runLab(parseConfig(raw));

describe('lab run', () => {
  it('is deterministic: the same config and seed give byte-identical JSON; another seed does not', async () => {
    const a = JSON.stringify(await run(small()));
    const b = JSON.stringify(await run(small()));
    expect(a).toBe(b);
    const wifi = small({ link: { kind: 'wifi', lossRate: 0.05 } });
    expect(JSON.stringify(await run(wifi))).toBe(JSON.stringify(await run(wifi)));
    expect(JSON.stringify(await run(small({ seed: 4 })))).not.toBe(a);
  });

  it('a lower bitrate gives fewer bytes and a worse quality score (speech fixture)', async () => {
    const at = (kbps: number) =>
      run({
        speech: FIXTURE,
        codec: { bitrateKbps: kbps, complexity: 5 },
        usage: { clipsSentPerDay: 2, clipSeconds: 3, clipsReceivedPerDay: 0 },
      });
    const [low, mid, high] = await Promise.all([at(12), at(16), at(32)]);
    expect(low.day.perClip.bytes.opus).toBeLessThan(mid.day.perClip.bytes.opus);
    expect(mid.day.perClip.bytes.opus).toBeLessThan(high.day.perClip.bytes.opus);
    expect(low.day.perClip.bytes.total).toBeLessThan(high.day.perClip.bytes.total);
    expect(low.day.quality.lsdDb).toBeGreaterThan(mid.day.quality.lsdDb);
    expect(mid.day.quality.lsdDb).toBeGreaterThan(high.day.quality.lsdDb);
    expect(low.day.quality.score).toBeLessThan(high.day.quality.score);
    expect(high.speech.source).toBe(FIXTURE);
    expect(high.speech.sha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it('every byte is in one category, per clip and per day; energy components add up', async () => {
    const r = await run(small());
    for (const s of [...r.sent, ...r.received]) {
      expect(BYTE_CATEGORIES.reduce((t, k) => t + s.bytes[k], 0)).toBe(s.bytes.total);
      expect(
        s.bytes.opus +
          s.bytes.ogg +
          s.bytes.header +
          s.bytes.sealedKeys +
          s.bytes.signature +
          s.bytes.padding,
      ).toBe(s.envelopeBytes);
      expect(s.bytes.transport).toBeGreaterThan(0);
    }
    for (const s of r.sent) {
      const e = s.energyMj;
      expect(e.total).toBeCloseTo(
        (e.microphone ?? 0) + (e.encode ?? 0) + (e.crypto ?? 0) + (e.radio ?? 0),
        2,
      );
    }
    expect(r.day.bytesSent.total).toBe(r.sent.reduce((t, s) => t + s.bytes.total, 0));
    const sum = Object.values(r.day.energyMj).reduce((t, x) => t + x, 0);
    expect(r.day.dailyEnergyMj).toBeCloseTo(sum, 1);
    expect(r.day.batteryDays).toBeGreaterThan(0);
    expect(r.notes.join(' ')).toMatch(/BLE-only toy/);
    // v1: nothing plays before the whole envelope has arrived and verified.
    for (const s of r.sent) expect(s.latencyMs.firstAudioMs).toBe(s.latencyMs.fullClipMs);
  });

  it('a bigger BLE MTU and 2M PHY cut transport bytes, airtime and latency for the same clip', async () => {
    const old = await run(
      small({ link: { kind: 'ble', mtu: 23, dataLength: 27, phy: '1M', intervalMs: 30, perEvent: 4 } }),
    );
    const dle = await run(
      small({ link: { kind: 'ble', mtu: 247, dataLength: 251, phy: '2M', intervalMs: 15, perEvent: 6 } }),
    );
    expect(dle.sent[0]!.envelopeBytes).toBe(old.sent[0]!.envelopeBytes);
    expect(dle.day.perClip.bytes.transport).toBeLessThan(old.day.perClip.bytes.transport);
    expect(dle.day.perClip.airtimeMs).toBeLessThan(old.day.perClip.airtimeMs);
    expect(dle.day.perClip.latencyMs).toBeLessThan(old.day.perClip.latencyMs);
  });

  it('a Wi-Fi toy pays for staying associated: far fewer battery days than a BLE toy, and it gets receipts', async () => {
    const ble = await run(small());
    const wifi = await run(small({ link: { kind: 'wifi' } }));
    expect(wifi.day.batteryDays).toBeLessThan(ble.day.batteryDays / 10);
    expect(wifi.day.energyMj.idle).toBeGreaterThan(0);
    expect(wifi.day.energyMj.keepalive).toBeGreaterThan(0);
    expect(wifi.sent[0]!.bytes.receipts).toBe(2 * 130); // one per parent
    expect(wifi.sent[0]!.transport.wifiTls).toBeGreaterThan(0);
    const plain = await run(small({ link: { kind: 'wifi', tls: false } }));
    expect(plain.sent[0]!.transport.wifiTls).toBe(0);
    expect(plain.day.perClip.bytes.transport).toBeLessThan(wifi.day.perClip.bytes.transport);
  });

  it('measureCpu adds the host measurement and says the report is not reproducible', async () => {
    const r = await run(
      small({ measureCpu: true, usage: { clipsSentPerDay: 1, clipSeconds: 1, clipsReceivedPerDay: 0 } }),
    );
    expect(r.measured?.hostEncodeMsPerAudioSecond).toBeGreaterThan(0);
    expect(r.notes.join(' ')).toMatch(/not reproducible/);
    expect((await run(small())).measured).toBeUndefined();
  });

  it('a clip too large for one v1 envelope is refused with one line', async () => {
    await expect(
      run(
        small({
          speech: FIXTURE, // a file loops for free; synthesizing 200 s takes longer than encoding it
          codec: { bitrateKbps: 64, complexity: 0 },
          usage: { clipsSentPerDay: 1, clipSeconds: 200, clipsReceivedPerDay: 0 },
        }),
      ),
    ).rejects.toThrow(/^lab: protocol v1 cannot carry this clip: .*max 1048576$/);
  }, 30_000);
});
