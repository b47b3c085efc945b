// Seeded synthetic speech-like audio (source-filter model) and silence, for tests and the fleet simulator.
//
// Model: a band-limited glottal source (harmonics of f0 with a −12 dB/octave tilt, shimmer, aspiration
// noise) whose pitch follows a phrase contour (declination, per-syllable accents, vibrato, drift, jitter) in
// 100–250 Hz, shaped by three cascaded formant resonators gliding between vowel targets, plus short noise
// bursts for fricative/plosive onsets and 20–80 ms closures between syllables. Without the irregularities
// (jitter, aspiration, glides) libopus' speech/music classifier calls the too-stationary tone "music". Syllables
// (120–320 ms) carry raised-cosine envelopes; phrases of 2–5 words are separated by 150–600 ms pauses.
// The result is not intelligible, but its spectral envelope, pitch and on/off rhythm are speech-like, so
// Opus (voip, 16 kHz, 24 kbit/s) codes it with SILK as it does real speech. Same seed → same samples.

/** Small fast deterministic PRNG (mulberry32); returns floats in [0, 1). */
export function seededRandom(seed: number): () => number {
  if (!Number.isInteger(seed)) throw new TypeError(`seed must be an integer, got ${seed}`);
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface SpeechSynthOptions {
  readonly seed: number;
  /** Output rate, 8000–48000. Default 16000. */
  readonly sampleRate?: number;
  readonly durationMs: number;
  /** Peak level in dBFS. Default −3. */
  readonly peakDbfs?: number;
}

/** [F1, F2, F3] targets in Hz for a handful of vowels. */
const VOWELS: readonly (readonly [number, number, number])[] = [
  [730, 1090, 2440], // a
  [270, 2290, 3010], // i
  [300, 870, 2240], // u
  [530, 1840, 2480], // e
  [570, 840, 2410], // o
  [660, 1720, 2410], // ae
  [490, 1350, 1690], // er
];
const BANDWIDTHS = [80, 110, 160] as const;

interface Segment {
  readonly start: number;
  readonly len: number;
  readonly vowel: readonly [number, number, number];
  readonly f0: number;
  readonly f0End: number;
  readonly amp: number;
  readonly fricative: number; // samples of onset noise
}

/** Generates `durationMs` of speech-like mono 16-bit PCM, deterministic in `seed`. */
export function synthesizeSpeech(opts: SpeechSynthOptions): Int16Array {
  const sr = opts.sampleRate ?? 16000;
  if (!Number.isInteger(sr) || sr < 8000 || sr > 48000)
    throw new RangeError(`sampleRate must be in [8000, 48000], got ${sr}`);
  if (!Number.isFinite(opts.durationMs) || opts.durationMs < 0 || opts.durationMs > 3_600_000) {
    throw new RangeError(`durationMs must be in [0, 3600000], got ${opts.durationMs}`);
  }
  const peakDb = opts.peakDbfs ?? -3;
  if (!Number.isFinite(peakDb) || peakDb > 0 || peakDb < -60)
    throw new RangeError(`peakDbfs must be in [-60, 0], got ${peakDb}`);
  const rnd = seededRandom(opts.seed);
  const total = Math.round((sr * opts.durationMs) / 1000);
  const out = new Float64Array(total);

  // 1. Plan syllables and pauses.
  const segs: Segment[] = [];
  let t = Math.round(sr * (0.1 + 0.2 * rnd()));
  while (t < total) {
    const words = 2 + Math.floor(rnd() * 4);
    const phraseF0 = 100 + rnd() * 150;
    let syllablesLeft = 0;
    for (let w = 0; w < words; w++) syllablesLeft += 1 + Math.floor(rnd() * 3);
    const phraseSyllables = syllablesLeft;
    for (let s = 0; s < phraseSyllables && t < total; s++) {
      const len = Math.round(sr * (0.12 + 0.2 * rnd()));
      const progress = s / phraseSyllables;
      const decl = 1 - 0.25 * progress; // declination over the phrase
      const accent = rnd() < 0.3 ? 1.15 + 0.1 * rnd() : 1;
      const f0 = Math.min(250, Math.max(100, phraseF0 * decl * accent));
      const f0End = Math.min(250, Math.max(100, f0 * (0.88 + 0.2 * rnd())));
      segs.push({
        start: t,
        len,
        vowel: VOWELS[Math.floor(rnd() * VOWELS.length)]!,
        f0,
        f0End,
        amp: 0.6 + 0.4 * rnd(),
        fricative: rnd() < 0.45 ? Math.round(sr * (0.03 + 0.05 * rnd())) : 0,
      });
      t += len + Math.round(sr * (0.02 + 0.06 * rnd())); // consonant closure between syllables
    }
    t += Math.round(sr * (0.15 + 0.45 * rnd())); // pause between phrases
  }

  // 2. Render each syllable: harmonic source → formant cascade, times envelope; noise onset.
  const nyq = sr / 2;
  let phase = 0;
  let prevVowel: readonly [number, number, number] = VOWELS[0]!;
  let wobble = 0;
  for (const seg of segs) {
    const from = prevVowel;
    prevVowel = seg.vowel;
    const vibRate = 4 + 3 * rnd();
    const end = Math.min(total, seg.start + seg.len);
    const y1 = [0, 0, 0];
    const y2 = [0, 0, 0];
    for (let n = seg.start; n < end; n++) {
      const k = (n - seg.start) / seg.len;
      wobble = 0.999 * wobble + 0.002 * (rnd() - 0.5); // slow random pitch drift
      const vib = 0.03 * Math.sin((2 * Math.PI * vibRate * (n - seg.start)) / sr);
      const f0 = (seg.f0 + (seg.f0End - seg.f0) * k) * (1 + vib + wobble + 0.02 * (rnd() - 0.5)); // contour + jitter
      phase += (2 * Math.PI * f0) / sr;
      if (phase > 2 * Math.PI * 1000) phase -= 2 * Math.PI * 1000;
      let src = 0;
      const maxH = Math.min(40, Math.floor((nyq * 0.9) / f0));
      for (let h = 1; h <= maxH; h++) src += Math.sin(h * phase) / (h * h);
      // aspiration: noise gated by the glottal cycle
      let x = src * (1 + 0.3 * (rnd() - 0.5)) + 0.25 * (rnd() - 0.5) * (0.5 + 0.5 * Math.cos(phase));
      const glide = Math.min(1, k * 4); // formant transition from the previous vowel over the first quarter
      for (let f = 0; f < 3; f++) {
        const target = from[f]! + (seg.vowel[f]! - from[f]!) * glide;
        const freq = Math.min(nyq * 0.9, target * (0.95 + 0.1 * k));
        const r = Math.exp((-Math.PI * BANDWIDTHS[f]!) / sr);
        const a1 = 2 * r * Math.cos((2 * Math.PI * freq) / sr);
        const a2 = -r * r;
        const y = (1 - r) * 4 * x + a1 * y1[f]! + a2 * y2[f]!;
        y2[f] = y1[f]!;
        y1[f] = y;
        x = y;
      }
      const env = Math.sin(Math.PI * Math.min(1, k * 1.6, (1 - k) * 2.5)) ** 2 * seg.amp;
      let v = x * env;
      const fn = n - seg.start;
      if (fn < seg.fricative) {
        const fe = Math.sin((Math.PI * fn) / seg.fricative);
        v += (rnd() - 0.5) * 0.3 * fe * seg.amp;
      }
      out[n] = (out[n] ?? 0) + v;
    }
  }

  // 3. Normalise to the requested peak.
  let peak = 0;
  for (let i = 0; i < total; i++) peak = Math.max(peak, Math.abs(out[i]!));
  const gain = peak > 0 ? (32767 * 10 ** (peakDb / 20)) / peak : 0;
  const pcm = new Int16Array(total);
  for (let i = 0; i < total; i++) pcm[i] = Math.round(out[i]! * gain);
  return pcm;
}

/** `durationMs` of digital silence at `sampleRate`. */
export function silence(sampleRate: number, durationMs: number): Int16Array {
  if (!Number.isInteger(sampleRate) || sampleRate < 1000 || sampleRate > 384000) {
    throw new RangeError(`sampleRate must be an integer in [1000, 384000], got ${sampleRate}`);
  }
  if (!Number.isFinite(durationMs) || durationMs < 0 || durationMs > 3_600_000) {
    throw new RangeError(`durationMs must be in [0, 3600000], got ${durationMs}`);
  }
  return new Int16Array(Math.round((sampleRate * durationMs) / 1000));
}
