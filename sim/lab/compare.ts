// `lab compare` and `lab sweep`: run several configurations (files, or one file with one key swept over values) and line their figures up against the first.
import { dirname, resolve } from 'node:path';
import { loadConfigFile, parseConfig, readConfigJson, withValue } from './config.ts';
import { configError, LabError } from './errors.ts';
import { type LabReport, type RunOptions, runLab } from './simulate.ts';
import { type RunSummary, summarize } from './summary.ts';

export const LAB_COMPARE_FORMAT = 1;
/** Most configurations one compare or sweep runs. */
export const MAX_RUNS = 20;

export interface Comparison {
  readonly format: number;
  readonly kind: 'compare' | 'sweep';
  /** Column headings: run names (made unique), or KEY=VALUE for a sweep. */
  readonly headers: readonly string[];
  readonly runs: readonly RunSummary[];
  readonly sweep?: { readonly key: string; readonly values: readonly unknown[] };
}

export interface ProgressOptions {
  /** Called as each run makes progress: (run index, clips done, clips total). */
  readonly onProgress?: (run: number, done: number, total: number) => void;
}

function uniqueHeaders(names: readonly string[]): string[] {
  const seen = new Map<string, number>();
  return names.map((n) => {
    const k = (seen.get(n) ?? 0) + 1;
    seen.set(n, k);
    return k === 1 && names.filter((x) => x === n).length === 1 ? n : `${n} (${k})`;
  });
}

const runOpts = (opts: ProgressOptions, i: number): RunOptions =>
  opts.onProgress ? { onProgress: (d, t) => opts.onProgress!(i, d, t) } : {};

/** Runs each configuration file; every file is validated before the first run starts. */
export async function compareFiles(
  paths: readonly string[],
  opts: ProgressOptions = {},
): Promise<Comparison> {
  if (paths.length < 2) throw new LabError('LAB_CONFIG', 'lab: compare needs at least two configurations');
  if (paths.length > MAX_RUNS)
    throw new LabError('LAB_CONFIG', `lab: compare runs at most ${MAX_RUNS} configurations`);
  const configs = [];
  for (const p of paths) configs.push((await loadConfigFile(p)).config);
  const runs: { source: string; report: LabReport }[] = [];
  for (const [i, c] of configs.entries())
    runs.push({ source: paths[i]!, report: await runLab(c, runOpts(opts, i)) });
  return {
    format: LAB_COMPARE_FORMAT,
    kind: 'compare',
    headers: uniqueHeaders(runs.map((r) => r.report.name)),
    runs: summarize(runs),
  };
}

/** A value from the command line: JSON when it parses (8, 0.5, true, "2M"), else the text itself (2M). */
function parseValue(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

/** `KEY=V1,V2,...` → the key and its values. */
export function parseSet(expr: string): { key: string; values: unknown[] } {
  const eq = expr.indexOf('=');
  const key = eq > 0 ? expr.slice(0, eq).trim() : '';
  if (!/^[A-Za-z][A-Za-z0-9]*(\.[A-Za-z][A-Za-z0-9]*)*$/.test(key)) {
    throw new LabError(
      'LAB_CONFIG',
      `lab: --set must be KEY=V1,V2,... (e.g. codec.bitrateKbps=8,12,16), got ${JSON.stringify(expr)}`,
    );
  }
  const list = expr
    .slice(eq + 1)
    .split(',')
    .map((v) => v.trim());
  if (list.some((v) => v === ''))
    throw configError(
      key,
      `--set needs a comma-separated list of values, got ${JSON.stringify(expr.slice(eq + 1))}`,
    );
  if (list.length > MAX_RUNS)
    throw configError(key, `--set takes at most ${MAX_RUNS} values, got ${list.length}`);
  return { key, values: list.map(parseValue) };
}

/** One run per value of `key`, everything else from the base file; each variant is validated before the first run. */
export async function sweepFile(path: string, set: string, opts: ProgressOptions = {}): Promise<Comparison> {
  const { key, values } = parseSet(set);
  const raw = await readConfigJson(path);
  const baseDir = dirname(resolve(path));
  parseConfig(raw, { baseDir }); // the base itself must be valid
  const configs = values.map((v) => parseConfig(withValue(raw, key, v), { baseDir }));
  const runs: { source: string; report: LabReport }[] = [];
  for (const [i, c] of configs.entries())
    runs.push({ source: path, report: await runLab(c, runOpts(opts, i)) });
  return {
    format: LAB_COMPARE_FORMAT,
    kind: 'sweep',
    headers: values.map((v) => `${key}=${typeof v === 'string' ? v : JSON.stringify(v)}`),
    runs: summarize(runs),
    sweep: { key, values },
  };
}
