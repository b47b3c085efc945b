// Load-test checks made before any work (no audio encoded, no identity generated, no worker started): one line, exit 2.
import { mkdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  bundledSpeechFiles,
  MAX_SPEECH_WAV_BYTES,
  MAX_SPEECH_WAVS,
  SPEECH_WAV_RATES,
  speechPcmFromWav,
} from '../../sim/speech-bank.ts';
import { CliError, formatDurationMs } from '../cli-util.ts';
import { checkTarget } from './safety.ts';
import { openFileLimit } from './targets.ts';
import { parseThresholds, type Threshold } from './thresholds.ts';
import type { LoadtestOptions } from './types.ts';

const WHY: Record<string, string> = {
  ENOTDIR: 'a part of the path is not a directory',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EROFS: 'read-only file system',
  ENOSPC: 'no space left on the device',
  EEXIST: 'it exists and is not a directory',
  ENOENT: 'no such file or directory',
  EISDIR: 'is a directory',
};
const why = (err: unknown): string => {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? (WHY[code] ?? code) : String(err).split('\n')[0]!;
};

/**
 * Makes sure the reports can be written to `dir` at the end: creates it if missing, refuses a
 * non-directory, and writes and removes a probe file (this is also what catches read-only mounts).
 */
export function checkOutDir(dir: string): void {
  let isDir = false;
  try {
    isDir = statSync(dir).isDirectory();
    if (!isDir) throw new CliError(`--out ${dir}: not a directory`, 2);
  } catch (err) {
    if (err instanceof CliError) throw err;
    if ((err as { code?: unknown }).code !== 'ENOENT') throw new CliError(`--out ${dir}: ${why(err)}`, 2);
  }
  if (!isDir) {
    try {
      mkdirSync(dir, { recursive: true });
    } catch (err) {
      throw new CliError(`--out ${dir}: cannot create it: ${why(err)}`, 2);
    }
  }
  const probe = join(dir, `.plushlink-write-test-${process.pid}`);
  try {
    writeFileSync(probe, '');
    unlinkSync(probe);
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    throw new CliError(
      `--out ${dir}: not writable: ${code === 'ENOENT' ? 'no file can be created in it' : why(err)}`,
      2,
    );
  }
}

/** Sockets the run opens: one per connection, two when the gateway runs in this process. */
export function fileDescriptorsNeeded(opts: LoadtestOptions): { endpoints: number; fds: number } {
  const families = Math.ceil(opts.toys / opts.toysPerFamily);
  // The attack scenario adds one attacker family (8 toys, 1 parent) per worker.
  const endpoints = opts.toys + families + (opts.scenario === 'attack' ? opts.workers * 9 : 0);
  return { endpoints, fds: (opts.gateway === 'embedded' ? 2 : 1) * endpoints + 256 };
}

/** Refuses a fleet that would run out of file descriptors (`ulimit -n`). */
export function checkFileLimit(opts: LoadtestOptions, limit: number | null = openFileLimit()): void {
  const { endpoints, fds } = fileDescriptorsNeeded(opts);
  if (limit !== null && fds > limit) {
    throw new CliError(
      `${endpoints} connections need about ${fds} open files but the limit is ${limit}: raise it (ulimit -n)${opts.gateway === 'embedded' ? ' or use --gateway forked' : ''}`,
      2,
    );
  }
}

/** Ramp steps that fit in --duration (bounded by --ramp-steps); at least one must fit. */
export function rampSteps(opts: LoadtestOptions): number {
  return Math.min(opts.rampMaxSteps, Math.floor(opts.durationMs / opts.rampStepMs));
}

/** A recording to send: mono 16-bit PCM at the toy's rate. */
export interface SpeechFile {
  readonly file: string;
  readonly pcm: Int16Array;
}

/**
 * Reads WAV recordings as 16 kHz mono (any rate of SPEECH_WAV_RATES, mono or stereo: the speech
 * bank's reader); a missing, unreadable or unsupported one is a usage error naming `option` and the file.
 */
export function readSpeechFiles(files: readonly string[], option = '--wav'): SpeechFile[] {
  if (files.length > MAX_SPEECH_WAVS) throw new CliError(`at most ${MAX_SPEECH_WAVS} ${option} files`, 2);
  return files.map((file) => {
    let bytes: Uint8Array;
    try {
      if (statSync(file).size > MAX_SPEECH_WAV_BYTES)
        throw new CliError(`${option} ${file}: larger than ${MAX_SPEECH_WAV_BYTES} bytes`, 2);
      bytes = readFileSync(file);
    } catch (err) {
      if (err instanceof CliError) throw err;
      throw new CliError(`${option} ${file}: ${why(err)}`, 2);
    }
    try {
      return { file, pcm: speechPcmFromWav(bytes, file) };
    } catch (err) {
      // speechPcmFromWav's messages start with the file name.
      const msg = err instanceof Error ? err.message.split('\n')[0] : String(err);
      throw new CliError(
        `${option} ${msg} (16-bit PCM WAV, mono or stereo, ${SPEECH_WAV_RATES.map((r) => r / 1000).join('/')} kHz)`,
        2,
      );
    }
  });
}

/** What the toys say: the bundled recordings, --wav files, or synthetic speech. */
export interface Speech {
  readonly kind: 'bundled' | 'wav' | 'synth';
  readonly files: SpeechFile[];
}

/** The speech --speech and --wav choose, read now (so that a bad file is refused before any work). */
export function chooseSpeech(opts: LoadtestOptions): Speech {
  if (opts.wavFiles.length > 0 && opts.speech === 'synth')
    throw new CliError('--wav sends recordings; it cannot be combined with --speech synth', 2);
  if (opts.wavFiles.length > 0) return { kind: 'wav', files: readSpeechFiles(opts.wavFiles) };
  if (opts.speech === 'synth') return { kind: 'synth', files: [] };
  return { kind: 'bundled', files: readSpeechFiles(bundledSpeechFiles(), '--speech bundled:') };
}

export interface Preflight {
  readonly thresholds: Threshold[];
  readonly speech: Speech;
  readonly rampSteps: number;
}

/**
 * Everything that can be refused before the run does any work, cheapest first: the target, the
 * thresholds, the ramp's fit in --duration, --out, the open-file limit, the speech files.
 */
export function preflight(opts: LoadtestOptions, fileLimit: number | null = openFileLimit()): Preflight {
  checkTarget(opts.gateway, opts.allowRemote);
  const thresholds = parseThresholds(opts.thresholds, opts.scenario);
  const steps = rampSteps(opts);
  if (opts.scenario === 'ramp' && steps < 1) {
    throw new CliError(
      `--duration ${formatDurationMs(opts.durationMs)} holds no ramp step of ${formatDurationMs(opts.rampStepMs)}: make --duration at least --ramp-step`,
      2,
    );
  }
  if (opts.outDir) checkOutDir(opts.outDir);
  checkFileLimit(opts, fileLimit);
  const speech = chooseSpeech(opts);
  return { thresholds, speech, rampSteps: Math.max(1, steps) };
}
