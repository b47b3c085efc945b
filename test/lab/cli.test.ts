// `plushlink lab run|compare|sweep` through the built CLI: one simulated day, tables, JSON, self-contained escaped HTML, one-line errors.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const BIN = fileURLToPath(new URL('../../bin/plushlink.js', import.meta.url));
const EXAMPLES = fileURLToPath(new URL('../../examples/', import.meta.url));
const SLOW = 120_000; // a loaded 2-core CI box runs many CLI processes side by side

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

let dir = '';

function plushlink(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd: dir, timeout: 90_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

/** A failed run: the exit code and exactly one line `plushlink: lab: ...` on stderr, no stack trace. */
function oneLine(r: Run, code: number, pattern: RegExp): void {
  expect(r.code, r.stderr).toBe(code);
  const lines = r.stderr.trimEnd().split('\n');
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^plushlink: /);
  expect(lines[0]).toMatch(pattern);
}

function config(name: string, body: Record<string, unknown>): string {
  const file = join(dir, `${name}.json`);
  writeFileSync(file, JSON.stringify({ speech: 'synthetic', ...body }));
  return file;
}

const tiny = { clipsSentPerDay: 2, clipSeconds: 2, clipsReceivedPerDay: 1 };

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'plushlink-lab-cli-'));
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('plushlink lab', () => {
  it(
    'runs one simulated day of the cheap BLE example (20 + 10 clips of 8 s) and writes JSON and HTML',
    async () => {
      const cheap = JSON.parse(readFileSync(join(EXAMPLES, 'lab-ble-cheap.json'), 'utf8')) as Record<
        string,
        unknown
      >;
      const file = config('cheap', { ...cheap, name: 'cheap <day> & "quotes"' });
      const r = await plushlink('lab', 'run', file, '--json', '--out', 'out-run');
      expect(r.code, r.stderr).toBe(0);
      const report = JSON.parse(r.stdout) as {
        day: {
          clipsSent: number;
          clipsReceived: number;
          batteryDays: number;
          perClip: { bytes: { total: number } };
        };
        sent: unknown[];
      };
      expect(report.day.clipsSent).toBe(20);
      expect(report.day.clipsReceived).toBe(10);
      expect(report.day.batteryDays).toBeGreaterThan(0);
      const slug = 'cheap-day-quotes';
      expect(JSON.parse(readFileSync(join(dir, 'out-run', `${slug}.json`), 'utf8'))).toEqual(report);
      const html = readFileSync(join(dir, 'out-run', `${slug}.html`), 'utf8');
      expect(html).toContain('cheap &#60;day&#62; &#38; &#34;quotes&#34;');
      expect(html).not.toContain('<day>');
    },
    SLOW,
  );

  it(
    'run prints the per-clip table and day totals; the same config prints the same JSON twice',
    async () => {
      const file = config('small', { name: 'small', usage: tiny, codec: { complexity: 0 } });
      const [text, a, b] = await Promise.all([
        plushlink('lab', 'run', file),
        plushlink('lab', 'run', file, '--json'),
        plushlink('lab', 'run', file, '--json'),
      ]);
      expect(text.code, text.stderr).toBe(0);
      expect(text.stdout).toContain('lab run "small" (seed 1)');
      expect(text.stdout).toMatch(/sent clips \(toy → parents\)/);
      expect(text.stdout).toMatch(/battery\s+[\d,.]+ days on 1,000 mAh/);
      expect(text.stdout).toMatch(/quality\s+mel distance [\d.]+ dB/);
      expect(a.code, a.stderr).toBe(0);
      expect(a.stdout).toBe(b.stdout);
    },
    SLOW,
  );

  it(
    'compare prints deltas against the first and writes JSON and a self-contained HTML page with charts',
    async () => {
      const base = config('base', { name: 'base', usage: tiny, codec: { complexity: 0, bitrateKbps: 24 } });
      const low = config('low', {
        name: '<script>alert(1)</script>',
        usage: tiny,
        codec: { complexity: 0, bitrateKbps: 12 },
      });
      const r = await plushlink('lab', 'compare', base, low, '--out', 'cmp');
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/^Protocol lab: base vs <script>alert\(1\)<\/script>/);
      expect(r.stdout).toMatch(/envelope per clip \(B\)\s+[\d,]+\s+[\d,]+ \(−[\d.]+%\)/);
      expect(r.stdout).toContain('(deltas against the first column)');
      const json = JSON.parse(readFileSync(join(dir, 'cmp', 'compare.json'), 'utf8')) as {
        kind: string;
        runs: { figures: Record<string, number>; deltas: Record<string, number> }[];
      };
      expect(json.kind).toBe('compare');
      expect(json.runs).toHaveLength(2);
      expect(json.runs[1]!.figures.opusBytes).toBeLessThan(json.runs[0]!.figures.opusBytes!);
      expect(json.runs[1]!.deltas.opusBytes).toBeLessThan(0);
      const html = readFileSync(join(dir, 'cmp', 'compare.html'), 'utf8');
      expect(html).toMatch(/^<!DOCTYPE html>/);
      expect(html).toContain('&#60;script&#62;alert(1)&#60;/script&#62;');
      expect(html).not.toMatch(/<script/i);
      expect(html).not.toMatch(/\b(src|href)\s*=|@import|url\(/i);
      expect(html.match(/<svg /g)?.length).toBeGreaterThanOrEqual(8);
      for (const title of [
        'Bytes per sent clip by category',
        'airtime per clip',
        'time to first audio',
        'Energy per day',
        'battery life',
        'quality',
      ]) {
        expect(html).toContain(title);
      }
    },
    SLOW,
  );

  it(
    'sweep runs one config per value and charts each figure against it',
    async () => {
      const base = config('sweep', {
        name: 'sweep',
        usage: { ...tiny, clipsReceivedPerDay: 0 },
        codec: { complexity: 0 },
      });
      const r = await plushlink(
        'lab',
        'sweep',
        base,
        '--set',
        'codec.bitrateKbps=8,16,32',
        '--json',
        '--out',
        'sw',
      );
      expect(r.code, r.stderr).toBe(0);
      const s = JSON.parse(r.stdout) as {
        kind: string;
        headers: string[];
        runs: { figures: Record<string, number> }[];
      };
      expect(s.kind).toBe('sweep');
      expect(s.headers).toEqual(['codec.bitrateKbps=8', 'codec.bitrateKbps=16', 'codec.bitrateKbps=32']);
      const opus = s.runs.map((x) => x.figures.opusBytes!);
      expect(opus[0]).toBeLessThan(opus[1]!);
      expect(opus[1]).toBeLessThan(opus[2]!);
      const html = readFileSync(join(dir, 'sw', 'sweep.html'), 'utf8');
      expect(html).toContain('<path d="M');
      expect(html).toContain('codec.bitrateKbps');
    },
    SLOW,
  );

  it(
    'refuses bad input with one line and the right exit code; --help everywhere',
    async () => {
      const bad = config('bad', { codec: { bitrateKbps: 1000 } });
      const v2 = config('v7', { protocol: { version: 7 } });
      writeFileSync(join(dir, 'broken.json'), '{"codec": ');
      const wav = config('nowav', { speech: 'missing.wav', usage: tiny });
      const [r1, r2, r3, r4, r5, r6, r7, h1, h2, h3, h4] = await Promise.all([
        plushlink('lab', 'run', bad),
        plushlink('lab', 'run', v2),
        plushlink('lab', 'run', join(dir, 'broken.json')),
        plushlink('lab', 'run', join(dir, 'nope.json')),
        plushlink('lab', 'compare', bad),
        plushlink('lab', 'sweep', bad, '--set', 'codec.bitrateKbps=8,1000'),
        plushlink('lab', 'run', wav),
        plushlink('lab', '--help'),
        plushlink('lab', 'run', '--help'),
        plushlink('lab', 'compare', '--help'),
        plushlink('lab', 'sweep', '--help'),
      ]);
      oneLine(r1, 2, /^plushlink: lab: codec\.bitrateKbps: must be 6\.\.64, got 1000$/);
      oneLine(
        r2,
        2,
        /^plushlink: lab: protocol\.version: version 7 is not available in this lab \(available: 1, 2\)$/,
      );
      oneLine(r3, 2, /^plushlink: lab: .*broken\.json: not valid JSON \(/);
      oneLine(r4, 2, /^plushlink: lab: cannot read configuration .*nope\.json: no such file$/);
      oneLine(r5, 2, /^plushlink: lab: compare needs at least two configurations$/);
      oneLine(r6, 2, /^plushlink: lab: codec\.bitrateKbps: must be 6\.\.64, got 1000$/);
      oneLine(r7, 1, /^plushlink: lab: speech: cannot read missing\.wav: no such file$/);
      for (const h of [h1, h2, h3, h4]) expect(h.code, h.stderr).toBe(0);
      expect(h1.stdout).toMatch(/run \[options\] <config>[\s\S]*compare[\s\S]*sweep/);
      expect(h2.stdout).toContain('--out <dir>');
      expect(h3.stdout).toContain('<configs...>');
      expect(h4.stdout).toContain('--set <key=values>');
    },
    SLOW,
  );
});
