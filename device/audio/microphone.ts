// Microphone model: slices a PCM source into fixed frames, paced by an injected clock or as fast as possible.

/** Anything that can fill a buffer with mono 16-bit PCM; returns samples written, 0 at end of input. */
export interface AudioSource {
  readonly sampleRate: number;
  read(out: Int16Array): number;
}

/** Injected time source (ms) and timer, so seeded runs and tests replay exactly. */
export interface MicClock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

export interface MicrophoneOptions {
  readonly source: AudioSource;
  /** Frame length in ms (2.5–120, whole samples). Default 20. */
  readonly frameMs?: number;
  /** When set, frame k is yielded no earlier than start + (k + 1) × frameMs (when it would be "recorded"). */
  readonly clock?: MicClock;
  /** Zero-pad the last partial frame (default true) or drop it. */
  readonly padLastFrame?: boolean;
  /** Hard cap on frames produced. Default 360,000 (2 h of 20 ms frames). */
  readonly maxFrames?: number;
}

/** A finite clip as a source. */
export function bufferSource(samples: Int16Array, sampleRate: number): AudioSource {
  if (!(samples instanceof Int16Array)) throw new TypeError('samples must be an Int16Array');
  if (!Number.isInteger(sampleRate) || sampleRate < 1000)
    throw new RangeError(`sampleRate must be an integer ≥ 1000`);
  let pos = 0;
  return {
    sampleRate,
    read(out: Int16Array): number {
      const n = Math.min(out.length, samples.length - pos);
      out.set(samples.subarray(pos, pos + n));
      pos += n;
      return n;
    },
  };
}

/** Endless (or `durationMs`-long) silence. */
export function silenceSource(sampleRate: number, durationMs = Number.POSITIVE_INFINITY): AudioSource {
  if (!Number.isInteger(sampleRate) || sampleRate < 1000)
    throw new RangeError(`sampleRate must be an integer ≥ 1000`);
  let left = Number.isFinite(durationMs)
    ? Math.round((sampleRate * durationMs) / 1000)
    : Number.POSITIVE_INFINITY;
  return {
    sampleRate,
    read(out: Int16Array): number {
      const n = Math.min(out.length, left);
      out.fill(0, 0, n);
      left -= n;
      return n;
    },
  };
}

export class Microphone {
  readonly sampleRate: number;
  readonly frameMs: number;
  readonly frameSamples: number;
  private readonly source: AudioSource;
  private readonly clock: MicClock | undefined;
  private readonly pad: boolean;
  private readonly maxFrames: number;

  constructor(opts: MicrophoneOptions) {
    if (!opts || typeof opts.source?.read !== 'function')
      throw new TypeError('source must be an AudioSource');
    this.source = opts.source;
    this.sampleRate = opts.source.sampleRate;
    this.frameMs = opts.frameMs ?? 20;
    if (!Number.isFinite(this.frameMs) || this.frameMs < 2.5 || this.frameMs > 120) {
      throw new RangeError(`frameMs must be in [2.5, 120], got ${this.frameMs}`);
    }
    this.frameSamples = (this.sampleRate * this.frameMs) / 1000;
    if (!Number.isInteger(this.frameSamples)) {
      throw new RangeError(
        `frameMs ${this.frameMs} is not a whole number of samples at ${this.sampleRate} Hz`,
      );
    }
    this.clock = opts.clock;
    this.pad = opts.padLastFrame ?? true;
    this.maxFrames = opts.maxFrames ?? 360_000;
    if (!Number.isInteger(this.maxFrames) || this.maxFrames < 1)
      throw new RangeError('maxFrames must be a positive integer');
  }

  /** Yields frames (fresh Int16Array each) until the source ends; real time if a clock was injected. */
  async *frames(): AsyncGenerator<Int16Array, void, undefined> {
    const start = this.clock?.now() ?? 0;
    for (let k = 0; k < this.maxFrames; k++) {
      const frame = new Int16Array(this.frameSamples);
      let filled = 0;
      // Sources may return short reads; stop at the first 0 (end of input).
      for (let guard = 0; guard < this.frameSamples && filled < this.frameSamples; guard++) {
        const n = this.source.read(frame.subarray(filled));
        if (n <= 0) break;
        filled += n;
      }
      if (filled === 0 || (filled < this.frameSamples && !this.pad)) return;
      if (this.clock) {
        const due = start + (k + 1) * this.frameMs;
        const wait = due - this.clock.now();
        if (wait > 0) await this.clock.sleep(wait);
      }
      yield frame;
      if (filled < this.frameSamples) return;
    }
  }
}
