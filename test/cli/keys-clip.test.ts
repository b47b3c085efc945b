// CLI: `plushlink keys` and `plushlink clip` run as real child processes in a temp dir: roundtrip, one-line typed errors, exit codes.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fakeOggOpus } from '../protocol/fake-ogg.ts';

const BIN = fileURLToPath(new URL('../../bin/plushlink.js', import.meta.url));
const SLOW = 180_000; // generous: a loaded 2-core CI box runs many CLI processes side by side

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

let dir = '';

function plushlink(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd: dir, timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

/** A failed run: non-zero exit, the error on the first stderr line as `plushlink: ...`, no stack trace. */
function expectOneLineError(r: Run, pattern: RegExp, exitCode?: number): void {
  expect(r.code, r.stderr).not.toBe(0);
  if (exitCode !== undefined) expect(r.code).toBe(exitCode);
  const lines = r.stderr.trimEnd().split('\n');
  expect(lines[0]).toMatch(/^plushlink: /);
  expect(lines[0]).toMatch(pattern);
  expect(r.stderr).not.toMatch(/^\s+at /m);
  expect(r.stderr).not.toMatch(/TypeError|ReferenceError|node:internal/);
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'plushlink-cli-'));
  writeFileSync(join(dir, 'hello.opus'), fakeOggOpus({ durationMs: 1500 }));
  writeFileSync(join(dir, 'raw.bin'), new Uint8Array(700).fill(3));
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('plushlink keys + clip', () => {
  it(
    'keys new writes a 0600 key and an identity, prints the id, and never overwrites',
    async () => {
      const [toy, mom, dad] = await Promise.all([
        plushlink('keys', 'new', '--role', 'toy', '--out', 'toy'),
        plushlink('keys', 'new', '--role', 'parent', '--out', 'mom', '--json'),
        plushlink('keys', 'new', '--role', 'parent', '--out', 'dad'),
      ]);
      expect(toy.code, toy.stderr).toBe(0);
      expect(toy.stdout.trim()).toMatch(/^[a-z2-7]{32}$/);
      expect(dad.code, dad.stderr).toBe(0);
      expect(mom.code, mom.stderr).toBe(0);
      const momJson = JSON.parse(mom.stdout) as Record<string, unknown>;
      expect(momJson.role).toBe('parent');
      expect(JSON.stringify(momJson)).not.toMatch(/signSeed|boxSecret/);
      const key = statSync(join(dir, 'toy', 'endpoint.key'));
      expect(key.mode & 0o777).toBe(0o600);
      const identity = JSON.parse(readFileSync(join(dir, 'toy', 'identity.json'), 'utf8')) as { id: string };
      expect(identity.id).toBe(toy.stdout.trim());
      const before = readFileSync(join(dir, 'toy', 'endpoint.key'), 'utf8');
      const again = await plushlink('keys', 'new', '--role', 'toy', '--out', 'toy');
      expectOneLineError(again, /already exists/);
      expect(readFileSync(join(dir, 'toy', 'endpoint.key'), 'utf8')).toBe(before);
    },
    SLOW,
  );

  it(
    'seal → inspect → open roundtrip; the sequence counter increases',
    async () => {
      const seal = await plushlink(
        'clip',
        'seal',
        '--key',
        'toy',
        '--to',
        'mom/identity.json',
        '--in',
        'hello.opus',
        '--out',
        'hello.env',
      );
      expect(seal.code, seal.stderr).toBe(0);
      expect(readFileSync(join(dir, 'toy', 'sequence'), 'utf8').trim()).toBe('1');
      const [inspect, open, seal2] = await Promise.all([
        plushlink('clip', 'inspect', 'hello.env', '--json', '--from', 'toy/identity.json'),
        plushlink(
          'clip',
          'open',
          '--key',
          'mom',
          '--from',
          'toy/identity.json',
          '--in',
          'hello.env',
          '--out',
          'out.opus',
        ),
        plushlink(
          'clip',
          'seal',
          '--key',
          'toy',
          '--to',
          'mom',
          '--in',
          'raw.bin',
          '--out',
          'raw.env',
          '--duration-ms',
          '250',
        ),
      ]);
      expect(inspect.code, inspect.stderr).toBe(0);
      const header = JSON.parse(inspect.stdout) as Record<string, unknown>;
      const toyId = readFileSync(join(dir, 'toy', 'identity.json'), 'utf8');
      expect(toyId).toContain(String(header.sender));
      expect(header.type).toBe('clip');
      expect(header.sequence).toBe(1);
      expect(header.durationMs).toBe(1500); // from the Ogg granule position minus pre-skip
      expect(header.signature).toBe('valid');
      expect(inspect.stdout).not.toMatch(/signSeed|boxSecret|contentKey/);
      expect(open.code, open.stderr).toBe(0);
      expect(readFileSync(join(dir, 'out.opus'))).toEqual(readFileSync(join(dir, 'hello.opus')));
      expect(statSync(join(dir, 'out.opus')).mode & 0o777).toBe(0o600);
      expect(seal2.code, seal2.stderr).toBe(0);
      expect(readFileSync(join(dir, 'toy', 'sequence'), 'utf8').trim()).toBe('2');
    },
    SLOW,
  );

  it(
    'tampered, truncated, wrongly addressed or replayed inputs: one line on stderr, non-zero exit',
    async () => {
      const env = readFileSync(join(dir, 'hello.env'));
      const tampered = Buffer.from(env);
      tampered[tampered.length - 300]! ^= 0x01;
      writeFileSync(join(dir, 'tampered.env'), tampered);
      writeFileSync(join(dir, 'truncated.env'), env.subarray(0, env.length - 10));
      writeFileSync(join(dir, 'huge.env'), Buffer.alloc(1_310_721));
      const open = (file: string, key = 'mom', from = 'toy/identity.json') =>
        plushlink('clip', 'open', '--key', key, '--from', from, '--in', file, '--out', 'x.opus');
      const [bad, cut, stranger, wrongSender, huge, replay, notOgg] = await Promise.all([
        open('tampered.env'),
        open('truncated.env'),
        open('hello.env', 'dad'),
        open('hello.env', 'mom', 'dad/identity.json'),
        open('huge.env'),
        plushlink(
          'clip',
          'seal',
          '--key',
          'toy',
          '--to',
          'mom',
          '--in',
          'hello.opus',
          '--out',
          'r.env',
          '--seq',
          '1',
        ),
        plushlink('clip', 'seal', '--key', 'toy', '--to', 'mom', '--in', 'raw.bin', '--out', 'r.env'),
      ]);
      expectOneLineError(bad, /PLK_E_BAD_SIGNATURE/);
      expectOneLineError(cut, /PLK_E_TRUNCATED/);
      expectOneLineError(stranger, /PLK_E_NOT_RECIPIENT/);
      expectOneLineError(wrongSender, /PLK_E_WRONG_ENDPOINT/);
      expectOneLineError(huge, /PLK_E_LIMIT/);
      expectOneLineError(replay, /not above the last sequence number/);
      expectOneLineError(notOgg, /not an Ogg Opus file/);
      for (const r of [bad, cut, stranger, wrongSender, huge])
        expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
      // No refused open left an output file behind.
      expect(() => statSync(join(dir, 'x.opus'))).toThrow(expect.objectContaining({ code: 'ENOENT' }));
    },
    SLOW,
  );

  it(
    '--help on every subcommand exits 0, --version works, an unknown option exits 2',
    async () => {
      const helps = await Promise.all(
        [
          ['keys'],
          ['keys', 'new'],
          ['keys', 'show'],
          ['clip'],
          ['clip', 'seal'],
          ['clip', 'open'],
          ['clip', 'inspect'],
        ].map((cmd) => plushlink(...cmd, '--help')),
      );
      for (const h of helps) {
        expect(h.code, h.stderr).toBe(0);
        expect(h.stdout).toMatch(/^Usage: plushlink (keys|clip)/);
      }
      const [version, unknown] = await Promise.all([
        plushlink('--version'),
        plushlink('clip', 'inspect', 'hello.env', '--bogus'),
      ]);
      expect(version.code).toBe(0);
      expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
      expectOneLineError(unknown, /unknown option '--bogus'/, 2);
    },
    SLOW,
  );
});
