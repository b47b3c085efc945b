// `plushlink fleet` as an operator runs it against one real gateway: re-runs with the same seed and --dir deliver everything, a revoked parent fails the run on its last line, Ctrl-C ends a run with a summary.
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeWav } from '../../device/audio/wav.ts';
import { revoke } from '../../gateway/admin.ts';
import { type EmbeddedGateway, startEmbeddedGateway } from '../../gateway/embedded.ts';
import type { EndpointId } from '../../shared/types.ts';

const BIN = resolve(import.meta.dirname, '../../bin/plushlink.js');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function plushlink(args: string[], cwd: string, onStderr?: (text: string, sigint: () => void) => void) {
  return new Promise<Run>((done) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => {
      stdout += b.toString();
    });
    child.stderr.on('data', (b: Buffer) => {
      stderr += b.toString();
      onStderr?.(stderr, () => child.kill('SIGINT'));
    });
    child.on('close', (code) => done({ code, stdout, stderr }));
  });
}

const lastLine = (text: string): string => text.trimEnd().split('\n').at(-1) ?? '';

let dir: string;
let eg: EmbeddedGateway;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'plk-fleet-cli-'));
  eg = await startEmbeddedGateway({ dataDir: join(dir, 'data'), host: '127.0.0.1', port: 0 });
});
afterAll(async () => {
  await eg?.close();
  await rm(dir, { recursive: true, force: true });
});

/** The README recipe, small: 3 families (1 toy + 2 parents each), 2 s of talk, the same seed every time. */
const recipe = (fleetDir: string, ...more: string[]): string[] => [
  'fleet',
  '--gateway',
  eg.url,
  '--gateway-data',
  join(dir, 'data'),
  '--families',
  '3',
  '--duration',
  '2s',
  '--talk-every',
  '700ms',
  '--parent-talk-every',
  '1500ms',
  '--dir',
  fleetDir,
  '--no-progress',
  ...more,
];

describe('plushlink fleet against one gateway', () => {
  it('delivers everything twice in a row with the same seed and --dir, and says so on its last line', async () => {
    const first = await plushlink(recipe('fleet'), dir);
    expect(first.stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect(first.code, first.stdout + first.stderr).toBe(0);
    expect(lastLine(first.stdout)).toMatch(/^ok: (\d+)\/\1 delivered \(9\/9 endpoints connected/);
    expect(first.stdout).toMatch(/speech: bundled speech \(assets\/speech/);
    // The second run used to hang: the seed made the same clip ids, which the gateway refused.
    const second = await plushlink(recipe('fleet'), dir);
    expect(second.code, second.stdout + second.stderr).toBe(0);
    expect(second.stderr).toMatch(/keys reused from/);
    const ok = /^ok: (\d+)\/\1 delivered/.exec(lastLine(second.stdout));
    expect(ok).not.toBeNull();
    expect(Number(ok![1])).toBeGreaterThan(0);
    expect(second.stdout).toMatch(/errors 0/);
  }, 60_000);

  it('exits 1 when a parent is unreachable (revoked), naming what was not delivered on the last line', async () => {
    const roster = JSON.parse(await readFile(join(dir, 'fleet', 'fleet.json'), 'utf8')) as {
      families: { parents: { id: string }[] }[];
    };
    await revoke(eg.store, eg.audit, roster.families[0]!.parents[1]!.id as EndpointId);
    const r = await plushlink(recipe('fleet', '--drain', '1s'), dir);
    expect(r.code).toBe(1);
    const last = lastLine(r.stdout);
    expect(last).toMatch(/^FAILED: /);
    expect(last).toMatch(/1 of 9 endpoints never connected \(connect:CONNECT_REFUSED/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  }, 60_000);

  it('ends a run on the first Ctrl-C with a summary, within its drain time', async () => {
    // A 22.05 kHz stereo recording (espeak-ng's rate) as the operator's own voice.
    const rate = 22050;
    const samples = new Int16Array(rate * 2 * 2);
    for (let i = 0; i < samples.length / 2; i++) {
      const v = Math.round(8000 * Math.sin((2 * Math.PI * 300 * i) / rate) * Math.sin((Math.PI * i) / rate));
      samples[2 * i] = v;
      samples[2 * i + 1] = v;
    }
    await writeFile(join(dir, 'voice.wav'), writeWav({ sampleRate: rate, channels: 2, samples }));
    let interrupted = false;
    const r = await plushlink(
      [
        'fleet',
        ...recipe('sigint', '--wav', 'voice.wav', '--seed', 'sigint')
          .slice(1)
          .map((a) => (a === '2s' ? '10m' : a)),
      ],
      dir,
      (text, sigint) => {
        // Interrupt once the fleet is running (the line printed right before the endpoints start).
        if (!interrupted && /outboxes in /.test(text)) {
          interrupted = true;
          setTimeout(sigint, 1500);
        }
      },
    );
    expect(interrupted).toBe(true);
    expect(r.stderr).toMatch(/Ctrl-C: stopping; up to 10 s for clips in flight/);
    expect(r.stdout).toMatch(/speech: recorded speech: .*voice\.wav \(2\.0 s\)/);
    expect(r.stdout).toMatch(/clips sent \d+, stored \(PUBACK\) \d+/);
    expect(lastLine(r.stdout)).toMatch(/^(ok: .*stopped early|FAILED: )/);
    expect(r.code).toBe(lastLine(r.stdout).startsWith('ok:') ? 0 : 1);
  }, 60_000);

  it('refuses --wav with --speech synth, and a missing --wav, before any work', async () => {
    const both = await plushlink(recipe('never', '--wav', 'voice.wav', '--speech', 'synth'), dir);
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(
      /^plushlink: --wav sends recordings; it cannot be combined with --speech synth\n$/,
    );
    const missing = await plushlink(recipe('never', '--wav', 'nope.wav'), dir);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^plushlink: no such file or directory: .*nope\.wav\n$/);
    await expect(readFile(join(dir, 'never', 'fleet.keys'))).rejects.toThrow(/ENOENT/);
  });
});
