// What `plushlink loadtest` refuses before any work: --out, the open-file limit, thresholds, the ramp's fit, --wav files.
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeWav } from '../../device/audio/wav.ts';
import { loadtestOptions } from '../../scripts/loadtest/options.ts';
import {
  checkFileLimit,
  checkOutDir,
  chooseSpeech,
  fileDescriptorsNeeded,
  preflight,
  rampSteps,
  readSpeechFiles,
} from '../../scripts/loadtest/preflight.ts';
import { audioPool, runLoadtest, speechWindows } from '../../scripts/loadtest/runner.ts';
import { expectUsageError } from '../helpers/errors.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

function refusal(fn: () => unknown): string {
  return expectUsageError(fn).message;
}

/** The CLI from dist/ (built by the global setup), optionally under a lower `ulimit -n`. */
function cli(
  args: readonly string[],
  fileLimit?: number,
): { status: number | null; stdout: string; stderr: string } {
  const quoted = args.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const r = spawnSync(
    'bash',
    [
      '-c',
      `${fileLimit ? `ulimit -n ${fileLimit} && ` : ''}exec "${process.execPath}" bin/plushlink.js loadtest ${quoted}`,
    ],
    { cwd: ROOT, encoding: 'utf8', timeout: 60_000 },
  );
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'plk-lt-preflight-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('--out', () => {
  it('creates a missing directory and refuses a file, a path under a file and a directory it cannot write', async () => {
    const fresh = join(dir, 'a', 'b');
    checkOutDir(fresh);
    expect((await stat(fresh)).isDirectory()).toBe(true);
    const file = join(dir, 'file');
    await writeFile(file, 'x');
    expect(refusal(() => checkOutDir(file))).toBe(`--out ${file}: not a directory`);
    expect(refusal(() => checkOutDir(join(file, 'sub')))).toBe(
      `--out ${join(file, 'sub')}: a part of the path is not a directory`,
    );
    // /proc/self is a directory in which no file can be created, even by root
    expect(refusal(() => checkOutDir('/proc/self'))).toMatch(/^--out \/proc\/self: not writable: /);
  });

  it('is checked before any work: nothing is encoded, generated or started', async () => {
    const file = join(dir, 'not-a-dir');
    await writeFile(file, 'x');
    const log: string[] = [];
    await expect(
      runLoadtest(loadtestOptions({ outDir: file, progress: false }), { log: (l) => log.push(l) }),
    ).rejects.toThrow(/not a directory/);
    expect(log).toEqual([]);
    const r = cli(['--out', file, '--no-progress']);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe(`plushlink: --out ${file}: not a directory\n`);
    expect(r.stdout).toBe('');
  });
});

describe('open-file limit', () => {
  it('counts a socket per connection, two with the embedded gateway, and the attackers', () => {
    const o = loadtestOptions({ toys: 1000, toysPerFamily: 4 });
    expect(fileDescriptorsNeeded(o)).toEqual({ endpoints: 1250, fds: 2756 });
    expect(fileDescriptorsNeeded({ ...o, gateway: 'forked' }).fds).toBe(1506);
    expect(fileDescriptorsNeeded({ ...o, scenario: 'attack', workers: 2 }).endpoints).toBe(1268);
    expect(refusal(() => checkFileLimit(o, 2000))).toBe(
      '1250 connections need about 2756 open files but the limit is 2000: raise it (ulimit -n) or use --gateway forked',
    );
    expect(() => checkFileLimit(o, 4000)).not.toThrow();
    expect(() => checkFileLimit(o, null)).not.toThrow();
  });

  it('refuses --toys 50000 under a lower limit at once, before encoding audio or generating identities', () => {
    const r = cli(['--toys', '50000', '--no-progress'], 4096);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe(
      'plushlink: 62500 connections need about 125256 open files but the limit is 4096: raise it (ulimit -n) or use --gateway forked\n',
    );
  });
});

