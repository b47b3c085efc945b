// Push-to-talk in the browser: microphone → mono PCM → Opus with WebCodecs' AudioEncoder (20 ms, VOIP, 24 kbit/s) → Ogg Opus with the project's own muxer (device/codec/ogg.ts).
import { LIBOPUS_PRE_SKIP_48K, OggOpusWriter } from '../../device/codec/ogg.ts';
import { opusPacketSamples48k } from '../../device/codec/opus-packet.ts';
import { WebError } from './errors.ts';

/** The toy's codec settings [PLK-5.2]: the page sends what a toy sends. */
export const REPLY_BITRATE = 24_000;
export const REPLY_FRAME_MS = 20;
/** Longest reply; recording stops by itself there. */
export const MAX_REPLY_MS = 60_000;
const OPUS_RATES = [8000, 12000, 16000, 24000, 48000];

export interface Recording {
  readonly ogg: Uint8Array;
  /** Recorded audio, ms (what a decoder gives back after pre-skip and end trimming). */
  readonly durationMs: number;
  /** The rate the encoder was given, Hz [PLK-5.2]. */
  readonly sampleRate: number;
  readonly packets: number;
}

/** Chromium's MediaStreamTrackProcessor (not in TypeScript's DOM types): a track as a stream of AudioData. */
interface TrackProcessor {
  readonly readable: ReadableStream<AudioData>;
}
type TrackProcessorConstructor = new (init: { track: MediaStreamTrack }) => TrackProcessor;

function trackProcessor(): TrackProcessorConstructor | undefined {
  return (globalThis as unknown as { MediaStreamTrackProcessor?: TrackProcessorConstructor })
    .MediaStreamTrackProcessor;
}

/** Why this browser cannot record a reply, or undefined when it can. */
export function recordingProblem(): string | undefined {
  if (!globalThis.isSecureContext) return 'the microphone needs a secure page (HTTPS or localhost)';
  if (!navigator.mediaDevices?.getUserMedia) return 'this browser gives no access to a microphone';
  if (typeof AudioEncoder === 'undefined' || typeof AudioData === 'undefined')
    return 'this browser has no WebCodecs AudioEncoder (Chromium, Edge and recent Firefox and Safari have one)';
  return undefined;
}

/** The pre-skip from the OpusHead WebCodecs gives as the decoder description (RFC 7845 §5.1), or libopus's. */
function preSkipOf(description: AllowSharedBufferSource | undefined): number {
  if (!description) return LIBOPUS_PRE_SKIP_48K;
  const b = ArrayBuffer.isView(description)
    ? new Uint8Array(description.buffer, description.byteOffset, description.byteLength)
    : new Uint8Array(description);
  if (b.length < 19 || String.fromCharCode(...b.subarray(0, 8)) !== 'OpusHead') return LIBOPUS_PRE_SKIP_48K;
  return b[10]! | (b[11]! << 8);
}

/** One recording: start() asks for the microphone, stop() finishes the Ogg Opus file. */
export class VoiceRecorder {
  private stream: MediaStream | undefined;
  private encoder: AudioEncoder | undefined;
  private sampleRate = 0;
  private samples = 0;
  private readonly packets: Uint8Array[] = [];
  private preSkip = LIBOPUS_PRE_SKIP_48K;
  private failure: Error | undefined;
  private pump: Promise<void> | undefined;
  private stopping = false;
  private context: AudioContext | undefined;
  /** Called with the input level (0..1) about ten times a second. */
  onLevel: ((level: number) => void) | undefined;

  get elapsedMs(): number {
    return this.sampleRate ? (this.samples * 1000) / this.sampleRate : 0;
  }

