// Tiny static SVG charts (line and histogram) for the self-contained HTML report: no DOM, no dependencies.
//
// Why hand-written: chart libraries (Chart.js, Plotly, Vega, D3) render in a browser DOM or canvas and
// would need a headless browser or jsdom to emit static SVG; we need three simple chart shapes, so a
// ~150-line string builder is smaller than any dependency and keeps the report free of scripts.

export interface Series {
  readonly name: string;
  readonly color: string;
  /** [x, y]; y null leaves a gap. */
  readonly points: readonly (readonly [number, number | null])[];
  /** Dashed stroke, so a series that coincides with another stays visible. */
  readonly dashed?: boolean;
}

export interface LineChartOptions {
  readonly title: string;
  readonly xLabel: string;
  readonly yLabel: string;
  readonly series: readonly Series[];
  readonly width?: number;
  readonly height?: number;
  /** Draw a horizontal reference line (e.g. a latency target). */
  readonly hLine?: { readonly y: number; readonly label: string };
}

export interface HistogramBin {
  readonly from: number;
  readonly to: number;
  readonly count: number;
}

export interface HistogramChartOptions {
  readonly title: string;
  readonly xLabel: string;
  readonly yLabel: string;
  readonly bins: readonly HistogramBin[];
  readonly color?: string;
  readonly width?: number;
  readonly height?: number;
  /** Logarithmic x axis (bins are log-spaced). */
  readonly logX?: boolean;
  /** Vertical markers, e.g. percentiles. */
  readonly markers?: readonly { readonly x: number; readonly label: string }[];
}

const M = { left: 64, right: 16, top: 34, bottom: 46 };
const FONT = 'font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif"';

export function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** "Nice" axis ticks (1, 2, 5 × 10^k steps) covering [min, max]. */
export function niceTicks(min: number, max: number, target = 5): number[] {
  if (!Number.isFinite(min) || !Number.isFinite(max)) return [0];
  if (max < min) [min, max] = [max, min];
  if (max === min) {
    if (max === 0) return [0, 1];
    min = min > 0 ? 0 : min * 2;
    max = Math.max(max, 0);
  }
  const raw = (max - min) / Math.max(1, target);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const start = Math.floor(min / step) * step;
  const ticks: number[] = [];
  for (let v = start, i = 0; v <= max + step * 1e-9 && i < 50; v += step, i++) {
    ticks.push(Number(v.toPrecision(12)));
  }
  if ((ticks[ticks.length - 1] ?? min) < max)
    ticks.push(Number((start + ticks.length * step).toPrecision(12)));
  return ticks;
}

/** Short tick label: 1200 → "1.2k", 0.25 → "0.25". */
export function formatTick(v: number): string {
  const a = Math.abs(v);
  if (a >= 1e6) return `${trim(v / 1e6)}M`;
  if (a >= 1e4) return `${trim(v / 1e3)}k`;
  return trim(v);
}

function trim(v: number): string {
  return String(Number(v.toPrecision(3)));
}

function frame(width: number, height: number, title: string, body: string): string {
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${escapeXml(title)}">` +
    `<rect width="${width}" height="${height}" fill="#fff"/>` +
    `<text x="${M.left}" y="20" ${FONT} font-size="14" font-weight="600" fill="#222">${escapeXml(title)}</text>` +
    body +
    '</svg>'
  );
}

