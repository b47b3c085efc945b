// Speech for simulated endpoints: a seeded bank of synthetic-speech clips, optionally Opus-encoded once so that big fleets and load tests only seal.
import { synthesizeSpeech } from '../device/audio/synth.ts';
import { encodePcmToOgg } from '../device/codec/clip.ts';
import type { OpusEncoderSettings } from '../device/codec/opus.ts';
import { seededRandom } from '../shared/random.ts';
import type { RandomSource } from '../shared/types.ts';

/** Sample rate of every bank clip (the toy's microphone rate). */
export const BANK_SAMPLE_RATE = 16000;

export interface BankClip {
  /** Mono PCM at 16 kHz. */
  readonly pcm: Int16Array;
  readonly durationMs: number;
  /** Ogg Opus bytes when the bank was encoded. */
  readonly ogg?: Uint8Array;
  readonly packets?: number;
}

export interface SpeechBank {
  readonly clips: readonly BankClip[];
  /** Mean Ogg size in bytes (0 when not encoded). */
  readonly oggBytesMean: number;
}

export interface SpeechBankOptions {
  readonly count: number;
  readonly seconds: number;
  /** Same seed, same speech (and the same Ogg bytes when encoded). */
  readonly seed: string;
  /** Encode each clip once with these settings (others default: 16 kHz mono, 20 ms, VOIP, 24 kbit/s). */
  readonly encode?: Partial<OpusEncoderSettings>;
}

/** A uint32 drawn from a random source (synthesizer and Ogg serial seeds). */
export function randomUint32(random: RandomSource): number {
  const b = random(4);
  return ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
}

/** Builds `count` distinct clips of `seconds` of synthetic speech; bounded (≤ 64 clips, ≤ 300 s each). */
export function buildSpeechBank(opts: SpeechBankOptions): SpeechBank {
  if (!Number.isInteger(opts.count) || opts.count < 1 || opts.count > 64)
    throw new RangeError(`count must be an integer in [1, 64], got ${opts.count}`);
  if (!(opts.seconds > 0) || opts.seconds > 300)
    throw new RangeError(`seconds must be in (0, 300], got ${opts.seconds}`);
  const random = seededRandom(`plushlink/speech-bank/${opts.seed}`);
  const durationMs = Math.round(opts.seconds * 1000);
  const clips: BankClip[] = [];
  let oggBytes = 0;
  for (let i = 0; i < opts.count; i++) {
    const pcm = synthesizeSpeech({ seed: randomUint32(random), durationMs, sampleRate: BANK_SAMPLE_RATE });
    const serial = randomUint32(random);
    if (!opts.encode) {
      clips.push({ pcm, durationMs });
      continue;
    }
    const e = encodePcmToOgg(pcm, { serial, settings: { ...opts.encode, sampleRate: BANK_SAMPLE_RATE } });
    oggBytes += e.ogg.length;
    clips.push({ pcm, durationMs, ogg: e.ogg, packets: e.packets });
  }
  return { clips, oggBytesMean: opts.encode ? Math.round(oggBytes / opts.count) : 0 };
}
