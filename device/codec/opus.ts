// Opus encoder/decoder wrapper: the only module that touches the native binding (@discordjs/opus).
import { createRequire } from 'node:module';
import { CodecError } from './errors.ts';
import { opusPacketSamples48k } from './opus-packet.ts';

/** Minimal shape of the binding we rely on (see node_modules/@discordjs/opus/src/node-opus.cc). */
interface NativeOpus {
  encode(buf: Buffer): Buffer;
  decode(buf: Buffer): Buffer;
  applyEncoderCTL(ctl: number, value: number): void;
  applyDecoderCTL(ctl: number, value: number): void;
  setBitrate(bitrate: number): void;
  getBitrate(): number;
}
type NativeOpusCtor = new (rate: number, channels: number) => NativeOpus;

const require = createRequire(import.meta.url);
let nativeCtor: NativeOpusCtor | undefined;
/**
 * Loads the binding once. @discordjs/opus finds its binary through node-pre-gyp, which parses
 * process.argv with abbreviations: a CLI flag such as `--dir X` is read as its `--directory X` and
 * the binary is looked for under X. So the binding is loaded with a neutral argv.
 */
function binding(): NativeOpusCtor {
  if (!nativeCtor) {
    const saved = process.argv;
    process.argv = saved.slice(0, 2);
    try {
      nativeCtor = (require('@discordjs/opus') as { OpusEncoder: NativeOpusCtor }).OpusEncoder;
    } finally {
      process.argv = saved;
    }
  }
  return nativeCtor;
}

/** libopus CTL request numbers (opus_defines.h). Only SET/RESET requests are safe through the binding. */
export const OPUS_CTL = {
  SET_APPLICATION: 4000,
  SET_BITRATE: 4002,
  SET_VBR: 4006,
  SET_COMPLEXITY: 4010,
  SET_INBAND_FEC: 4012,
  SET_PACKET_LOSS_PERC: 4014,
  SET_DTX: 4016,
  SET_SIGNAL: 4024,
  RESET_STATE: 4028,
} as const;

const APPLICATION_VALUE = { voip: 2048, audio: 2049, lowdelay: 2051 } as const;

export type OpusSampleRate = 8000 | 12000 | 16000 | 24000 | 48000;
export type OpusFrameMs = 10 | 20 | 40 | 60;
export type OpusApplication = keyof typeof APPLICATION_VALUE;

export const OPUS_SAMPLE_RATES: readonly OpusSampleRate[] = [8000, 12000, 16000, 24000, 48000];
export const OPUS_FRAME_MS: readonly OpusFrameMs[] = [10, 20, 40, 60];

export interface OpusEncoderSettings {
  /** Codec input rate. Default 16000. */
  readonly sampleRate: OpusSampleRate;
  /** 1 (default) or 2, interleaved PCM. */
  readonly channels: 1 | 2;
  /** Target bitrate in bit/s, 6000–64000. Default 24000. */
  readonly bitrate: number;
  /** 0–10. Default 10. */
  readonly complexity: number;
  /** Frame duration. Default 20. */
  readonly frameMs: OpusFrameMs;
  /** Default 'voip'. */
  readonly application: OpusApplication;
  /** Discontinuous transmission (tiny packets in silence). Default false. */
  readonly dtx: boolean;
  /** In-band forward error correction (SILK LBRR). Default false. */
  readonly fec: boolean;
  /** Expected packet loss 0–100 %, tunes FEC. Default 0 (10 when fec is on and this is unset). */
  readonly packetLossPercent: number;
}

export const DEFAULT_ENCODER_SETTINGS: OpusEncoderSettings = Object.freeze({
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

function checkInt(name: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v))
    throw new TypeError(`${name} must be an integer, got ${String(v)}`);
  if (v < min || v > max) throw new RangeError(`${name} must be in [${min}, ${max}], got ${v}`);
  return v;
}

function checkRate(name: string, v: unknown): OpusSampleRate {
  if (!OPUS_SAMPLE_RATES.includes(v as OpusSampleRate)) {
    throw new RangeError(`${name} must be one of ${OPUS_SAMPLE_RATES.join('/')}, got ${String(v)}`);
  }
  return v as OpusSampleRate;
}

