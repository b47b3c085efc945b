// Objective quality of the codec path on the committed speech fixture; a broken path must score below.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { resample } from '../../device/audio/resample.ts';
import { readWav } from '../../device/audio/wav.ts';
import { decodeOggToPcm, encodePcmToOgg } from '../../device/codec/clip.ts';
import { speechQuality } from './quality.ts';

// Mel log-spectral distance (see quality.ts for why). Measured on test/fixtures/speech-16k.wav with
// libopus 1.3.1, 16 kHz voip cx10 20 ms: 64 kbit/s 0.61 dB, 24 kbit/s 2.16 dB, 12 kbit/s 3.91 dB;
// decoding at 8 kHz and upsampling (narrowband path) 21.7 dB; 8 kHz PCM read as 16 kHz 58.5 dB.
// Threshold 3.5 dB (score ≥ 0.825): ~1.3 dB of margin above the 24 kbit/s figure, far below any broken path.
const MAX_LSD_DB = 3.5;

describe('speech quality through encode → Ogg → decode', () => {
  const ref = readWav(readFileSync(new URL('../fixtures/speech-16k.wav', import.meta.url))).samples;
  const clip = encodePcmToOgg(ref, { serial: 1, settings: { bitrate: 24000 } });

  it(`scores LSD < ${MAX_LSD_DB} dB at 24 kbit/s wideband`, () => {
    const q = speechQuality(ref, decodeOggToPcm(clip.ogg).samples, 16000);
    expect(Math.abs(q.lag)).toBeLessThanOrEqual(2); // pre-skip handled by the container, not by the search
    expect(q.activeFrames).toBeGreaterThan(500);
    expect(q.lsdDb).toBeLessThan(MAX_LSD_DB);
  });

  it('fails the same threshold when the decoder rate is wrong (8 kHz PCM taken as 16 kHz)', () => {
    const wrong = decodeOggToPcm(clip.ogg, { sampleRate: 8000 }).samples;
    expect(speechQuality(ref, wrong, 16000).lsdDb).toBeGreaterThan(MAX_LSD_DB * 3);
  });

  it('fails it for a narrowband path (8 kHz decode, resampled to 16 kHz)', () => {
    const narrow = resample(decodeOggToPcm(clip.ogg, { sampleRate: 8000 }).samples, 8000, 16000);
    expect(speechQuality(ref, narrow, 16000).lsdDb).toBeGreaterThan(MAX_LSD_DB * 2);
  });

  it('fails it when the pre-skip is ignored and the lag search is too narrow to recover', () => {
    const delayed = new Int16Array(ref.length);
    delayed.set(decodeOggToPcm(clip.ogg).samples.subarray(0, ref.length - 104), 104); // 6.5 ms late
    expect(speechQuality(ref, delayed, 16000, 1).lsdDb).toBeGreaterThan(MAX_LSD_DB);
    expect(speechQuality(ref, delayed, 16000, 8).lsdDb).toBeLessThan(MAX_LSD_DB);
  });
});
