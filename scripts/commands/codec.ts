// `plushlink encode|decode`: WAV ⇄ Ogg Opus through the project's codec path (device/audio, device/codec).
import { randomInt } from 'node:crypto';
import { open, readFile, writeFile } from 'node:fs/promises';
import cliProgress from 'cli-progress';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { resample } from '../../device/audio/resample.ts';
import { downmixToMono, type PcmAudio, readWav, WAV_SAMPLE_RATES, writeWav } from '../../device/audio/wav.ts';
import { decodeOggToPcm, encodePcmToOgg } from '../../device/codec/clip.ts';
import type { OpusFrameMs } from '../../device/codec/opus.ts';
import { action, CliError, checkOutFile, intOption, printJson } from '../cli-util.ts';

const MAX_INPUT_BYTES = 256 * 1024 * 1024;
/** Show a progress bar only for clips longer than this (and only when stderr is a terminal). */
const PROGRESS_MIN_MS = 5000;

async function readInput(path: string, what: string): Promise<Uint8Array> {
  const fh = await open(path, 'r');
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new CliError(`${what} ${path} is not a regular file`);
    if (st.size > MAX_INPUT_BYTES)
      throw new CliError(`${what} ${path} is ${st.size} bytes, max ${MAX_INPUT_BYTES}`);
  } finally {
    await fh.close();
  }
  return new Uint8Array(await readFile(path));
}

function progressBar(
  label: string,
  durationMs: number,
): ((done: number, total: number) => void) & { stop(): void } {
  let bar: cliProgress.SingleBar | undefined;
  const enabled = process.stderr.isTTY === true && durationMs > PROGRESS_MIN_MS;
  const update = (done: number, total: number): void => {
    if (!enabled) return;
    if (!bar) {
      bar = new cliProgress.SingleBar(
        {
          stream: process.stderr,
          format: `${label} [{bar}] {percentage}% | {value}/{total} frames`,
          hideCursor: true,
        },
        cliProgress.Presets.shades_classic,
      );
      bar.start(total, 0);
    }
    bar.update(done);
  };
  return Object.assign(update, { stop: () => bar?.stop() });
}

/**
 * The WAV rates `encode` takes, as its --help lists them: every common rate from 8 to 48 kHz,
 * 11.025 and 22.05 kHz included (espeak-ng writes 22.05 kHz). Each is resampled to 16 kHz with the
 * windowed-sinc converter of device/audio/resample.ts.
 */
export const ENCODE_RATES: readonly number[] = [8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000];
const RATES_TEXT = ENCODE_RATES.map((r) => `${r / 1000}`).join(', ');

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
 * readWav at any rate of ENCODE_RATES. device/audio/wav.ts's reader accepts WAV_SAMPLE_RATES only
 * (no 11.025 or 22.05 kHz): for those the rate field of a copy is set to one it takes, so that
 * every other check (format, bits, channels, sizes) stays the reader's, and the real rate is kept.
 */
export function readEncodeInput(bytes: Uint8Array, path: string): PcmAudio {
  const field = wavRateField(bytes);
  if (field && !ENCODE_RATES.includes(field.rate)) {
    throw new CliError(
      `${path}: WAV sample rate ${field.rate} Hz is not supported; encode takes ${RATES_TEXT} kHz`,
    );
  }
  if (!field || WAV_SAMPLE_RATES.includes(field.rate)) return readWav(bytes);
  const copy = bytes.slice();
  new DataView(copy.buffer).setUint32(field.offset, 16000, true);
  return { ...readWav(copy), sampleRate: field.rate };
}

function frameMsOption(value: string): number {
  if (!['10', '20', '40', '60'].includes(value)) {
    throw new InvalidArgumentError(`--frame-ms must be 10, 20, 40 or 60, got "${value}"`);
  }
  return Number(value);
}

interface EncodeOpts {
  bitrate: number;
  complexity: number;
  frameMs: number;
  dtx?: boolean;
  fec?: boolean;
  json?: boolean;
}

interface DecodeOpts {
  rate: string;
  json?: boolean;
}

