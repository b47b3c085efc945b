// Self-contained HTML report: inline CSS and SVG charts with <title> hover values; no scripts, fonts or files.
import type { LatencySummary } from '../../sim/stats.ts';
import {
  type Band,
  escapeXml as esc,
  histogramChart,
  lineChart,
  type Series,
  type VMarker,
} from './svg-plot.ts';
import type {
  LoadtestReport,
  RunResult,
  RunSummary,
  StormResult,
  ThresholdResult,
  TimePoint,
} from './types.ts';

const COLORS = ['#2e86de', '#e67e22', '#27ae60', '#8e44ad', '#c0392b', '#16a085'];

const fmt = (x: number | null | undefined, digits = 2): string =>
  x === null || x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(digits);

function latencyTable(r: RunSummary): string {
  const row = (name: string, s: LatencySummary) =>
    `<tr><th>${name}</th><td>${s.count}</td><td>${fmt(s.p50)}</td><td>${fmt(s.p90)}</td><td>${fmt(s.p99)}</td><td>${fmt(s.p999)}</td><td>${fmt(s.max)}</td></tr>`;
  return (
    '<table><thead><tr><th>latency (ms)</th><th>samples</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th></tr></thead><tbody>' +
    row('connect + authentication', r.latency.connect) +
    row(
      r.target.kind === 'aedes' || r.target.kind === 'mosquitto'
        ? 'PUBACK (broker received)'
        : 'PUBACK (durably stored)',
      r.latency.puback,
    ) +
    row('end to end (toy → parent)', r.latency.e2e) +
    '</tbody></table>'
  );
}

function totalsTable(r: RunSummary): string {
  const t = r.totals;
  const cells: [string, string][] = [
    ['sent', String(t.clipsSent)],
    ['acknowledged', String(t.clipsAcked)],
    ['delivered', String(t.clipsDelivered)],
    ['errors', String(t.errors)],
    ['lost', String(t.lost)],
    ['held for an offline parent', String(t.held)],
    ['clips/s', fmt(r.throughput.clipsPerSec, 1)],
    ['MB/s', fmt(r.throughput.mbPerSec, 2)],
    [
      'target CPU mean / max (% of a core)',
      `${fmt(r.gateway.cpuPercentMean, 0)} / ${fmt(r.gateway.cpuPercentMax, 0)}`,
    ],
    ['target RSS max (MB)', fmt(r.gateway.rssMbMax, 0)],
    ['target event-loop stall max (ms)', fmt(r.gateway.eventLoopLagMaxMs, 0)],
  ];
  return kpis(cells);
}

const PALETTE = ['#c0392b', '#e67e22', '#8e44ad', '#16a085', '#2c3e50', '#d35400', '#7f8c8d'];

/** Traffic, connect and drain phases as bands (set-up and stop are not part of the run). */
function phaseBands(r: RunSummary): Band[] {
  const keep = (name: string): boolean => name !== 'setup' && name !== 'stop';
  if (r.phases?.length) {
    return r.phases.filter((p) => keep(p.name)).map((p) => ({ from: p.fromS, to: p.toS, label: p.name }));
  }
  // Reports written before phases were recorded: whole seconds from the timeline.
  const bands: Band[] = [];
  for (const p of r.timeline) {
    if (!keep(p.phase)) continue;
    const last = bands[bands.length - 1];
    if (last && last.label === p.phase) bands[bands.length - 1] = { ...last, to: p.t };
    else bands.push({ from: p.t - p.dt, to: p.t, label: p.phase });
  }
  return bands;
}

/** The storm as event lines: the drop, and the moment the last toy was back. */
function stormMarkers(storm: StormResult | undefined): VMarker[] {
  if (storm?.atS === undefined) return [];
  const back = storm.atS + storm.allBackMs / 1000;
  return [
    { x: storm.atS, label: `storm: ${storm.toys} toys dropped`, color: '#c0392b' },
    {
      x: back,
      label: `${storm.back}/${storm.toys} back after ${fmt(storm.allBackMs / 1000, 2)} s`,
      color: '#1e7e34',
    },
  ];
}

