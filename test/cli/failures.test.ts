// The CLI failures of issue 12 as a user meets them: one line on stderr, the right exit code, nothing created or spent — closed pipes, missing --data, bad choices, wrong keys, bad --out, 22.05 kHz WAV, huge airtime.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeWav } from '../../device/audio/wav.ts';
import { SeededRandom } from '../../device/ble/random.ts';
import { estimateTransfer, linkParams, simulateTransfer } from '../../device/ble/timing.ts';
import { openAdmin, registerFamilies } from '../../gateway/admin.ts';
import { startEmbeddedGateway } from '../../gateway/embedded.ts';
import { writeKeyDir } from '../../platform/keyfiles.ts';
import { describeError } from '../../scripts/cli-util.ts';
import { estimateAirtime, simulateAirtime } from '../../scripts/commands/ble.ts';
import { generateIdentity, publicPart } from '../../shared/identity.ts';
import { fakeOggOpus } from '../protocol/fake-ogg.ts';

const BIN = fileURLToPath(new URL('../../bin/plushlink.js', import.meta.url));
const SLOW = 120_000; // a loaded 2-core CI box runs many CLI processes side by side

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

let dir = '';

function settle(resolve: (r: Run) => void) {
  return (err: (Error & { code?: unknown }) | null, stdout: string | Buffer, stderr: string | Buffer) => {
    const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
    resolve({ code, stdout: String(stdout), stderr: String(stderr) });
  };
}

function plushlink(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd: dir, timeout: 60_000 }, settle(resolve));
  });
}

/** `plushlink ARGS | head -n 1` in bash with pipefail: the exit code is plushlink's. */
function piped(args: string): Promise<Run> {
  return new Promise((resolve) => {
    const cmd = `set -o pipefail; "${process.execPath}" "${BIN}" ${args} | head -n 1`;
    execFile('bash', ['-c', cmd], { cwd: dir, timeout: 60_000 }, settle(resolve));
  });
}

/** A failed run: the exit code, and exactly one line `plushlink: ...` on stderr (no stack trace). */
function oneLine(r: Run, code: number, pattern: RegExp): void {
  expect(r.code, r.stderr).toBe(code);
  const lines = r.stderr.trimEnd().split('\n');
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^plushlink: /);
  expect(lines[0]).toMatch(pattern);
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'plushlink-failures-'));
  // A gateway's data directory (key, recorded id, signed anchors) with 6000 families: enough rows
  // that `| head -n 1` closes the pipe while the command is still writing.
  const eg = await startEmbeddedGateway({ dataDir: join(dir, 'data') });
  await eg.close();
  const admin = await openAdmin(join(dir, 'data'), { gatewayKey: join(dir, 'data', 'gateway') });
  await registerFamilies(
    admin.store,
    admin.audit,
    Array.from({ length: 6000 }, () => ({ members: [publicPart(generateIdentity('toy'))] })),
  );
  await admin.close();
  await writeKeyDir(join(dir, 'toy'), generateIdentity('toy'));
  await writeKeyDir(join(dir, 'mum'), generateIdentity('parent'));
  await writeKeyDir(join(dir, 'other-gateway'), generateIdentity('gateway'));
  writeFileSync(join(dir, 'hello.opus'), fakeOggOpus({ durationMs: 1000 }));
  const tone = (rate: number) =>
    writeWav({
      sampleRate: rate,
      channels: 1,
      samples: Int16Array.from({ length: rate }, (_, i) =>
        Math.round(8000 * Math.sin((2 * Math.PI * 440 * i) / rate)),
      ),
    });
  writeFileSync(join(dir, 'espeak-22050.wav'), tone(22050));
  writeFileSync(join(dir, 'tone-11025.wav'), tone(11025));
  writeFileSync(join(dir, 'tone-96000.wav'), tone(96000));
  writeFileSync(join(dir, 'a-file'), 'x');
}, SLOW);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('closed pipes', () => {
  it(
    'family list | head and endpoints list | head end quietly with exit 0',
    async () => {
      const runs = await Promise.all([
        piped('family list --data data'),
        piped('endpoints list --data data'),
        piped('endpoints list --data data --json'),
      ]);
      for (const r of runs) {
        expect(r.stderr).toBe('');
        expect(r.code).toBe(0);
        expect(r.stdout.split('\n').filter(Boolean)).toHaveLength(1);
      }
      expect(runs[0]!.stdout).toMatch(/^f[a-z2-7]{26} 1\n$/);
    },
    SLOW,
  );
});

