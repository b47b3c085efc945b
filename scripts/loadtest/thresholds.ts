// Load-test thresholds (`--threshold 'e2e.p99<25ms'`): the grammar, its metrics, evaluation against a report, and the run's exit code.
import { CliError } from '../cli-util.ts';
import type { LoadtestReport, RunResult, ScenarioName, ThresholdResult } from './types.ts';

export type ThresholdOp = '<' | '<=' | '>' | '>=' | '==';
export type ThresholdUnit = 'ms' | 's' | '%' | '/s' | '';

/** What a metric measures, which decides the units it accepts. */
type MetricKind = 'time' | 'count' | 'rate';

interface MetricDef {
  readonly kind: MetricKind;
  /** Only measured in this scenario (a threshold on it in another scenario is a usage error). */
  readonly scenario?: ScenarioName;
  /** In ms for time metrics, a count, or per second; null when not measured. */
  readonly value: (rep: LoadtestReport) => number | null;
  /** For counts that take `%`: the denominator and what it is called. */
  readonly percentOf?: { readonly label: string; readonly value: (rep: LoadtestReport) => number | null };
  /** How the measured value is named in the summary, e.g. "e2e p99". */
  readonly label: string;
}

/** Exit codes of `plushlink loadtest` (docs/LOADTEST.md, "Exit codes"). */
export const EXIT = { ok: 0, failed: 1, usage: 2, thresholds: 3 } as const;

const STATS = ['p50', 'p90', 'p99', 'p999', 'max', 'mean', 'min'] as const;
type Stat = (typeof STATS)[number];

const LATENCIES = ['connect', 'puback', 'e2e'] as const;

function buildMetrics(): Map<string, MetricDef> {
  const m = new Map<string, MetricDef>();
  for (const lat of LATENCIES) {
    for (const stat of STATS) {
      m.set(`${lat}.${stat}`, {
        kind: 'time',
        label: `${lat} ${stat === 'p999' ? 'p99.9' : stat}`,
        value: (r) => (r.run.latency[lat].count > 0 ? r.run.latency[lat][stat as Stat] : null),
      });
    }
    m.set(`${lat}.count`, { kind: 'count', label: `${lat} samples`, value: (r) => r.run.latency[lat].count });
  }
  const sent = (r: LoadtestReport): number => r.run.totals.clipsSent;
  const acked = (r: LoadtestReport): number => r.run.totals.clipsAcked;
  m.set('throughput', {
    kind: 'rate',
    label: 'throughput (clips/s)',
    value: (r) => r.run.throughput.clipsPerSec,
  });
  m.set('throughput.mb', {
    kind: 'rate',
    label: 'throughput (MB/s)',
    value: (r) => r.run.throughput.mbPerSec,
  });
  m.set('sent', { kind: 'count', label: 'clips sent', value: sent });
  m.set('acked', {
    kind: 'count',
    label: 'clips acknowledged',
    value: acked,
    percentOf: { label: 'of sent', value: sent },
  });
  m.set('delivered', {
    kind: 'count',
    label: 'clips delivered',
    value: (r) => r.run.totals.clipsDelivered,
    percentOf: { label: 'of acknowledged', value: acked },
  });
  m.set('duplicates', { kind: 'count', label: 'duplicates', value: (r) => r.run.totals.duplicates });
  m.set('errors', {
    kind: 'count',
    label: 'clip errors',
    value: (r) => r.run.totals.errors,
    percentOf: { label: 'of sent', value: sent },
  });
  m.set('lost', {
    kind: 'count',
    label: 'lost',
    value: (r) => r.run.totals.lost,
    percentOf: { label: 'of acknowledged', value: acked },
  });
  m.set('held', {
    kind: 'count',
    label: 'held for an offline parent',
    value: (r) => r.run.totals.held,
    percentOf: { label: 'of acknowledged', value: acked },
  });
  m.set('connect.failed', {
    kind: 'count',
    label: 'failed connects',
    value: (r) => r.run.totals.connectFailures,
  });
  const attempted = (r: LoadtestReport): number | null => r.scenario.attack?.attempted ?? null;
  for (const f of ['attempted', 'refused', 'leaked', 'inconclusive'] as const) {
    m.set(`attacks.${f}`, {
      kind: 'count',
      scenario: 'attack',
      label: `attacks ${f}`,
      value: (r) => r.scenario.attack?.[f] ?? null,
      ...(f === 'attempted' ? {} : { percentOf: { label: 'of attempted', value: attempted } }),
    });
  }
  const toys = (r: LoadtestReport): number | null => r.scenario.storm?.toys ?? null;
  const allBack: MetricDef = {
    kind: 'time',
    scenario: 'storm',
    label: 'storm: all toys back after',
    value: (r) => r.scenario.storm?.allBackMs ?? null,
  };
  m.set('storm.allBack', allBack);
  m.set('storm.allBackMs', allBack);
  m.set('storm.back', {
    kind: 'count',
    scenario: 'storm',
    label: 'storm: toys back',
    value: (r) => r.scenario.storm?.back ?? null,
    percentOf: { label: 'of toys', value: toys },
  });
  m.set('storm.failed', {
    kind: 'count',
    scenario: 'storm',
    label: 'storm: reconnects failed',
    value: (r) => r.scenario.storm?.failed ?? null,
    percentOf: { label: 'of toys', value: toys },
  });
  m.set('storm.authFailures', {
    kind: 'count',
    scenario: 'storm',
    label: 'storm: auth failures',
    value: (r) => r.scenario.storm?.authFailures ?? null,
  });
  m.set('storm.connectsPerSec', {
    kind: 'rate',
    scenario: 'storm',
    label: 'storm: connects/s',
    value: (r) => r.scenario.storm?.connectsPerSec ?? null,
  });
  for (const stat of STATS) {
    m.set(`storm.reconnect.${stat}`, {
      kind: 'time',
      scenario: 'storm',
      label: `storm reconnect ${stat === 'p999' ? 'p99.9' : stat}`,
      value: (r) => {
        const c = r.scenario.storm?.connect;
        return c && c.count > 0 ? c[stat] : null;
      },
    });
  }
  m.set('ramp.knee', {
    kind: 'rate',
    scenario: 'ramp',
    label: 'ramp knee (clips/s)',
    value: (r) => r.scenario.ramp?.kneeClipsPerSec ?? null,
  });
  return m;
}

