// Load-test safety rails: loopback-only targets unless --allow-remote, hard caps on counts and time.
import { isIP } from 'node:net';
import { CliError } from '../cli-util.ts';

/** Hard upper bounds: every loop in the load generator is bounded by these. */
export const CAPS = {
  toys: 50_000,
  workers: 16,
  clipRate: 50_000,
  connectRate: 100_000,
  durationMs: 3_600_000,
  /** Whole run, including set-up and drain. */
  maxRunMs: 4 * 3_600_000,
  /** Outstanding (un-acked) clips per worker before the scheduler skips sends. */
  inflightPerWorker: 20_000,
  /** Sends per scheduler tick per worker. */
  sendsPerTick: 2_000,
} as const;

/** True for 127.0.0.0/8, ::1, ::ffff:127.x and the name "localhost". */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  const kind = isIP(h);
  if (kind === 4) return h.startsWith('127.');
  if (kind === 6) {
    if (h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
    const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(h);
    return m?.[1]?.startsWith('127.') === true;
  }
  return false;
}

/**
 * Validates a `--gateway` value: `embedded`, or an mqtt:// (or mqtts://) URL whose host is a
 * loopback address unless `allowRemote`. Throws a one-line CliError otherwise.
 */
export function checkTarget(value: string, allowRemote: boolean): void {
  if (value === 'embedded' || value === 'forked') return;
  // Several nodes of one gateway: URL1,URL2,… (docs/SCALING.md), each checked.
  if (value.includes(',')) {
    const urls = value.split(',');
    if (urls.some((u) => u === 'embedded' || u === 'forked' || u === ''))
      throw new CliError('--gateway URL1,URL2,…: a list of mqtt:// URLs only', 2);
    for (const u of urls) checkTarget(u, allowRemote);
    return;
  }
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new CliError(`--gateway must be "embedded", "forked" or an mqtt:// URL, got "${value}"`, 2);
  }
  if (url.protocol !== 'mqtt:' && url.protocol !== 'mqtts:' && url.protocol !== 'tcp:') {
    throw new CliError(`--gateway must be an mqtt:// URL, got protocol "${url.protocol}"`, 2);
  }
  if (!allowRemote && !isLoopbackHost(url.hostname)) {
    throw new CliError(
      `refusing to load-test non-loopback target ${url.hostname} (pass --allow-remote if you own it)`,
      2,
    );
  }
}

/** Throws RangeError naming the field when `value` is not an integer within [min, max]. */
export function checkBounded(name: string, value: number, min: number, max: number): void {
  if (!Number.isFinite(value) || value < min || value > max) {
    throw new RangeError(`${name} must be within [${min}, ${max}], got ${value}`);
  }
}