function axes(
  w: number,
  h: number,
  xTicks: readonly { v: number; px: number; label: string }[],
  yTicks: readonly { v: number; px: number; label: string }[],
  xLabel: string,
  yLabel: string,
): string {
  const parts: string[] = [];
  for (const t of yTicks) {
    parts.push(
      `<line x1="${M.left}" x2="${w - M.right}" y1="${t.px}" y2="${t.px}" stroke="#e5e5e5"/>`,
      `<text x="${M.left - 6}" y="${t.px + 4}" ${FONT} font-size="11" text-anchor="end" fill="#555">${escapeXml(t.label)}</text>`,
    );
  }
  for (const t of xTicks) {
    parts.push(
      `<line x1="${t.px}" x2="${t.px}" y1="${h - M.bottom}" y2="${h - M.bottom + 4}" stroke="#888"/>`,
      `<text x="${t.px}" y="${h - M.bottom + 16}" ${FONT} font-size="11" text-anchor="middle" fill="#555">${escapeXml(t.label)}</text>`,
    );
  }
  parts.push(
    `<line x1="${M.left}" x2="${w - M.right}" y1="${h - M.bottom}" y2="${h - M.bottom}" stroke="#888"/>`,
    `<line x1="${M.left}" x2="${M.left}" y1="${M.top}" y2="${h - M.bottom}" stroke="#888"/>`,
    `<text x="${(M.left + w - M.right) / 2}" y="${h - 8}" ${FONT} font-size="12" text-anchor="middle" fill="#333">${escapeXml(xLabel)}</text>`,
    `<text transform="translate(14 ${(M.top + h - M.bottom) / 2}) rotate(-90)" ${FONT} font-size="12" text-anchor="middle" fill="#333">${escapeXml(yLabel)}</text>`,
  );
  return parts.join('');
}

const f1 = (x: number): string => (Math.round(x * 10) / 10).toString();

/** Line chart of one or more series sharing the axes; a legend sits top right. */
export function lineChart(opts: LineChartOptions): string {
  const width = opts.width ?? 960;
  const height = opts.height ?? 280;
  const xs: number[] = [];
  const ys: number[] = [];
  for (const s of opts.series) {
    for (const [x, y] of s.points) {
      if (Number.isFinite(x)) xs.push(x);
      if (y !== null && Number.isFinite(y)) ys.push(y);
    }
  }
  if (opts.hLine) ys.push(opts.hLine.y);
  if (xs.length === 0 || ys.length === 0) {
    return frame(
      width,
      height,
      opts.title,
      `<text x="${width / 2}" y="${height / 2}" ${FONT} font-size="13" text-anchor="middle" fill="#888">no data</text>`,
    );
  }
  const xt = niceTicks(Math.min(...xs), Math.max(...xs), 8);
  const yt = niceTicks(Math.min(0, ...ys), Math.max(...ys), 5);
  const x0 = xt[0] ?? 0;
  const x1 = xt[xt.length - 1] ?? 1;
  const y0 = yt[0] ?? 0;
  const y1 = yt[yt.length - 1] ?? 1;
  const px = (x: number): number => M.left + ((x - x0) / (x1 - x0 || 1)) * (width - M.left - M.right);
  const py = (y: number): number =>
    height - M.bottom - ((y - y0) / (y1 - y0 || 1)) * (height - M.top - M.bottom);
  let body = axes(
    width,
    height,
    xt.map((v) => ({ v, px: px(v), label: formatTick(v) })),
    yt.map((v) => ({ v, px: py(v), label: formatTick(v) })),
    opts.xLabel,
    opts.yLabel,
  );
  if (opts.hLine) {
    const y = py(opts.hLine.y);
    body +=
      `<line x1="${M.left}" x2="${width - M.right}" y1="${f1(y)}" y2="${f1(y)}" stroke="#c0392b" stroke-dasharray="5 4"/>` +
      `<text x="${width - M.right - 4}" y="${f1(y - 4)}" ${FONT} font-size="11" text-anchor="end" fill="#c0392b">${escapeXml(opts.hLine.label)}</text>`;
  }
  opts.series.forEach((s) => {
    const segs: string[] = [];
    let current = '';
    for (const [x, y] of s.points) {
      if (y === null || !Number.isFinite(y) || !Number.isFinite(x)) {
        if (current) segs.push(current);
        current = '';
        continue;
      }
      current += `${current ? 'L' : 'M'}${f1(px(x))} ${f1(py(y))}`;
    }
    if (current) segs.push(current);
    for (const d of segs) {
      body += `<path d="${d}" fill="none" stroke="${escapeXml(s.color)}" stroke-width="2" stroke-linejoin="round"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`;
    }
    // single points would be invisible as paths: mark them
    if (s.points.filter(([, y]) => y !== null).length === 1) {
      const p = s.points.find(([, y]) => y !== null);
      if (p && p[1] !== null)
        body += `<circle cx="${f1(px(p[0]))}" cy="${f1(py(p[1]))}" r="3" fill="${escapeXml(s.color)}"/>`;
    }
  });
  // Legend in the title row (never over the data), right-aligned; ~6.5 px per character.
  let lx = width - M.right;
  for (let i = opts.series.length - 1; i >= 0; i--) {
    const s = opts.series[i]!;
    lx -= 18 + Math.ceil(s.name.length * 6.5) + 14;
    body +=
      `<rect x="${lx}" y="13" width="12" height="4" fill="${escapeXml(s.color)}"/>` +
      `<text x="${lx + 17}" y="19" ${FONT} font-size="11" fill="#333">${escapeXml(s.name)}</text>`;
  }
  return frame(width, height, opts.title, body);
}

