// Tiny static SVG charts (line and histogram) for the self-contained HTML report: no DOM, no dependencies.
//
// Why hand-written: chart libraries (Chart.js, Plotly, Vega, D3) render in a browser DOM or canvas and
// would need a headless browser or jsdom to emit static SVG; we need two simple chart shapes, so a
// small string builder is smaller than any dependency and keeps the report free of scripts. Hover
// values are SVG <title> tooltips: one invisible column per x value lists every series there.

export interface Series {
  readonly name: string;
  readonly color: string;
  /** [x, y]; y null leaves a gap. */
  readonly points: readonly (readonly [number, number | null])[];
  /** Dashed stroke, so a series that coincides with another stays visible. */
  readonly dashed?: boolean;
  /** Stroke width (default 2) and opacity (default 1): a wide pale line under a thin one shows both. */
  readonly width?: number;
  readonly opacity?: number;
  /** Draw as steps: each value holds over the interval that ends at its x (per-interval figures such as an offered rate). */
  readonly step?: boolean;
  /** Unit shown after the value in hover text, e.g. "ms". */
  readonly unit?: string;
}

/** A shaded span of x, e.g. a phase of the run. */
export interface Band {
  readonly from: number;
  readonly to: number;
  readonly label: string;
}

/** A vertical event line, e.g. the moment of a storm. */
export interface VMarker {
  readonly x: number;
  readonly label: string;
  readonly color?: string;
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
  /** `data-chart` attribute of the <svg>, so a page test can find the chart. */
  readonly id?: string;
  /** Shaded spans behind the data (alternating), labelled at the top of the plot. */
  readonly bands?: readonly Band[];
  /** Vertical event lines over the data. */
  readonly markers?: readonly VMarker[];
  /** Heading of a hover tooltip for an x value (default: "<xLabel> <x>"). */
  readonly hoverX?: (x: number) => string;
  /** Small note under the title, e.g. "no errors". */
  readonly subtitle?: string;
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
  /** `data-chart` attribute of the <svg>. */
  readonly id?: string;
  /** Hover text of a bin (default: "from–to: count"). */
  readonly hoverBin?: (b: HistogramBin) => string;
}

interface Margins {
  readonly left: number;
  readonly right: number;
  readonly top: number;
  readonly bottom: number;
}
const M: Margins = { left: 64, right: 16, top: 34, bottom: 46 };
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

