// Self-contained HTML report (inline CSS and SVG charts, no scripts, no external fonts or files).

import type { LatencySummary } from '../../sim/stats.ts';
import { escapeXml as esc, histogramChart, lineChart, type Series } from './svg-plot.ts';
import type { LoadtestReport, RunSummary } from './types.ts';

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
    ['clips/s', fmt(r.throughput.clipsPerSec, 1)],
    ['MB/s', fmt(r.throughput.mbPerSec, 2)],
    [
      'target CPU mean / max (% of a core)',
      `${fmt(r.gateway.cpuPercentMean, 0)} / ${fmt(r.gateway.cpuPercentMax, 0)}`,
    ],
    ['target RSS max (MB)', fmt(r.gateway.rssMbMax, 0)],
    ['target event-loop stall max (ms)', fmt(r.gateway.eventLoopLagMaxMs, 0)],
  ];
  return `<div class="kpis">${cells.map(([k, v]) => `<div class="kpi"><div class="v">${esc(v)}</div><div class="k">${esc(k)}</div></div>`).join('')}</div>`;
}

function charts(r: RunSummary): string {
  // Whole intervals only: the last one (cut short by the stop) would show as a spike.
  const tl = r.timeline.filter((p) => p.phase !== 'setup' && p.phase !== 'stop' && p.dt >= 0.5);
  const rate = (n: number, dt: number): number => Math.round((n / dt) * 10) / 10;
  const lat: Series[] = [
    { name: 'e2e p50', color: COLORS[0]!, points: tl.map((p) => [p.t, p.e2eP50Ms] as const) },
    { name: 'e2e p99', color: COLORS[1]!, points: tl.map((p) => [p.t, p.e2eP99Ms] as const) },
    { name: 'PUBACK p99', color: COLORS[2]!, points: tl.map((p) => [p.t, p.pubackP99Ms] as const) },
    {
      name: 'gateway loop lag p99',
      color: COLORS[3]!,
      dashed: true,
      points: tl.map((p) => [p.t, p.gatewayLagP99Ms] as const),
    },
  ];
  const thr: Series[] = [
    {
      name: 'clips acked/s',
      color: COLORS[0]!,
      points: tl.map((p) => [p.t, rate(p.clipsAcked, p.dt)] as const),
    },
    {
      name: 'clips delivered/s',
      color: COLORS[2]!,
      points: tl.map((p) => [p.t, rate(p.clipsDelivered, p.dt)] as const),
    },
    { name: 'errors/s', color: COLORS[4]!, points: tl.map((p) => [p.t, rate(p.errors, p.dt)] as const) },
  ];
  const res: Series[] = [
    { name: 'target CPU %', color: COLORS[3]!, points: tl.map((p) => [p.t, p.gatewayCpuPercent] as const) },
    {
      name: 'generator CPU %',
      color: COLORS[5]!,
      points: tl.map((p) => [p.t, p.generatorCpuPercent] as const),
    },
  ];
  const e2e = r.latency.e2e;
  return [
    lineChart({ title: 'Latency over time', xLabel: 'time (s)', yLabel: 'ms', series: lat }),
    lineChart({ title: 'Throughput over time', xLabel: 'time (s)', yLabel: 'per second', series: thr }),
    histogramChart({
      title: 'End-to-end latency histogram',
      xLabel: 'latency (ms, log scale)',
      yLabel: 'clips',
      bins: r.e2eHistogram.map((b) => ({ from: b.fromMs, to: b.toMs, count: b.count })),
      logX: true,
      markers: e2e.count
        ? [
            { x: e2e.p50, label: `p50 ${fmt(e2e.p50)}` },
            { x: e2e.p99, label: `p99 ${fmt(e2e.p99)}` },
            { x: e2e.p999, label: `p99.9 ${fmt(e2e.p999)}` },
          ]
        : [],
    }),
    lineChart({ title: 'CPU over time', xLabel: 'time (s)', yLabel: '% of one core', series: res }),
  ]
    .map((svg) => `<figure>${svg}</figure>`)
    .join('');
}

function runSection(r: RunSummary, heading: string): string {
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
    charts(r) +
    '</section>'
  );
}

