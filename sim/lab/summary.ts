// The figures `lab compare` and `lab sweep` put side by side, taken from a run's report, and their deltas against the first.
import type { LabReport } from './simulate.ts';

export interface Metric {
  readonly key: string;
  readonly label: string;
  readonly unit: string;
  /** Lower is better (bytes, time, energy) or higher (battery days, quality score). */
  readonly better: 'lower' | 'higher';
  readonly decimals: number;
  readonly get: (r: LabReport) => number;
}

export const METRICS: readonly Metric[] = [
  {
    key: 'envelopeBytes',
    label: 'envelope per clip',
    unit: 'B',
    better: 'lower',
    decimals: 0,
    get: (r) => r.day.perClip.envelopeBytes,
  },
  {
    key: 'opusBytes',
    label: 'Opus per clip',
    unit: 'B',
    better: 'lower',
    decimals: 0,
    get: (r) => r.day.perClip.bytes.opus,
  },
  {
    key: 'protocolBytes',
    label: 'protocol overhead per clip',
    unit: 'B',
    better: 'lower',
    decimals: 0,
    get: (r) => {
      const b = r.day.perClip.bytes;
      return b.header + b.sealedKeys + b.signature + b.padding;
    },
  },
  {
    key: 'linkBytes',
    label: 'toy link bytes per clip',
    unit: 'B',
    better: 'lower',
    decimals: 0,
    get: (r) => r.day.perClip.bytes.total,
  },
  {
    key: 'airtimeMs',
    label: 'airtime per clip',
    unit: 'ms',
    better: 'lower',
    decimals: 1,
    get: (r) => r.day.perClip.airtimeMs,
  },
  {
    key: 'latencyMs',
    label: 'recording end → playback',
    unit: 'ms',
    better: 'lower',
    decimals: 0,
    get: (r) => r.day.perClip.latencyMs,
  },
  {
    key: 'firstAudioMs',
    label: 'time to first audio (from the first word)',
    unit: 'ms',
    better: 'lower',
    decimals: 0,
    get: (r) => r.day.perClip.firstAudioFromStartMs,
  },
  {
    key: 'receivedMs',
    label: 'parent clip → toy playback',
    unit: 'ms',
    better: 'lower',
    decimals: 0,
    get: (r) => r.day.latencyMs.receivedMean,
  },
  {
    key: 'clipEnergyMj',
    label: 'energy per sent clip',
    unit: 'mJ',
    better: 'lower',
    decimals: 1,
    get: (r) => r.day.perClip.energyMj,
  },
  {
    key: 'dailyEnergyJ',
    label: 'energy per day',
    unit: 'J',
    better: 'lower',
    decimals: 2,
    get: (r) => r.day.dailyEnergyMj / 1000,
  },
  {
    key: 'batteryDays',
    label: 'battery life',
    unit: 'days',
    better: 'higher',
    decimals: 1,
    get: (r) => r.day.batteryDays,
  },
  {
    key: 'lsdDb',
    label: 'quality: mel distance',
    unit: 'dB',
    better: 'lower',
    decimals: 2,
    get: (r) => r.day.quality.lsdDb,
  },
];

export interface RunSummary {
  readonly name: string;
  readonly source: string;
  readonly protocol: number;
  readonly link: string;
  readonly codec: string;
  readonly figures: Readonly<Record<string, number>>;
  /** Relative change against the first run, per metric (0.1 = +10 %). */
  readonly deltas: Readonly<Record<string, number | null>>;
  readonly energyMj: Readonly<Record<string, number>>;
  readonly bytesPerClip: Readonly<Record<string, number>>;
}

const round = (x: number, d: number): number => {
  const f = 10 ** d;
  return Math.round(x * f) / f;
};

export function describeLink(r: LabReport): string {
  const l = r.config.link as Record<string, unknown>;
  return l.kind === 'ble'
    ? `BLE ${String(l.phy)} MTU ${String(l.mtu)} DL ${String(l.dataLength)} ${String(l.intervalMs)} ms ×${String(l.perEvent)}`
    : `Wi-Fi MCS${String(l.mcs)} RTT ${String(l.rttMs)} ms${l.tls ? ' TLS' : ''}`;
}

export function describeCodec(r: LabReport): string {
  const c = r.config.codec as Record<string, unknown>;
  return `Opus ${String(c.bitrateKbps)} kbit/s cx${String(c.complexity)} ${String(c.frameMs)} ms${c.dtx ? ' DTX' : ''}${c.fec ? ' FEC' : ''}`;
}

/** Figures of each run and their change against the first. */
export function summarize(
  runs: readonly { readonly source: string; readonly report: LabReport }[],
): RunSummary[] {
  const base = runs[0]?.report;
  return runs.map(({ source, report }) => {
    const figures: Record<string, number> = {};
    const deltas: Record<string, number | null> = {};
    for (const m of METRICS) {
      const v = m.get(report);
      figures[m.key] = round(v, m.decimals + 1);
      const b = base ? m.get(base) : v;
      deltas[m.key] = b === 0 ? (v === 0 ? 0 : null) : round((v - b) / Math.abs(b), 4);
    }
    return {
      name: report.name,
      source,
      protocol: report.protocol.version,
      link: describeLink(report),
      codec: describeCodec(report),
      figures,
      deltas,
      energyMj: report.day.energyMj,
      bytesPerClip: report.day.perClip.bytes,
    };
  });
}