describe('--data', () => {
  it(
    'a missing --data is refused by every admin command, and nothing is created, unless --create',
    async () => {
      const typo = join(dir, 'TYPO');
      const id = 'a'.repeat(32);
      const [prov, create, ...rest] = await Promise.all([
        plushlink('provision', 'toy', '--data', typo, '--out', join(dir, 'typo-key')),
        plushlink('family', 'create', '--data', typo),
        plushlink('family', 'list', '--data', typo),
        plushlink('family', 'add', `f${'b'.repeat(26)}`, id, '--data', typo),
        plushlink('endpoints', 'list', '--data', typo),
        plushlink('revoke', id, '--data', typo),
        plushlink('audit', 'verify', '--data', typo),
        plushlink('backup', join(dir, 'typo-bk'), '--data', typo),
      ]);
      for (const r of [prov!, create!]) {
        oneLine(
          r,
          1,
          /no PlushLink gateway data in .*TYPO \(wrong --data\?\): add --create to start a new data directory there$/,
        );
      }
      for (const r of rest)
        oneLine(r, 1, /no PlushLink gateway data in .*TYPO \(wrong --data\?\); nothing was created$/);
      expect(existsSync(typo)).toBe(false);
      expect(existsSync(join(dir, 'typo-key'))).toBe(false);
      expect(existsSync(join(dir, 'typo-bk'))).toBe(false);

      const [made, fam] = await Promise.all([
        plushlink(
          'provision',
          'toy',
          '--create',
          '--data',
          join(dir, 'new-data'),
          '--out',
          join(dir, 'new-key'),
        ),
        plushlink('family', 'create', '--create', '--data', join(dir, 'new-data-2')),
      ]);
      expect(made.stderr).toBe('');
      expect(made.stdout).toMatch(/^[a-z2-7]{32}\n$/);
      expect(fam.stdout).toMatch(/^f[a-z2-7]{26}\n$/);
      expect(existsSync(join(dir, 'new-data', 'gateway.db'))).toBe(true);
    },
    SLOW,
  );
});