/** Error kinds over time, the largest first: at most 6 lines and "other". */
function errorSeries(tl: readonly TimePoint[], rate: (n: number, dt: number) => number): Series[] {
  const totals = new Map<string, number>();
  for (const p of tl)
    for (const [k, v] of Object.entries(p.errorsByKind ?? {})) totals.set(k, (totals.get(k) ?? 0) + v);
  const kinds = [...totals.entries()].sort((a, b) => b[1] - a[1]).map(([k]) => k);
  const shown = kinds.slice(0, kinds.length > 7 ? 6 : 7);
  const rest = kinds.slice(shown.length);
  const series: Series[] = shown.map((k, i) => ({
    name: k,
    color: PALETTE[i % PALETTE.length]!,
    unit: '/s',
    dashed: i % 2 === 1,
    points: tl.map((p) => [p.t, rate(p.errorsByKind?.[k] ?? 0, p.dt)] as const),
  }));
  if (rest.length) {
    series.push({
      name: `other (${rest.length} kinds)`,
      color: '#95a5a6',
      unit: '/s',
      points: tl.map(
        (p) =>
          [
            p.t,
            rate(
              rest.reduce((a, k) => a + (p.errorsByKind?.[k] ?? 0), 0),
              p.dt,
            ),
          ] as const,
      ),
    });
  }
  if (series.length === 0) {
    // Reports without errorsByKind still have the total.
    series.push({
      name: 'errors (all kinds)',
      color: PALETTE[0]!,
      unit: '/s',
      points: tl.map((p) => [p.t, rate(p.errors, p.dt)] as const),
    });
  }
  return series;
}

/**
 * Toys online, with the storm's drop and return put in at their exact times: the per-second
 * samples are too coarse to show a reconnect that takes a fraction of a second.
 */
function withStorm(
  points: readonly (readonly [number, number | null])[],
  storm: StormResult | undefined,
): (readonly [number, number | null])[] {
  if (storm?.atS === undefined) return [...points];
  const back = storm.atS + storm.allBackMs / 1000;
  const extra: (readonly [number, number])[] = [
    [storm.atS, storm.toys],
    [storm.atS, 0],
    [back, storm.back],
  ];
  return [...points, ...extra].sort((a, b) => a[0] - b[0]);
}

