// Audio source tests: WAV read/write, downmix, resampler quality, synthetic speech, microphone pacing.
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bufferSource, type MicClock, Microphone, silenceSource } from '../../device/audio/microphone.ts';
import { resample } from '../../device/audio/resample.ts';
import { seededRandom, silence, synthesizeSpeech } from '../../device/audio/synth.ts';
import { readWav, readWavAsMono, writeWav } from '../../device/audio/wav.ts';
import { encodePcmToOgg } from '../../device/codec/clip.ts';
import { CodecError } from '../../device/codec/errors.ts';
import { readOggOpus } from '../../device/codec/ogg.ts';
import { fcParams } from '../helpers/fc.ts';

function tone(rate: number, hz: number, ms: number, amp = 10000): Int16Array {
  const n = Math.round((rate * ms) / 1000);
  return Int16Array.from({ length: n }, (_, i) => Math.round(amp * Math.sin((2 * Math.PI * hz * i) / rate)));
}

function rms(x: Int16Array, from = 0, to = x.length): number {
  let s = 0;
  for (let i = from; i < to; i++) s += x[i]! * x[i]!;
  return Math.sqrt(s / Math.max(1, to - from));
}

/** Amplitude of the `hz` component (single-bin DFT) over the middle of the signal. */
function amplitudeAt(x: Int16Array, rate: number, hz: number): number {
  const from = Math.floor(x.length / 4);
  const to = Math.floor((3 * x.length) / 4);
  let re = 0;
  let im = 0;
  for (let i = from; i < to; i++) {
    re += x[i]! * Math.cos((2 * Math.PI * hz * i) / rate);
    im += x[i]! * Math.sin((2 * Math.PI * hz * i) / rate);
  }
  return (2 * Math.hypot(re, im)) / (to - from);
}

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof CodecError) return err.code;
    throw err;
  }
  return 'none';
}

describe('WAV', () => {
  it('reads the committed fixture (16 kHz mono, 16-bit, 8–10 s)', () => {
    const wav = readWav(readFileSync(new URL('../fixtures/speech-16k.wav', import.meta.url)));
    expect(wav.sampleRate).toBe(16000);
    expect(wav.channels).toBe(1);
    expect(wav.samples.length / 16000).toBeGreaterThan(8);
    expect(wav.samples.length / 16000).toBeLessThan(10);
  });

  it('roundtrips write/read for mono and stereo', () => {
    for (const channels of [1, 2]) {
      const samples = Int16Array.from({ length: 1000 * channels }, (_, i) => ((i * 7919) % 65536) - 32768);
      const back = readWav(writeWav({ sampleRate: 44100, channels, samples }));
      expect(back).toEqual({ sampleRate: 44100, channels, samples });
    }
  });

  it('downmixes stereo and resamples to the codec rate', () => {
    const left = tone(48000, 440, 200);
    const stereo = new Int16Array(left.length * 2);
    left.forEach((v, i) => {
      stereo[2 * i] = v;
      stereo[2 * i + 1] = v;
    });
    const mono = readWavAsMono(writeWav({ sampleRate: 48000, channels: 2, samples: stereo }), 16000);
    expect(mono.length).toBe(3200);
    expect(amplitudeAt(mono, 16000, 440)).toBeGreaterThan(9800);
  });

  it('rejects unsupported and malformed files with typed errors', () => {
    const ok = writeWav({ sampleRate: 16000, channels: 1, samples: new Int16Array(100) });
    const rate22 = ok.slice();
    new DataView(rate22.buffer).setUint32(24, 22050, true);
    expect(codeOf(() => readWav(rate22))).toBe('WAV_UNSUPPORTED');
    const bits8 = ok.slice();
    new DataView(bits8.buffer).setUint16(34, 8, true);
    expect(codeOf(() => readWav(bits8))).toBe('WAV_UNSUPPORTED');
    const float = ok.slice();
    new DataView(float.buffer).setUint16(20, 3, true);
    expect(codeOf(() => readWav(float))).toBe('WAV_UNSUPPORTED');
    const six = ok.slice();
    new DataView(six.buffer).setUint16(22, 6, true);
    expect(codeOf(() => readWav(six))).toBe('WAV_UNSUPPORTED');
    expect(codeOf(() => readWav(ok.subarray(0, 100)))).toBe('WAV_TRUNCATED');
    expect(codeOf(() => readWav(new TextEncoder().encode('OggS not a wav file')))).toBe('WAV_NOT_RIFF');
    expect(codeOf(() => readWav(ok, { maxBytes: 100 }))).toBe('WAV_TOO_LARGE');
  });

  it('never throws anything but CodecError on random or mutated input', () => {
    const ok = writeWav({ sampleRate: 16000, channels: 1, samples: new Int16Array(64) });
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.boolean(), (junk, keepHeader) => {
        const bytes = keepHeader ? Uint8Array.from([...ok.subarray(0, 12), ...junk]) : junk;
        try {
          readWav(bytes);
        } catch (err) {
          if (!(err instanceof CodecError)) throw err;
        }
      }),
      fcParams({ numRuns: 1000 }),
    );
  });
});