function frame(width: number, height: number, title: string, body: string, id?: string): string {
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${escapeXml(title)}"${id ? ` data-chart="${escapeXml(id)}"` : ''}>` +
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
  M: Margins,
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

/** A number for hover text: 3 significant digits, integers as they are. */
export function formatValue(v: number): string {
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  return a >= 100 ? v.toFixed(0) : String(Number(v.toPrecision(3)));
}

/** Legend entries laid out left to right below the title, wrapping; returns the SVG and the rows used. */
function legend(series: readonly Series[], width: number): { svg: string; rows: number } {
  let x = M.left;
  let row = 0;
  let svg = '';
  for (const s of series) {
    const w = 22 + Math.ceil(s.name.length * 6.5) + 14;
    if (x + w > width - M.right && x > M.left) {
      row++;
      x = M.left;
    }
    const y = 36 + row * 16;
    const dash = s.dashed ? ' stroke-dasharray="6 4"' : '';
    svg +=
      `<line x1="${x}" x2="${x + 18}" y1="${y - 4}" y2="${y - 4}" stroke="${escapeXml(s.color)}" stroke-width="${Math.min(s.width ?? 2, 5)}"${dash}${s.opacity !== undefined ? ` stroke-opacity="${s.opacity}"` : ''}/>` +
      `<text x="${x + 22}" y="${y}" ${FONT} font-size="11" fill="#333">${escapeXml(s.name)}</text>`;
    x += w;
  }
  return { svg, rows: series.length ? row + 1 : 0 };
}

/**
 * Line chart of one or more series sharing the axes. The legend sits under the title (never over
 * the data); phase bands and event markers are drawn behind and over the data; hovering anywhere
 * shows every series' value at the nearest x (SVG <title>).
 */
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
      opts.id,
    );
  }
  const leg = legend(opts.series, width);
  const m: Margins = { ...M, top: 30 + leg.rows * 16 + (opts.bands?.length ? 16 : 4) };
  for (const b of opts.bands ?? []) xs.push(b.from, b.to);
  const xt = niceTicks(Math.min(...xs), Math.max(...xs), 8);
  const yt = niceTicks(Math.min(0, ...ys), Math.max(...ys), 5);
  const x0 = xt[0] ?? 0;
  const x1 = xt[xt.length - 1] ?? 1;
  const y0 = yt[0] ?? 0;
  const y1 = yt[yt.length - 1] ?? 1;
  const px = (x: number): number => m.left + ((x - x0) / (x1 - x0 || 1)) * (width - m.left - m.right);
  const py = (y: number): number =>
    height - m.bottom - ((y - y0) / (y1 - y0 || 1)) * (height - m.top - m.bottom);
  let body = '';
  // Phase bands behind everything, alternating shades, labels in the strip above the plot.
  (opts.bands ?? []).forEach((b, i) => {
    const a = px(Math.max(b.from, x0));
    const z = px(Math.min(b.to, x1));
    if (z - a < 0.5) return;
    body += `<rect class="band" x="${f1(a)}" y="${m.top}" width="${f1(z - a)}" height="${height - m.top - m.bottom}" fill="${i % 2 ? '#eef2f7' : '#f7f9fb'}"><title>${escapeXml(`${b.label}: ${formatValue(b.from)}–${formatValue(b.to)} s`)}</title></rect>`;
    const room = Math.floor((z - a - 4) / 6);
    if (room >= 3) {
      const label = b.label.length > room ? `${b.label.slice(0, Math.max(1, room - 1))}…` : b.label;
      body += `<text x="${f1(a + 2)}" y="${m.top - 4}" ${FONT} font-size="10" fill="#667">${escapeXml(label)}</text>`;
    }
    body += `<line x1="${f1(a)}" x2="${f1(a)}" y1="${m.top - 14}" y2="${height - m.bottom}" stroke="#c9d1db" stroke-width="1"/>`;
  });
  body += axes(
    width,
    height,
    xt.map((v) => ({ v, px: px(v), label: formatTick(v) })),
    yt.map((v) => ({ v, px: py(v), label: formatTick(v) })),
    opts.xLabel,
    opts.yLabel,
    m,
  );
  if (opts.hLine) {
    const y = py(opts.hLine.y);
    body +=
      `<line x1="${m.left}" x2="${width - m.right}" y1="${f1(y)}" y2="${f1(y)}" stroke="#c0392b" stroke-dasharray="5 4"/>` +
      `<text x="${width - m.right - 4}" y="${f1(y - 4)}" ${FONT} font-size="11" text-anchor="end" fill="#c0392b">${escapeXml(opts.hLine.label)}</text>`;
  }
  for (const s of opts.series) {
    const segs: string[] = [];
    let current = '';
    let lastX = 0;
    for (const [x, y] of s.points) {
      if (y === null || !Number.isFinite(y) || !Number.isFinite(x)) {
        if (current) segs.push(current);
        current = '';
        continue;
      }
      if (current && s.step) current += `L${f1(px(lastX))} ${f1(py(y))}`;
      current += `${current ? 'L' : 'M'}${f1(px(x))} ${f1(py(y))}`;
      lastX = x;
    }
    if (current) segs.push(current);
    const attrs = `fill="none" stroke="${escapeXml(s.color)}" stroke-width="${s.width ?? 2}" stroke-linejoin="round"${s.dashed ? ' stroke-dasharray="6 4"' : ''}${s.opacity !== undefined ? ` stroke-opacity="${s.opacity}"` : ''}`;
    for (const d of segs)
      body += `<path class="series" data-series="${escapeXml(s.name)}" d="${d}" ${attrs}/>`;
    // Few points: mark each one, so that the sampling shows (and a single point is visible at all).
    const marked = s.points.filter(
      (p): p is readonly [number, number] => p[1] !== null && Number.isFinite(p[0]) && Number.isFinite(p[1]),
    );
    if (marked.length === 1 || (marked.length <= 60 && !s.step && (s.width ?? 2) <= 3)) {
      for (const [x, y] of marked)
        body += `<circle class="series" data-series="${escapeXml(s.name)}" cx="${f1(px(x))}" cy="${f1(py(y))}" r="${marked.length === 1 ? 3 : 2}" fill="${escapeXml(s.color)}"/>`;
    }
  }
  (opts.markers ?? []).forEach((mk, i) => {
    if (mk.x < x0 || mk.x > x1) return;
    const x = px(mk.x);
    const color = escapeXml(mk.color ?? '#c0392b');
    const right = x > width - m.right - 160;
    body +=
      `<line class="marker" x1="${f1(x)}" x2="${f1(x)}" y1="${m.top}" y2="${height - m.bottom}" stroke="${color}" stroke-width="1.5" stroke-dasharray="4 3"/>` +
      `<text x="${f1(right ? x - 4 : x + 4)}" y="${m.top + 12 + (i % 3) * 13}" ${FONT} font-size="11" font-weight="600" text-anchor="${right ? 'end' : 'start'}" fill="${color}" paint-order="stroke" stroke="#fff" stroke-width="3">${escapeXml(mk.label)}</text>`;
  });
  body += hoverColumns(opts, px, m, height);
  body += leg.svg;
  if (opts.subtitle)
    body += `<text x="${width - m.right}" y="20" ${FONT} font-size="11" text-anchor="end" fill="#888">${escapeXml(opts.subtitle)}</text>`;
  return frame(width, height, opts.title, body, opts.id);
}