function charts(r: RunSummary, storm: StormResult | undefined): string {
  // Whole intervals only: the last one (cut short by the stop) would show as a spike.
  const tl = r.timeline.filter((p) => p.phase !== 'setup' && p.dt >= 0.5);
  const rate = (n: number, dt: number): number => Math.round((n / dt) * 10) / 10;
  const bands = phaseBands(r);
  const markers = stormMarkers(storm);
  const phaseAt = new Map(tl.map((p) => [p.t, p.phase]));
  const hoverX = (x: number): string => `t = ${x} s${phaseAt.has(x) ? ` (${phaseAt.get(x)})` : ''}`;
  const time = { xLabel: 'time since start (s)', bands, markers, hoverX };
  const offered: Series[] = [];
  const base = { name: 'offered', color: '#7f8c8d', width: 7, opacity: 0.3, unit: 'clips/s' } as const;
  if (r.phases?.some((p) => p.offeredPerSec !== undefined)) {
    // The scenario's rate, exactly at the phase boundaries.
    const pts: [number, number][] = [];
    for (const p of r.phases) {
      if (p.name === 'setup' || p.name === 'stop') continue;
      const rate = p.offeredPerSec ?? 0;
      pts.push([p.fromS, rate], [p.toS, rate]);
    }
    offered.push({ ...base, points: pts });
  } else if (tl.some((p) => p.offeredPerSec !== undefined)) {
    offered.push({ ...base, step: true, points: tl.map((p) => [p.t, p.offeredPerSec ?? null] as const) });
  }
  const thr: Series[] = [
    ...offered,
    {
      name: 'achieved (acknowledged)',
      color: COLORS[0]!,
      width: 3,
      unit: 'clips/s',
      points: tl.map((p) => [p.t, rate(p.clipsAcked, p.dt)] as const),
    },
    {
      name: 'delivered to parents',
      color: COLORS[2]!,
      dashed: true,
      unit: 'clips/s',
      points: tl.map((p) => [p.t, rate(p.clipsDelivered, p.dt)] as const),
    },
    {
      name: 'sent',
      color: COLORS[1]!,
      width: 1.2,
      unit: 'clips/s',
      points: tl.map((p) => [p.t, rate(p.clipsSent, p.dt)] as const),
    },
  ];
  const lat: Series[] = [
    { name: 'e2e p50', color: COLORS[0]!, unit: 'ms', points: tl.map((p) => [p.t, p.e2eP50Ms] as const) },
    { name: 'e2e p99', color: COLORS[1]!, unit: 'ms', points: tl.map((p) => [p.t, p.e2eP99Ms] as const) },
    {
      name: 'PUBACK p99',
      color: COLORS[2]!,
      dashed: true,
      unit: 'ms',
      points: tl.map((p) => [p.t, p.pubackP99Ms] as const),
    },
    {
      name: 'gateway loop lag p99',
      color: COLORS[3]!,
      dashed: true,
      width: 1.5,
      unit: 'ms',
      points: tl.map((p) => [p.t, p.gatewayLagP99Ms] as const),
    },
  ];
  const online: Series[] = [
    {
      name: 'toys online',
      color: COLORS[0]!,
      width: 3,
      // The generator closes every connection when it stops: that is not the target's doing.
      points: withStorm(
        tl.filter((p) => p.phase !== 'stop').map((p) => [p.t, p.connected] as const),
        storm,
      ),
    },
    {
      name: 'connects/s',
      color: COLORS[1]!,
      dashed: true,
      unit: '/s',
      points: tl.map((p) => [p.t, rate(p.connects, p.dt)] as const),
    },
  ];
  const errs = errorSeries(tl, rate);
  const noErrors = tl.every((p) => p.errors === 0 && Object.keys(p.errorsByKind ?? {}).length === 0);
  const res: Series[] = [
    {
      name: 'target CPU',
      color: COLORS[3]!,
      unit: '% of a core',
      points: tl.map((p) => [p.t, p.gatewayCpuPercent] as const),
    },
    {
      name: 'generator CPU',
      color: COLORS[5]!,
      dashed: true,
      unit: '% of a core',
      points: tl.map((p) => [p.t, p.generatorCpuPercent] as const),
    },
  ];
  const e2e = r.latency.e2e;
  return [
    lineChart({
      ...time,
      id: 'rate',
      title: 'Offered vs achieved rate',
      yLabel: 'clips per second',
      series: thr,
    }),
    lineChart({ ...time, id: 'latency', title: 'Latency over time (per second)', yLabel: 'ms', series: lat }),
    lineChart({
      ...time,
      id: 'online',
      title: 'Toys online and connects',
      yLabel: 'toys, connects/s',
      series: online,
    }),
    lineChart({
      ...time,
      id: 'errors',
      title: 'Errors by kind over time',
      yLabel: 'per second',
      series: errs,
      ...(noErrors ? { subtitle: 'no errors in this run' } : {}),
    }),
    histogramChart({
      id: 'histogram',
      title: 'End-to-end latency histogram',
      xLabel: 'latency (ms, log scale)',
      yLabel: 'clips',
      bins: r.e2eHistogram.map((b) => ({ from: b.fromMs, to: b.toMs, count: b.count })),
      logX: true,
      hoverBin: (b) => `${fmt(b.from)}–${fmt(b.to)} ms: ${b.count} clips`,
      markers: e2e.count
        ? [
            { x: e2e.p50, label: `p50 ${fmt(e2e.p50)}` },
            { x: e2e.p99, label: `p99 ${fmt(e2e.p99)}` },
            { x: e2e.p999, label: `p99.9 ${fmt(e2e.p999)}` },
          ]
        : [],
    }),
    lineChart({ ...time, id: 'cpu', title: 'CPU over time', yLabel: '% of one core', series: res }),
  ]
    .map((svg) => `<figure>${svg}</figure>`)
    .join('');
}

