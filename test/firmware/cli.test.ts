// `plushlink firmware …` as a user runs it: --help everywhere, 0600 vendor keys, sign and inspect round trip, one-line typed errors with exit codes [PLK-13.7].
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toHex } from '../../shared/bytes.ts';
import { sha256 } from '../../shared/crypto.ts';
import { seededRandom } from '../../shared/random.ts';

const BIN = fileURLToPath(new URL('../../bin/plushlink.js', import.meta.url));
const SLOW = 120_000;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

let dir = '';
const image = seededRandom('firmware-cli/image')(5000);

function plushlink(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd: dir, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

function expectOneLineError(r: Run, pattern: RegExp, exitCode: number): void {
  expect(r.code, r.stderr).toBe(exitCode);
  const lines = r.stderr.trimEnd().split('\n');
  expect(lines[0]).toMatch(/^plushlink: /);
  expect(lines[0]).toMatch(pattern);
  expect(r.stderr).not.toMatch(/^\s+at /m);
  expect(r.stdout).toBe('');
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'plk-fw-cli-'));
  writeFileSync(join(dir, 'fw.img'), image);
  writeFileSync(join(dir, 'other.img'), seededRandom('firmware-cli/other')(5000));
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('plushlink firmware', () => {
  it(
    '--help on the group and every subcommand exits 0; --version still prints the version',
    async () => {
      const runs = await Promise.all(
        [[], ['keygen'], ['sign'], ['inspect'], ['trust'], ['publish']].map((sub) =>
          plushlink('firmware', ...sub, '--help'),
        ),
      );
      for (const r of runs) {
        expect(r.code, r.stderr).toBe(0);
        expect(r.stdout).toMatch(/^Usage: plushlink firmware/);
      }
      expect(runs[2]!.stdout).toContain('--min-version <k>');
      expect((await plushlink('--version')).stdout).toMatch(/^\d+\.\d+\.\d+\n$/);
    },
    SLOW,
  );

  it(
    'keygen writes a 0600 vendor key and never overwrites; sign and inspect round trip',
    async () => {
      const k = await plushlink('firmware', 'keygen', '--out', 'vendor', '--json');
      expect(k.code, k.stderr).toBe(0);
      const key = JSON.parse(k.stdout) as { id: string; role: string; keyFile: string };
      expect(key.role).toBe('vendor');
      expect(statSync(join(dir, 'vendor', 'endpoint.key')).mode & 0o777).toBe(0o600);
      expectOneLineError(await plushlink('firmware', 'keygen', '--out', 'vendor'), /already exists/, 1);

      const s = await plushlink(
        'firmware',
        'sign',
        '--key',
        'vendor',
        '--model',
        'plushbear-1',
        '--version',
        '7',
        '--min-version',
        '5',
        '--image',
        'fw.img',
        '--out',
        'fw.manifest',
        '--released-at',
        '2026-03-01T00:00:00Z',
        '--json',
      );
      expect(s.code, s.stderr).toBe(0);
      const signed = JSON.parse(s.stdout) as Record<string, unknown>;
      expect(signed).toMatchObject({ model: 'plushbear-1', version: 7, minVersion: 5, vendor: key.id });

      const i = await plushlink(
        'firmware',
        'inspect',
        'fw.manifest',
        '--vendor',
        'vendor/identity.json',
        '--image',
        'fw.img',
      );
      expect(i.code, i.stderr).toBe(0);
      expect(JSON.parse(i.stdout)).toEqual({
        type: 'firmware-manifest',
        vendor: key.id,
        model: 'plushbear-1',
        version: 7,
        minVersion: 5,
        imageSize: 5000,
        imageSha256: toHex(sha256(image)),
        releasedAt: '2026-03-01T00:00:00.000Z',
        signature: signed.signature,
        size: 150,
        signatureCheck: 'valid',
        imageCheck: 'matches',
      });
      const unchecked = JSON.parse(
        (await plushlink('firmware', 'inspect', 'fw.manifest', '--json')).stdout,
      ) as {
        signatureCheck: string;
      };
      expect(unchecked.signatureCheck).toBe('not verified');
    },
    SLOW,
  );

  it(
    'refuses bad input with one line: usage errors exit 2, typed errors exit 1',
    async () => {
      await plushlink('firmware', 'keygen', '--out', 'v2');
      await plushlink('keys', 'new', '--role', 'toy', '--out', 'toy');
      const sign = (...extra: string[]) =>
        plushlink(
          'firmware',
          'sign',
          '--key',
          'v2',
          '--model',
          'plushbear-1',
          '--version',
          '3',
          '--image',
          'fw.img',
          '--out',
          'x.manifest',
          ...extra,
        );
      expectOneLineError(await sign('--min-version', '4'), /--min-version 4 is above --version 3/, 2);
      expectOneLineError(await sign(), /--min-version/, 2);
      expectOneLineError(
        await plushlink(
          'firmware',
          'sign',
          '--key',
          'v2',
          '--model',
          'Bear!',
          '--version',
          '1',
          '--min-version',
          '0',
          '--image',
          'fw.img',
          '--out',
          'x',
        ),
        /--model must be/,
        2,
      );
      expectOneLineError(
        await plushlink(
          'firmware',
          'sign',
          '--key',
          'toy',
          '--model',
          'plushbear-1',
          '--version',
          '1',
          '--min-version',
          '0',
          '--image',
          'fw.img',
          '--out',
          'x',
        ),
        /holds a toy key, not a vendor key/,
        1,
      );
      expect((await sign('--min-version', '1')).code).toBe(0);
      expectOneLineError(
        await plushlink('firmware', 'inspect', 'x.manifest', '--vendor', 'vendor/identity.json'),
        /^plushlink: PLK_E_WRONG_VENDOR/,
        1,
      );
      expectOneLineError(
        await plushlink('firmware', 'inspect', 'x.manifest', '--image', 'other.img'),
        /^plushlink: PLK_E_IMAGE_MISMATCH/,
        1,
      );
      expectOneLineError(await plushlink('firmware', 'inspect', 'fw.img'), /^plushlink: PLK_E_/, 1);
      expectOneLineError(
        await plushlink('firmware', 'trust', 'toy/identity.json', '--data', 'nodata'),
        /toy identity, not a vendor identity/,
        1,
      );
      expectOneLineError(
        await plushlink(
          'firmware',
          'publish',
          '--data',
          'nodata',
          '--manifest',
          'x.manifest',
          '--image',
          'fw.img',
        ),
        /no PlushLink gateway data/,
        1,
      );
    },
    SLOW,
  );
});