  async start(): Promise<void> {
    const problem = recordingProblem();
    if (problem) throw new WebError('WEB_UNSUPPORTED', `Cannot record: ${problem}.`);
    try {
      this.stream = await navigator.mediaDevices.getUserMedia({
        audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true },
      });
    } catch (err) {
      throw new WebError(
        'WEB_RECORD',
        'The microphone is not available (permission denied, or no microphone).',
        {
          cause: err,
        },
      );
    }
    const track = this.stream.getAudioTracks()[0];
    if (!track) throw new WebError('WEB_RECORD', 'The microphone gave no audio track.');
    const Processor = trackProcessor();
    if (Processor) this.pump = this.readTrack(new Processor({ track }).readable.getReader());
    else this.pump = this.readWithAudioContext(this.stream);
  }

  private configure(sampleRate: number): AudioEncoder {
    if (!OPUS_RATES.includes(sampleRate))
      throw new WebError('WEB_RECORD', `the microphone runs at ${sampleRate} Hz, which Opus cannot take`);
    this.sampleRate = sampleRate;
    const encoder = new AudioEncoder({
      output: (chunk, meta) => {
        const packet = new Uint8Array(chunk.byteLength);
        chunk.copyTo(packet);
        this.packets.push(packet);
        if (meta?.decoderConfig?.description) this.preSkip = preSkipOf(meta.decoderConfig.description);
      },
      error: (err) => {
        this.failure = err;
      },
    });
    encoder.configure({
      codec: 'opus',
      sampleRate,
      numberOfChannels: 1,
      bitrate: REPLY_BITRATE,
      opus: { frameDuration: REPLY_FRAME_MS * 1000, application: 'voip', format: 'opus' },
    } as AudioEncoderConfig);
    this.encoder = encoder;
    return encoder;
  }

  /** Mono float samples in, encoded as they come (timestamps from the sample count). */
  private encodeMono(mono: Float32Array<ArrayBuffer>, sampleRate: number): void {
    const encoder = this.encoder ?? this.configure(sampleRate);
    if (mono.length === 0) return;
    const data = new AudioData({
      format: 'f32-planar',
      sampleRate,
      numberOfFrames: mono.length,
      numberOfChannels: 1,
      timestamp: Math.round((this.samples * 1e6) / sampleRate),
      data: mono,
    });
    encoder.encode(data);
    data.close();
    this.samples += mono.length;
    let peak = 0;
    for (let i = 0; i < mono.length; i += 8) peak = Math.max(peak, Math.abs(mono[i]!));
    this.onLevel?.(Math.min(1, peak));
    if (this.elapsedMs >= MAX_REPLY_MS) this.stopping = true;
  }

  private async readTrack(reader: ReadableStreamDefaultReader<AudioData>): Promise<void> {
    try {
      while (!this.stopping) {
        const { value, done } = await reader.read();
        if (done || !value) break;
        try {
          const n = value.numberOfFrames;
          const mono = new Float32Array(n);
          const plane = new Float32Array(n);
          for (let c = 0; c < value.numberOfChannels; c++) {
            value.copyTo(plane, { planeIndex: c, format: 'f32-planar' });
            for (let i = 0; i < n; i++) mono[i]! += plane[i]! / value.numberOfChannels;
          }
          this.encodeMono(mono, value.sampleRate);
        } finally {
          value.close();
        }
      }
    } finally {
      await reader.cancel().catch(() => undefined);
    }
  }

  /** Browsers without MediaStreamTrackProcessor: the same samples through an AudioContext. */
  private async readWithAudioContext(stream: MediaStream): Promise<void> {
    const ctx = new AudioContext();
    this.context = ctx;
    const source = ctx.createMediaStreamSource(stream);
    const node = ctx.createScriptProcessor(4096, 1, 1);
    node.onaudioprocess = (e) => {
      if (this.stopping) return;
      try {
        this.encodeMono(new Float32Array(e.inputBuffer.getChannelData(0)), ctx.sampleRate);
      } catch (err) {
        this.failure = err as Error;
      }
    };
    source.connect(node);
    node.connect(ctx.destination);
  }

  /** The first error of the encoder or the capture (set from callbacks). */
  private failed(): Error | undefined {
    return this.failure;
  }

  /** True once the recording reached MAX_REPLY_MS (the caller then stops it). */
  get full(): boolean {
    return this.stopping;
  }

  /** Stops the microphone, flushes the encoder and returns the Ogg Opus file. */
  async stop(): Promise<Recording> {
    this.stopping = true;
    for (const t of this.stream?.getTracks() ?? []) t.stop();
    await this.pump?.catch((err: unknown) => {
      this.failure ??= err as Error;
    });
    await this.context?.close().catch(() => undefined);
    const encoder = this.encoder;
    if (this.failure)
      throw new WebError('WEB_RECORD', `Recording failed: ${this.failure.message}`, { cause: this.failure });
    if (!encoder || this.samples === 0) throw new WebError('WEB_RECORD', 'Nothing was recorded.');
    const total = this.samples;
    // Feed the encoder's lookahead as silence so that the last real sample is encoded too.
    const tail = Math.ceil((LIBOPUS_PRE_SKIP_48K * this.sampleRate) / 48000);
    this.encodeMono(new Float32Array(tail), this.sampleRate);
    try {
      await encoder.flush();
    } finally {
      encoder.close();
    }
    const failure = this.failed();
    if (failure) throw new WebError('WEB_RECORD', `Encoding failed: ${failure.message}`, { cause: failure });
    const serial = crypto.getRandomValues(new Uint32Array(1))[0]!;
    const writer = new OggOpusWriter({
      serial,
      channels: 1,
      preSkip: this.preSkip,
      inputSampleRate: this.sampleRate,
      vendor: 'PlushLink parent page (WebCodecs Opus)',
    });
    let granule = 0;
    for (const p of this.packets) {
      writer.writePacket(p);
      granule += opusPacketSamples48k(p);
    }
    // [RFC 7845 §4.5] end trimming: the decoder returns exactly what was recorded.
    const ogg = writer.finish(Math.min(Math.round((total * 48000) / this.sampleRate), granule));
    return {
      ogg,
      durationMs: Math.round((total * 1000) / this.sampleRate),
      sampleRate: this.sampleRate,
      packets: this.packets.length,
    };
  }

  /** Drops the recording. */
  cancel(): void {
    this.stopping = true;
    for (const t of this.stream?.getTracks() ?? []) t.stop();
    void this.context?.close().catch(() => undefined);
    try {
      this.encoder?.close();
    } catch {
      /* already closed */
    }
  }
}
