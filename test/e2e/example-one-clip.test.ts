// examples/one-clip.ts as a reader runs it: it prints where it saved the clip, and the clip is still there afterwards (a playable Ogg Opus file).
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { decodeOggToPcm } from '../../device/codec/clip.ts';

const root = resolve(import.meta.dirname, '../..');
let cwd: string;
beforeAll(async () => {
  cwd = await mkdtemp(join(tmpdir(), 'plk-example-'));
});
afterAll(async () => {
  await rm(cwd, { recursive: true, force: true });
});

it('keeps the clip it reports in ./out/', async () => {
  const r = await new Promise<{ code: number | null; stdout: string; stderr: string }>((done) => {
    const child = spawn(
      process.execPath,
      [join(root, 'node_modules/tsx/dist/cli.mjs'), join(root, 'examples/one-clip.ts')],
      { cwd, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => {
      stdout += b.toString();
    });
    child.stderr.on('data', (b: Buffer) => {
      stderr += b.toString();
    });
    child.on('close', (code) => done({ code, stdout, stderr }));
  });
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  const saved = /parent saved (out\/mum-from-bear-[0-9a-f]+\.opus) \(kept/.exec(r.stdout);
  expect(saved, r.stdout).not.toBeNull();
  expect(await readdir(join(cwd, 'out'))).toHaveLength(1);
  const ogg = new Uint8Array(await readFile(join(cwd, saved![1]!)));
  // "Hello mummy! I love you." from assets/speech: 2.06 s at 16 kHz.
  expect(decodeOggToPcm(ogg).samples.length).toBeGreaterThan(30_000);
});