/** Fills defaults and validates every field (TypeError/RangeError naming the field). */
export function normalizeEncoderSettings(partial: Partial<OpusEncoderSettings> = {}): OpusEncoderSettings {
  if (typeof partial !== 'object' || partial === null) throw new TypeError('settings must be an object');
  const s = { ...DEFAULT_ENCODER_SETTINGS, ...partial };
  if (partial.fec && partial.packetLossPercent === undefined) s.packetLossPercent = 10;
  checkRate('sampleRate', s.sampleRate);
  if (s.channels !== 1 && s.channels !== 2)
    throw new RangeError(`channels must be 1 or 2, got ${String(s.channels)}`);
  checkInt('bitrate', s.bitrate, 6000, 64000);
  checkInt('complexity', s.complexity, 0, 10);
  if (!OPUS_FRAME_MS.includes(s.frameMs)) {
    throw new RangeError(`frameMs must be one of ${OPUS_FRAME_MS.join('/')}, got ${String(s.frameMs)}`);
  }
  if (!(s.application in APPLICATION_VALUE)) {
    throw new RangeError(`application must be voip, audio or lowdelay, got ${String(s.application)}`);
  }
  if (typeof s.dtx !== 'boolean') throw new TypeError('dtx must be a boolean');
  if (typeof s.fec !== 'boolean') throw new TypeError('fec must be a boolean');
  checkInt('packetLossPercent', s.packetLossPercent, 0, 100);
  return Object.freeze(s);
}

/** Stable key for pooling encoders with identical settings. */
export function encoderSettingsKey(s: OpusEncoderSettings): string {
  return [
    s.sampleRate,
    s.channels,
    s.bitrate,
    s.complexity,
    s.frameMs,
    s.application,
    s.dtx ? 1 : 0,
    s.fec ? 1 : 0,
    s.packetLossPercent,
  ].join(':');
}

/** Encoder lookahead (= Ogg pre-skip) at 48 kHz: Fs/400 + Fs/250 = 6.5 ms for voip/audio, 2.5 ms for lowdelay. */
export function encoderLookahead48k(application: OpusApplication): number {
  return application === 'lowdelay' ? 120 : 312;
}

export interface OpusEncoder {
  readonly settings: OpusEncoderSettings;
  /** Samples per channel in one frame. */
  readonly frameSamples: number;
  /** Pre-skip to write in OpusHead, in 48 kHz samples. */
  readonly preSkip48k: number;
  /** Encodes exactly one frame of interleaved 16-bit PCM into one Opus packet. */
  encode(pcm: Int16Array): Uint8Array;
  /** Clears the codec state (OPUS_RESET_STATE) but keeps the settings: the next packet starts a new stream. */
  reset(): void;
  /** Releases the handle; see docs/codec-choice.md for when native memory is actually freed. */
  destroy(): void;
  readonly destroyed: boolean;
}

export interface OpusDecoderSettings {
  /** Output rate. Default 16000. */
  readonly sampleRate: OpusSampleRate;
  readonly channels: 1 | 2;
}

export interface OpusDecoder {
  readonly settings: OpusDecoderSettings;
  /** Decodes one packet into interleaved 16-bit PCM at the decoder rate. */
  decode(packet: Uint8Array): Int16Array;
  reset(): void;
  destroy(): void;
  readonly destroyed: boolean;
}

/** The codec seam: everything else in the project uses this, never the binding. */
export interface OpusCodec {
  createEncoder(settings?: Partial<OpusEncoderSettings>): OpusEncoder;
  createDecoder(settings?: Partial<OpusDecoderSettings>): OpusDecoder;
}

class NativeEncoder implements OpusEncoder {
  readonly settings: OpusEncoderSettings;
  readonly frameSamples: number;
  readonly preSkip48k: number;
  private native: NativeOpus | null;

  constructor(settings: OpusEncoderSettings) {
    this.settings = settings;
    this.frameSamples = (settings.sampleRate * settings.frameMs) / 1000;
    this.preSkip48k = encoderLookahead48k(settings.application);
    const Ctor = binding();
    const n = new Ctor(settings.sampleRate, settings.channels);
    // The binding always creates the encoder with OPUS_APPLICATION_AUDIO; libopus accepts
    // OPUS_SET_APPLICATION until the first frame is encoded (and again after OPUS_RESET_STATE).
    n.applyEncoderCTL(OPUS_CTL.SET_APPLICATION, APPLICATION_VALUE[settings.application]);
    this.native = n;
    this.configure();
  }