describe('resampler', () => {
  it('keeps in-band tones and the length ratio for every supported rate', () => {
    for (const from of [8000, 12000, 24000, 32000, 44100, 48000]) {
      const out = resample(tone(from, 1000, 300), from, 16000);
      expect(out.length).toBe(4800);
      expect(amplitudeAt(out, 16000, 1000)).toBeGreaterThan(9700);
      expect(amplitudeAt(out, 16000, 1000)).toBeLessThan(10300);
    }
  });

  it('filters out content above the new Nyquist instead of aliasing it (≥ 60 dB)', () => {
    // 10 kHz at 48 kHz would alias to 6 kHz at 16 kHz without the anti-alias filter.
    const out = resample(tone(48000, 10000, 300), 48000, 16000);
    expect(rms(out, 200, out.length - 200)).toBeLessThan(10000 * 10 ** (-60 / 20));
  });

  it('validates rates', () => {
    expect(() => resample(new Int16Array(10), 0, 16000)).toThrow(/fromRate/);
    expect(() => resample(new Int16Array(10), 16000, 1.5)).toThrow(/toRate/);
  });
});

describe('synthetic speech', () => {
  it('is deterministic in the seed and differs across seeds', () => {
    const a = synthesizeSpeech({ seed: 11, durationMs: 2000 });
    expect(synthesizeSpeech({ seed: 11, durationMs: 2000 })).toEqual(a);
    expect(synthesizeSpeech({ seed: 12, durationMs: 2000 })).not.toEqual(a);
    expect(a.length).toBe(32000);
    expect(seededRandom(5)()).toBe(seededRandom(5)());
  });

  it('has speech-like rhythm: voiced bursts and pauses', () => {
    const x = synthesizeSpeech({ seed: 3, durationMs: 8000 });
    const frameRms = Array.from({ length: 400 }, (_, k) => rms(x, k * 320, (k + 1) * 320));
    const quiet = frameRms.filter((r) => r < 30).length / frameRms.length;
    expect(quiet).toBeGreaterThan(0.1);
    expect(quiet).toBeLessThan(0.6);
    expect(x.reduce((m, v) => Math.max(m, Math.abs(v)), 0)).toBeGreaterThan(20000);
  });

  it('has its fundamental in 100–250 Hz (autocorrelation pitch of voiced frames)', () => {
    const x = synthesizeSpeech({ seed: 9, durationMs: 4000 });
    const pitches: number[] = [];
    for (let start = 0; start + 640 <= x.length; start += 640) {
      if (rms(x, start, start + 640) < 2000) continue;
      let bestLag = 0;
      let best = Number.NEGATIVE_INFINITY;
      for (let lag = 40; lag <= 200; lag++) {
        let s = 0;
        for (let i = 0; i < 400; i++) s += x[start + i]! * x[start + i + lag]!;
        if (s > best) {
          best = s;
          bestLag = lag;
        }
      }
      pitches.push(16000 / bestLag);
    }
    expect(pitches.length).toBeGreaterThan(10);
    const inRange = pitches.filter((p) => p >= 95 && p <= 260).length / pitches.length;
    expect(inRange).toBeGreaterThan(0.8);
  });

  it('is coded by Opus (voip, 24 kbit/s) in SILK mode like speech', () => {
    // libopus runs a speech/music classifier at complexity ≥ 7; too stationary a synth is coded with CELT.
    for (const seed of [1, 2, 3]) {
      const clip = encodePcmToOgg(synthesizeSpeech({ seed, durationMs: 5000 }), { serial: 1 });
      const packets = readOggOpus(clip.ogg).packets;
      const silk = packets.filter((p) => p[0]! >> 3 < 12).length;
      expect(silk / packets.length).toBeGreaterThan(0.9);
    }
  });

  it('provides silence and validates arguments', () => {
    expect(silence(16000, 20)).toEqual(new Int16Array(320));
    expect(() => synthesizeSpeech({ seed: 1.5, durationMs: 10 })).toThrow(/seed/);
    expect(() => synthesizeSpeech({ seed: 1, durationMs: -1 })).toThrow(/durationMs/);
    expect(() => silence(16000, Number.NaN)).toThrow(/durationMs/);
  });
});

describe('microphone', () => {
  it('yields fixed frames as fast as possible, zero-padding the tail', async () => {
    const mic = new Microphone({
      source: bufferSource(
        Int16Array.from({ length: 1000 }, (_, i) => i),
        16000,
      ),
    });
    const frames: Int16Array[] = [];
    for await (const f of mic.frames()) frames.push(f);
    expect(frames.map((f) => f.length)).toEqual([320, 320, 320, 320]);
    expect(frames[3]![39]).toBe(999);
    expect(frames[3]![40]).toBe(0);
  });

  it('supports other frame sizes and dropping the partial tail', async () => {
    const mic = new Microphone({
      source: bufferSource(new Int16Array(1000), 16000),
      frameMs: 60,
      padLastFrame: false,
    });
    let n = 0;
    for await (const f of mic.frames()) {
      expect(f.length).toBe(960);
      n++;
    }
    expect(n).toBe(1);
    expect(() => new Microphone({ source: silenceSource(16000), frameMs: 0.01 })).toThrow(/frameMs/);
  });

  it('paces frames in real time with an injected clock, without drift', async () => {
    let now = 1000;
    const sleeps: number[] = [];
    const clock: MicClock = {
      now: () => now,
      sleep: async (ms) => {
        sleeps.push(ms);
        now += ms + 1; // a late timer: the next wait shortens to compensate
      },
    };
    const mic = new Microphone({ source: silenceSource(16000, 100), clock });
    const times: number[] = [];
    for await (const _ of mic.frames()) times.push(now);
    expect(times.length).toBe(5);
    expect(sleeps).toEqual([20, 19, 19, 19, 19]);
    expect(times.at(-1)).toBe(1000 + 100 + 1);
  });
});