function kpis(cells: readonly (readonly [string, string])[]): string {
  return `<div class="kpis">${cells.map(([k, v]) => `<div class="kpi"><div class="v">${esc(v)}</div><div class="k">${esc(k)}</div></div>`).join('')}</div>`;
}

function runSection(r: RunSummary, heading: string, storm?: StormResult): string {
  const errs = Object.entries(r.errors).filter(([, v]) => v > 0);
  return (
    `<section><h2>${esc(heading)}</h2><p class="muted">${esc(r.target.kind)} at ${esc(r.target.url)} — ${fmt(r.phaseMs / 1000, 1)} s of traffic</p>` +
    totalsTable(r) +
    latencyTable(r) +
    (errs.length
      ? `<table><thead><tr><th>error</th><th>count</th></tr></thead><tbody>${errs.map(([k, v]) => `<tr><th>${esc(k)}</th><td>${v}</td></tr>`).join('')}</tbody></table>`
      : '<p class="ok">No errors.</p>') +
    `<p class="${r.generator.bottleneck ? 'warn' : 'muted'}"><b>Bottleneck:</b> ${esc(r.generator.verdict)}</p>` +
    `<table><thead><tr><th>worker</th><th>toys</th><th>CPU %</th><th>event loop busy</th><th>lag p99 (ms)</th><th>lag max (ms)</th></tr></thead><tbody>${r.generator.workers
      .map(
        (w) =>
          `<tr><th>${w.index}</th><td>${w.toys}</td><td>${fmt(w.cpuPercent, 0)}</td><td>${fmt(w.eluMean * 100, 0)} %</td><td>${fmt(w.lagP99MaxMs, 1)}</td><td>${fmt(w.lagMaxMs, 1)}</td></tr>`,
      )
      .join('')}</tbody></table>` +
    '<p class="muted">Shaded bands are the phases of the run; hover over a chart for the values at that second.</p>' +
    charts(r, storm) +
    '</section>'
  );
}

const OPS: Record<ThresholdResult['op'], string> = { '<': '<', '<=': '≤', '>': '>', '>=': '≥', '==': '=' };

/** The outcome, and one row per --threshold with its measured value. */
function resultSection(rep: LoadtestReport): string {
  const r = rep.result;
  const th = rep.thresholds ?? [];
  const status = !r
    ? ''
    : r.status === 'passed'
      ? `<p class="ok"><b>Passed</b> (exit 0)${th.length ? `: all ${th.length} thresholds held` : ''}.</p>`
      : `<p class="bad">${r.status === 'failed' ? 'Failed' : 'Thresholds failed'} (exit ${r.exitCode}): ${esc(r.reasons.join('; '))}.</p>`;
  const table = th.length
    ? `<table class="thresholds"><thead><tr><th>threshold</th><th class="l">metric</th><th>limit</th><th>measured</th><th>result</th></tr></thead><tbody>${th
        .map(
          (t) =>
            `<tr class="${t.passed ? 'pass' : 'fail'}"><th><code>${esc(t.expression)}</code></th><td class="l">${esc(t.label)}</td><td>${esc(`${OPS[t.op]} ${t.limit}${t.unit === '' || t.unit === '%' || t.unit === '/s' ? t.unit : ` ${t.unit}`}`)}</td><td>${esc(t.measuredText)}</td><td class="verdict">${t.passed ? '✓ pass' : '✗ fail'}</td></tr>`,
        )
        .join('')}</tbody></table>`
    : '<p class="muted">No thresholds were given (<code>--threshold \'e2e.p99&lt;25ms\'</code>, see docs/LOADTEST.md).</p>';
  return `<section id="result"><h2>Result and thresholds</h2>${status}${table}</section>`;
}

