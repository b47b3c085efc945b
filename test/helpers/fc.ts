// fast-check parameters for every property test: a fixed seed per test (PLK_FC_SEED overrides), PLK_FC_RUNS, and a failure message that says how to replay.
import fc from 'fast-check';
import { expect } from 'vitest';

/** Base of the fixed seeds; a test's seed is derived from it and the test's full name. */
const BASE_SEED = 0x504c4b31; // "PLK1"

function envInt(name: string): number | undefined {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return undefined;
  if (!/^-?\d{1,10}$/.test(raw)) throw new Error(`${name} must be an integer, got "${raw}"`);
  return Number(raw);
}

/** FNV-1a of the text, mixed with the base seed: stable across machines, runs and file order. */
function seedFor(name: string): number {
  let h = 0x811c9dc5 ^ BASE_SEED;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h | 0;
}

function relativeTestPath(): string {
  const path = expect.getState().testPath ?? '<test file>';
  const i = path.lastIndexOf('/test/');
  return i >= 0 ? path.slice(i + 1) : path;
}

/**
 * Parameters for `fc.assert` in `npm test`: deterministic, so a fresh clone runs exactly what CI ran.
 *
 * - seed: fixed per test (derived from its full name), or PLK_FC_SEED for every property;
 * - numRuns: `defaults.numRuns`, or PLK_FC_RUNS;
 * - PLK_FC_PATH (with PLK_FC_SEED) replays one counterexample directly, skipping the search;
 * - on failure the error carries fast-check's report (seed, path, counterexample) and the command
 *   that replays it: `PLK_FC_SEED=<seed> PLK_FC_PATH=<path> npx vitest run <file> -t "<test>"`.
 *
 * test/helpers/fc-setup.ts (a Vitest setup file) installs the same parameters globally before
 * each test, so an fc.assert written without fcParams() still runs with its test's fixed seed; pass
 * fcParams() anyway so that PLK_FC_RUNS overrides the assert's own numRuns.
 *
 * `npm run fuzz` is where random seeds and long runs belong (scripts/fuzz.ts).
 */
export function fcParams<T = unknown>(defaults: fc.Parameters<T> = {}): fc.Parameters<T> {
  const state = expect.getState();
  const testName = state.currentTestName ?? 'property';
  const envSeed = envInt('PLK_FC_SEED');
  const envRuns = envInt('PLK_FC_RUNS');
  const envPath = process.env.PLK_FC_PATH;
  const seed = envSeed ?? seedFor(testName);
  const params: fc.Parameters<T> = {
    ...defaults,
    seed,
    ...(envRuns !== undefined ? { numRuns: envRuns } : {}),
    ...(envSeed !== undefined && envPath ? { path: envPath } : {}),
    reporter(out) {
      if (!out.failed) return;
      const path = out.counterexamplePath ?? '';
      const replay =
        `replay: PLK_FC_SEED=${out.seed}${path ? ` PLK_FC_PATH=${path}` : ''} ` +
        `npx vitest run ${relativeTestPath()} -t ${JSON.stringify(testName.split(' > ').at(-1) ?? testName)}`;
      throw new Error(`${fc.defaultReportMessage(out) ?? 'property failed'}\n\n${replay}`, {
        cause: out.errorInstance,
      });
    },
  };
  return params;
}
