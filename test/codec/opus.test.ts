// Opus wrapper and encoder pool tests: settings validation, frame sizes, DTX/FEC, reset, pooling, leaks.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { synthesizeSpeech } from '../../device/audio/synth.ts';
import { readWav } from '../../device/audio/wav.ts';
import { decodeOggToPcm, encodePcmToOgg } from '../../device/codec/clip.ts';
import { CodecError } from '../../device/codec/errors.ts';
import { readOggOpus } from '../../device/codec/ogg.ts';
import {
  createDecoder,
  createEncoder,
  normalizeEncoderSettings,
  type OpusEncoder,
} from '../../device/codec/opus.ts';
import { opusPacketSamples48k } from '../../device/codec/opus-packet.ts';
import { EncoderPool } from '../../device/codec/pool.ts';

const speech = synthesizeSpeech({ seed: 21, durationMs: 2000 });

function encodeAll(enc: OpusEncoder, pcm: Int16Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i + enc.frameSamples <= pcm.length; i += enc.frameSamples) {
    out.push(enc.encode(pcm.subarray(i, i + enc.frameSamples)));
  }
  return out;
}

describe('Opus settings', () => {
  it('defaults to 16 kHz mono voip 24 kbit/s cx10 20 ms', () => {
    expect(normalizeEncoderSettings()).toEqual({
      sampleRate: 16000,
      channels: 1,
      bitrate: 24000,
      complexity: 10,
      frameMs: 20,
      application: 'voip',
      dtx: false,
      fec: false,
      packetLossPercent: 0,
    });
    expect(normalizeEncoderSettings({ fec: true }).packetLossPercent).toBe(10);
  });

  it('rejects out-of-range fields, naming them', () => {
    expect(() => createEncoder({ bitrate: 5999 })).toThrow(/bitrate/);
    expect(() => createEncoder({ bitrate: 64001 })).toThrow(RangeError);
    expect(() => createEncoder({ complexity: 11 })).toThrow(/complexity/);
    expect(() => createEncoder({ complexity: 1.5 })).toThrow(TypeError);
    expect(() => createEncoder({ frameMs: 30 as 20 })).toThrow(/frameMs/);
    expect(() => createEncoder({ sampleRate: 44100 as 48000 })).toThrow(/sampleRate/);
    expect(() => createEncoder({ dtx: 1 as unknown as boolean })).toThrow(/dtx/);
    expect(() => createDecoder({ channels: 3 as 1 })).toThrow(/channels/);
  });
});

describe('Opus encoder/decoder', () => {
  it('encodes every frame size and decodes to the same number of samples', () => {
    for (const frameMs of [10, 20, 40, 60] as const) {
      const enc = createEncoder({ frameMs });
      const dec = createDecoder();
      const packets = encodeAll(enc, speech);
      expect(packets.length).toBe(Math.floor(speech.length / (16 * frameMs)));
      for (const p of packets) {
        expect(opusPacketSamples48k(p)).toBe(frameMs * 48);
        expect(dec.decode(p).length).toBe(frameMs * 16);
      }
    }
  });

  it('hits the target bitrate on speech', () => {
    for (const bitrate of [12000, 24000, 48000]) {
      const bytes = encodeAll(createEncoder({ bitrate }), speech).reduce((n, p) => n + p.length, 0);
      const kbps = (bytes * 8) / 2000;
      expect(kbps).toBeGreaterThan((bitrate / 1000) * 0.6);
      expect(kbps).toBeLessThan((bitrate / 1000) * 1.25);
    }
  });

  it('DTX shrinks silent frames to ≤ 2 bytes; FEC adds redundancy bits', () => {
    const quiet = new Int16Array(16000);
    const dtx = encodeAll(createEncoder({ dtx: true }), quiet);
    const plainQuiet = encodeAll(createEncoder(), quiet);
    // libopus still sends a refresh frame every 400 ms while in DTX
    expect(dtx.filter((p) => p.length <= 2).length).toBeGreaterThan(dtx.length * 0.7);
    expect(plainQuiet.filter((p) => p.length <= 2).length).toBeLessThan(plainQuiet.length * 0.3);
    const hex = (ps: Uint8Array[]): string[] => ps.map((p) => Buffer.from(p).toString('hex'));
    const plain = hex(encodeAll(createEncoder({ bitrate: 32000 }), speech));
    const withFec = hex(
      encodeAll(createEncoder({ bitrate: 32000, fec: true, packetLossPercent: 20 }), speech),
    );
    expect(withFec.filter((p, i) => p !== plain[i]).length).toBeGreaterThan(plain.length / 2);
  });

  it('reset() makes a used encoder produce exactly what a fresh one does', () => {
    const used = createEncoder();
    encodeAll(used, synthesizeSpeech({ seed: 99, durationMs: 500 }));
    used.reset();
    const a = encodeAll(used, speech);
    const b = encodeAll(createEncoder(), speech);
    expect(a.map((p) => Buffer.from(p).toString('hex'))).toEqual(
      b.map((p) => Buffer.from(p).toString('hex')),
    );
  });

  it('validates frames and packets and refuses use after destroy', () => {
    const enc = createEncoder();
    expect(() => enc.encode(new Int16Array(319))).toThrow(/320/);
    expect(() => enc.encode(new Float32Array(320) as unknown as Int16Array)).toThrow(TypeError);
    enc.destroy();
    expect(enc.destroyed).toBe(true);
    expect(() => enc.encode(new Int16Array(320))).toThrow(CodecError);
    const dec = createDecoder();
    expect(() => dec.decode(new Uint8Array(0))).toThrow(CodecError);
    // Garbage that passes the TOC check must come back as a typed error or as PCM, never a crash.
    for (let i = 0; i < 200; i++) {
      const junk = Uint8Array.from({ length: 1 + (i % 50) }, (_, k) => (i * 31 + k * 17) & 0xff);
      try {
        dec.decode(junk);
      } catch (err) {
        expect(err).toBeInstanceOf(CodecError);
      }
    }
  });
});