  private configure(): void {
    const n = this.live();
    const s = this.settings;
    n.setBitrate(s.bitrate);
    n.applyEncoderCTL(OPUS_CTL.SET_COMPLEXITY, s.complexity);
    n.applyEncoderCTL(OPUS_CTL.SET_DTX, s.dtx ? 1 : 0);
    n.applyEncoderCTL(OPUS_CTL.SET_INBAND_FEC, s.fec ? 1 : 0);
    n.applyEncoderCTL(OPUS_CTL.SET_PACKET_LOSS_PERC, s.packetLossPercent);
  }

  private live(): NativeOpus {
    if (!this.native) throw new CodecError('CODEC_DESTROYED', 'Opus encoder used after destroy()');
    return this.native;
  }

  get destroyed(): boolean {
    return this.native === null;
  }

  encode(pcm: Int16Array): Uint8Array {
    const n = this.live();
    if (!(pcm instanceof Int16Array)) throw new TypeError('pcm must be an Int16Array');
    const expected = this.frameSamples * this.settings.channels;
    if (pcm.length !== expected) {
      throw new RangeError(`pcm must hold exactly one frame: ${expected} samples, got ${pcm.length}`);
    }
    // Zero-copy view; the binding copies the packet out of its own buffer.
    const buf = Buffer.from(pcm.buffer, pcm.byteOffset, pcm.byteLength);
    try {
      return n.encode(buf);
    } catch (err) {
      throw new CodecError('OPUS_ENCODE_FAILED', `Opus encode failed: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }

  reset(): void {
    this.live().applyEncoderCTL(OPUS_CTL.RESET_STATE, 0);
  }

  destroy(): void {
    // @discordjs/opus has no explicit free: opus_encoder_destroy runs in the N-API finalizer once the
    // wrapper object is garbage-collected. Dropping the only reference is all we can do.
    this.native = null;
  }
}

class NativeDecoder implements OpusDecoder {
  readonly settings: OpusDecoderSettings;
  private native: NativeOpus | null;

  constructor(settings: OpusDecoderSettings) {
    this.settings = settings;
    this.native = new (binding())(settings.sampleRate, settings.channels);
  }

  private live(): NativeOpus {
    if (!this.native) throw new CodecError('CODEC_DESTROYED', 'Opus decoder used after destroy()');
    return this.native;
  }

  get destroyed(): boolean {
    return this.native === null;
  }

  decode(packet: Uint8Array): Int16Array {
    const n = this.live();
    if (!(packet instanceof Uint8Array)) throw new TypeError('packet must be a Uint8Array');
    if (packet.length > 1275 * 48)
      throw new CodecError('OPUS_BAD_PACKET', `Opus packet of ${packet.length} bytes is too large`);
    // Rejects empty packets before they reach the binding (which would run 120 ms of concealment instead).
    opusPacketSamples48k(packet);
    const buf = Buffer.from(packet.buffer, packet.byteOffset, packet.byteLength);
    let out: Buffer;
    try {
      out = n.decode(buf);
    } catch (err) {
      throw new CodecError('OPUS_DECODE_FAILED', `Opus decode failed: ${(err as Error).message}`, {
        cause: err,
      });
    }
    // The returned Buffer may sit in Node's shared pool at an odd offset; copy into an aligned array.
    const pcm = new Int16Array(out.length >> 1);
    new Uint8Array(pcm.buffer).set(out.subarray(0, pcm.length * 2));
    return pcm;
  }

  reset(): void {
    this.live().applyDecoderCTL(OPUS_CTL.RESET_STATE, 0);
  }

  destroy(): void {
    this.native = null;
  }
}

export function normalizeDecoderSettings(partial: Partial<OpusDecoderSettings> = {}): OpusDecoderSettings {
  if (typeof partial !== 'object' || partial === null) throw new TypeError('settings must be an object');
  const sampleRate = checkRate('sampleRate', partial.sampleRate ?? 16000);
  const channels = partial.channels ?? 1;
  if (channels !== 1 && channels !== 2)
    throw new RangeError(`channels must be 1 or 2, got ${String(channels)}`);
  return Object.freeze({ sampleRate, channels });
}

export function createEncoder(settings: Partial<OpusEncoderSettings> = {}): OpusEncoder {
  return new NativeEncoder(normalizeEncoderSettings(settings));
}

export function createDecoder(settings: Partial<OpusDecoderSettings> = {}): OpusDecoder {
  return new NativeDecoder(normalizeDecoderSettings(settings));
}

/** The default codec implementation (native libopus 1.3.1 via @discordjs/opus). */
export const nativeOpusCodec: OpusCodec = { createEncoder, createDecoder };
