// The HTML report of a real load test, opened in headless Chromium (Debian's): charts have data, thresholds listed, screenshot saved.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { writeWav } from '../../device/audio/wav.ts';
import type { LoadtestReport } from '../../scripts/loadtest/types.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** Never a downloaded browser: the distribution's Chromium (`apt-get install chromium`, see .ci/run). */
const CHROMIUM = '/usr/bin/chromium';
const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

function run(args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['bin/plushlink.js', 'loadtest', ...args], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

/** 2.5 s of a modulated 180 Hz tone at 22.05 kHz (espeak-ng's rate), stereo: resampled to 16 kHz mono by --wav. */
function recording(): Uint8Array {
  const rate = 22_050;
  const n = Math.round(rate * 2.5);
  const samples = new Int16Array(n * 2);
  for (let i = 0; i < n; i++) {
    const v = Math.round(6000 * Math.sin((2 * Math.PI * 180 * i) / rate) * (0.6 + 0.4 * Math.sin(i / 900)));
    samples[2 * i] = v;
    samples[2 * i + 1] = v;
  }
  return writeWav({ sampleRate: rate, channels: 2, samples });
}

describe('HTML report in a browser', () => {
  it('a storm run with thresholds: exit 3, and the page shows every chart with data and the threshold table', {
    timeout: 180_000,
  }, async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(
        `${CHROMIUM} is missing: install Debian's Chromium (apt-get install -y --no-install-recommends chromium; .ci/run does it) — the report test never downloads a browser`,
      );
    }
    const out = await mkdtemp(join(tmpdir(), 'plk-lt-browser-'));
    const shots = await mkdtemp(join(tmpdir(), 'plk-report-screenshot-'));
    const profile = await mkdtemp(join(tmpdir(), 'plk-chromium-profile-'));
    try {
      const wav = join(out, 'voice.wav');
      await writeFile(wav, recording());
      const r = await run([
        '--scenario',
        'storm',
        '--toys',
        '12',
        '--clip-rate',
        '12',
        '--clip-seconds',
        '1',
        '--duration',
        '4s',
        '--connect-rate',
        '0',
        '--seal',
        'resign',
        '--wav',
        wav,
        '--threshold',
        'e2e.p99<60s',
        '--threshold',
        'lost==0',
        '--threshold',
        'storm.back>=100%',
        '--threshold',
        'e2e.p50<0.001ms',
        '--out',
        join(out, 'report'),
        '--no-progress',
      ]);
      // one threshold cannot hold: the run passed, the thresholds did not
      expect(r.stderr.trimEnd().split('\n').at(-1)).toMatch(
        /^plushlink: result: 1 of 4 thresholds failed \(exit 3\): e2e\.p50<0\.001ms \(measured [\d.]+ ms\)$/,
      );
      expect(r.code).toBe(3);
      expect(r.stdout).toMatch(/^e2e\.p50<0\.001ms\s.*FAIL$/m);
      const rep = JSON.parse(await readFile(join(out, 'report', 'report.json'), 'utf8')) as LoadtestReport;
      expect(rep.thresholds?.map((t) => [t.expression, t.passed])).toEqual([
        ['e2e.p99<60s', true],
        ['lost==0', true],
        ['storm.back>=100%', true],
        ['e2e.p50<0.001ms', false],
      ]);
      expect(rep.result).toMatchObject({ status: 'thresholds-failed', exitCode: 3 });
      expect(rep.audio.source).toMatch(/^recorded speech: .*voice\.wav \(2\.5 s\)$/);
      expect(rep.scenario.storm?.back).toBe(12);
      expect(rep.run.phases?.map((p) => p.name)).toEqual(
        expect.arrayContaining(['connect-toys', 'before-storm', 'storm', 'after-storm']),
      );

      const ctx = await chromium.launchPersistentContext(profile, {
        executablePath: CHROMIUM,
        headless: true,
        args: FLAGS,
        viewport: { width: 1100, height: 900 },
      });
      try {
        const outside: string[] = [];
        await ctx.route('**/*', (route) => {
          const url = route.request().url();
          if (url.startsWith('file:')) return route.continue();
          outside.push(url);
          return route.abort();
        });
        const page = await ctx.newPage();
        const problems: string[] = [];
        page.on('pageerror', (e) => problems.push(e.message));
        page.on('console', (m) => {
          if (m.type() === 'error') problems.push(m.text());
        });
        await page.goto(pathToFileURL(join(out, 'report', 'report.html')).href);
        const charts = await page.$$eval('svg[data-chart]', (svgs) =>
          svgs.map((svg) => {
            const marks = [...svg.querySelectorAll('.series')] as unknown as {
              getBBox(): { width: number; height: number };
            }[];
            return {
              id: svg.getAttribute('data-chart') ?? '',
              marks: marks.length,
              // drawn, not just present: a path with length, a bar or dot with area
              drawn: marks.filter((m) => {
                const b = m.getBBox();
                return b.width > 0 || b.height > 0;
              }).length,
              hovers: svg.querySelectorAll('rect.hover > title, rect.series > title').length,
              noData: svg.textContent?.includes('no data') === true,
            };
          }),
        );
        const ids = charts.map((c) => c.id);
        expect(ids).toEqual(
          expect.arrayContaining(['rate', 'latency', 'online', 'errors', 'histogram', 'cpu']),
        );
        for (const c of charts) {
          expect(c.noData, c.id).toBe(false);
          expect(c.marks, c.id).toBeGreaterThan(0);
          expect(c.drawn, c.id).toBeGreaterThan(0);
          expect(c.hovers, c.id).toBeGreaterThan(0);
        }
        // the offered rate and the storm's moment are on the charts
        expect(await page.locator('svg[data-chart="rate"] [data-series="offered"]').count()).toBeGreaterThan(
          0,
        );
        expect(
          await page.locator('svg[data-chart="online"] text', { hasText: 'storm: 12 toys dropped' }).count(),
        ).toBe(1);
        expect(await page.locator('svg[data-chart="online"] rect.band').count()).toBeGreaterThanOrEqual(3);
        const rows = page.locator('table.thresholds tbody tr');
        expect(await rows.count()).toBe(4);
        expect(await page.locator('table.thresholds tr.fail').count()).toBe(1);
        expect(await page.locator('table.thresholds tr.fail td.verdict').textContent()).toBe('✗ fail');
        expect(await page.locator('h1 .badge').textContent()).toBe('thresholds failed');
        expect(outside).toEqual([]);
        expect(problems).toEqual([]);
        const png = join(shots, 'report.png');
        await page.screenshot({ path: png, fullPage: true });
        expect((await readFile(png)).subarray(1, 4).toString()).toBe('PNG');
        console.log(`report screenshot: ${png}`);
      } finally {
        await ctx.close();
      }
    } finally {
      await rm(out, { recursive: true, force: true });
      await rm(profile, { recursive: true, force: true });
    }
  });
});