describe('thresholds and the ramp, up front', () => {
  it('refuses a bad --threshold with one line and exit 2', () => {
    const r = cli(['--threshold', 'lost==0', '--threshold', 'e2e.p99<fast', '--no-progress']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(
      /^plushlink: --threshold "e2e\.p99<fast": expected METRIC OP NUMBER\[UNIT\][^\n]*\n$/,
    );
  });

  it('fits the ramp steps in --duration, bounded by --ramp-steps', () => {
    expect(rampSteps(loadtestOptions({ durationMs: 10_000, rampStepMs: 5_000, rampMaxSteps: 10 }))).toBe(2);
    expect(rampSteps(loadtestOptions({ durationMs: 60_000, rampStepMs: 5_000, rampMaxSteps: 10 }))).toBe(10);
    expect(rampSteps(loadtestOptions({ durationMs: 12_000, rampStepMs: 5_000, rampMaxSteps: 10 }))).toBe(2);
    expect(
      refusal(() => preflight(loadtestOptions({ scenario: 'ramp', durationMs: 2_000, rampStepMs: 5_000 }))),
    ).toBe('--duration 2s holds no ramp step of 5s: make --duration at least --ramp-step');
    expect(
      preflight(loadtestOptions({ scenario: 'steady', durationMs: 2_000, rampStepMs: 5_000 })).thresholds,
    ).toEqual([]);
  });
});

describe('speech: the bundled recordings by default, --wav, --speech synth', () => {
  it('sends the bundled recorded speech unless told otherwise', () => {
    const speech = chooseSpeech(loadtestOptions());
    expect(speech.kind).toBe('bundled');
    expect(speech.files.map((f) => f.file.split('/').slice(-3).join('/'))).toEqual([
      'assets/speech/hello-mummy.wav',
      'assets/speech/story-tonight.wav',
      'assets/speech/good-night.wav',
      'assets/speech/park-fun.wav',
    ]);
    const pool = audioPool(1, 'bundled', speech.files, true);
    expect(pool.clips).toHaveLength(4);
    expect(pool.source).toMatch(/^bundled speech \(assets\/speech: 4 recordings, [\d.]+ s\)$/);
    expect(chooseSpeech(loadtestOptions({ speech: 'synth' }))).toEqual({ kind: 'synth', files: [] });
    expect(audioPool(1, 'synth').source).toMatch(/^synthetic speech/);
    expect(refusal(() => chooseSpeech(loadtestOptions({ speech: 'synth', wavFiles: ['x.wav'] })))).toBe(
      '--wav sends recordings; it cannot be combined with --speech synth',
    );
  });

  it("reads espeak-ng's 22.05 kHz as 16 kHz mono", async () => {
    const rate = 22_050;
    const samples = new Int16Array(rate);
    for (let i = 0; i < samples.length; i++) samples[i] = Math.round(8000 * Math.sin(i / 9));
    const wav = join(dir, 'espeak.wav');
    await writeFile(wav, writeWav({ sampleRate: rate, channels: 1, samples }));
    const [speech] = chooseSpeech(loadtestOptions({ wavFiles: [wav] })).files;
    expect(Math.abs((speech?.pcm.length ?? 0) - 16_000)).toBeLessThan(4);
  });

  it('reads any supported rate, mono or stereo, as 16 kHz mono, and refuses what is not a WAV', async () => {
    const seconds = 1.5;
    const rate = 44_100;
    const samples = new Int16Array(Math.round(rate * seconds) * 2);
    for (let i = 0; i < samples.length; i++) samples[i] = Math.round(8000 * Math.sin((i >> 1) / 20));
    const wav = join(dir, 'voice.wav');
    await writeFile(wav, writeWav({ sampleRate: rate, channels: 2, samples }));
    const [speech] = readSpeechFiles([wav]);
    expect(speech?.file).toBe(wav);
    expect(Math.abs((speech?.pcm.length ?? 0) - 16_000 * seconds)).toBeLessThan(4);
    const bogus = join(dir, 'bogus.wav');
    await writeFile(bogus, 'not audio');
    expect(refusal(() => readSpeechFiles([bogus]))).toMatch(
      /^--wav .*bogus\.wav: not a RIFF\/WAVE file \(16-bit PCM WAV/,
    );
    expect(refusal(() => readSpeechFiles([join(dir, 'missing.wav')]))).toMatch(
      /missing\.wav: no such file or directory$/,
    );
    // a recording becomes the pool: 1.5 s cut into one 1 s clip; 0.4 s clips give 3 distinct windows
    const pool = audioPool(1, 'wav', [speech!]);
    expect(pool.clips).toHaveLength(1);
    expect(pool.source).toMatch(/^recorded speech: .*voice\.wav \(1\.5 s\)$/);
    expect(audioPool(0.4, 'wav', [speech!]).clips).toHaveLength(3);
  });

  it('cuts windows one after the other and loops a short recording', () => {
    const pcm = Int16Array.from([1, 2, 3, 4, 5]);
    expect(speechWindows(pcm, 2, 4).map((w) => [...w])).toEqual([
      [1, 2],
      [3, 4],
    ]);
    expect(speechWindows(pcm, 7, 4).map((w) => [...w])).toEqual([[1, 2, 3, 4, 5, 1, 2]]);
  });
});
