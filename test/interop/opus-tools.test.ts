// Interop with the reference tools: opusinfo/opusdec accept our Ogg Opus; our encoder is bit-exact with libopus.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { synthesizeSpeech } from '../../device/audio/synth.ts';
import { readWav } from '../../device/audio/wav.ts';
import { decodeOggToPcm, encodePcmToOgg } from '../../device/codec/clip.ts';
import { readOggOpus } from '../../device/codec/ogg.ts';
import { createEncoder, type OpusFrameMs } from '../../device/codec/opus.ts';

const dir = mkdtempSync(join(tmpdir(), 'plushlink-interop-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const FIXTURE = new URL('../fixtures/speech-16k.wav', import.meta.url).pathname;
const fixture = readWav(readFileSync(FIXTURE)).samples;
const has = (tool: string): boolean => spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;

describe('opus-tools accept our files', () => {
  it('has opusinfo and opusdec (Debian opus-tools, installed by .ci/run)', () => {
    expect(has('opusinfo') && has('opusdec')).toBe(true);
  });

  const cases: { name: string; pcm: Int16Array; frameMs: OpusFrameMs; dtx?: boolean }[] = [
    { name: 'fixture-20ms', pcm: fixture, frameMs: 20 },
    { name: 'fixture-60ms-dtx', pcm: fixture, frameMs: 60, dtx: true },
    { name: 'synth-10ms', pcm: synthesizeSpeech({ seed: 4, durationMs: 3210 }), frameMs: 10 },
  ];
  for (const c of cases) {
    it(`${c.name}: opusinfo validates it and opusdec decodes the exact duration (±1 frame)`, () => {
      const clip = encodePcmToOgg(c.pcm, {
        serial: 0x1234,
        settings: { frameMs: c.frameMs, dtx: c.dtx ?? false },
      });
      const path = join(dir, `${c.name}.opus`);
      writeFileSync(path, clip.ogg);
      const info = execFileSync('opusinfo', [path], { encoding: 'utf8' });
      expect(info).not.toMatch(/WARNING|ERROR/i);
      expect(info).toMatch(/Pre-skip: 312/);
      expect(info).toMatch(/Original sample rate: 16000 Hz/);
      const wavPath = join(dir, `${c.name}.wav`);
      execFileSync('opusdec', ['--rate', '16000', path, wavPath], { stdio: 'pipe' });
      const decoded = readWav(readFileSync(wavPath));
      expect(decoded.sampleRate).toBe(16000);
      expect(Math.abs(decoded.samples.length - c.pcm.length)).toBeLessThanOrEqual(16 * c.frameMs);
    });
  }

  it('we read files written by opusenc (if installed) and decode them to the right length', () => {
    if (!has('opusenc')) return;
    const path = join(dir, 'ref.opus');
    execFileSync('opusenc', ['--quiet', '--bitrate', '24', FIXTURE, path]);
    const file = readOggOpus(readFileSync(path));
    expect(file.head.preSkip).toBe(312);
    expect(file.durationSamples48k).toBe(fixture.length * 3);
    expect(decodeOggToPcm(readFileSync(path)).samples.length).toBe(fixture.length);
  });
});

describe('bit-exact with the system libopus', () => {
  it('has a C compiler (cc) for the reference program', () => {
    expect(has('cc')).toBe(true);
  });

  it('produces the same packets as opus_encoder_create(16000, 1, VOIP) + same CTLs', () => {
    const bin = join(dir, 'opus_bench');
    const build = spawnSync('cc', [
      '-O2',
      '-o',
      bin,
      new URL('../../scripts/bench/opus_bench.c', import.meta.url).pathname,
      '-lopus',
    ]);
    if (build.status !== 0) return; // libopus-dev missing: nothing to compare against
    const raw = join(dir, 'speech.raw');
    writeFileSync(raw, Buffer.from(fixture.buffer, fixture.byteOffset, fixture.byteLength));
    const pk = join(dir, 'c.packets');
    for (const complexity of [0, 5, 10]) {
      const out = JSON.parse(
        execFileSync(bin, [raw, '16000', '20', '24000', String(complexity), '1', pk], { encoding: 'utf8' }),
      ) as {
        lookahead: number;
      };
      expect(out.lookahead).toBe(104); // 6.5 ms at 16 kHz = 312 at 48 kHz: our pre-skip
      const ref = readFileSync(pk);
      const enc = createEncoder({ complexity });
      let off = 0;
      let same = 0;
      let n = 0;
      for (let i = 0; i + 320 <= fixture.length; i += 320, n++) {
        const p = Buffer.from(enc.encode(fixture.subarray(i, i + 320)));
        const len = ref.readUInt16LE(off);
        if (p.equals(ref.subarray(off + 2, off + 2 + len))) same++;
        off += 2 + len;
      }
      expect(same).toBe(n);
    }
  });
});
