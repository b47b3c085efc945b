// CLI tests for `plushlink encode|decode` run as a child process: outputs, JSON summary, one-line errors.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readWav } from '../../device/audio/wav.ts';
import { readOggOpus } from '../../device/codec/ogg.ts';

const BIN = new URL('../../bin/plushlink.js', import.meta.url).pathname;
const FIXTURE = new URL('../fixtures/speech-16k.wav', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'plushlink-codec-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { timeout: 45_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

function expectOneLineError(r: { code: number; stderr: string }, pattern: RegExp): void {
  expect(r.code).not.toBe(0);
  const lines = r.stderr.trim().split('\n');
  expect(lines[0]).toMatch(/^plushlink: /);
  expect(lines[0]).toMatch(pattern);
  expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
}

describe('plushlink encode/decode', () => {
  it('encodes a WAV to Ogg Opus and decodes it back to the same length, with --json summaries', async () => {
    const opus = join(dir, 'a.opus');
    const enc = await run([
      'encode',
      FIXTURE,
      opus,
      '--bitrate',
      '16',
      '--complexity',
      '5',
      '--frame-ms',
      '40',
      '--json',
    ]);
    expect(enc.code).toBe(0);
    const summary = JSON.parse(enc.stdout) as {
      packets: number;
      settings: { bitrate: number; frameMs: number };
    };
    expect(summary.settings).toMatchObject({ bitrate: 16000, frameMs: 40, complexity: 5 });
    const file = readOggOpus(readFileSync(opus));
    expect(file.packets.length).toBe(summary.packets);

    const wav = join(dir, 'a.wav');
    const dec = await run(['decode', opus, wav, '--rate', '48000', '--json']);
    expect(dec.code).toBe(0);
    const out = readWav(readFileSync(wav));
    const input = readWav(readFileSync(FIXTURE));
    expect(out.sampleRate).toBe(48000);
    expect(out.samples.length).toBe(input.samples.length * 3);
  }, 60_000);

  it('fails with one line and no stack trace for a missing file, a non-WAV and a non-Ogg input', async () => {
    const notWav = join(dir, 'not.wav');
    writeFileSync(notWav, 'hello, this is not audio');
    const [missing, bad, notOgg] = await Promise.all([
      run(['encode', join(dir, 'missing.wav'), join(dir, 'x.opus')]),
      run(['encode', notWav, join(dir, 'x.opus')]),
      run(['decode', FIXTURE, join(dir, 'x.wav')]),
    ]);
    expectOneLineError(missing, /no such file/);
    expectOneLineError(bad, /WAV_NOT_RIFF/);
    expectOneLineError(notOgg, /OGG_BAD_CAPTURE/);
  }, 60_000);

  it('rejects bad options with a usage error (exit 2)', async () => {
    const [r, f, d] = await Promise.all([
      run(['encode', FIXTURE, join(dir, 'x.opus'), '--bitrate', '65']),
      run(['encode', FIXTURE, join(dir, 'x.opus'), '--frame-ms', '30']),
      run(['decode', join(dir, 'a.opus'), join(dir, 'x.wav'), '--rate', '44100']),
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--bitrate must be between 6 and 64/);
    expect(f.code).toBe(2);
    expect(f.stderr).toMatch(/--frame-ms must be 10, 20, 40 or 60/);
    expect(d.code).toBe(2);
  }, 60_000);
});