describe('choices, keys and messages', () => {
  it(
    'gateway --log-level loud is a usage error naming the choices',
    async () => {
      const r = await plushlink('gateway', '--log-level', 'loud', '--data', join(dir, 'loud'), '--port', '0');
      expect(r.code).toBe(2);
      expect(r.stderr.split('\n')[0]).toBe(
        "plushlink: option '--log-level <level>' argument 'loud' is invalid. Allowed choices are fatal, error, warn, info, debug, trace, silent.",
      );
      expect(r.stderr).not.toMatch(/custom levels/);
      expect(existsSync(join(dir, 'loud'))).toBe(false);
    },
    SLOW,
  );

  it(
    '--key DIR/identity.json is a public identity file, not a key to chmod',
    async () => {
      mkdirSync(join(dir, 'public-only'));
      writeFileSync(
        join(dir, 'public-only', 'identity.json'),
        readFileSync(join(dir, 'toy', 'identity.json')),
      );
      const [seal, open, pubOnly] = await Promise.all([
        plushlink(
          'clip',
          'seal',
          '--key',
          'toy/identity.json',
          '--to',
          'mum',
          '--in',
          'hello.opus',
          '--out',
          'x.env',
        ),
        plushlink(
          'clip',
          'open',
          '--key',
          'mum/identity.json',
          '--from',
          'toy',
          '--in',
          'x.env',
          '--out',
          'x.opus',
        ),
        plushlink(
          'clip',
          'seal',
          '--key',
          'public-only',
          '--to',
          'mum',
          '--in',
          'hello.opus',
          '--out',
          'x.env',
        ),
      ]);
      oneLine(
        seal,
        1,
        /^plushlink: --key toy\/identity\.json is a public identity file, not a private key: pass the key directory \(toy\) or its endpoint\.key$/,
      );
      oneLine(open, 1, /--key mum\/identity\.json is a public identity file, not a private key/);
      oneLine(
        pubOnly,
        1,
        /--key public-only holds only a public identity \(identity\.json\), no private key \(endpoint\.key\)/,
      );
      for (const r of [seal, open, pubOnly]) expect(r.stderr).not.toMatch(/chmod/);
      expect(existsSync(join(dir, 'toy', 'sequence'))).toBe(false); // no sequence number spent
    },
    SLOW,
  );

  it(
    'audit verify --gateway-key of another gateway is a wrong key, not a tamper alarm',
    async () => {
      const [wrongKey, wrongId, toyKey, right, rightId] = await Promise.all([
        plushlink('audit', 'verify', '--data', 'data', '--gateway-key', 'other-gateway'),
        plushlink('audit', 'verify', '--data', 'data', '--gateway-key', 'other-gateway/identity.json'),
        plushlink('audit', 'verify', '--data', 'data', '--gateway-key', 'toy/identity.json'),
        plushlink('audit', 'verify', '--data', 'data', '--gateway-key', 'data/gateway'),
        plushlink('audit', 'verify', '--data', 'data', '--gateway-key', 'data/gateway/identity.json'),
      ]);
      const gatewayId = JSON.parse(readFileSync(join(dir, 'data', 'gateway', 'identity.json'), 'utf8'))
        .id as string;
      for (const r of [wrongKey, wrongId, toyKey]) {
        oneLine(
          r,
          1,
          /^plushlink: ADMIN_WRONG_GATEWAY_KEY: .* but data belongs to gateway [a-z2-7]{32}: this key is not the one that signed this log's anchors/,
        );
        expect(r.stderr).toContain(gatewayId);
        expect(r.stderr).not.toMatch(/TAMPERED/);
      }
      expect(toyKey.stderr).toMatch(/toy\/identity\.json is toy [a-z2-7]{32}'s key/);
      for (const r of [right, rightId]) {
        expect(r.stderr).toBe('');
        expect(r.stdout).toMatch(/^audit log OK: .* anchor signatures checked\n$/);
      }
    },
    SLOW,
  );

  it('describes system errors once: no "EISDIR: EISDIR:", the path when Node names one', async () => {
    const err = await readFile(dir).catch((e: unknown) => e);
    expect(describeError(err)).toBe('EISDIR: illegal operation on a directory, read');
    const withPath = Object.assign(new Error("EISDIR: illegal operation on a directory, open '/x'"), {
      code: 'EISDIR',
      path: '/x',
    });
    expect(describeError(withPath)).toBe('is a directory: /x');
    const inUse = Object.assign(new Error('listen EADDRINUSE: address already in use 127.0.0.1:1883'), {
      code: 'EADDRINUSE',
      address: '127.0.0.1',
      port: 1883,
    });
    expect(describeError(inUse)).toBe('address already in use: 127.0.0.1:1883');
  });

  it(
    'gateway --tls-cert DIR names the option, not a bare EISDIR',
    async () => {
      const r = await plushlink(
        'gateway',
        '--data',
        join(dir, 'tls'),
        '--port',
        '0',
        '--tls-cert',
        'toy',
        '--tls-key',
        'toy',
      );
      oneLine(r, 1, /^plushlink: --tls-cert toy is not a file$/);
    },
    SLOW,
  );
});

describe('--out is checked before any work', () => {
  it(
    'clip open/seal --out /missing/x name the path given, and seal spends no sequence number',
    async () => {
      const sealed = await plushlink(
        'clip',
        'seal',
        '--key',
        'toy',
        '--to',
        'mum',
        '--in',
        'hello.opus',
        '--out',
        'hello.env',
      );
      expect(sealed.code, sealed.stderr).toBe(0);
      const before = readFileSync(join(dir, 'toy', 'sequence'), 'utf8');
      const [open, seal, intoDir] = await Promise.all([
        plushlink(
          'clip',
          'open',
          '--key',
          'mum',
          '--from',
          'toy',
          '--in',
          'hello.env',
          '--out',
          '/missing/x',
        ),
        plushlink('clip', 'seal', '--key', 'toy', '--to', 'mum', '--in', 'hello.opus', '--out', '/missing/x'),
        plushlink('clip', 'seal', '--key', 'toy', '--to', 'mum', '--in', 'hello.opus', '--out', 'mum'),
      ]);
      for (const r of [open, seal]) {
        oneLine(r, 1, /^plushlink: cannot write --out \/missing\/x: directory \/missing does not exist$/);
        expect(r.stderr).not.toMatch(/\.tmp/);
      }
      oneLine(intoDir, 1, /^plushlink: --out mum is a directory, not a file$/);
      expect(readFileSync(join(dir, 'toy', 'sequence'), 'utf8')).toBe(before);
    },
    SLOW,
  );

  it(
    'keys new, provision, encode and backup refuse an --out they cannot write before doing anything',
    async () => {
      const [keys, provExisting, encode, backup] = await Promise.all([
        plushlink('keys', 'new', '--role', 'toy', '--out', 'a-file'),
        plushlink('provision', 'toy', '--create', '--data', join(dir, 'not-made'), '--out', 'toy'),
        plushlink('encode', 'espeak-22050.wav', '/missing/dir/x.opus'),
        plushlink('backup', 'a-file/bk', '--data', 'data'),
      ]);
      oneLine(keys, 1, /^plushlink: --out a-file is a file, not a directory$/);
      oneLine(provExisting, 1, /toy\/endpoint\.key already exists; refusing to overwrite a private key$/);
      expect(existsSync(join(dir, 'not-made'))).toBe(false); // refused before the store was created
      oneLine(
        encode,
        1,
        /^plushlink: cannot write output \/missing\/dir\/x\.opus: directory \/missing\/dir does not exist$/,
      );
      oneLine(
        backup,
        1,
        /^plushlink: cannot write backup directory a-file\/bk: .*a-file is not a directory$/,
      );
    },
    SLOW,
  );
});

describe('encode', () => {
  it(
    'takes 22.05 kHz (espeak-ng) and 11.025 kHz WAV, as --help says, and names the rates it takes',
    async () => {
      const [help, r22, r11, r96] = await Promise.all([
        plushlink('encode', '--help'),
        plushlink('encode', 'espeak-22050.wav', 'e22.opus', '--json'),
        plushlink('encode', 'tone-11025.wav', 'e11.opus', '--json'),
        plushlink('encode', 'tone-96000.wav', 'e96.opus'),
      ]);
      expect(help.stdout.replace(/\s+/g, ' ')).toMatch(/8, 11\.025, 12, 16, 22\.05, 24, 32, 44\.1, 48 kHz/);
      for (const [r, rate] of [
        [r22, 22050],
        [r11, 11025],
      ] as const) {
        expect(r.code, r.stderr).toBe(0);
        const summary = JSON.parse(r.stdout) as {
          input: { sampleRate: number };
          durationMs: number;
          packets: number;
        };
        expect(summary.input.sampleRate).toBe(rate);
        expect(summary.durationMs).toBe(1000); // resampled to 16 kHz: one second stays one second
        expect(summary.packets).toBeGreaterThanOrEqual(50);
      }
      const decoded = await plushlink('decode', 'e22.opus', 'e22.wav', '--json');
      expect(decoded.code, decoded.stderr).toBe(0);
      oneLine(
        r96,
        1,
        /^plushlink: tone-96000\.wav: WAV sample rate 96000 Hz is not supported; encode takes 8, 11\.025, 12, 16, 22\.05, 24, 32, 44\.1, 48 kHz$/,
      );
      expect(existsSync(join(dir, 'e96.opus'))).toBe(false);
    },
    SLOW,
  );
});

describe('ble airtime: bounded work', () => {
  it('the periodic estimate and the chunked simulation equal the packet-by-packet model', async () => {
    for (const [attMtu, llDataLength, maxPacketsPerEvent, lossProbability] of [
      [23, 27, 4, 0.1],
      [247, 251, 6, 0.3],
      [100, 27, 3, 0],
      [517, 251, 1, 0.5],
    ] as const) {
      const p = linkParams({ attMtu, llDataLength, maxPacketsPerEvent, lossProbability });
      for (const bytes of [0, 1, 19, 20, 21, 999, 5000, 123_457, 300_001]) {
        const fast = estimateAirtime(bytes, p, 1000); // the periodic form from 1000 bytes up
        const slow = estimateTransfer(bytes, p);
        expect({ ...fast, losslessUs: 0, expectedUs: 0, throughputBps: 0 }).toEqual({
          ...slow,
          losslessUs: 0,
          expectedUs: 0,
          throughputBps: 0,
        });
        expect(fast.losslessUs).toBeCloseTo(slow.losslessUs, 3);
        expect(fast.expectedUs).toBeCloseTo(slow.expectedUs, 3);
        expect(await simulateAirtime(bytes, p, new SeededRandom(7))).toEqual(
          simulateTransfer(bytes, p, new SeededRandom(7)),
        );
      }
    }
    // More than one chunk of the simulation.
    const p = linkParams({ lossProbability: 0.1 });
    expect(await simulateAirtime(6_000_013, p, new SeededRandom(3))).toEqual(
      simulateTransfer(6_000_013, p, new SeededRandom(3)),
    );
  });

  it(
    '1 GiB: an exact estimate at once; its simulation refused in one line; a long simulation shows progress',
    async () => {
      const [estimate, simulate, progress] = await Promise.all([
        plushlink('ble', 'airtime', '--bytes', '1073741824', '--loss', '0.5', '--json'),
        plushlink('ble', 'airtime', '--bytes', '1073741824', '--loss', '0.5', '--seed', '1'),
        plushlink('ble', 'airtime', '--bytes', '50000000', '--seed', '1'),
      ]);
      expect(estimate.code, estimate.stderr).toBe(0);
      const e = JSON.parse(estimate.stdout) as {
        llPackets: number;
        losslessUs: number;
        expectedAttempts: number;
      };
      // 2^30 / 20 bytes per ATT PDU at ATT_MTU 23, one LL packet each; 4 per 30 ms connection event.
      expect(e.llPackets).toBe(53_687_092);
      expect(e.losslessUs).toBeCloseTo(402_653_162_554, -1);
      expect(e.expectedAttempts).toBe(53_687_092 * 4);
      expect(simulate.stdout).toBe('');
      oneLine(
        simulate,
        2,
        /^plushlink: --seed simulates every LL exchange: 1073741824 bytes at loss 0\.5 take about 214748368 exchanges, more than the 50000000 a simulation runs; drop --seed for the exact lossless and expected times, or simulate --bytes \d+ or fewer$/,
      );
      expect(progress.code, progress.stderr).toBe(0);
      expect(progress.stderr.split('\n').filter(Boolean)).toEqual([
        'ble airtime: simulating about 2500000 LL exchanges (each with its loss draws)',
        'ble airtime: simulated 25%',
        'ble airtime: simulated 50%',
        'ble airtime: simulated 75%',
      ]);
      expect(progress.stdout).toMatch(/simulated +\d+\.\d{3} ms \(seed 1, 2500000 exchanges\)/);
    },
    SLOW,
  );
});
