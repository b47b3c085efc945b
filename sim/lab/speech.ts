// Speech for the lab: a configured 16 kHz WAV, else a bundled sample (assets/speech/*.wav when the repository has them), else seeded synthetic speech; cut into clips.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { synthesizeSpeech } from '../../device/audio/synth.ts';
import { readWavAsMono } from '../../device/audio/wav.ts';
import { seededRandom } from '../../shared/random.ts';
import { LabError } from './errors.ts';

export const LAB_SAMPLE_RATE = 16000;
/** Largest speech file the lab reads. */
export const MAX_SPEECH_FILE_BYTES = 64 * 1024 * 1024;

export interface SpeechSource {
  /** "synthetic", the path as configured, or the bundled file relative to the repository. */
  readonly label: string;
  readonly sha256: string | undefined;
  /** Seconds of audio in the file (undefined for synthetic speech: made per clip). */
  readonly seconds: number | undefined;
  /** Clip `index` of `durationMs` (files: consecutive stretches, looping; synthetic: a new utterance each). */
  clip(index: number, durationMs: number, stream: string): Int16Array;
}

/** The repository root: the nearest directory above this module with PlushLink's package.json (works from sim/ and dist/sim/). */
function repoRoot(): string | undefined {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, 'utf8')) as { name?: unknown }).name === 'plushlink') return dir;
      } catch {
        // not ours: keep looking
      }
    }
    const up = dirname(dir);
    if (up === dir) return undefined;
    dir = up;
  }
}

/** The bundled speech sample, if the repository has one (assets/speech/*.wav, first by name). */
export function bundledSpeechFile(): string | undefined {
  const root = repoRoot();
  if (!root) return undefined;
  const dir = join(root, 'assets', 'speech');
  if (!existsSync(dir)) return undefined;
  const wav = readdirSync(dir)
    .filter((f) => f.toLowerCase().endsWith('.wav'))
    .sort();
  return wav[0] ? join(dir, wav[0]) : undefined;
}

function fileSource(path: string, label: string): SpeechSource {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    const why =
      code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : String(code ?? err);
    throw new LabError('LAB_SPEECH', `lab: speech: cannot read ${label}: ${why}`, { cause: err });
  }
  if (bytes.length > MAX_SPEECH_FILE_BYTES) {
    throw new LabError(
      'LAB_SPEECH',
      `lab: speech: ${label} is larger than ${MAX_SPEECH_FILE_BYTES >> 20} MiB`,
    );
  }
  let pcm: Int16Array;
  try {
    pcm = readWavAsMono(new Uint8Array(bytes), LAB_SAMPLE_RATE);
  } catch (err) {
    throw new LabError(
      'LAB_SPEECH',
      `lab: speech: ${label} is not a usable WAV file: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  if (pcm.length < LAB_SAMPLE_RATE / 10) {
    throw new LabError('LAB_SPEECH', `lab: speech: ${label} holds less than 0.1 s of audio`);
  }
  return {
    label,
    sha256: createHash('sha256').update(bytes).digest('hex'),
    seconds: pcm.length / LAB_SAMPLE_RATE,
    clip(index, durationMs) {
      const n = Math.round((durationMs * LAB_SAMPLE_RATE) / 1000);
      const out = new Int16Array(n);
      let from = (index * n) % pcm.length;
      for (let filled = 0; filled < n; ) {
        const take = Math.min(n - filled, pcm.length - from);
        out.set(pcm.subarray(from, from + take), filled);
        filled += take;
        from = (from + take) % pcm.length;
      }
      return out;
    },
  };
}

function syntheticSource(seed: number): SpeechSource {
  return {
    label: 'synthetic',
    sha256: undefined,
    seconds: undefined,
    clip(index, durationMs, stream) {
      const b = seededRandom(`plushlink/lab/${seed}/speech/${stream}/${index}`)(4);
      const s = ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
      return synthesizeSpeech({ seed: s, durationMs: Math.round(durationMs), sampleRate: LAB_SAMPLE_RATE });
    },
  };
}

/**
 * The speech a run uses: `speech: "synthetic"` forces the synthesizer; a path is read as a WAV
 * (any rate and channel count, converted to 16 kHz mono); no `speech` uses the bundled sample if
 * there is one, else the synthesizer.
 */
export function loadSpeech(
  speech: string | undefined,
  speechPath: string | undefined,
  seed: number,
): SpeechSource {
  if (speech === 'synthetic') return syntheticSource(seed);
  if (speechPath !== undefined && speech !== undefined) return fileSource(speechPath, speech);
  const bundled = bundledSpeechFile();
  if (bundled) {
    const root = repoRoot();
    return fileSource(bundled, root ? relative(root, bundled) : bundled);
  }
  return syntheticSource(seed);
}
