// Shared helpers for plushlink subcommands: one-line errors, option parsers, JSON output.
import { constants } from 'node:fs';
import { access, readFile, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { type Command, InvalidArgumentError } from 'commander';
import { CodedError, PlushlinkError } from '../shared/errors.ts';
import type { PrivateIdentity } from '../shared/identity.ts';

/** An error meant for the user: printed as one line, exit code 1 (2 for usage errors). */
export class CliError extends CodedError<'CLI_USAGE' | 'CLI_FAILED'> {
  readonly exitCode: number;
  constructor(message: string, exitCode = 1, options?: { readonly cause?: unknown }) {
    super(exitCode === 2 ? 'CLI_USAGE' : 'CLI_FAILED', message, options);
    this.exitCode = exitCode;
  }
}

/** Node system error codes in words; the path (or address) they concern follows the colon. */
const SYSTEM_ERRORS: Readonly<Record<string, string>> = {
  ENOENT: 'no such file or directory',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EEXIST: 'already exists',
  EISDIR: 'is a directory',
  ENOTDIR: 'not a directory',
  ENOTEMPTY: 'directory not empty',
  ENOSPC: 'no space left on device',
  EROFS: 'read-only file system',
  EMFILE: 'too many open files',
  EADDRINUSE: 'address already in use',
  EADDRNOTAVAIL: 'address not available',
  ECONNREFUSED: 'connection refused',
};

/** First line of a message, without a leading "CODE: " that the code prefix would repeat. */
function messageAfterCode(code: string, message: string): string {
  const first = message.split('\n')[0] ?? '';
  return first.startsWith(`${code}: `) ? first.slice(code.length + 2) : first;
}

/** Formats any thrown value as a single line without a stack trace (never "EISDIR: EISDIR: ..."). */
export function describeError(err: unknown): string {
  if (err instanceof PlushlinkError) return `${err.code}: ${messageAfterCode(err.code, err.message)}`;
  if (err instanceof CliError) return err.message;
  if (err && typeof err === 'object' && 'code' in err && 'message' in err) {
    const e = err as { code: unknown; message: unknown; path?: unknown; address?: unknown; port?: unknown };
    const code = String(e.code);
    const rest = messageAfterCode(code, String(e.message));
    const words = SYSTEM_ERRORS[code];
    const where =
      e.path !== undefined
        ? String(e.path)
        : e.address !== undefined
          ? `${String(e.address)}${e.port !== undefined ? `:${String(e.port)}` : ''}`
          : undefined;
    // Words and the path when Node says which; else Node's own text, once ("EISDIR: illegal operation ...").
    return words && where !== undefined ? `${words}: ${where}` : `${code}: ${rest}`;
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

const isErrno = (err: unknown, code: string): boolean =>
  typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code;
/** Nothing at this path: it does not exist, or a parent on the way is a file. */
const isMissing = (err: unknown): boolean => isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR');

/** The directory a new file or directory at `path` goes into: the nearest one that exists, checked writable. */
async function writableParent(path: string, option: string): Promise<void> {
  let dir = dirname(resolve(path));
  for (;;) {
    try {
      const st = await stat(dir);
      if (!st.isDirectory()) throw new CliError(`cannot write ${option} ${path}: ${dir} is not a directory`);
      break;
    } catch (err) {
      if (!isMissing(err)) throw err;
      const up = dirname(dir);
      if (up === dir) throw err;
      dir = up;
    }
  }
  try {
    await access(dir, constants.W_OK | constants.X_OK);
  } catch {
    throw new CliError(`cannot write ${option} ${path}: directory ${dir} is not writable`);
  }
}

/**
 * Checks, before any work, that the output FILE `path` can be written: its directory exists and is
 * writable, and `path` is not a directory. The file itself may exist (it is replaced).
 */
export async function checkOutFile(path: string, option: string): Promise<void> {
  const dir = dirname(resolve(path));
  let st: Awaited<ReturnType<typeof stat>> | undefined;
  try {
    st = await stat(path);
  } catch (err) {
    if (!isMissing(err)) throw err;
  }
  if (st?.isDirectory()) throw new CliError(`${option} ${path} is a directory, not a file`);
  let dst: Awaited<ReturnType<typeof stat>>;
  try {
    dst = await stat(dir);
  } catch (err) {
    if (isErrno(err, 'ENOENT'))
      throw new CliError(`cannot write ${option} ${path}: directory ${dir} does not exist`);
    if (isErrno(err, 'ENOTDIR'))
      throw new CliError(`cannot write ${option} ${path}: ${dir} is not a directory`);
    throw err;
  }
  if (!dst.isDirectory()) throw new CliError(`cannot write ${option} ${path}: ${dir} is not a directory`);
  try {
    await access(dir, constants.W_OK | constants.X_OK);
  } catch {
    throw new CliError(`cannot write ${option} ${path}: directory ${dir} is not writable`);
  }
}

/**
 * Checks, before any work, that the output DIRECTORY `path` can be created or used: not a file, and
 * it (or the nearest existing directory on the way to it) is writable.
 */
export async function checkOutDir(path: string, option: string): Promise<void> {
  let st: Awaited<ReturnType<typeof stat>> | undefined;
  try {
    st = await stat(path);
  } catch (err) {
    if (!isMissing(err)) throw err;
  }
  if (st && !st.isDirectory()) throw new CliError(`${option} ${path} is a file, not a directory`);
  if (!st) return writableParent(path, option);
  try {
    await access(path, constants.W_OK | constants.X_OK);
  } catch {
    throw new CliError(`cannot write ${option} ${path}: directory ${path} is not writable`);
  }
}

/**
 * Reads the private key a `--key` option names (a key directory or its endpoint.key). A public
 * identity.json given instead is refused as what it is — not with readPrivateKey's "chmod 600 it",
 * which would tell the user to protect a file that is meant to be public.
 */
export async function readKeyOption(path: string, option = '--key'): Promise<PrivateIdentity> {
  // Loaded here, not at the top: every command (even --version) loads this module.
  const { IDENTITY_FILE, PRIVATE_KEY_FILE, readPrivateKey } = await import('../platform/keyfiles.ts');
  const st = await stat(path);
  if (st.isDirectory()) {
    const key = join(path, PRIVATE_KEY_FILE);
    try {
      await stat(key);
    } catch (err) {
      if (!isErrno(err, 'ENOENT')) throw err;
      let hasIdentity = false;
      try {
        hasIdentity = (await stat(join(path, IDENTITY_FILE))).isFile();
      } catch {
        // neither file: say what is missing
      }
      throw new CliError(
        hasIdentity
          ? `${option} ${path} holds only a public identity (${IDENTITY_FILE}), no private key (${PRIVATE_KEY_FILE}): pass the key directory made by "plushlink keys new" or "plushlink provision"`
          : `${option} ${path} is not a key directory: ${key} does not exist`,
      );
    }
    return readPrivateKey(path);
  }
  if (
    st.isFile() &&
    st.size <= 64 * 1024 &&
    isPublicIdentityText(await readFile(path, 'utf8'), path, IDENTITY_FILE)
  ) {
    throw new CliError(
      `${option} ${path} is a public identity file, not a private key: pass the key directory (${dirname(path)}) or its ${PRIVATE_KEY_FILE}`,
    );
  }
  return readPrivateKey(path);
}

function isPublicIdentityText(text: string, path: string, identityFile: string): boolean {
  try {
    const obj = JSON.parse(text) as { plushlink?: unknown };
    return obj.plushlink === 'identity';
  } catch {
    return basename(path) === identityFile;
  }
}