/** Every metric a threshold can name. */
export const THRESHOLD_METRICS: ReadonlyMap<string, MetricDef> = buildMetrics();

export interface Threshold {
  /** As given, trimmed. */
  readonly expression: string;
  readonly metric: string;
  readonly op: ThresholdOp;
  /** In `unit`. */
  readonly limit: number;
  readonly unit: ThresholdUnit;
}

const SYNTAX =
  /^([A-Za-z][A-Za-z0-9]*(?:\.[A-Za-z0-9]+)*)\s*(<=|>=|==|<|>)\s*(\d+(?:\.\d+)?)\s*(ms|s|%|\/s)?$/;
const EXAMPLE =
  "METRIC OP NUMBER[UNIT], e.g. 'e2e.p99<25ms', 'errors<1%', 'lost==0' (operators < <= > >= ==)";

function usage(expr: string, why: string): CliError {
  return new CliError(`--threshold "${expr}": ${why}`, EXIT.usage);
}

/** Parses one threshold expression; throws a one-line usage CliError (exit 2) when it is not valid for `scenario`. */
export function parseThreshold(text: string, scenario: ScenarioName): Threshold {
  const expression = text.trim();
  const m = SYNTAX.exec(expression);
  if (!m) throw usage(expression, `expected ${EXAMPLE}`);
  const metric = m[1]!;
  const op = m[2] as ThresholdOp;
  const limit = Number(m[3]);
  const unit = (m[4] ?? '') as ThresholdUnit;
  const def = THRESHOLD_METRICS.get(metric);
  if (!def) {
    throw usage(
      expression,
      `unknown metric "${metric}" (known: connect|puback|e2e.{${STATS.join(',')},count}, throughput, throughput.mb, sent, acked, delivered, duplicates, errors, lost, held, connect.failed, attacks.*, storm.*, ramp.knee; docs/LOADTEST.md)`,
    );
  }
  if (def.kind === 'time' && unit !== 'ms' && unit !== 's' && unit !== '')
    throw usage(expression, `${metric} is a time: give ms or s (e.g. ${metric}<25ms)`);
  if (def.kind === 'count' && unit !== '' && unit !== '%')
    throw usage(expression, `${metric} is a count: give a number${def.percentOf ? ' or a percentage' : ''}`);
  if (def.kind === 'count' && unit === '%' && !def.percentOf)
    throw usage(expression, `${metric} is a count without a percentage: give a number`);
  if (def.kind === 'rate' && unit !== '' && unit !== '/s')
    throw usage(expression, `${metric} is a rate per second: give a number (e.g. ${metric}>100)`);
  if (def.scenario && def.scenario !== scenario)
    throw usage(expression, `${metric} is measured only with --scenario ${def.scenario}`);
  return { expression, metric, op, limit, unit: def.kind === 'time' && unit === '' ? 'ms' : unit };
}

