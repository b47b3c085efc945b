// WAV (RIFF PCM 16-bit) reader and writer, plus loading a file as mono PCM at the codec rate.
import { CodecError } from '../codec/errors.ts';
import { resample } from './resample.ts';

/** Input rates the reader accepts. */
export const WAV_SAMPLE_RATES: readonly number[] = [8000, 12000, 16000, 24000, 32000, 44100, 48000];

export interface PcmAudio {
  readonly sampleRate: number;
  /** 1 or 2. */
  readonly channels: number;
  /** Interleaved 16-bit samples. */
  readonly samples: Int16Array;
}

export interface WavReadOptions {
  /** Refuse files larger than this. Default 256 MiB. */
  readonly maxBytes?: number;
}

const MAX_CHUNKS = 1024;
const WAVE_FORMAT_PCM = 1;
const WAVE_FORMAT_EXTENSIBLE = 0xfffe;

function tag(b: Uint8Array, off: number): string {
  return String.fromCharCode(b[off] ?? 0, b[off + 1] ?? 0, b[off + 2] ?? 0, b[off + 3] ?? 0);
}

/**
 * Parses a RIFF/WAVE file holding 16-bit PCM (format 1, or EXTENSIBLE with the PCM sub-format), mono or
 * stereo, at one of WAV_SAMPLE_RATES. Anything else throws CodecError ('WAV_NOT_RIFF', 'WAV_UNSUPPORTED',
 * 'WAV_TRUNCATED', 'WAV_TOO_LARGE'). A data size of 0 or ≥ 0x7fffffff (streamed writers) means "to EOF".
 */
