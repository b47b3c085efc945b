// Unit tests of the SVG plotting module: ticks, escaping, well-formed output, gaps and empty data.
import { describe, expect, it } from 'vitest';
import {
  escapeXml,
  formatTick,
  histogramChart,
  lineChart,
  niceTicks,
} from '../../scripts/loadtest/svg-plot.ts';

function assertWellFormed(svg: string): void {
  expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
  expect(svg.endsWith('</svg>')).toBe(true);
  expect(svg).not.toMatch(/NaN|Infinity|undefined/);
  // every opened element is closed (self-closing or paired)
  const opens = (svg.match(/<(svg|text|g)\b/g) ?? []).length;
  const closes = (svg.match(/<\/(svg|text|g)>/g) ?? []).length;
  expect(closes).toBe(opens);
}

describe('niceTicks', () => {
  it('covers the range with 1-2-5 steps', () => {
    expect(niceTicks(0, 10, 5)).toEqual([0, 2, 4, 6, 8, 10]);
    expect(niceTicks(0, 97, 5)).toEqual([0, 20, 40, 60, 80, 100]);
    const t = niceTicks(0.013, 0.27, 5);
    expect(t[0]).toBeLessThanOrEqual(0.013);
    expect(t[t.length - 1]).toBeGreaterThanOrEqual(0.27);
  });
  it('handles degenerate ranges', () => {
    expect(niceTicks(0, 0)).toEqual([0, 1]);
    expect(niceTicks(5, 5).length).toBeGreaterThan(1);
    expect(niceTicks(Number.NaN, 1)).toEqual([0]);
    expect(niceTicks(10, 0)[0]).toBe(0);
  });
});

describe('formatting', () => {
  it('escapes markup', () => {
    expect(escapeXml('<a href="x">&\'')).toBe('&#60;a href=&#34;x&#34;&#62;&#38;&#39;');
  });
  it('shortens tick labels', () => {
    expect(formatTick(12000)).toBe('12k');
    expect(formatTick(2_500_000)).toBe('2.5M');
    expect(formatTick(0.25)).toBe('0.25');
  });
});

describe('lineChart', () => {
  it('draws one path per contiguous run and a legend entry per series', () => {
    const svg = lineChart({
      title: 'Latency <ms>',
      xLabel: 't',
      yLabel: 'ms',
      series: [
        {
          name: 'p50',
          color: '#123456',
          points: [
            [0, 1],
            [1, 2],
            [2, null],
            [3, 4],
            [4, 5],
          ],
        },
        {
          name: 'p99',
          color: '#654321',
          points: [
            [0, 3],
            [1, 6],
            [2, 7],
          ],
        },
      ],
      hLine: { y: 25, label: 'target' },
    });
    assertWellFormed(svg);
    expect((svg.match(/<path /g) ?? []).length).toBe(3);
    expect(svg).toContain('Latency &#60;ms&#62;');
    expect(svg).toContain('>p99</text>');
    expect(svg).toContain('stroke-dasharray');
  });
  it('draws phase bands, event markers, a step series and a hover column per x value', () => {
    const svg = lineChart({
      id: 'rate',
      title: 'Rate',
      xLabel: 'time (s)',
      yLabel: '/s',
      bands: [
        { from: 0, to: 2, label: 'before-storm' },
        { from: 2, to: 4, label: 'after-storm' },
      ],
      markers: [{ x: 2, label: 'storm: 4 toys dropped' }],
      hoverX: (x) => `t = ${x} s`,
      series: [
        {
          name: 'offered',
          color: '#777',
          step: true,
          width: 7,
          unit: 'clips/s',
          points: [
            [1, 10],
            [2, 20],
            [3, 20],
          ],
        },
        {
          name: 'achieved',
          color: '#00f',
          unit: 'clips/s',
          points: [
            [1, 9],
            [2, 19.5],
            [3, 20],
          ],
        },
      ],
    });
    assertWellFormed(svg);
    expect(svg).toContain('data-chart="rate"');
    expect((svg.match(/<rect class="band"/g) ?? []).length).toBe(2);
    expect(svg).toContain('>before-storm</text>');
    expect(svg).toContain('>storm: 4 toys dropped</text>');
    expect((svg.match(/<rect class="hover"/g) ?? []).length).toBe(3);
    expect(svg).toContain('<title>t = 2 s\noffered: 20 clips/s\nachieved: 19.5 clips/s</title>');
    // the step series goes up at the start of the interval its value belongs to: M x1 y10, L x1 y20, L x2 y20…
    const step = /data-series="offered" d="([^"]+)"/.exec(svg)?.[1] ?? '';
    expect(step.split('L').length).toBe(5);
    // few points are marked one by one (the wide step series is not)
    expect((svg.match(/<circle class="series" data-series="achieved"/g) ?? []).length).toBe(3);
    expect(svg).not.toContain('<circle class="series" data-series="offered"');
    // the legend is under the title, above the plot
    const legendY = Number(/<text x="\d+" y="(\d+)"[^>]*>offered<\/text>/.exec(svg)?.[1]);
    expect(legendY).toBeGreaterThan(20);
  });
  it('says "no data" when there is none', () => {
    const svg = lineChart({
      title: 'x',
      xLabel: 'x',
      yLabel: 'y',
      series: [{ name: 'a', color: '#000', points: [[1, null]] }],
    });
    assertWellFormed(svg);
    expect(svg).toContain('no data');
  });
  it('marks a single point', () => {
    const svg = lineChart({
      title: 'x',
      xLabel: 'x',
      yLabel: 'y',
      series: [{ name: 'a', color: '#000', points: [[1, 2]] }],
    });
    assertWellFormed(svg);
    expect(svg).toContain('<circle');
  });
});

describe('histogramChart', () => {
  it('draws one bar per non-empty bin, on a log axis with markers', () => {
    const svg = histogramChart({
      title: 'h',
      xLabel: 'ms',
      yLabel: 'n',
      bins: [
        { from: 1, to: 2, count: 5 },
        { from: 2, to: 4, count: 0 },
        { from: 4, to: 8, count: 9 },
      ],
      logX: true,
      markers: [{ x: 3, label: 'p50' }],
    });
    assertWellFormed(svg);
    expect((svg.match(/<rect class="series"/g) ?? []).length).toBe(2);
    expect(svg).toContain('p50');
    // hover: each bar says its range and count
    expect(svg).toContain('<title>4–8: 9</title>');
  });
  it('handles an empty histogram', () => {
    const svg = histogramChart({ title: 'h', xLabel: 'x', yLabel: 'y', bins: [] });
    assertWellFormed(svg);
    expect(svg).toContain('no data');
  });
});
