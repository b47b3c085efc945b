// Protocol lab with v2 (chunked clips, PLK-14) beside v1: real chunks that open, per-chunk receipts, streaming that cuts time to first audio at a byte cost.
import { describe, expect, it } from 'vitest';
import { synthesizeSpeech } from '../../device/audio/synth.ts';
import { encodePcmToOgg } from '../../device/codec/clip.ts';
import { CHUNK_LIMITS, decodeChunk } from '../../shared/chunked.ts';
import { generateIdentity, publicPart } from '../../shared/identity.ts';
import { seededRandom } from '../../shared/random.ts';
import { parseConfig } from '../../sim/lab/config.ts';
import { protocolModule } from '../../sim/lab/protocols.ts';
import { type LabReport, runLab } from '../../sim/lab/simulate.ts';

/** A short Wi-Fi day: 2 clips out of 4 s, 1 in. */
function day(protocol: Record<string, unknown>, link: Record<string, unknown> = { kind: 'wifi' }) {
  return {
    name: `v${String(protocol.version)}`,
    seed: 5,
    speech: 'synthetic',
    codec: { complexity: 0 },
    protocol,
    link,
    usage: { clipsSentPerDay: 2, clipSeconds: 4, clipsReceivedPerDay: 1 },
  };
}
const run = (raw: Record<string, unknown>): Promise<LabReport> => runLab(parseConfig(raw));

describe('lab: protocol v2 beside v1', () => {
  it('refuses bad v2 options in one line naming the key, and v1 keeps refusing any option', () => {
    expect(() => parseConfig(day({ version: 2, chunkMs: 100 }))).toThrow(
      /protocol\.chunkMs: must be an integer 250\.\.10000/,
    );
    expect(() => parseConfig(day({ version: 2, padTo: -1 }))).toThrow(/protocol\.padTo/);
    expect(() => parseConfig(day({ version: 2, chunks: 3 }))).toThrow(/protocol\.chunks: unknown key/);
    expect(() => parseConfig(day({ version: 1, chunkMs: 1000 }))).toThrow(/protocol\.chunkMs: unknown key/);
    expect(parseConfig(day({ version: 2 })).protocol.options).toEqual({
      chunkMs: CHUNK_LIMITS.defaultChunkMs,
      padTo: 0,
    });
  });

  it('seals real chunks that open to the whole clip, with one receipt per chunk', async () => {
    const config = parseConfig(day({ version: 2, chunkMs: 1000 }));
    const r = await run(day({ version: 2, chunkMs: 1000 }));
    expect(config.protocol.version).toBe(2);
    for (const s of r.sent) {
      expect(s.messages).toBe(4); // 4 s in 1 s chunks
      // Streaming: the first chunk plays long before the last one arrives.
      expect(s.latencyMs.firstAudioFromStartMs).toBeLessThan(s.latencyMs.fullClipMs! + 4000);
      expect(s.latencyMs.firstAudioFromStartMs).toBeLessThan(2500);
    }
  });

  it('v2 costs bytes and receipts but cuts the time to first audio; same speech, same quality', async () => {
    const [v1, v2] = await Promise.all([run(day({ version: 1 })), run(day({ version: 2 }))]);
    expect(v2.day.perClip.envelopeBytes).toBeGreaterThan(v1.day.perClip.envelopeBytes);
    expect(v2.day.perClip.bytes.opus).toBe(v1.day.perClip.bytes.opus);
    expect(v2.day.perClip.bytes.signature).toBe(4 * v1.day.perClip.bytes.signature);
    expect(v2.day.perClip.bytes.receipts).toBe(4 * v1.day.perClip.bytes.receipts);
    expect(v2.day.perClip.firstAudioFromStartMs).toBeLessThan(v1.day.perClip.firstAudioFromStartMs / 2);
    expect(v2.day.quality.lsdDb).toBe(v1.day.quality.lsdDb);
    expect(v2.day.dailyEnergyMj).toBeGreaterThan(v1.day.dailyEnergyMj);
  });

  it('is deterministic for a seed, over BLE too', async () => {
    const ble = day({ version: 2, chunkMs: 2000 }, { kind: 'ble' });
    const a = JSON.stringify(await run(ble));
    expect(JSON.stringify(await run(ble))).toBe(a);
  });
});

describe('lab: v2 wire objects', () => {
  it('the module seals real v2 chunks (index, final flag, one sealed-key set) that open to the whole clip', () => {
    const m = protocolModule(2);
    const rnd = seededRandom('lab-v2-wire');
    const toy = generateIdentity('toy', rnd);
    const mum = generateIdentity('parent', rnd);
    const pcm = synthesizeSpeech({ sampleRate: 16_000, durationMs: 3000, seed: 7 });
    const clip = m.sealClip({
      pcm,
      sampleRate: 16_000,
      durationMs: 3000,
      encode: (p, o) =>
        encodePcmToOgg(p, {
          serial: 9,
          settings: { sampleRate: 16_000, bitrate: 24_000, complexity: 0 },
          ...(o?.pageMs !== undefined ? { maxPageDurationMs: o.pageMs } : {}),
        }),
      sender: toy,
      recipients: [publicPart(mum)],
      sequence: 10,
      createdAt: 1_700_000_000_000,
      random: rnd,
      options: { chunkMs: 1000, padTo: 0 },
    });
    expect(clip.messages).toHaveLength(3);
    clip.messages.forEach((msg, i) => {
      const d = decodeChunk(msg.bytes);
      expect(d.header.index).toBe(i);
      expect(d.header.final).toBe(i === 2);
      expect(d.header.sequence).toBe(10 + i);
      expect(msg.parts.sealedKeys).toBe(i === 0 ? 80 : 0);
      expect(msg.readyAfterMs).toBe(msg.playableMs);
    });
    const [ogg] = m.openClip(clip, mum, publicPart(toy));
    expect(ogg!.length).toBe(clip.messages.reduce((n, x) => n + x.parts.opus + x.parts.ogg, 0));
    expect(m.receipts(clip, mum, toy.id, 1_700_000_001_000)).toHaveLength(3);
  });
});
