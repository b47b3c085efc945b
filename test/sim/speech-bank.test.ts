// Speech banks from WAV files: the bundled recordings, any common rate resampled to 16 kHz, stereo downmixed, fixed-length windows for load tests, one clear error per bad file.
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeWav } from '../../device/audio/wav.ts';
import { decodeOggToPcm } from '../../device/codec/clip.ts';
import { CodecError } from '../../device/codec/errors.ts';
import {
  BANK_SAMPLE_RATE,
  BUNDLED_SPEECH_FILES,
  bundledSpeechDir,
  bundledSpeechFiles,
  speechBankFromWav,
} from '../../sim/speech-bank.ts';

/** Amplitude of the `hz` component of `pcm` (Goertzel), as a sine's peak amplitude. */
function amplitudeAt(pcm: Int16Array, rate: number, hz: number): number {
  const w = (2 * Math.PI * hz) / rate;
  let s1 = 0;
  let s2 = 0;
  for (const x of pcm) {
    const s0 = x + 2 * Math.cos(w) * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  return (2 * Math.sqrt(s1 * s1 + s2 * s2 - 2 * Math.cos(w) * s1 * s2)) / pcm.length;
}

function tone(rate: number, channels: 1 | 2, seconds: number, hz: number): Uint8Array {
  const frames = Math.round(rate * seconds);
  const samples = new Int16Array(frames * channels);
  for (let i = 0; i < frames; i++) {
    const v = Math.round(10_000 * Math.sin((2 * Math.PI * hz * i) / rate));
    for (let c = 0; c < channels; c++) samples[i * channels + c] = v;
  }
  return writeWav({ sampleRate: rate, channels, samples });
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'plk-speech-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('speechBankFromWav', () => {
  it('reads the bundled recordings from the repository (assets/speech, < 300 kB), one clip each', async () => {
    expect(bundledSpeechDir()).toBe(`${join(import.meta.dirname, '..', '..', 'assets', 'speech')}/`);
    let bytes = 0;
    for (const f of bundledSpeechFiles()) bytes += (await stat(f)).size;
    expect(bytes).toBeLessThan(300_000);
    const bank = await speechBankFromWav('bundled', { encode: { complexity: 0 } });
    expect(bank.clips).toHaveLength(BUNDLED_SPEECH_FILES.length);
    expect(bank.source).toMatch(/^bundled speech \(assets\/speech: 4 recordings, \d+\.\d s\)$/);
    for (const c of bank.clips) {
      expect(c.durationMs).toBeGreaterThan(1500);
      expect(c.durationMs).toBeLessThan(3000);
      // Speech, not silence: a loud enough signal, and the Ogg decodes to the same length.
      const rms = Math.sqrt(c.pcm.reduce((n, x) => n + x * x, 0) / c.pcm.length);
      expect(rms).toBeGreaterThan(500);
      expect(decodeOggToPcm(c.ogg!).samples.length).toBe(c.pcm.length);
    }
    expect(bank.oggBytesMean).toBeGreaterThan(0);
  });

  it.each([8000, 11025, 22050, 44100, 48000])(
    'resamples %i Hz stereo to 16 kHz mono, keeping the pitch',
    async (rate) => {
      const file = join(dir, `tone-${rate}.wav`);
      await writeFile(file, tone(rate, 2, 1, 440));
      const bank = await speechBankFromWav([file]);
      const pcm = bank.clips[0]!.pcm;
      expect(Math.abs(pcm.length - BANK_SAMPLE_RATE)).toBeLessThanOrEqual(2);
      expect(amplitudeAt(pcm, BANK_SAMPLE_RATE, 440)).toBeGreaterThan(9000);
      expect(amplitudeAt(pcm, BANK_SAMPLE_RATE, 1000)).toBeLessThan(200);
      expect(bank.source).toBe(`recorded speech: ${file} (1.0 s)`);
    },
  );

  it('cuts fixed-length windows one after the other, looping a short recording (load tests)', async () => {
    const a = join(dir, 'a.wav');
    await writeFile(a, tone(16000, 1, 0.7, 300));
    const bank = await speechBankFromWav([a], { seconds: 0.5, count: 3, encode: { complexity: 0 } });
    expect(bank.clips.map((c) => c.durationMs)).toEqual([500, 500, 500]);
    expect(bank.clips.map((c) => c.pcm.length)).toEqual([8000, 8000, 8000]);
    // Window 2 starts 1.0 s in, i.e. 0.3 s into the looped 0.7 s recording.
    const src = (await speechBankFromWav([a])).clips[0]!.pcm;
    expect(bank.clips[2]!.pcm[0]).toBe(src[4800]);
    // Without count: as many whole windows as the recordings hold.
    expect((await speechBankFromWav([a], { seconds: 0.3 })).clips).toHaveLength(2);
    // Without seconds, maxSeconds cuts a long recording.
    expect((await speechBankFromWav([a], { maxSeconds: 0.25 })).clips[0]!.durationMs).toBe(250);
  });

  it('refuses a bad file with one CodecError naming it', async () => {
    const notWav = join(dir, 'notes.txt');
    await writeFile(notWav, 'hello');
    const odd = join(dir, 'odd-rate.wav');
    await writeFile(odd, tone(96000, 1, 0.2, 440));
    const empty = join(dir, 'empty.wav');
    await writeFile(empty, tone(16000, 1, 0.01, 440));
    const error = async (p: string): Promise<CodecError> => {
      const e = await speechBankFromWav([p]).catch((err: unknown) => err);
      expect(e).toBeInstanceOf(CodecError);
      return e as CodecError;
    };
    expect((await error(notWav)).message).toBe(`${notWav}: not a RIFF/WAVE file`);
    expect((await error(odd)).message).toMatch(
      /odd-rate\.wav: WAV sample rate 96000 Hz; supported: 8000, 11025/,
    );
    expect((await error(empty)).code).toBe('WAV_TRUNCATED');
    await expect(speechBankFromWav([join(dir, 'missing.wav')])).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(speechBankFromWav([])).rejects.toThrow(RangeError);
  });
});
