// The fleet and demo commands as a user runs them: usage errors exit 2 with one line; the demo runs with the bundled speech, saves .opus files, drains on Ctrl-C and ends on an ok line.
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const BIN = resolve(import.meta.dirname, '../../bin/plushlink.js');

function run(args: string[], cwd: string, onStdout?: (chunk: string, kill: () => void) => void) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((done) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => {
      stdout += b.toString();
      onStdout?.(b.toString(), () => child.kill('SIGINT'));
    });
    child.stderr.on('data', (b: Buffer) => {
      stderr += b.toString();
    });
    child.on('close', (code) => done({ code, stdout, stderr }));
  });
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'plk-cli-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('plushlink fleet', () => {
  it.each([
    [
      [
        'fleet',
        '--families',
        'x',
        '--dir',
        'f',
        '--gateway',
        'mqtt://127.0.0.1:1',
        '--gateway-identity',
        'i.json',
      ],
    ],
    [['fleet', '--dir', 'f', '--gateway', 'mqtt://127.0.0.1:1']],
  ])('refuses bad arguments with exit 2: %j', async (args) => {
    const r = await run(args, dir);
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n')[0]).toMatch(/^plushlink: /);
    expect(r.stdout).toBe('');
  });
});

describe('plushlink demo', () => {
  it('runs with no configuration, keeps clips as .opus files in ./out and exits 0 on Ctrl-C', async () => {
    let interrupted = false;
    const r = await run(['demo', '--duration', '60s'], dir, (chunk, kill) => {
      if (!interrupted && /received clip from/.test(chunk)) {
        interrupted = true;
        kill();
      }
    });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/gateway data: .*data \(created\)/);
    expect(r.stdout).toMatch(/clips sent \d+/);
    expect(r.stdout).toMatch(/^speech: bundled speech \(assets\/speech: 4 recordings/m);
    // Ctrl-C lets what is in flight arrive: the last line says everything sealed was delivered.
    expect(r.stdout).toMatch(/^stopping \(Ctrl-C\): up to 8 s for clips in flight/m);
    expect(r.stdout.trimEnd().split('\n').at(-1)).toMatch(
      /^ok: (\d+)\/\1 delivered \(6\/6 endpoints connected, stopped early\)$/,
    );
    expect(interrupted).toBe(true);
    const files = await readdir(join(dir, 'out'));
    expect(files.some((f) => f.endsWith('.opus'))).toBe(true);
  }, 60_000);

  it('refuses a missing --wav in one line before it starts a gateway', async () => {
    const cwd = await mkdtemp(join(dir, 'wav-'));
    const r = await run(['demo', '--wav', 'my-voice.wav'], cwd);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^plushlink: no such file or directory: .*my-voice\.wav\n$/);
    expect(await readdir(cwd)).toEqual([]);
  });
});
