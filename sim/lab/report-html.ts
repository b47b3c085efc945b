// The protocol lab's HTML page: one self-contained file (inline CSS and SVG, no scripts, nothing fetched) with bar charts per figure; every string from a config is escaped.
import { BYTE_CATEGORIES, type ByteCategory } from './simulate.ts';
import { METRICS, type RunSummary } from './summary.ts';

/** Escapes text for HTML element content and attribute values. */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}

const PALETTE = [
  '#4e79a7',
  '#f28e2b',
  '#e15759',
  '#76b7b2',
  '#59a14f',
  '#edc948',
  '#b07aa1',
  '#ff9da7',
  '#9c755f',
  '#bab0ac',
  '#1f3b73',
  '#8cd17d',
];

const num = (n: number, d = 1): string =>
  Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: d }) : '∞';

interface Segment {
  readonly name: string;
  readonly value: number;
}
interface BarRow {
  readonly label: string;
  readonly segments: readonly Segment[];
}

/** Horizontal bars, one per row, stacked by segment; a legend when there is more than one segment name. */
export function barChart(title: string, unit: string, rows: readonly BarRow[]): string {
  const labelW = 180;
  const barW = 460;
  const rowH = 26;
  const names = [...new Set(rows.flatMap((r) => r.segments.map((s) => s.name)))];
  const legendH = names.length > 1 ? 22 * Math.ceil(names.length / 4) : 0;
  const max = Math.max(1e-9, ...rows.map((r) => r.segments.reduce((s, x) => s + Math.max(0, x.value), 0)));
  const h = 30 + rows.length * rowH + legendH + 10;
  const w = labelW + barW + 110;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" role="img" aria-label="${escapeHtml(title)}">`,
    `<text x="0" y="16" class="t">${escapeHtml(title)} (${escapeHtml(unit)})</text>`,
  ];
  rows.forEach((r, i) => {
    const y = 28 + i * rowH;
    parts.push(`<text x="${labelW - 6}" y="${y + 15}" text-anchor="end">${escapeHtml(r.label)}</text>`);
    let x = labelW;
    let total = 0;
    for (const s of r.segments) {
      const v = Math.max(0, s.value);
      const sw = (v / max) * barW;
      const color = PALETTE[names.indexOf(s.name) % PALETTE.length]!;
      parts.push(
        `<rect x="${x.toFixed(2)}" y="${y}" width="${sw.toFixed(2)}" height="${rowH - 6}" fill="${color}"><title>${escapeHtml(`${r.label}: ${s.name} ${num(s.value, 2)} ${unit}`)}</title></rect>`,
      );
      x += sw;
      total += v;
    }
    parts.push(`<text x="${(x + 6).toFixed(2)}" y="${y + 15}">${num(total, 2)}</text>`);
  });
  if (names.length > 1) {
    names.forEach((n, i) => {
      const x = labelW + (i % 4) * 120;
      const y = 28 + rows.length * rowH + 8 + Math.floor(i / 4) * 22;
      parts.push(
        `<rect x="${x}" y="${y}" width="12" height="12" fill="${PALETTE[i % PALETTE.length]!}"/><text x="${x + 16}" y="${y + 11}">${escapeHtml(n)}</text>`,
      );
    });
  }
  parts.push('</svg>');
  return parts.join('');
}

/** A figure against the swept value: points joined by a line, value labels above. */
export function lineChart(
  title: string,
  unit: string,
  xLabel: string,
  points: readonly { x: string; y: number }[],
): string {
  const w = 640;
  const h = 240;
  const left = 60;
  const right = 20;
  const top = 44;
  const bottom = 40;
  const finite = points.map((p) => (Number.isFinite(p.y) ? p.y : 0));
  const max = Math.max(1e-9, ...finite);
  const min = Math.min(0, ...finite);
  const inset = 24;
  const step = points.length > 1 ? (w - left - right - 2 * inset) / (points.length - 1) : 0;
  const px = (i: number): number =>
    left + inset + (points.length > 1 ? i * step : (w - left - right) / 2 - inset);
  const py = (v: number): number => top + (1 - (v - min) / (max - min || 1)) * (h - top - bottom);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" role="img" aria-label="${escapeHtml(title)}">`,
    `<text x="0" y="16" class="t">${escapeHtml(title)} (${escapeHtml(unit)})</text>`,
    `<line x1="${left}" y1="${h - bottom}" x2="${w - right}" y2="${h - bottom}" stroke="#999"/>`,
    `<line x1="${left}" y1="${top}" x2="${left}" y2="${h - bottom}" stroke="#999"/>`,
    `<text x="${left - 6}" y="${top + 4}" text-anchor="end">${num(max, 2)}</text>`,
    `<text x="${left - 6}" y="${h - bottom}" text-anchor="end">${num(min, 2)}</text>`,
    `<text x="${(w + left) / 2}" y="${h - 6}" text-anchor="middle">${escapeHtml(xLabel)}</text>`,
  ];
  const path = finite
    .map((v, i) => `${i === 0 ? 'M' : 'L'}${px(i).toFixed(2)},${py(v).toFixed(2)}`)
    .join(' ');
  if (points.length > 1)
    parts.push(`<path d="${path}" fill="none" stroke="${PALETTE[0]!}" stroke-width="2"/>`);
  points.forEach((p, i) => {
    const v = finite[i]!;
    parts.push(
      `<circle cx="${px(i).toFixed(2)}" cy="${py(v).toFixed(2)}" r="4" fill="${PALETTE[0]!}"><title>${escapeHtml(`${p.x}: ${num(p.y, 3)} ${unit}`)}</title></circle>`,
      `<text x="${px(i).toFixed(2)}" y="${(py(v) - 8).toFixed(2)}" text-anchor="middle">${num(p.y, 2)}</text>`,
      `<text x="${px(i).toFixed(2)}" y="${h - bottom + 16}" text-anchor="middle">${escapeHtml(p.x)}</text>`,
    );
  });
  parts.push('</svg>');
  return parts.join('');
}