export function readWav(bytes: Uint8Array, opts: WavReadOptions = {}): PcmAudio {
  if (!(bytes instanceof Uint8Array)) throw new TypeError('bytes must be a Uint8Array');
  const maxBytes = opts.maxBytes ?? 256 * 1024 * 1024;
  if (bytes.length > maxBytes)
    throw new CodecError('WAV_TOO_LARGE', `WAV of ${bytes.length} bytes exceeds ${maxBytes}`);
  if (bytes.length < 12 || tag(bytes, 0) !== 'RIFF' || tag(bytes, 8) !== 'WAVE') {
    throw new CodecError('WAV_NOT_RIFF', 'not a RIFF/WAVE file');
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let off = 12;
  let fmt: { format: number; channels: number; rate: number; bits: number; blockAlign: number } | undefined;
  for (let i = 0; i < MAX_CHUNKS; i++) {
    if (bytes.length - off < 8) break;
    const id = tag(bytes, off);
    const size = dv.getUint32(off + 4, true);
    const body = off + 8;
    if (id === 'fmt ') {
      if (size < 16 || bytes.length - body < 16)
        throw new CodecError('WAV_TRUNCATED', 'fmt chunk is truncated');
      let format = dv.getUint16(body, true);
      if (format === WAVE_FORMAT_EXTENSIBLE) {
        if (size < 40 || bytes.length - body < 40)
          throw new CodecError('WAV_TRUNCATED', 'extensible fmt chunk is truncated');
        format = dv.getUint16(body + 24, true); // first two bytes of the sub-format GUID
      }
      fmt = {
        format,
        channels: dv.getUint16(body + 2, true),
        rate: dv.getUint32(body + 4, true),
        blockAlign: dv.getUint16(body + 12, true),
        bits: dv.getUint16(body + 14, true),
      };
    } else if (id === 'data') {
      if (!fmt) throw new CodecError('WAV_UNSUPPORTED', 'data chunk before fmt chunk');
      if (fmt.format !== WAVE_FORMAT_PCM) {
        throw new CodecError('WAV_UNSUPPORTED', `WAV format ${fmt.format} is not integer PCM`);
      }
      if (fmt.bits !== 16)
        throw new CodecError('WAV_UNSUPPORTED', `WAV has ${fmt.bits}-bit samples; only 16-bit PCM`);
      if (fmt.channels !== 1 && fmt.channels !== 2) {
        throw new CodecError('WAV_UNSUPPORTED', `WAV has ${fmt.channels} channels; only mono or stereo`);
      }
      if (!WAV_SAMPLE_RATES.includes(fmt.rate)) {
        throw new CodecError(
          'WAV_UNSUPPORTED',
          `WAV sample rate ${fmt.rate} Hz; supported: ${WAV_SAMPLE_RATES.join(', ')}`,
        );
      }
      if (fmt.blockAlign !== fmt.channels * 2)
        throw new CodecError('WAV_UNSUPPORTED', `bad block align ${fmt.blockAlign}`);
      const available = bytes.length - body;
      let len = size;
      if (size === 0 || size >= 0x7fffffff) len = available;
      else if (size > available) {
        throw new CodecError(
          'WAV_TRUNCATED',
          `data chunk declares ${size} bytes but only ${available} remain`,
        );
      }
      len -= len % fmt.blockAlign;
      const samples = new Int16Array(len / 2);
      for (let j = 0; j < samples.length; j++) samples[j] = dv.getInt16(body + j * 2, true);
      return { sampleRate: fmt.rate, channels: fmt.channels, samples };
    }
    off = body + size + (size & 1);
  }
  throw new CodecError(fmt ? 'WAV_TRUNCATED' : 'WAV_UNSUPPORTED', fmt ? 'no data chunk' : 'no fmt chunk');
}

/** Writes a canonical 44-byte-header PCM 16-bit WAV. */
export function writeWav(audio: PcmAudio): Uint8Array {
  const { sampleRate, channels, samples } = audio;
  if (!Number.isInteger(sampleRate) || sampleRate < 1000 || sampleRate > 384000) {
    throw new RangeError(`sampleRate must be an integer in [1000, 384000], got ${sampleRate}`);
  }
  if (channels !== 1 && channels !== 2) throw new RangeError(`channels must be 1 or 2, got ${channels}`);
  if (!(samples instanceof Int16Array)) throw new TypeError('samples must be an Int16Array');
  if (samples.length % channels !== 0) throw new RangeError('samples length must be a multiple of channels');
  const dataBytes = samples.length * 2;
  if (dataBytes > 0xffffffff - 36) throw new RangeError('audio too long for a WAV file');
  const out = new Uint8Array(44 + dataBytes);
  const dv = new DataView(out.buffer);
  const ascii = (off: number, s: string): void => {
    for (let i = 0; i < 4; i++) out[off + i] = s.charCodeAt(i);
  };
  ascii(0, 'RIFF');
  dv.setUint32(4, 36 + dataBytes, true);
  ascii(8, 'WAVE');
  ascii(12, 'fmt ');
  dv.setUint32(16, 16, true);
  dv.setUint16(20, WAVE_FORMAT_PCM, true);
  dv.setUint16(22, channels, true);
  dv.setUint32(24, sampleRate, true);
  dv.setUint32(28, sampleRate * channels * 2, true);
  dv.setUint16(32, channels * 2, true);
  dv.setUint16(34, 16, true);
  ascii(36, 'data');
  dv.setUint32(40, dataBytes, true);
  for (let i = 0; i < samples.length; i++) dv.setInt16(44 + i * 2, samples[i]!, true);
  return out;
}

/** Averages interleaved stereo to mono (mono input is returned as is). */
export function downmixToMono(samples: Int16Array, channels: number): Int16Array {
  if (channels === 1) return samples;
  if (channels !== 2) throw new RangeError(`channels must be 1 or 2, got ${channels}`);
  const out = new Int16Array(samples.length >> 1);
  for (let i = 0; i < out.length; i++) out[i] = (samples[2 * i]! + samples[2 * i + 1]!) >> 1;
  return out;
}

/** Reads a WAV file and returns mono 16-bit PCM at `targetRate` (downmixed and resampled as needed). */
export function readWavAsMono(bytes: Uint8Array, targetRate: number, opts: WavReadOptions = {}): Int16Array {
  const wav = readWav(bytes, opts);
  const mono = downmixToMono(wav.samples, wav.channels);
  return wav.sampleRate === targetRate ? mono : resample(mono, wav.sampleRate, targetRate);
}