/** Parses every threshold up front (the first bad one throws). */
export function parseThresholds(texts: readonly string[], scenario: ScenarioName): Threshold[] {
  return texts.map((t) => parseThreshold(t, scenario));
}

function compare(a: number, op: ThresholdOp, b: number): boolean {
  // Values are rounded to 6 significant digits first so that `==` is not defeated by float noise.
  const x = Number(a.toPrecision(6));
  if (op === '<') return x < b;
  if (op === '<=') return x <= b;
  if (op === '>') return x > b;
  if (op === '>=') return x >= b;
  return x === b;
}

const num = (x: number): string => {
  if (Number.isInteger(x)) return String(x);
  const a = Math.abs(x);
  return a >= 100
    ? x.toFixed(0)
    : a >= 10
      ? x.toFixed(1)
      : a >= 0.1
        ? x.toFixed(2)
        : String(Number(x.toPrecision(3)));
};

/** Measures `t` in `rep` and says whether it held; an unmeasured metric (no samples) fails. */
export function evaluateThreshold(t: Threshold, rep: LoadtestReport): ThresholdResult {
  const def = THRESHOLD_METRICS.get(t.metric);
  const raw = def ? def.value(rep) : null;
  let measured: number | null = raw;
  let measuredText: string;
  if (raw === null || !Number.isFinite(raw)) {
    measured = null;
    measuredText = 'not measured';
  } else if (t.unit === 's') {
    measured = raw / 1000;
    measuredText = `${num(measured)} s`;
  } else if (t.unit === 'ms') {
    measuredText = `${num(raw)} ms`;
  } else if (t.unit === '%') {
    const of = def?.percentOf?.value(rep) ?? null;
    if (of === null || of === 0) {
      measured = null;
      measuredText = `${num(raw)} (no ${def?.percentOf?.label.replace(/^of /, '') ?? 'denominator'} to divide by)`;
    } else {
      measured = (raw / of) * 100;
      measuredText = `${num(measured)} % (${raw} ${def?.percentOf?.label ?? ''} ${of})`;
    }
  } else {
    measuredText = num(raw);
  }
  return {
    expression: t.expression,
    metric: t.metric,
    label: def?.label ?? t.metric,
    op: t.op,
    limit: t.limit,
    unit: t.unit,
    measured: measured === null ? null : Number(measured.toPrecision(6)),
    measuredText,
    passed: measured !== null && compare(measured, t.op, t.limit),
  };
}

/**
 * The outcome and exit code: 1 when the run failed (an attack leaked, an acknowledged clip was
 * lost, a generator worker failed), else 3 when a threshold did not hold, else 0.
 */
export function runResult(
  rep: LoadtestReport,
  thresholds: readonly ThresholdResult[],
  generatorFailures: readonly string[] = [],
): RunResult {
  const reasons: string[] = [];
  const leaked = rep.scenario.attack?.leaked ?? 0;
  if (leaked > 0) reasons.push(`${leaked} attack(s) leaked (accepted by the gateway)`);
  if (rep.run.totals.lost > 0)
    reasons.push(`${rep.run.totals.lost} acknowledged clip(s) never reached their parent (lost)`);
  if (generatorFailures.length > 0) reasons.push(`the generator failed: ${generatorFailures[0]}`);
  const failed = thresholds.filter((t) => !t.passed);
  if (reasons.length > 0) return { status: 'failed', exitCode: EXIT.failed, reasons };
  if (failed.length > 0) {
    return {
      status: 'thresholds-failed',
      exitCode: EXIT.thresholds,
      reasons: failed.map(
        (t) => `${t.expression} (${t.measured === null ? t.measuredText : `measured ${t.measuredText}`})`,
      ),
    };
  }
  return { status: 'passed', exitCode: EXIT.ok, reasons: [] };
}

/** The one line the CLI ends with: what failed and the exit code. */
export function resultLine(rep: LoadtestReport): string {
  const r = rep.result;
  const th = rep.thresholds ?? [];
  const held = th.filter((t) => t.passed).length;
  const ths = th.length ? `, ${held}/${th.length} thresholds held` : '';
  if (!r || r.status === 'passed') return `result: passed${ths}`;
  if (r.status === 'thresholds-failed')
    return `result: ${th.length - held} of ${th.length} thresholds failed (exit ${r.exitCode}): ${r.reasons.join('; ')}`;
  return `result: FAILED (exit ${r.exitCode}): ${r.reasons.join('; ')}${ths}`;
}
