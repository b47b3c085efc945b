// Terminal output of the protocol lab: a run's per-clip table and day totals, and side-by-side tables with deltas against the first run.
import { BYTE_CATEGORIES, type ByteCategory, type LabReport } from './simulate.ts';
import { describeCodec, describeLink, METRICS, type RunSummary } from './summary.ts';

const int = (n: number): string => Math.round(n).toLocaleString('en-US');
const fixed = (n: number, d: number): string =>
  Number.isFinite(n)
    ? n.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d })
    : '∞';

function clock(ms: number): string {
  const m = Math.floor(ms / 60_000);
  return `${String(Math.floor(m / 60)).padStart(2, '0')}:${String(m % 60).padStart(2, '0')}`;
}

/** Right-aligns every column but the first; the first row is the header. */
export function table(rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const r of rows) {
    r.forEach((cell, i) => {
      widths[i] = Math.max(widths[i] ?? 0, [...cell].length);
    });
  }
  return rows
    .map((r) =>
      r
        .map((cell, i) => {
          const pad = ' '.repeat(Math.max(0, widths[i]! - [...cell].length));
          return i === 0 ? cell + pad : pad + cell;
        })
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

const LABEL: Readonly<Record<ByteCategory, string>> = {
  opus: 'opus',
  ogg: 'ogg',
  header: 'header',
  sealedKeys: 'keys',
  signature: 'sig',
  padding: 'pad',
  receipts: 'rcpt',
  mqtt: 'mqtt',
  transport: 'transport',
};

/** `plushlink lab run` without --json. */
export function formatRun(r: LabReport): string {
  const out: string[] = [];
  out.push(
    `lab run "${r.name}" (seed ${r.seed}): ${r.protocol.label}`,
    `  ${describeLink(r)}; ${describeCodec(r)}; speech ${r.speech.source}`,
    '',
  );
  if (r.sent.length > 0) {
    out.push(
      'sent clips (toy → parents): bytes on the toy → gateway path; latency = end of recording → playback on a parent',
    );
    const rows: string[][] = [
      [
        '#',
        'at',
        's',
        ...BYTE_CATEGORIES.map((k) => LABEL[k]),
        'total B',
        'air ms',
        'latency ms',
        'mJ',
        'LSD dB',
      ],
    ];
    for (const s of r.sent) {
      rows.push([
        String(s.index + 1),
        clock(s.atMs),
        fixed(s.durationMs / 1000, 1),
        ...BYTE_CATEGORIES.map((k) => int(s.bytes[k])),
        int(s.bytes.total),
        fixed(s.airtimeMs, 1),
        int(s.latencyMs.fullClipMs ?? 0),
        fixed(s.energyMj.total ?? 0, 1),
        fixed(s.quality.lsdDb, 2),
      ]);
    }
    out.push(table(rows), '');
  }
  if (r.received.length > 0) {
    out.push(
      'received clips (parents → toy): bytes on the gateway → toy path (receipt included); latency = end of recording → playback on the toy',
    );
    const rows: string[][] = [
      ['#', 'at', 's', 'from', 'envelope B', 'total B', 'air ms', 'latency ms', 'mJ'],
    ];
    for (const c of r.received) {
      rows.push([
        String(c.index + 1),
        clock(c.atMs),
        fixed(c.durationMs / 1000, 1),
        `parent ${c.fromParent + 1}`,
        int(c.envelopeBytes),
        int(c.bytes.total),
        fixed(c.airtimeMs, 1),
        int(c.latencyMs.firstAudioMs ?? 0),
        fixed(c.energyMj.total ?? 0, 1),
      ]);
    }
    out.push(table(rows), '');
  }
  const d = r.day;
  const pc = d.perClip.bytes;
  out.push(
    'day',
    `  per sent clip   ${BYTE_CATEGORIES.map((k) => `${LABEL[k]} ${int(pc[k])}`).join(' + ')} = ${int(pc.total)} B`,
    `  link bytes      ${int(d.linkBytes)} B/day (clips, receipts, keepalives, connects, idle link)`,
    `  airtime         ${fixed(d.airtimeMs / 1000, 2)} s/day; ${fixed(d.perClip.airtimeMs, 1)} ms per sent clip`,
    `  latency         sent ${int(d.latencyMs.sentMean)} ms mean (max ${int(d.latencyMs.sentMax)}), first audio ${int(d.latencyMs.firstAudioMean)} ms; received ${int(d.latencyMs.receivedMean)} ms`,
    `  energy          ${Object.entries(d.energyMj)
      .map(([k, v]) => `${k} ${fixed(v / 1000, 2)}`)
      .join(
        ' + ',
      )} = ${fixed(d.dailyEnergyMj / 1000, 2)} J/day (average ${d.averageCurrentMa >= 1 ? `${fixed(d.averageCurrentMa, 2)} mA` : `${fixed(d.averageCurrentMa * 1000, 1)} µA`})`,
    `  battery         ${fixed(d.batteryDays, 1)} days on ${int((r.config.usage as { batteryMah: number }).batteryMah)} mAh`,
    `  quality         mel distance ${fixed(d.quality.lsdDb, 2)} dB (score ${fixed(d.quality.score, 3)}; lower distance is better)`,
  );
  for (const n of r.notes) out.push(`note: ${n}`);
  return `${out.join('\n')}\n`;
}

function delta(v: number | null | undefined): string {
  if (v === null || v === undefined) return '';
  if (v === 0) return ' (=)';
  const pct = v * 100;
  return ` (${pct > 0 ? '+' : '−'}${fixed(Math.abs(pct), Math.abs(pct) < 10 ? 1 : 0)}%)`;
}

/** Metrics down, runs across; every run but the first shows its change against the first. */
export function formatComparison(
  summaries: readonly RunSummary[],
  headers: readonly string[],
  title: string,
): string {
  const rows: string[][] = [['', ...headers]];
  rows.push(['link', ...summaries.map((s) => s.link)]);
  rows.push(['codec', ...summaries.map((s) => s.codec)]);
  rows.push(['protocol', ...summaries.map((s) => `v${s.protocol}`)]);
  for (const m of METRICS) {
    rows.push([
      `${m.label} (${m.unit})`,
      ...summaries.map((s, i) => {
        const v = s.figures[m.key] ?? 0;
        return `${fixed(v, m.decimals)}${i === 0 ? '' : delta(s.deltas[m.key])}`;
      }),
    ]);
  }
  return `${title}\n${table(rows)}\n(deltas against the first column)\n`;
}