/** Histogram as bars; with logX the bins are placed on a log10 axis. */
export function histogramChart(opts: HistogramChartOptions): string {
  const width = opts.width ?? 960;
  const height = opts.height ?? 280;
  const bins = opts.bins.filter((b) => Number.isFinite(b.from) && Number.isFinite(b.to) && b.to > b.from);
  if (bins.length === 0) {
    return frame(
      width,
      height,
      opts.title,
      `<text x="${width / 2}" y="${height / 2}" ${FONT} font-size="13" text-anchor="middle" fill="#888">no data</text>`,
    );
  }
  const logX = opts.logX === true && bins.every((b) => b.from > 0);
  const tx = (v: number): number => (logX ? Math.log10(v) : v);
  const lo = tx(Math.min(...bins.map((b) => b.from)));
  const hi = tx(Math.max(...bins.map((b) => b.to)));
  const maxCount = Math.max(1, ...bins.map((b) => b.count));
  const yt = niceTicks(0, maxCount, 5);
  const y1 = yt[yt.length - 1] ?? maxCount;
  const px = (v: number): number => M.left + ((tx(v) - lo) / (hi - lo || 1)) * (width - M.left - M.right);
  const py = (c: number): number => height - M.bottom - (c / y1) * (height - M.top - M.bottom);
  let xTicks: { v: number; px: number; label: string }[];
  if (logX) {
    xTicks = [];
    for (let e = Math.floor(lo); e <= Math.ceil(hi); e++) {
      for (const m of [1, 2, 5]) {
        const v = m * 10 ** e;
        if (tx(v) >= lo - 1e-9 && tx(v) <= hi + 1e-9) xTicks.push({ v, px: px(v), label: formatTick(v) });
      }
    }
    if (xTicks.length < 2) {
      const a = 10 ** lo;
      const b = 10 ** hi;
      xTicks = [a, b].map((v) => ({ v, px: px(v), label: formatTick(v) }));
    }
  } else {
    xTicks = niceTicks(lo, hi, 8)
      .filter((v) => v >= lo && v <= hi)
      .map((v) => ({ v, px: px(v), label: formatTick(v) }));
  }
  let body = axes(
    width,
    height,
    xTicks,
    yt.map((v) => ({ v, px: py(v), label: formatTick(v) })),
    opts.xLabel,
    opts.yLabel,
  );
  const color = escapeXml(opts.color ?? '#2e86de');
  for (const b of bins) {
    if (b.count <= 0) continue;
    const x = px(b.from);
    const w = Math.max(1, px(b.to) - x - 1);
    const y = py(b.count);
    body += `<rect x="${f1(x)}" y="${f1(y)}" width="${f1(w)}" height="${f1(height - M.bottom - y)}" fill="${color}"/>`;
  }
  (opts.markers ?? []).forEach((m, i) => {
    if (logX && m.x <= 0) return;
    const x = px(Math.min(Math.max(m.x, logX ? 10 ** lo : lo), logX ? 10 ** hi : hi));
    // Labels near the right edge go to the left of their line.
    const right = x > width - M.right - 90;
    body +=
      `<line x1="${f1(x)}" x2="${f1(x)}" y1="${M.top}" y2="${height - M.bottom}" stroke="#c0392b" stroke-dasharray="4 3"/>` +
      `<text x="${f1(right ? x - 3 : x + 3)}" y="${M.top + 10 + (i % 3) * 12}" ${FONT} font-size="11" text-anchor="${right ? 'end' : 'start'}" fill="#c0392b">${escapeXml(m.label)}</text>`;
  });
  return frame(width, height, opts.title, body);
}
