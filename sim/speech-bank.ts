// Speech for simulated endpoints: the bundled recordings, the operator's WAV files or seeded synthetic speech, optionally Opus-encoded once so that big fleets and load tests only seal.
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { resample } from '../device/audio/resample.ts';
import { synthesizeSpeech } from '../device/audio/synth.ts';
import { readWavAsMono, WAV_SAMPLE_RATES } from '../device/audio/wav.ts';
import { encodePcmToOgg } from '../device/codec/clip.ts';
import { CodecError } from '../device/codec/errors.ts';
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
  /** What the clips are, for reports: "synthetic speech", "bundled speech (assets/speech: 4 recordings)", file names. */
  readonly source: string;
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
  return {
    clips,
    oggBytesMean: opts.encode ? Math.round(oggBytes / opts.count) : 0,
    source: 'synthetic speech',
  };
}

// ---------------------------------------------------------------------------------------------
// Recorded speech: WAV files

/** The recordings in assets/speech/ (see its README.md: espeak-ng, CC0). */
export const BUNDLED_SPEECH_FILES: readonly string[] = [
  'hello-mummy.wav',
  'story-tonight.wav',
  'good-night.wav',
  'park-fun.wav',
];

/**
 * assets/speech/ of this repository: beside sim/ when running from source, two levels up from
 * dist/sim/ when compiled. Nothing outside the repository is ever read.
 */
export function bundledSpeechDir(): string {
  const fromSource = import.meta.url.endsWith('.ts');
  return fileURLToPath(new URL(fromSource ? '../assets/speech/' : '../../assets/speech/', import.meta.url));
}

/** The bundled recordings' paths. */
export function bundledSpeechFiles(): string[] {
  return BUNDLED_SPEECH_FILES.map((f) => join(bundledSpeechDir(), f));
}

/** WAV sample rates a speech bank takes: every common rate, 11.025 and 22.05 kHz (espeak-ng's) included. */
export const SPEECH_WAV_RATES: readonly number[] = [
  8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000,
];
/** Largest WAV file read (~50 min of 16-bit mono at 44.1 kHz). */
export const MAX_SPEECH_WAV_BYTES = 256 * 1024 * 1024;
/** Most recordings in one bank (like buildSpeechBank's count). */
export const MAX_SPEECH_WAVS = 64;

/** Where the fmt chunk's sample-rate field is, or undefined when the bytes are not RIFF/WAVE (readWav says why). */
function wavRateField(bytes: Uint8Array): { offset: number; rate: number } | undefined {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const tag = (off: number): string => String.fromCharCode(...bytes.subarray(off, off + 4));
  if (bytes.length < 12 || tag(0) !== 'RIFF' || tag(8) !== 'WAVE') return undefined;
  for (let off = 12, i = 0; i < 1024 && bytes.length - off >= 8; i++) {
    const size = dv.getUint32(off + 4, true);
    if (tag(off) === 'fmt ')
      return size >= 16 && bytes.length - off >= 24
        ? { offset: off + 12, rate: dv.getUint32(off + 12, true) }
        : undefined;
    off += 8 + size + (size & 1);
  }
  return undefined;
}

/**
 * Mono PCM at 16 kHz from WAV bytes at any of SPEECH_WAV_RATES (downmixed and resampled with the
 * windowed-sinc converter). device/audio/wav.ts reads WAV_SAMPLE_RATES only: for 11.025 and
 * 22.05 kHz the rate field of a copy is set to one it takes, every other check stays the reader's,
 * and the real rate is resampled from.
 */
export function speechPcmFromWav(bytes: Uint8Array, what: string): Int16Array {
  const field = wavRateField(bytes);
  try {
    if (field && !SPEECH_WAV_RATES.includes(field.rate))
      throw new CodecError(
        'WAV_UNSUPPORTED',
        `WAV sample rate ${field.rate} Hz; supported: ${SPEECH_WAV_RATES.join(', ')}`,
      );
    let pcm: Int16Array;
    if (!field || WAV_SAMPLE_RATES.includes(field.rate)) pcm = readWavAsMono(bytes, BANK_SAMPLE_RATE);
    else {
      const copy = bytes.slice();
      new DataView(copy.buffer).setUint32(field.offset, BANK_SAMPLE_RATE, true);
      // The copy now claims 16 kHz: read it as is, then resample from the real rate.
      const raw = readWavAsMono(copy, BANK_SAMPLE_RATE);
      pcm = resampleFrom(raw, field.rate);
    }
    if (pcm.length < BANK_SAMPLE_RATE / 10)
      throw new CodecError(
        'WAV_TRUNCATED',
        `holds ${(pcm.length / 16).toFixed(0)} ms of audio; at least 100 ms needed`,
      );
    return pcm;
  } catch (err) {
    if (err instanceof CodecError) throw new CodecError(err.code, `${what}: ${err.message}`, { cause: err });
    throw err;
  }
}

export interface WavBankOptions {
  /**
   * Every clip exactly this long: the recordings are cut one after the other into windows of
   * `seconds`, a short one looped (what a load test wants: fixed-size clips). Default: one clip
   * per recording, its own length (at most `maxSeconds`).
   */
  readonly seconds?: number;
  /** With `seconds`: how many clips (default: as many whole windows as the recordings hold, at least 1; ≤ 64). */
  readonly count?: number;
  /** Without `seconds`: recordings longer than this are cut (default 300 s, the longest clip). */
  readonly maxSeconds?: number;
  /** Encode each clip once with these settings (others default: 16 kHz mono, 20 ms, VOIP, 24 kbit/s). */
  readonly encode?: Partial<OpusEncoderSettings>;
  /** Seed of the Ogg serial numbers when encoded. Default "wav". */
  readonly seed?: string;
}

