// Shared helpers for plushlink subcommands: one-line errors, option parsers, JSON output.
import { type Command, InvalidArgumentError } from 'commander';
import { CodedError, PlushlinkError } from '../shared/errors.ts';

/** An error meant for the user: printed as one line, exit code 1 (2 for usage errors). */
export class CliError extends CodedError<'CLI_USAGE' | 'CLI_FAILED'> {
  readonly exitCode: number;
  constructor(message: string, exitCode = 1, options?: { readonly cause?: unknown }) {
    super(exitCode === 2 ? 'CLI_USAGE' : 'CLI_FAILED', message, options);
    this.exitCode = exitCode;
  }
}

/** Formats any thrown value as a single line without a stack trace. */
export function describeError(err: unknown): string {
  if (err instanceof PlushlinkError) return `${err.code}: ${err.message}`;
  if (err instanceof CliError) return err.message;
  if (err && typeof err === 'object' && 'code' in err && 'message' in err) {
    const e = err as { code: unknown; message: unknown; path?: unknown };
    if (e.code === 'ENOENT') return `no such file or directory: ${String(e.path ?? e.message)}`;
    if (e.code === 'EACCES') return `permission denied: ${String(e.path ?? e.message)}`;
    if (e.code === 'EEXIST') return `already exists: ${String(e.path ?? e.message)}`;
    return `${String(e.code)}: ${String(e.message).split('\n')[0]}`;
  }
  if (err instanceof Error) return err.message.split('\n')[0] ?? 'error';
  return String(err);
}

/** Wraps a commander action so that failures become `plushlink: <one line>` and a non-zero exit. */
export function action<A extends unknown[]>(
  fn: (...args: A) => Promise<void> | void,
): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (err) {
      process.stderr.write(`plushlink: ${describeError(err)}\n`);
      process.exitCode = err instanceof CliError ? err.exitCode : 1;
    }
  };
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Commander option parser for an integer within [min, max]. */
export function intOption(name: string, min: number, max: number): (value: string) => number {
  return (value: string) => {
    if (!/^-?\d+$/.test(value)) throw new InvalidArgumentError(`${name} must be an integer, got "${value}"`);
    const n = Number(value);
    if (n < min || n > max)
      throw new InvalidArgumentError(`${name} must be between ${min} and ${max}, got ${n}`);
    return n;
  };
}

/** Commander option parser for a number within [min, max]. */
export function numberOption(name: string, min: number, max: number): (value: string) => number {
  return (value: string) => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n))
      throw new InvalidArgumentError(`${name} must be a number, got "${value}"`);
    if (n < min || n > max)
      throw new InvalidArgumentError(`${name} must be between ${min} and ${max}, got ${n}`);
    return n;
  };
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses "250ms", "30s", "2m", "1h", "7d" or a bare number of seconds into milliseconds. */
export function parseDurationMs(value: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(value.trim());
  if (!m) throw new InvalidArgumentError(`expected a duration such as 30s, 500ms, 2m or 7d, got "${value}"`);
  const n = Number(m[1]) * (DURATION_UNITS[m[2] ?? 's'] ?? 1000);
  if (!Number.isFinite(n) || n > 366 * 86_400_000)
    throw new InvalidArgumentError(`duration out of range: "${value}"`);
  return Math.round(n);
}

/** Commander option parser for a duration within [minMs, maxMs]. */
export function durationOption(name: string, minMs: number, maxMs: number): (value: string) => number {
  const parse = (value: string): number => {
    const ms = parseDurationMs(value);
    if (ms < minMs || ms > maxMs) {
      throw new InvalidArgumentError(
        `${name} must be between ${formatDurationMs(minMs)} and ${formatDurationMs(maxMs)}, got ${formatDurationMs(ms)}`,
      );
    }
    return ms;
  };
  DURATION_PARSERS.add(parse);
  return parse;
}

/** Parsers made by durationOption: their defaults are shown in help as "30s", not "30000". */
const DURATION_PARSERS = new WeakSet<object>();

/** 250 → "250ms", 30000 → "30s", 600000 → "10m", 604800000 → "7d". */
export function formatDurationMs(ms: number): string {
  for (const [unit, size] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return ms >= 1000 ? `${ms / 1000}s` : `${ms}ms`;
}

/** Shows duration defaults in the unit a user would type, for every command below `cmd`. */
export function describeDurationDefaults(cmd: Command): void {
  for (const opt of cmd.options) {
    if (typeof opt.defaultValue === 'number' && opt.parseArg && DURATION_PARSERS.has(opt.parseArg)) {
      opt.defaultValueDescription ??= formatDurationMs(opt.defaultValue);
    }
  }
  for (const sub of cmd.commands) describeDurationDefaults(sub);
}