const BYTE_LABEL: Readonly<Record<ByteCategory, string>> = {
  opus: 'Opus',
  ogg: 'Ogg',
  header: 'header',
  sealedKeys: 'sealed keys',
  signature: 'signature',
  padding: 'padding',
  receipts: 'receipts',
  mqtt: 'MQTT',
  transport: 'transport',
};

function summaryTable(summaries: readonly RunSummary[], headers: readonly string[]): string {
  const head = headers.map((h) => `<th>${escapeHtml(h)}</th>`).join('');
  const row = (label: string, cells: readonly string[]): string =>
    `<tr><th>${escapeHtml(label)}</th>${cells.map((c) => `<td>${c}</td>`).join('')}</tr>`;
  const lines = [
    row(
      'link',
      summaries.map((s) => escapeHtml(s.link)),
    ),
    row(
      'codec',
      summaries.map((s) => escapeHtml(s.codec)),
    ),
    row(
      'protocol',
      summaries.map((s) => `v${s.protocol}`),
    ),
    ...METRICS.map((m) =>
      row(
        `${m.label} (${m.unit})`,
        summaries.map((s, i) => {
          const v = num(s.figures[m.key] ?? 0, m.decimals);
          const d = s.deltas[m.key];
          if (i === 0 || d === null || d === undefined || d === 0) return v;
          const good = (m.better === 'lower') === d < 0;
          return `${v} <span class="${good ? 'good' : 'bad'}">${d > 0 ? '+' : '−'}${(Math.abs(d) * 100).toFixed(Math.abs(d) < 0.1 ? 1 : 0)}%</span>`;
        }),
      ),
    ),
  ];
  return `<table><thead><tr><th></th>${head}</tr></thead><tbody>${lines.join('')}</tbody></table>`;
}

const STYLE = `body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}
h1{font-size:20px}h2{font-size:16px;margin-top:28px}table{border-collapse:collapse;margin:12px 0}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:right}thead th,tbody th{text-align:left;background:#f6f6f6}
.good{color:#1a7f37}.bad{color:#c62828}svg{display:block;margin:8px 0 18px}svg text{font:12px system-ui,sans-serif;fill:#333}
svg text.t{font-weight:600;font-size:13px}.note{color:#555}tbody th{white-space:nowrap}`;

export interface HtmlPageOptions {
  readonly title: string;
  readonly headers: readonly string[];
  readonly summaries: readonly RunSummary[];
  /** For a sweep: the swept key and its values (one per summary), charted as lines. */
  readonly sweep?: { readonly key: string; readonly values: readonly string[] };
  readonly notes?: readonly string[];
}

/** The whole page. */
export function htmlPage(o: HtmlPageOptions): string {
  const s = o.summaries;
  const labels = o.headers;
  const charts: string[] = [];
  charts.push(
    barChart(
      'Bytes per sent clip by category',
      'B',
      s.map((x, i) => ({
        label: labels[i]!,
        segments: BYTE_CATEGORIES.map((k) => ({ name: BYTE_LABEL[k], value: x.bytesPerClip[k] ?? 0 })),
      })),
    ),
  );
  const energyNames = [...new Set(s.flatMap((x) => Object.keys(x.energyMj)))];
  charts.push(
    barChart(
      'Energy per day by component',
      'J',
      s.map((x, i) => ({
        label: labels[i]!,
        segments: energyNames.map((n) => ({ name: n, value: (x.energyMj[n] ?? 0) / 1000 })),
      })),
    ),
  );
  for (const key of ['airtimeMs', 'latencyMs', 'firstAudioMs', 'receivedMs', 'batteryDays', 'lsdDb']) {
    const m = METRICS.find((x) => x.key === key)!;
    if (o.sweep) {
      charts.push(
        lineChart(
          m.label,
          m.unit,
          o.sweep.key,
          s.map((x, i) => ({ x: o.sweep!.values[i]!, y: x.figures[key] ?? 0 })),
        ),
      );
    } else {
      charts.push(
        barChart(
          m.label,
          m.unit,
          s.map((x, i) => ({ label: labels[i]!, segments: [{ name: m.label, value: x.figures[key] ?? 0 }] })),
        ),
      );
    }
  }
  if (o.sweep) {
    for (const key of ['envelopeBytes', 'dailyEnergyJ']) {
      const m = METRICS.find((x) => x.key === key)!;
      charts.push(
        lineChart(
          m.label,
          m.unit,
          o.sweep.key,
          s.map((x, i) => ({ x: o.sweep!.values[i]!, y: x.figures[key] ?? 0 })),
        ),
      );
    }
  }
  const notes = (o.notes ?? []).map((n) => `<p class="note">${escapeHtml(n)}</p>`).join('');
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${escapeHtml(o.title)}</title><style>${STYLE}</style></head>
<body><h1>${escapeHtml(o.title)}</h1>
<p>PlushLink protocol lab: one simulated day per configuration, from real Opus, Ogg and envelope bytes (docs/LAB.md). Deltas are against the first column; green is better.</p>
${summaryTable(s, labels)}
<h2>Charts</h2>
${charts.join('\n')}
${notes}
</body></html>
`;
}