export function registerCodecCommands(program: Command): void {
  program
    .command('encode')
    .description(
      `encode a 16-bit PCM WAV (mono/stereo; ${RATES_TEXT} kHz, resampled) into Ogg Opus (16 kHz mono, voip)`,
    )
    .argument('<in.wav>', 'input WAV file')
    .argument('<out.opus>', 'output Ogg Opus file')
    .option('--bitrate <kbps>', 'target bitrate in kbit/s (6–64)', intOption('--bitrate', 6, 64), 24)
    .option('--complexity <n>', 'encoder complexity (0–10)', intOption('--complexity', 0, 10), 10)
    .option('--frame-ms <n>', 'frame duration in ms (10, 20, 40 or 60)', frameMsOption, 20)
    .option('--dtx', 'discontinuous transmission (tiny packets during silence)')
    .option('--fec', 'in-band forward error correction')
    .option('--json', 'print a JSON summary')
    .action(
      action(async (inPath: string, outPath: string, opts: EncodeOpts) => {
        await checkOutFile(outPath, 'output');
        const wav = readEncodeInput(await readInput(inPath, 'input'), inPath);
        const mono = downmixToMono(wav.samples, wav.channels);
        const pcm = wav.sampleRate === 16000 ? mono : resample(mono, wav.sampleRate, 16000);
        const durationMs = (pcm.length * 1000) / 16000;
        const progress = progressBar('encode', durationMs);
        const started = performance.now();
        let clip: ReturnType<typeof encodePcmToOgg>;
        try {
          clip = encodePcmToOgg(pcm, {
            serial: randomInt(0, 2 ** 32),
            settings: {
              bitrate: opts.bitrate * 1000,
              complexity: opts.complexity,
              frameMs: opts.frameMs as OpusFrameMs,
              dtx: opts.dtx === true,
              fec: opts.fec === true,
            },
            onProgress: progress,
          });
        } finally {
          progress.stop();
        }
        const elapsedMs = performance.now() - started;
        await writeFile(outPath, clip.ogg);
        const summary = {
          input: { path: inPath, sampleRate: wav.sampleRate, channels: wav.channels },
          output: { path: outPath, bytes: clip.ogg.length },
          durationMs: Math.round(durationMs),
          packets: clip.packets,
          settings: clip.settings,
          preSkip: clip.preSkip48k,
          averageBitrate: Math.round((clip.ogg.length * 8 * 1000) / Math.max(1, durationMs)),
          realtimeFactor: Math.round((durationMs / Math.max(0.001, elapsedMs)) * 10) / 10,
        };
        if (opts.json) printJson(summary);
        else {
          process.stdout.write(
            `${outPath}: ${(durationMs / 1000).toFixed(2)} s, ${clip.packets} packets, ${clip.ogg.length} bytes ` +
              `(${(summary.averageBitrate / 1000).toFixed(1)} kbit/s incl. Ogg)\n`,
          );
        }
      }),
    );

  program
    .command('decode')
    .description('decode an Ogg Opus file into a 16-bit PCM WAV')
    .argument('<in.opus>', 'input Ogg Opus file')
    .argument('<out.wav>', 'output WAV file')
    .addOption(new Option('--rate <hz>', 'output sample rate').choices(['16000', '48000']).default('16000'))
    .option('--json', 'print a JSON summary')
    .action(
      action(async (inPath: string, outPath: string, opts: DecodeOpts) => {
        await checkOutFile(outPath, 'output');
        const bytes = await readInput(inPath, 'input');
        const rate = Number(opts.rate) as 16000 | 48000;
        // Duration is only known after parsing; a bar for long files is still useful while decoding.
        const progress = progressBar('decode', bytes.length > 32_000 ? PROGRESS_MIN_MS + 1 : 0);
        let decoded: ReturnType<typeof decodeOggToPcm>;
        try {
          decoded = decodeOggToPcm(bytes, { sampleRate: rate, onProgress: progress });
        } finally {
          progress.stop();
        }
        await writeFile(
          outPath,
          writeWav({ sampleRate: rate, channels: decoded.channels, samples: decoded.samples }),
        );
        const summary = {
          input: { path: inPath, bytes: bytes.length },
          output: {
            path: outPath,
            sampleRate: rate,
            channels: decoded.channels,
            samples: decoded.samples.length,
          },
          durationMs: Math.round(decoded.durationMs),
          packets: decoded.packets,
        };
        if (opts.json) printJson(summary);
        else {
          process.stdout.write(
            `${outPath}: ${(decoded.durationMs / 1000).toFixed(2)} s at ${rate} Hz from ${decoded.packets} packets\n`,
          );
        }
      }),
    );
}