function scenarioSection(rep: LoadtestReport): string {
  const s = rep.scenario;
  let html = '';
  if (s.ramp) {
    const ramp = s.ramp;
    html += `<section><h2>Ramp</h2><p>Knee: <b>${fmt(ramp.kneeClipsPerSec, 1)} clips/s</b> — ${esc(ramp.note)}</p>`;
    const hoverX = (x: number): string => `offered ${x} clips/s`;
    html += lineChart({
      id: 'ramp-rate',
      title: 'Offered vs achieved rate per ramp step',
      xLabel: 'offered clips/s',
      yLabel: 'clips/s',
      hoverX,
      series: [
        {
          name: 'offered',
          color: '#7f8c8d',
          width: 7,
          opacity: 0.3,
          unit: 'clips/s',
          points: ramp.steps.map((x) => [x.clipRate, x.clipRate] as const),
        },
        {
          name: 'achieved',
          color: COLORS[0]!,
          width: 2.5,
          unit: 'clips/s',
          points: ramp.steps.map((x) => [x.clipRate, x.achievedClipsPerSec] as const),
        },
      ],
    });
    html += lineChart({
      id: 'ramp-p99',
      title: 'End-to-end p99 per ramp step',
      xLabel: 'offered clips/s',
      yLabel: 'p99 (ms)',
      hoverX,
      series: [
        {
          name: 'e2e p99',
          color: COLORS[1]!,
          unit: 'ms',
          points: ramp.steps.map((x) => [x.clipRate, x.e2eP99Ms] as const),
        },
        {
          name: 'PUBACK p99',
          color: COLORS[2]!,
          dashed: true,
          unit: 'ms',
          points: ramp.steps.map((x) => [x.clipRate, x.pubackP99Ms] as const),
        },
      ],
      hLine: { y: ramp.targetP99Ms, label: `target ${ramp.targetP99Ms} ms` },
    });
    html += `<table><thead><tr><th>step</th><th>offered/s</th><th>achieved/s</th><th>e2e p99 (ms)</th><th>PUBACK p99 (ms)</th><th>errors</th></tr></thead><tbody>${ramp.steps
      .map(
        (x, i) =>
          `<tr><th>${i + 1}</th><td>${x.clipRate}</td><td>${fmt(x.achievedClipsPerSec, 1)}</td><td>${fmt(x.e2eP99Ms)}</td><td>${fmt(x.pubackP99Ms)}</td><td>${x.errors}</td></tr>`,
      )
      .join('')}</tbody></table></section>`;
  }
  if (s.storm) {
    const st = s.storm;
    html += `<section><h2>Reconnect storm</h2>${st.atS !== undefined ? `<p class="muted">At t = ${fmt(st.atS, 1)} s every toy's socket was destroyed at once; the red line in the charts below marks it, the green one the moment the last toy was back.</p>` : ''}${kpis(
      [
        ['toys back', `${st.back} / ${st.toys}`],
        ['all back after (s)', fmt(st.allBackMs / 1000, 2)],
        ['connects/s', String(st.connectsPerSec)],
        ['failed', String(st.failed)],
        ['auth failures', String(st.authFailures)],
        ['reconnect p99 (ms)', fmt(st.connect.p99)],
      ],
    )}</section>`;
  }
  if (s.attack) {
    const a = s.attack;
    html += `<section><h2>Attack traffic</h2><p class="${a.leaked === 0 ? 'ok' : 'bad'}">${a.attempted} attacks, ${a.refused} refused, <b>${a.leaked} leaked</b>, ${a.inconclusive} inconclusive (share ${a.share}). <span class="muted">Leaked: the gateway accepted the attack — a security bug.</span></p>`;
    html += `<table><thead><tr><th>attack</th><th>attempted</th><th>refused</th><th>leaked</th><th>inconclusive</th><th class="l">how it was refused</th></tr></thead><tbody>${Object.entries(
      a.byKind,
    )
      .map(
        ([k, v]) =>
          `<tr${v.leaked > 0 ? ' class="fail"' : ''}><th>${esc(k)}</th><td>${v.attempted}</td><td>${v.refused}</td><td>${v.leaked}</td><td>${v.inconclusive}</td><td class="l">${esc(
            Object.entries(v.signals)
              .map(([sig, n]) => `${sig} × ${n}`)
              .join(', '),
          )}</td></tr>`,
      )
      .join('')}</tbody></table>`;
    if (a.gatewayCounters) {
      html += `<p class="muted">Gateway counters: ${esc(
        Object.entries(a.gatewayCounters)
          .map(([k, v]) => `${k.replace('plushlink_gateway_', '')} = ${v}`)
          .join('; '),
      )}</p>`;
    }
    html += '</section>';
  }
  return html;
}

const CSS = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;color:#222;margin:0;background:#f6f7f9}
main{max-width:1040px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:0 0 8px}
section{background:#fff;border:1px solid #e3e5e8;border-radius:8px;padding:16px 20px;margin:16px 0}
table{border-collapse:collapse;margin:10px 0;font-variant-numeric:tabular-nums}
th,td{padding:4px 10px;border-bottom:1px solid #eee;text-align:right}
th:first-child{text-align:left}th.l,td.l{text-align:left}thead th{background:#fafbfc;font-weight:600}
tr.pass td.verdict{color:#1e7e34;font-weight:600}tr.fail td.verdict{color:#b00020;font-weight:700}tr.fail{background:#fdf0f1}
.kpis{display:flex;flex-wrap:wrap;gap:10px;margin:8px 0}
.kpi{border:1px solid #e3e5e8;border-radius:6px;padding:8px 12px;min-width:110px}
.kpi .v{font-size:18px;font-weight:600}.kpi .k{color:#666;font-size:12px}
figure{margin:12px 0}svg{max-width:100%;height:auto}
svg rect.hover:hover{fill-opacity:.07}
.badge{display:inline-block;padding:2px 10px;border-radius:12px;font-size:14px;vertical-align:middle;margin-left:8px;color:#fff}
.badge.passed{background:#1e7e34}.badge.failed,.badge.thresholds-failed{background:#b00020}
.muted{color:#666}.ok{color:#1e7e34}.warn{color:#a15c00}.bad{color:#b00020;font-weight:600}
code{background:#f0f1f3;padding:1px 4px;border-radius:3px}
`;