describe('clip encode/decode', () => {
  it('reproduces the exact input length at 16 and 48 kHz', () => {
    const fixture = readWav(readFileSync(new URL('../fixtures/speech-16k.wav', import.meta.url))).samples;
    const clip = encodePcmToOgg(fixture, { serial: 123 });
    expect(readOggOpus(clip.ogg).head.preSkip).toBe(312);
    expect(decodeOggToPcm(clip.ogg).samples.length).toBe(fixture.length);
    expect(decodeOggToPcm(clip.ogg, { sampleRate: 48000 }).samples.length).toBe(fixture.length * 3);
    expect((clip.ogg.length * 8) / (fixture.length / 16000)).toBeLessThan(26_000);
  });
});

describe('EncoderPool', () => {
  it('serves 10,000 toys with a bounded number of encoders', async () => {
    const pool = new EncoderPool({ maxEncoders: 4 });
    const frame = speech.subarray(0, 320);
    let packets = 0;
    await Promise.all(
      Array.from({ length: 10_000 }, (_, i) =>
        pool.use({ bitrate: i % 2 ? 24000 : 16000 }, async (enc) => {
          if (i % 50 === 0) enc.encode(frame);
          packets++;
          await Promise.resolve();
        }),
      ),
    );
    const st = pool.stats();
    expect(packets).toBe(10_000);
    expect(st.live).toBeLessThanOrEqual(4);
    expect(st.created).toBeLessThan(100);
    expect(st.inUse).toBe(0);
    pool.close();
  });

  it('reuses by settings key, evicts idle encoders at the bound, and queues when saturated', async () => {
    const pool = new EncoderPool({ maxEncoders: 2 });
    const a = pool.tryAcquire({ bitrate: 16000 })!;
    pool.release(a);
    expect(pool.tryAcquire({ bitrate: 16000 })).toBe(a);
    const b = pool.tryAcquire({ bitrate: 32000 })!;
    expect(pool.tryAcquire({ bitrate: 48000 })).toBeUndefined();
    const waiting = pool.acquire({ bitrate: 48000 });
    expect(pool.stats().waiting).toBe(1);
    pool.release(b); // evicted in favour of the waiter's settings
    const c = await waiting;
    expect(c.settings.bitrate).toBe(48000);
    expect(b.destroyed).toBe(true);
    expect(pool.stats()).toMatchObject({ live: 2, evicted: 1 });
    expect(() => pool.release(b)).toThrow(RangeError);
    const rejected = pool.acquire({ bitrate: 8000 });
    pool.close();
    await expect(rejected).rejects.toThrow(CodecError);
  });
});

describe('native memory', () => {
  it('does not leak over 100,000 encoder create/destroy cycles (child process with --expose-gc)', async () => {
    const script = new URL('../../scripts/bench/encoder-memory.ts', import.meta.url).pathname;
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--expose-gc', '--import', 'tsx', script, 'leak', '100000'],
      { timeout: 60_000 },
    );
    const r = JSON.parse(stdout) as { rssGrowthBytes: number; secondHalfGrowthBytes: number };
    expect(r.rssGrowthBytes).toBeLessThan(50 * 1024 * 1024);
    expect(r.secondHalfGrowthBytes).toBeLessThan(10 * 1024 * 1024);
  }, 60_000);
});