/**
 * A speech bank from WAV recordings: `'bundled'` (assets/speech/, the default of `plushlink
 * demo` and `fleet`) or the operator's files (16-bit PCM, mono or stereo, any of
 * SPEECH_WAV_RATES; downmixed and resampled to 16 kHz). A bad file ends in one CodecError naming
 * it; a missing one in Node's ENOENT with its path.
 */
export async function speechBankFromWav(
  source: readonly string[] | 'bundled',
  opts: WavBankOptions = {},
): Promise<SpeechBank> {
  const paths = source === 'bundled' ? bundledSpeechFiles() : [...source];
  if (paths.length < 1 || paths.length > MAX_SPEECH_WAVS)
    throw new RangeError(`a speech bank takes 1 to ${MAX_SPEECH_WAVS} WAV files, got ${paths.length}`);
  if (opts.seconds !== undefined && (!(opts.seconds > 0) || opts.seconds > 300))
    throw new RangeError(`seconds must be in (0, 300], got ${opts.seconds}`);
  const maxSeconds = opts.maxSeconds ?? 300;
  if (!(maxSeconds > 0) || maxSeconds > 300)
    throw new RangeError(`maxSeconds must be in (0, 300], got ${maxSeconds}`);
  const recordings: Int16Array[] = [];
  for (const path of paths) {
    const st = await stat(path);
    if (!st.isFile()) throw new CodecError('WAV_NOT_RIFF', `${path}: not a file`);
    if (st.size > MAX_SPEECH_WAV_BYTES)
      throw new CodecError('WAV_TOO_LARGE', `${path}: larger than ${MAX_SPEECH_WAV_BYTES} bytes`);
    recordings.push(speechPcmFromWav(new Uint8Array(await readFile(path)), path));
  }
  let pcms: Int16Array[];
  if (opts.seconds !== undefined) {
    const samples = Math.round(opts.seconds * BANK_SAMPLE_RATE);
    const all = concat(recordings);
    const whole = Math.max(1, Math.floor(all.length / samples));
    const count = opts.count ?? Math.min(whole, MAX_SPEECH_WAVS);
    if (!Number.isInteger(count) || count < 1 || count > MAX_SPEECH_WAVS)
      throw new RangeError(`count must be an integer in [1, ${MAX_SPEECH_WAVS}], got ${count}`);
    pcms = Array.from({ length: count }, (_, i) => window(all, i * samples, samples));
  } else {
    const most = Math.round(maxSeconds * BANK_SAMPLE_RATE);
    pcms = recordings.map((r) => (r.length > most ? r.subarray(0, most) : r));
  }
  const random = seededRandom(`plushlink/speech-bank-wav/${opts.seed ?? 'wav'}`);
  const clips: BankClip[] = [];
  let oggBytes = 0;
  for (const pcm of pcms) {
    const durationMs = Math.round((pcm.length * 1000) / BANK_SAMPLE_RATE);
    const serial = randomUint32(random);
    if (!opts.encode) {
      clips.push({ pcm, durationMs });
      continue;
    }
    const e = encodePcmToOgg(pcm, { serial, settings: { ...opts.encode, sampleRate: BANK_SAMPLE_RATE } });
    oggBytes += e.ogg.length;
    clips.push({ pcm, durationMs, ogg: e.ogg, packets: e.packets });
  }
  const seconds = recordings.reduce((n, r) => n + r.length, 0) / BANK_SAMPLE_RATE;
  return {
    clips,
    oggBytesMean: opts.encode ? Math.round(oggBytes / clips.length) : 0,
    source:
      source === 'bundled'
        ? `bundled speech (assets/speech: ${paths.length} recordings, ${seconds.toFixed(1)} s)`
        : `recorded speech: ${paths.map((p, i) => `${p} (${(recordings[i]!.length / BANK_SAMPLE_RATE).toFixed(1)} s)`).join(', ')}`,
  };
}

function resampleFrom(pcm: Int16Array, rate: number): Int16Array {
  return rate === BANK_SAMPLE_RATE ? pcm : resample(pcm, rate, BANK_SAMPLE_RATE);
}

function concat(parts: readonly Int16Array[]): Int16Array {
  const out = new Int16Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** `samples` samples of `pcm` from `start` on, wrapping around (a short recording is looped). */
function window(pcm: Int16Array, start: number, samples: number): Int16Array {
  const w = new Int16Array(samples);
  for (let j = 0, at = start % pcm.length; j < samples; ) {
    const take = Math.min(samples - j, pcm.length - at);
    w.set(pcm.subarray(at, at + take), j);
    j += take;
    at = 0;
  }
  return w;
}

/** What to speak: the bundled recordings, WAV files, or seeded synthetic speech. */
export type SpeechChoice = 'bundled' | 'synth' | { readonly wav: readonly string[] };

/**
 * The bank a fleet speaks from: `count` synthetic clips of `seconds`, or one clip per recording
 * cut at `seconds` (the fleet's --clip-seconds is then a maximum).
 */
export async function loadSpeechBank(
  choice: SpeechChoice,
  opts: {
    readonly count: number;
    readonly seconds: number;
    readonly seed: string;
    readonly encode?: Partial<OpusEncoderSettings>;
  },
): Promise<SpeechBank> {
  if (choice === 'synth') return buildSpeechBank(opts);
  return speechBankFromWav(choice === 'bundled' ? 'bundled' : choice.wav, {
    maxSeconds: opts.seconds,
    seed: opts.seed,
    ...(opts.encode ? { encode: opts.encode } : {}),
  });
}