const capitalize = (s: string): string => s.charAt(0).toUpperCase() + s.slice(1);

const BADGE: Record<RunResult['status'], string> = {
  passed: 'passed',
  failed: 'failed',
  'thresholds-failed': 'thresholds failed',
};

/** The whole report as one HTML document (works offline, prints well). */
export function renderHtml(rep: LoadtestReport): string {
  const compare = rep.compare
    ? `<section><h2>Gateway vs plain brokers (same clip bytes)</h2><table><thead><tr><th>plain broker</th><th>gateway/plain throughput</th><th>gateway/plain e2e p99</th></tr></thead><tbody>${rep.compare.ratios
        .map(
          (x) =>
            `<tr><th>${esc(x.broker)}</th><td>${fmt(x.throughput, 3)}</td><td>${fmt(x.p99, 3)}</td></tr>`,
        )
        .join(
          '',
        )}</tbody></table></section>${rep.compare.runs.map((r) => runSection(r, `Plain broker: ${r.target.kind}`)).join('')}`
    : '';
  const badge = rep.result
    ? `<span class="badge ${rep.result.status}">${BADGE[rep.result.status]}</span>`
    : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>PlushLink load test — ${esc(rep.scenario.name)}</title><style>${CSS}</style></head>
<body><main>
<h1>PlushLink load test: ${esc(rep.scenario.name)}${badge}${rep.interrupted ? ' <span class="bad">(interrupted)</span>' : ''}</h1>
<p class="muted">${esc(rep.startedAt)} → ${esc(rep.finishedAt)} · ${rep.fleet.toys} toys, ${rep.fleet.parents} parents, ${rep.fleet.workers} workers · clips of ${rep.audio.clipSeconds} s (${rep.audio.envelopeBytesMean} B envelopes) · seed <code>${esc(String(rep.options.seed))}</code></p>
<p class="muted">${rep.audio.source ? `${esc(capitalize(rep.audio.source))}. ` : ''}${esc(capitalize(rep.audio.sealing))}.</p>
${resultSection(rep)}
${scenarioSection(rep)}
${runSection(rep.run, 'Gateway under test', rep.scenario.storm)}
${compare}
${rep.notes.length ? `<section><h2>Notes</h2><ul>${rep.notes.map((n) => `<li>${esc(n)}</li>`).join('')}</ul></section>` : ''}
</main></body></html>
`;
}
