// Objective speech quality of a decoded clip against its input: mel-band log-spectral distance with lag alignment (codec tests, protocol lab).
//
// Why this measure: Opus at 24 kbit/s (SILK) is a perceptual codec that does not preserve the waveform
// (phase, fine structure), so waveform SNR / segmental SNR reports "bad" for good speech. What it must keep
// is the short-term spectral envelope. We compare 24 mel bands (100–7600 Hz) of 32 ms Hann frames (10 ms hop)
// in dB, on speech-active frames only (reference frame energy within 40 dB of the loudest frame), and report
// the mean per-frame RMS band difference: the mel log-spectral distance (LSD, dB; lower is better) and the
// equivalent score = max(0, 1 − LSD / 20) (higher is better, 1 = identical envelopes).

const FFT_SIZE = 512;
const BANDS = 24;

function fftMag2(re: Float64Array, im: Float64Array): void {
  const n = re.length;
  for (let i = 1, j = 0; i < n; i++) {
    let bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) {
      [re[i], re[j]] = [re[j]!, re[i]!];
      [im[i], im[j]] = [im[j]!, im[i]!];
    }
  }
  for (let len = 2; len <= n; len <<= 1) {
    const ang = (-2 * Math.PI) / len;
    const wr = Math.cos(ang);
    const wi = Math.sin(ang);
    for (let i = 0; i < n; i += len) {
      let cr = 1;
      let ci = 0;
      for (let k = 0; k < len / 2; k++) {
        const a = i + k;
        const b = a + len / 2;
        const tr = re[b]! * cr - im[b]! * ci;
        const ti = re[b]! * ci + im[b]! * cr;
        re[b] = re[a]! - tr;
        im[b] = im[a]! - ti;
        re[a] = re[a]! + tr;
        im[a] = im[a]! + ti;
        const ncr = cr * wr - ci * wi;
        ci = cr * wi + ci * wr;
        cr = ncr;
      }
    }
  }
}

const mel = (f: number): number => 2595 * Math.log10(1 + f / 700);
const imel = (m: number): number => 700 * (10 ** (m / 2595) - 1);

/** Per-frame mel band energies (dB) of mono PCM at `rate`. */
export function melLogEnergies(pcm: Int16Array, rate: number): Float64Array[] {
  const hop = Math.round(rate / 100);
  const win = Math.min(FFT_SIZE, Math.round(rate * 0.032));
  const hann = new Float64Array(win).map((_, i) => 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / win));
  const lo = mel(100);
  const hi = mel(Math.min(7600, rate / 2 - 100));
  const edges = Array.from(
    { length: BANDS + 2 },
    (_, i) => (imel(lo + ((hi - lo) * i) / (BANDS + 1)) * FFT_SIZE) / rate,
  );
  const frames: Float64Array[] = [];
  const re = new Float64Array(FFT_SIZE);
  const im = new Float64Array(FFT_SIZE);
  for (let start = 0; start + win <= pcm.length; start += hop) {
    re.fill(0);
    im.fill(0);
    for (let i = 0; i < win; i++) re[i] = (pcm[start + i]! / 32768) * hann[i]!;
    fftMag2(re, im);
    const bands = new Float64Array(BANDS);
    for (let b = 0; b < BANDS; b++) {
      const [l, c, r] = [edges[b]!, edges[b + 1]!, edges[b + 2]!];
      let e = 0;
      for (let k = Math.max(1, Math.floor(l)); k <= Math.min(FFT_SIZE / 2, Math.ceil(r)); k++) {
        const w = k < c ? (k - l) / (c - l) : (r - k) / (r - c);
        if (w > 0) e += w * (re[k]! * re[k]! + im[k]! * im[k]!);
      }
      bands[b] = 10 * Math.log10(e + 1e-10);
    }
    frames.push(bands);
  }
  return frames;
}

/** Lag (samples, test relative to ref) in [-maxLag, maxLag] maximising the normalised cross-correlation. */
export function bestLag(ref: Int16Array, test: Int16Array, maxLag: number): number {
  let best = 0;
  let bestScore = Number.NEGATIVE_INFINITY;
  const n = Math.min(ref.length, test.length);
  for (let lag = -maxLag; lag <= maxLag; lag++) {
    let xy = 0;
    let yy = 0;
    for (let i = Math.max(0, -lag); i < n && i + lag < test.length; i++) {
      const y = test[i + lag]!;
      xy += ref[i]! * y;
      yy += y * y;
    }
    const score = yy > 0 ? xy / Math.sqrt(yy) : 0;
    if (score > bestScore) {
      bestScore = score;
      best = lag;
    }
  }
  return best;
}

export interface QualityResult {
  /** Mean mel log-spectral distance over active frames, dB (lower is better). */
  readonly lsdDb: number;
  /** max(0, 1 − LSD/20): higher is better. */
  readonly score: number;
  readonly lag: number;
  readonly activeFrames: number;
}

/** Compares `test` to `ref` (both mono at `rate`) after searching the best lag within ±maxLagMs. */
export function speechQuality(ref: Int16Array, test: Int16Array, rate: number, maxLagMs = 3): QualityResult {
  const lag = bestLag(ref, test, Math.round((rate * maxLagMs) / 1000));
  const aligned = lag >= 0 ? test.subarray(lag) : new Int16Array(test.length - lag).fill(0, 0, -lag);
  if (lag < 0) (aligned as Int16Array).set(test, -lag);
  const a = melLogEnergies(ref, rate);
  const b = melLogEnergies(aligned, rate);
  let maxE = Number.NEGATIVE_INFINITY;
  const frameE = a.map((f) => 10 * Math.log10(f.reduce((s, v) => s + 10 ** (v / 10), 0)));
  for (const e of frameE) maxE = Math.max(maxE, e);
  let sum = 0;
  let active = 0;
  for (let i = 0; i < a.length; i++) {
    if (frameE[i]! < maxE - 40) continue;
    const fb = b[i];
    let d2 = 0;
    for (let k = 0; k < BANDS; k++) {
      const d = a[i]![k]! - (fb ? fb[k]! : -100);
      d2 += d * d;
    }
    sum += Math.sqrt(d2 / BANDS);
    active++;
  }
  const lsdDb = active > 0 ? sum / active : Number.POSITIVE_INFINITY;
  return { lsdDb, score: Math.max(0, 1 - lsdDb / 20), lag, activeFrames: active };
}