/** One transparent column per distinct x, whose <title> lists each series' value there. */
function hoverColumns(opts: LineChartOptions, px: (x: number) => number, m: Margins, height: number): string {
  const at = new Map<number, string[]>();
  for (const s of opts.series) {
    for (const [x, y] of s.points) {
      if (!Number.isFinite(x) || y === null || !Number.isFinite(y)) continue;
      const lines = at.get(x) ?? [];
      lines.push(`${s.name}: ${formatValue(y)}${s.unit ? ` ${s.unit}` : ''}`);
      at.set(x, lines);
    }
  }
  const xs = [...at.keys()].sort((a, b) => a - b);
  let out = '';
  xs.forEach((x, i) => {
    const left = i === 0 ? px(x) - 6 : (px(xs[i - 1]!) + px(x)) / 2;
    const right = i === xs.length - 1 ? px(x) + 6 : (px(x) + px(xs[i + 1]!)) / 2;
    const head = opts.hoverX ? opts.hoverX(x) : `${opts.xLabel} ${formatValue(x)}`;
    out += `<rect class="hover" x="${f1(left)}" y="${m.top}" width="${f1(Math.max(1, right - left))}" height="${height - m.top - m.bottom}" fill="#000" fill-opacity="0"><title>${escapeXml([head, ...(at.get(x) ?? [])].join('\n'))}</title></rect>`;
  });
  return out;
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
      opts.id,
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
    M,
  );
  const color = escapeXml(opts.color ?? '#2e86de');
  const hover =
    opts.hoverBin ?? ((b: HistogramBin) => `${formatValue(b.from)}–${formatValue(b.to)}: ${b.count}`);
  for (const b of bins) {
    if (b.count <= 0) continue;
    const x = px(b.from);
    const w = Math.max(1, px(b.to) - x - 1);
    const y = py(b.count);
    body += `<rect class="series" x="${f1(x)}" y="${f1(y)}" width="${f1(w)}" height="${f1(height - M.bottom - y)}" fill="${color}"><title>${escapeXml(hover(b))}</title></rect>`;
  }
  (opts.markers ?? []).forEach((m, i) => {
    if (logX && m.x <= 0) return;
    const x = px(Math.min(Math.max(m.x, logX ? 10 ** lo : lo), logX ? 10 ** hi : hi));
    // Labels near the right edge go to the left of their line.
    const right = x > width - M.right - 90;
    body +=
      `<line x1="${f1(x)}" x2="${f1(x)}" y1="${M.top}" y2="${height - M.bottom}" stroke="#c0392b" stroke-dasharray="4 3"/>` +
      `<text x="${f1(right ? x - 3 : x + 3)}" y="${M.top + 10 + (i % 3) * 12}" ${FONT} font-size="11" font-weight="600" text-anchor="${right ? 'end' : 'start'}" fill="#c0392b" paint-order="stroke" stroke="#fff" stroke-width="3">${escapeXml(m.label)}</text>`;
  });
  return frame(width, height, opts.title, body, opts.id);
}
