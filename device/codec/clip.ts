// Whole-clip helpers: mono PCM → Opus packets → Ogg Opus bytes, and back, with pre-skip and end trimming.
import { CodecError } from './errors.ts';
import { OggOpusWriter, type OggReadLimits, readOggOpus } from './ogg.ts';
import {
  createDecoder,
  createEncoder,
  normalizeEncoderSettings,
  type OpusEncoder,
  type OpusEncoderSettings,
  type OpusSampleRate,
} from './opus.ts';

export interface EncodeClipOptions {
  /** Ogg serial number (uint32): inject a random or seeded value. */
  readonly serial: number;
  readonly settings?: Partial<OpusEncoderSettings>;
  /** Use this encoder (e.g. from an EncoderPool) instead of creating one; its settings win. */
  readonly encoder?: OpusEncoder;
  readonly vendor?: string;
  readonly comments?: readonly string[];
  /** Longest Ogg audio page, ms (default 1000): a chunked clip's chunk length [PLK-14.6]. */
  readonly maxPageDurationMs?: number;
  /** Called every `progressEvery` frames with (framesDone, framesTotal). */
  readonly onProgress?: (done: number, total: number) => void;
  readonly progressEvery?: number;
}

export interface EncodedClip {
  readonly ogg: Uint8Array;
  readonly packets: number;
  readonly packetBytes: number;
  /** Input duration in ms (what the decoder will reproduce after trimming). */
  readonly durationMs: number;
  readonly settings: OpusEncoderSettings;
  readonly preSkip48k: number;
}

/**
 * Encodes mono (or interleaved stereo, per settings.channels) PCM at settings.sampleRate into Ogg Opus.
 * Extra frames are encoded so the encoder lookahead is flushed; the final granule trims them away.
 */
export function encodePcmToOgg(pcm: Int16Array, opts: EncodeClipOptions): EncodedClip {
  if (!(pcm instanceof Int16Array)) throw new TypeError('pcm must be an Int16Array');
  const enc = opts.encoder ?? createEncoder(opts.settings ?? {});
  const s = opts.encoder ? enc.settings : normalizeEncoderSettings(opts.settings ?? {});
  try {
    const ch = s.channels;
    if (pcm.length % ch !== 0) throw new RangeError('pcm length must be a multiple of channels');
    const inputSamples = pcm.length / ch;
    const lookahead = (enc.preSkip48k * s.sampleRate) / 48000;
    const frames = Math.ceil((inputSamples + lookahead) / enc.frameSamples);
    const writer = new OggOpusWriter({
      serial: opts.serial,
      channels: ch,
      preSkip: enc.preSkip48k,
      inputSampleRate: s.sampleRate,
      vendor: opts.vendor ?? 'PlushLink (libopus 1.3.1)',
      comments: opts.comments ?? [],
      ...(opts.maxPageDurationMs !== undefined ? { maxPageDurationMs: opts.maxPageDurationMs } : {}),
    });
    const frameLen = enc.frameSamples * ch;
    const frame = new Int16Array(frameLen);
    const every = opts.progressEvery ?? 50;
    let packetBytes = 0;
    for (let f = 0; f < frames; f++) {
      const off = f * frameLen;
      if (off + frameLen <= pcm.length) {
        frame.set(pcm.subarray(off, off + frameLen));
      } else {
        frame.fill(0);
        if (off < pcm.length) frame.set(pcm.subarray(off));
      }
      const packet = enc.encode(frame);
      packetBytes += packet.length;
      writer.writePacket(packet);
      if (opts.onProgress && (f % every === every - 1 || f === frames - 1)) opts.onProgress(f + 1, frames);
    }
    const total48k = Math.round((inputSamples * 48000) / s.sampleRate);
    return {
      ogg: writer.finish(total48k),
      packets: frames,
      packetBytes,
      durationMs: (inputSamples * 1000) / s.sampleRate,
      settings: s,
      preSkip48k: enc.preSkip48k,
    };
  } finally {
    if (!opts.encoder) enc.destroy();
  }
}

export interface DecodedAudio {
  readonly sampleRate: OpusSampleRate;
  readonly channels: 1 | 2;
  /** Interleaved PCM, pre-skip removed, trimmed to the stream's duration, output gain applied. */
  readonly samples: Int16Array;
  readonly packets: number;
  readonly durationMs: number;
}

/** Decodes an Ogg Opus file to PCM at `sampleRate` (16000 default, or 48000 etc.). */
export function decodeOggToPcm(
  ogg: Uint8Array,
  opts: {
    readonly sampleRate?: OpusSampleRate;
    readonly limits?: OggReadLimits;
    readonly onProgress?: (done: number, total: number) => void;
  } = {},
): DecodedAudio {
  const file = readOggOpus(ogg, opts.limits);
  const rate = opts.sampleRate ?? 16000;
  const channels = file.head.channels as 1 | 2;
  const dec = createDecoder({ sampleRate: rate, channels });
  try {
    const parts: Int16Array[] = [];
    let n = 0;
    file.packets.forEach((p, i) => {
      const pcm = dec.decode(p);
      parts.push(pcm);
      n += pcm.length;
      if (opts.onProgress && (i % 50 === 49 || i === file.packets.length - 1))
        opts.onProgress(i + 1, file.packets.length);
    });
    const all = new Int16Array(n);
    let off = 0;
    for (const p of parts) {
      all.set(p, off);
      off += p.length;
    }
    const skip = Math.round((file.head.preSkip * rate) / 48000) * channels;
    const keep = Math.round((file.durationSamples48k * rate) / 48000) * channels;
    if (skip + keep > all.length) {
      throw new CodecError(
        'OGG_BAD_STREAM',
        `stream declares ${keep} samples after pre-skip but decodes to ${all.length - skip}`,
      );
    }
    const samples = all.slice(skip, skip + keep);
    if (file.head.outputGain !== 0) {
      const g = 10 ** (file.head.outputGain / 256 / 20);
      for (let i = 0; i < samples.length; i++) {
        const v = Math.round(samples[i]! * g);
        samples[i] = Math.min(32767, Math.max(-32768, v));
      }
    }
    return {
      sampleRate: rate,
      channels,
      samples,
      packets: file.packets.length,
      durationMs: file.durationSamples48k / 48,
    };
  } finally {
    dec.destroy();
  }
}