function scenarioSection(rep: LoadtestReport): string {
  const s = rep.scenario;
  let html = '';
  if (s.ramp) {
    const ramp = s.ramp;
    html += `<section><h2>Ramp</h2><p>Knee: <b>${fmt(ramp.kneeClipsPerSec, 1)} clips/s</b> — ${esc(ramp.note)}</p>`;
    html += lineChart({
      title: 'End-to-end p99 per ramp step',
      xLabel: 'offered clips/s',
      yLabel: 'p99 (ms)',
      series: [
        {
          name: 'e2e p99',
          color: COLORS[1]!,
          points: ramp.steps.map((x) => [x.clipRate, x.e2eP99Ms] as const),
        },
      ],
      hLine: { y: ramp.targetP99Ms, label: `target ${ramp.targetP99Ms} ms` },
    });
    html += `<table><thead><tr><th>offered/s</th><th>achieved/s</th><th>e2e p99 (ms)</th><th>PUBACK p99 (ms)</th><th>errors</th></tr></thead><tbody>${ramp.steps
      .map(
        (x) =>
          `<tr><th>${x.clipRate}</th><td>${fmt(x.achievedClipsPerSec, 1)}</td><td>${fmt(x.e2eP99Ms)}</td><td>${fmt(x.pubackP99Ms)}</td><td>${x.errors}</td></tr>`,
      )
      .join('')}</tbody></table></section>`;
  }
  if (s.storm) {
    const st = s.storm;
    html += `<section><h2>Reconnect storm</h2><div class="kpis">${[
      ['toys back', `${st.back} / ${st.toys}`],
      ['all back after (s)', fmt(st.allBackMs / 1000, 2)],
      ['connects/s', String(st.connectsPerSec)],
      ['auth failures', String(st.authFailures)],
      ['reconnect p99 (ms)', fmt(st.connect.p99)],
    ]
      .map(
        ([k, v]) =>
          `<div class="kpi"><div class="v">${esc(v ?? '')}</div><div class="k">${esc(k ?? '')}</div></div>`,
      )
      .join('')}</div></section>`;
  }
  if (s.attack) {
    const a = s.attack;
    html += `<section><h2>Attack traffic</h2><p class="${a.leaked === 0 ? 'ok' : 'bad'}">${a.attempted} attacks, ${a.refused} refused, <b>${a.leaked} accepted</b>, ${a.inconclusive} inconclusive (share ${a.share}).</p>`;
    html += `<table><thead><tr><th>attack</th><th>attempted</th><th>refused</th><th>accepted</th><th>how it was refused</th></tr></thead><tbody>${Object.entries(
      a.byKind,
    )
      .map(
        ([k, v]) =>
          `<tr><th>${esc(k)}</th><td>${v.attempted}</td><td>${v.refused}</td><td>${v.leaked}</td><td class="l">${esc(
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
th:first-child{text-align:left}td.l{text-align:left}thead th{background:#fafbfc;font-weight:600}
.kpis{display:flex;flex-wrap:wrap;gap:10px;margin:8px 0}
.kpi{border:1px solid #e3e5e8;border-radius:6px;padding:8px 12px;min-width:110px}
.kpi .v{font-size:18px;font-weight:600}.kpi .k{color:#666;font-size:12px}
figure{margin:12px 0}svg{max-width:100%;height:auto}
.muted{color:#666}.ok{color:#1e7e34}.warn{color:#a15c00}.bad{color:#b00020;font-weight:600}
code{background:#f0f1f3;padding:1px 4px;border-radius:3px}
`;

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
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>PlushLink load test — ${esc(rep.scenario.name)}</title><style>${CSS}</style></head>
<body><main>
<h1>PlushLink load test: ${esc(rep.scenario.name)}${rep.interrupted ? ' <span class="bad">(interrupted)</span>' : ''}</h1>
<p class="muted">${esc(rep.startedAt)} → ${esc(rep.finishedAt)} · ${rep.fleet.toys} toys, ${rep.fleet.parents} parents, ${rep.fleet.workers} workers · clips of ${rep.audio.clipSeconds} s (${rep.audio.envelopeBytesMean} B envelopes) · seed <code>${esc(String(rep.options.seed))}</code></p>
<p class="muted">${esc(rep.audio.sealing)}.</p>
${scenarioSection(rep)}
${runSection(rep.run, 'Gateway under test')}
${compare}
${rep.notes.length ? `<section><h2>Notes</h2><ul>${rep.notes.map((n) => `<li>${esc(n)}</li>`).join('')}</ul></section>` : ''}
</main></body></html>
`;
}
