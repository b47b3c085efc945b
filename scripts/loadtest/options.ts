// Load-test options: the defaults in one place (the CLI's, the benchmarks' and the tests' starting point).
import type { LoadtestOptions } from './types.ts';

/** What `plushlink loadtest` runs with when given no options. */
export const LOADTEST_DEFAULTS: LoadtestOptions = {
  gateway: 'embedded',
  toys: 100,
  toysPerFamily: 4,
  connectRate: 500,
  clipRate: 50,
  clipSeconds: 8,
  durationMs: 10_000,
  scenario: 'steady',
  workers: 2,
  seed: 'plushlink',
  outDir: null,
  allowRemote: false,
  rampTargetP99Ms: 25,
  rampStepMs: 5_000,
  rampFactor: 1.5,
  rampMaxSteps: 10,
  attackShare: 0.2,
  receipts: true,
  parentsOpen: false,
  compare: null,
  seal: 'full',
  progress: true,
  maxRunMs: 3_600_000,
  gatewayPid: null,
  gatewayMetricsUrl: null,
  gatewayIdentityFile: null,
  gatewayDataDir: null,
  gatewayPostgres: null,
  gatewayPgSchema: null,
  thresholds: [],
  speech: 'bundled',
  wavFiles: [],
};

/** The defaults with some options changed. */
export function loadtestOptions(overrides: Partial<LoadtestOptions> = {}): LoadtestOptions {
  return { ...LOADTEST_DEFAULTS, ...overrides };
}
