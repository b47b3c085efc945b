// Push-to-talk recording: an audio input (synthetic speech, WAV, PCM) through the microphone model (20 ms frames) and a pooled Opus encoder into Ogg Opus.
import { readFile } from 'node:fs/promises';
import type { RandomSource } from '../shared/types.ts';
import { bufferSource, Microphone } from './audio/microphone.ts';
import { synthesizeSpeech } from './audio/synth.ts';
import { readWavAsMono } from './audio/wav.ts';
import { encodePcmToOgg } from './codec/clip.ts';
import type { OpusEncoderSettings } from './codec/opus.ts';
import { EncoderPool } from './codec/pool.ts';

/** The toy's microphone rate: every input is brought to 16 kHz mono. */
export const MIC_SAMPLE_RATE = 16000;

/** What push-to-talk records from: seeded synthetic speech, a WAV file, or PCM already in memory. */
export type AudioInput =
  | { readonly kind: 'synth'; readonly seed: number }
  | { readonly kind: 'wav'; readonly path: string }
  | { readonly kind: 'wav-bytes'; readonly bytes: Uint8Array }
  | { readonly kind: 'pcm'; readonly samples: Int16Array; readonly sampleRate: number }
  /**
   * Audio already encoded with this endpoint's encoder settings (load tests: encode a bank of
   * clips once; every clip is still sealed, encrypted and signed on its own).
   */
  | {
      readonly kind: 'encoded';
      readonly ogg: Uint8Array;
      readonly durationMs: number;
      readonly packets: number;
    };

export interface RecordedAudio {
  readonly ogg: Uint8Array;
  readonly durationMs: number;
  readonly packets: number;
}

/** Shared encoder pool: a fleet of 10,000 toys shares a few native encoders. */
let defaultPool: EncoderPool | undefined;
export function sharedEncoderPool(): EncoderPool {
  defaultPool ??= new EncoderPool({ maxEncoders: 8 });
  return defaultPool;
}

/** Loads `seconds` of mono 16 kHz PCM from an audio input (WAV inputs are downmixed and resampled). */
export async function loadPcm(seconds: number, input: AudioInput): Promise<Int16Array> {
  const durationMs = Math.round(seconds * 1000);
  const samples = Math.round((MIC_SAMPLE_RATE * durationMs) / 1000);
  switch (input.kind) {
    case 'synth':
      return synthesizeSpeech({ seed: input.seed, durationMs, sampleRate: MIC_SAMPLE_RATE });
    case 'wav':
    case 'wav-bytes': {
      const bytes = input.kind === 'wav' ? new Uint8Array(await readFile(input.path)) : input.bytes;
      const pcm = readWavAsMono(bytes, MIC_SAMPLE_RATE);
      return pcm.subarray(0, Math.min(pcm.length, samples));
    }
    case 'pcm': {
      if (input.sampleRate !== MIC_SAMPLE_RATE)
        throw new RangeError(`pcm input must be ${MIC_SAMPLE_RATE} Hz`);
      return input.samples.subarray(0, Math.min(input.samples.length, samples));
    }
    case 'encoded':
      throw new TypeError('encoded input has no PCM');
    default:
      throw new TypeError('unknown audio input');
  }
}

/**
 * Records `seconds` from `input`: the microphone model slices it into frames exactly as a toy's
 * ADC would deliver them, a pooled encoder with `settings` turns them into Opus packets, and the
 * packets go into an Ogg Opus stream with a serial number drawn from `random` (audio pages of at
 * most `opts.pageMs`, default 1000 ms: a chunked clip's chunk length [PLK-14.6]).
 */
export async function recordAudio(
  seconds: number,
  input: AudioInput,
  settings: OpusEncoderSettings,
  pool: EncoderPool,
  random: RandomSource,
  opts: { readonly pageMs?: number } = {},
): Promise<RecordedAudio> {
  const source = await loadPcm(seconds, input);
  const mic = new Microphone({ source: bufferSource(source, MIC_SAMPLE_RATE), frameMs: settings.frameMs });
  const pcm = new Int16Array(Math.ceil(source.length / mic.frameSamples) * mic.frameSamples);
  let off = 0;
  for await (const frame of mic.frames()) {
    pcm.set(frame, off);
    off += frame.length;
  }
  const b = random(4);
  const serial = ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
  return pool.use(settings, (encoder) =>
    encodePcmToOgg(source.length === pcm.length ? pcm : pcm.subarray(0, source.length), {
      serial,
      encoder,
      ...(opts.pageMs !== undefined ? { maxPageDurationMs: opts.pageMs } : {}),
    }),
  );
}
