// Terminal summary of a load-test report: aligned plain-text tables.
import type { LatencySummary } from '../../sim/stats.ts';
import { resultLine } from './thresholds.ts';
import type { LoadtestReport, RunSummary, ThresholdResult } from './types.ts';

/** Left-aligns the first column, right-aligns the rest. */
export function table(rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const r of rows) {
    r.forEach((c, i) => {
      widths[i] = Math.max(widths[i] ?? 0, c.length);
    });
  }
  return rows
    .map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  '))
    .join('\n');
}

const ms = (x: number): string => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));

function latencyRows(r: RunSummary): string[][] {
  const rows: string[][] = [['latency (ms)', 'n', 'p50', 'p90', 'p99', 'p99.9', 'max']];
  const add = (name: string, s: LatencySummary) =>
    rows.push([name, String(s.count), ms(s.p50), ms(s.p90), ms(s.p99), ms(s.p999), ms(s.max)]);
  add('connect+auth', r.latency.connect);
  add('puback', r.latency.puback);
  add('end-to-end', r.latency.e2e);
  return rows;
}

/** The gateway's hold for clips in transit [PLK-12.9], for the report's first line; '' for a plain broker. */
export function transitHoldText(t: RunSummary['target']): string {
  if (t.transitHoldMs === undefined) return '';
  if (t.transitHoldMs === 'unknown') return 'clips in transit: hold as set on that gateway (not known here)';
  if (t.transitHoldMs === null) return 'clips in transit: off (forwarded after their commit)';
  return `clips in transit: hold ${t.transitHoldMs} ms`;
}

export function runText(r: RunSummary): string {
  const t = r.totals;
  const hold = transitHoldText(r.target);
  const lines = [
    `target ${r.target.kind} (${r.target.url}), traffic ${(r.phaseMs / 1000).toFixed(1)} s${hold ? `, ${hold}` : ''}`,
    table([
      ['clips', 'sent', 'acked', 'delivered', 'errors', 'lost', 'held', 'clips/s', 'MB/s'],
      [
        '',
        String(t.clipsSent),
        String(t.clipsAcked),
        String(t.clipsDelivered),
        String(t.errors),
        String(t.lost),
        String(t.held),
        r.throughput.clipsPerSec.toFixed(1),
        r.throughput.mbPerSec.toFixed(2),
      ],
    ]),
    table(latencyRows(r)),
  ];
  const errs = Object.entries(r.errors).filter(([, v]) => v > 0);
  if (errs.length) lines.push(`errors: ${errs.map(([k, v]) => `${k} ${v}`).join(', ')}`);
  const g = r.gateway;
  if (g.source !== 'none') {
    lines.push(
      `target process: CPU mean ${g.cpuPercentMean ?? '-'} %, max ${g.cpuPercentMax ?? '-'} % of a core; RSS max ${g.rssMbMax ?? '-'} MB${g.heapMbMax !== null ? `, heap max ${g.heapMbMax} MB` : ''}${g.eventLoopLagMaxMs !== null ? `; its event loop blocked up to ${g.eventLoopLagMaxMs} ms (p99 per second up to ${g.eventLoopLagP99MaxMs ?? '-'} ms)` : ''}`,
    );
  }
  lines.push(
    `generator: ${r.generator.workers
      .map(
        (w) =>
          `w${w.index} CPU ${w.cpuPercent ?? '-'} % ELU ${(w.eluMean * 100).toFixed(0)} % lag p99 ${w.lagP99MaxMs} ms`,
      )
      .join('; ')}`,
    `host CPU ${r.generator.hostCpuPercentMean ?? '-'} % busy, other processes ${r.generator.otherProcessesCpuPercentMean ?? '-'} %, steal ${r.generator.hostStealPercentMean ?? '-'} %`,
    `bottleneck: ${r.generator.verdict}`,
  );
  return lines.join('\n');
}

export function reportText(rep: LoadtestReport): string {
  const out: string[] = [
    `plushlink loadtest — scenario ${rep.scenario.name}, ${rep.fleet.toys} toys / ${rep.fleet.parents} parents, ${rep.fleet.workers} workers${rep.interrupted ? ' (INTERRUPTED)' : ''}`,
    `audio: ${rep.audio.clips} pre-encoded clips of ${rep.audio.clipSeconds} s (${rep.audio.oggBytesMean} B Ogg, ${rep.audio.envelopeBytesMean} B envelope), ${rep.options.seal === 'resign' ? 'per-clip header + signature over a sealed template (--seal resign)' : 'sealed + signed per clip'}`,
    '',
    runText(rep.run),
  ];
  const s = rep.scenario;
  if (s.ramp) {
    out.push(
      '',
      `ramp (target e2e p99 ≤ ${s.ramp.targetP99Ms} ms): knee ${s.ramp.kneeClipsPerSec ?? '-'} clips/s — ${s.ramp.note}`,
      table([
        ['offered/s', 'achieved/s', 'e2e p99', 'puback p99', 'errors'],
        ...s.ramp.steps.map((x) => [
          String(x.clipRate),
          x.achievedClipsPerSec.toFixed(1),
          x.e2eP99Ms === null ? '-' : ms(x.e2eP99Ms),
          x.pubackP99Ms === null ? '-' : ms(x.pubackP99Ms),
          String(x.errors),
        ]),
      ]),
    );
  }
  if (s.storm) {
    const st = s.storm;
    out.push(
      '',
      `storm: ${st.back}/${st.toys} toys back in ${(st.allBackMs / 1000).toFixed(2)} s (${st.connectsPerSec} connects/s), ${st.failed} failed, ${st.authFailures} auth failures; reconnect p50 ${ms(st.connect.p50)} ms p99 ${ms(st.connect.p99)} ms`,
    );
  }
  if (s.attack) {
    const a = s.attack;
    out.push(
      '',
      `attack (share ${a.share}): ${a.attempted} attempts, ${a.refused} refused, ${a.leaked} leaked${a.leaked > 0 ? ' (!)' : ''}, ${a.inconclusive} inconclusive — leaked = accepted by the gateway, a security bug`,
      table([
        ['attack', 'attempted', 'refused', 'leaked', 'how refused'],
        ...Object.entries(a.byKind).map(([k, v]) => [
          k,
          String(v.attempted),
          String(v.refused),
          String(v.leaked),
          Object.entries(v.signals)
            .map(([sig, n]) => `${sig}×${n}`)
            .join(' '),
        ]),
      ]),
    );
  }
  if (rep.compare) {
    for (const r of rep.compare.runs) out.push('', runText(r));
    out.push(
      '',
      table([
        ['gateway / plain', 'throughput', 'e2e p99'],
        ...rep.compare.ratios.map((x) => [
          x.broker,
          x.throughput?.toFixed(3) ?? '-',
          x.p99?.toFixed(3) ?? '-',
        ]),
      ]),
    );
  }
  if (rep.notes.length) out.push('', ...rep.notes.map((n) => `note: ${n}`));
  if (rep.thresholds?.length) out.push('', thresholdsText(rep.thresholds));
  if (rep.result) out.push('', resultLine(rep));
  return out.join('\n');
}

/** One row per threshold: the expression, what was measured, pass or FAIL. */
export function thresholdsText(ths: readonly ThresholdResult[]): string {
  const rows = [
    ['threshold', 'measured', 'result'],
    ...ths.map((t) => [t.expression, `${t.label} ${t.measuredText}`, t.passed ? 'pass' : 'FAIL']),
  ];
  const w = [0, 1].map((i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => `${r[0]!.padEnd(w[0]!)}  ${r[1]!.padEnd(w[1]!)}  ${r[2]}`).join('\n');
}
