// `plushlink loadtest`: drive a gateway with simulated toys (steady, ramp, storm, attack) and write a report.
import { resolve } from 'node:path';
import cliProgress from 'cli-progress';
import { type Command, Option } from 'commander';
import { gatewayDataPaths } from '../../gateway/datadir.ts';
import type { SealMode } from '../../sim/load-driver.ts';
import { action, CliError, durationOption, intOption, numberOption } from '../cli-util.ts';
import { LOADTEST_DEFAULTS } from '../loadtest/options.ts';
import { renderHtml } from '../loadtest/report-html.ts';
import { writeReportFiles } from '../loadtest/report-json-csv.ts';
import { reportText } from '../loadtest/report-text.ts';
import { runLoadtest } from '../loadtest/runner.ts';
import { CAPS, checkTarget } from '../loadtest/safety.ts';
import { parseThresholds, resultLine } from '../loadtest/thresholds.ts';
import { type LoadtestOptions, SCENARIOS, type ScenarioName } from '../loadtest/types.ts';

interface RawOptions {
  gateway: string;
  toys: number;
  toysPerFamily: number;
  connectRate: number;
  clipRate: number;
  clipSeconds: number;
  duration: number;
  scenario: ScenarioName;
  workers: number;
  seed: string;
  out?: string;
  allowRemote?: boolean;
  rampTarget: number;
  rampStep: number;
  rampFactor: number;
  rampSteps: number;
  attackShare: number;
  receipts: boolean;
  open?: boolean;
  compare?: 'plain';
  seal: SealMode;
  progress: boolean;
  maxRun: number;
  gatewayPid?: number;
  gatewayMetrics?: string;
  gatewayIdentity?: string;
  gatewayData?: string;
  gatewayPostgres?: string;
  gatewayPgSchema?: string;
  json?: boolean;
  threshold: string[];
  speech: 'bundled' | 'synth';
  wav: string[];
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

export function toLoadtestOptions(o: RawOptions): LoadtestOptions {
  checkTarget(o.gateway, o.allowRemote === true);
  const external = o.gateway !== 'embedded' && o.gateway !== 'forked';
  // Like `plushlink fleet`: the gateway's data directory holds its public identity too.
  const identityFile =
    o.gatewayIdentity ??
    (external && o.gatewayData ? resolve(gatewayDataPaths(o.gatewayData).identityFile) : undefined);
  if (external && !identityFile) {
    throw new CliError(
      'an external --gateway needs --gateway-identity <identity.json> or --gateway-data <dir> to check its proof',
      2,
    );
  }
  // Parsed here too, so that a bad one is refused before anything else is looked at.
  parseThresholds(o.threshold ?? [], o.scenario);
  return {
    gateway: o.gateway,
    toys: o.toys,
    toysPerFamily: o.toysPerFamily,
    connectRate: o.connectRate,
    clipRate: o.clipRate,
    clipSeconds: o.clipSeconds,
    durationMs: o.duration,
    scenario: o.scenario,
    workers: o.workers,
    seed: o.seed,
    outDir: o.out ? resolve(o.out) : null,
    allowRemote: o.allowRemote === true,
    rampTargetP99Ms: o.rampTarget,
    rampStepMs: o.rampStep,
    rampFactor: o.rampFactor,
    rampMaxSteps: o.rampSteps,
    attackShare: o.attackShare,
    receipts: o.receipts,
    parentsOpen: o.open === true,
    compare: o.compare ?? null,
    seal: o.seal,
    progress: o.progress,
    maxRunMs: o.maxRun,
    gatewayPid: o.gatewayPid ?? null,
    gatewayMetricsUrl: o.gatewayMetrics ?? null,
    gatewayIdentityFile: identityFile ?? null,
    gatewayDataDir: o.gatewayData ?? null,
    gatewayPostgres: o.gatewayPostgres ?? null,
    gatewayPgSchema: o.gatewayPgSchema ?? null,
    thresholds: o.threshold ?? [],
    speech: o.speech ?? LOADTEST_DEFAULTS.speech,
    wavFiles: (o.wav ?? []).map((f) => resolve(f)),
  };
}

export function registerLoadtestCommands(program: Command): void {
  program
    .command('loadtest')
    .description('load-test a PlushLink gateway with simulated toys and parents (loopback only by default)')
    .option(
      '--gateway <url>',
      '"embedded" (in-process gateway on a free port), "forked" (same, in a child process), mqtt://127.0.0.1:PORT, or URL1,URL2,… — nodes of one gateway (toys spread across them, each parent on another node than its toys)',
      LOADTEST_DEFAULTS.gateway,
    )
    .option('--toys <n>', 'simulated toys', intOption('--toys', 1, CAPS.toys), LOADTEST_DEFAULTS.toys)
    .option(
      '--toys-per-family <n>',
      'toys per family (each family has one parent)',
      intOption('--toys-per-family', 1, 15),
      LOADTEST_DEFAULTS.toysPerFamily,
    )
    .option(
      '--connect-rate <r>',
      'connects per second while the fleet comes up (0 = all at once)',
      intOption('--connect-rate', 0, CAPS.connectRate),
      LOADTEST_DEFAULTS.connectRate,
    )
    .option(
      '--clip-rate <c>',
      'clips per second, whole fleet',
      numberOption('--clip-rate', 0.1, CAPS.clipRate),
      LOADTEST_DEFAULTS.clipRate,
    )
    .option(
      '--clip-seconds <s>',
      'length of each voice clip',
      numberOption('--clip-seconds', 0.1, 300),
      LOADTEST_DEFAULTS.clipSeconds,
    )
    .option(
      '--duration <d>',
      'traffic duration (e.g. 30s, 2m)',
      durationOption('--duration', 500, CAPS.durationMs),
      LOADTEST_DEFAULTS.durationMs,
    )
    .addOption(
      new Option('--scenario <name>', 'traffic shape')
        .choices([...SCENARIOS])
        .default(LOADTEST_DEFAULTS.scenario),
    )
    .option(
      '--workers <w>',
      'generator worker threads',
      intOption('--workers', 1, CAPS.workers),
      LOADTEST_DEFAULTS.workers,
    )
    .option('--seed <x>', 'seed for identities and audio', LOADTEST_DEFAULTS.seed)
    .option('--out <dir>', 'write report.json, *.csv and report.html here')
    .option('--allow-remote', 'allow a non-loopback --gateway (only against systems you own)')
    .option(
      '--ramp-target <ms>',
      'ramp: end-to-end p99 target',
      numberOption('--ramp-target', 0.1, 60_000),
      LOADTEST_DEFAULTS.rampTargetP99Ms,
    )
    .option(
      '--ramp-step <d>',
      'ramp: length of each step',
      durationOption('--ramp-step', 500, 600_000),
      LOADTEST_DEFAULTS.rampStepMs,
    )
    .option(
      '--ramp-factor <f>',
      'ramp: rate multiplier per step',
      numberOption('--ramp-factor', 1.05, 10),
      LOADTEST_DEFAULTS.rampFactor,
    )
    .option(
      '--ramp-steps <n>',
      'ramp: most steps',
      intOption('--ramp-steps', 1, 50),
      LOADTEST_DEFAULTS.rampMaxSteps,
    )
    .option(
      '--attack-share <f>',
      'attack: share of operations that are attacks',
      numberOption('--attack-share', 0.01, 0.9),
      LOADTEST_DEFAULTS.attackShare,
    )
    .addOption(
      new Option(
        '--seal <mode>',
        'full: seal+sign every clip; resign: reuse a sealed body, fresh header+signature per clip',
      )
        .choices(['full', 'resign'])
        .default(LOADTEST_DEFAULTS.seal),
    )
    .option('--no-receipts', 'parents do not publish signed receipts')
    .option('--open', 'parents verify and decrypt every clip (costs generator CPU)')
    .addOption(
      new Option('--compare <what>', 'also run the same clip bytes through plain brokers').choices(['plain']),
    )
    .option('--no-progress', 'no progress bar')
    .option(
      '--max-run <d>',
      'hard limit for the whole run',
      durationOption('--max-run', 1000, CAPS.maxRunMs),
      LOADTEST_DEFAULTS.maxRunMs,
    )
    .option(
      '--gateway-identity <file>',
      'external gateway: its public identity.json (pins the proof key; default DIR/gateway/identity.json of --gateway-data)',
    )
    .option('--gateway-data <dir>', 'external gateway: its data dir, to provision the simulated toys')
    .option(
      '--gateway-postgres <url>',
      'external gateway on PostgreSQL: provision through its store (--gateway-data then holds only its key)',
    )
    .option('--gateway-pg-schema <name>', 'with --gateway-postgres: the gateway schema (default plushlink)')
    .option(
      '--gateway-pid <pid>',
      'external gateway: sample its CPU and memory from /proc',
      intOption('--gateway-pid', 1, 2 ** 31),
    )
    .option('--gateway-metrics <url>', 'external gateway: its metrics endpoint (recorded in the report)')
    .addOption(
      new Option(
        '--threshold <expr>',
        "pass/fail criterion, repeatable: e.g. 'e2e.p99<25ms', 'errors<1%', 'lost==0' (exit 3 when one fails; docs/LOADTEST.md)",
      )
        .argParser(collect)
        .default([], 'none'),
    )
    .addOption(
      new Option('--speech <kind>', 'what the toys say: bundled (recorded speech in assets/speech) or synth')
        .choices(['bundled', 'synth'])
        .default(LOADTEST_DEFAULTS.speech),
    )
    .addOption(
      new Option(
        '--wav <file>',
        'send this recording instead (16-bit PCM WAV, 8–48 kHz, mono or stereo, resampled); repeatable',
      )
        .argParser(collect)
        .default([], 'the bundled speech'),
    )
    .option('--json', 'print the JSON report on stdout instead of the table')
    .addHelpText(
      'after',
      '\nExit status: 0 passed, 1 the run failed (an attack leaked, a clip was lost, a worker failed),\n2 usage (checked before any work), 3 a --threshold did not hold.',
    )
    .action(
      action(async (raw: RawOptions) => {
        const opts = toLoadtestOptions(raw);
        const controller = new AbortController();
        const onSigint = (): void => {
          process.stderr.write(
            '\nplushlink: interrupted — stopping the load and writing the report of what ran\n',
          );
          controller.abort();
        };
        process.once('SIGINT', onSigint);
        process.once('SIGTERM', onSigint);
        const useBar = opts.progress && process.stderr.isTTY === true;
        const bar = useBar
          ? new cliProgress.SingleBar(
              {
                stream: process.stderr,
                format:
                  ' {bar} {percentage}% | {phase} | {connected} toys | {rate} clips/s | e2e p99 {p99} ms | errors {errors}',
                hideCursor: true,
                clearOnComplete: true,
              },
              cliProgress.Presets.shades_classic,
            )
          : null;
        let barStarted = false;
        let trafficMs = 0;
        let lastPhase = '';
        try {
          const report = await runLoadtest(opts, {
            signal: controller.signal,
            log: (line) => {
              if (!barStarted) process.stderr.write(`${line}\n`);
            },
            onProgress: (p) => {
              if (!bar) return;
              if (!barStarted) {
                bar.start(p.plannedMs, 0, { phase: p.phase, connected: 0, rate: '0', p99: '-', errors: 0 });
                barStarted = true;
              }
              const traffic =
                !p.phase.startsWith('connect') &&
                p.phase !== 'drain' &&
                p.phase !== 'setup' &&
                p.phase !== 'stop' &&
                p.phase !== 'storm';
              if (traffic && lastPhase === p.phase) trafficMs += 1000;
              lastPhase = p.phase;
              bar.update(Math.min(trafficMs, p.plannedMs), {
                phase: p.phase,
                connected: p.connected,
                rate: p.clipsPerSec.toFixed(0),
                p99: p.e2eP99Ms === null ? '-' : p.e2eP99Ms.toFixed(1),
                errors: p.errors,
              });
            },
          });
          bar?.stop();
          barStarted = false;
          if (raw.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
          else process.stdout.write(`${reportText(report)}\n`);
          if (opts.outDir) {
            const files = await writeReportFiles(opts.outDir, report, renderHtml(report));
            process.stderr.write(`report written: ${files.join(', ')}\n`);
          }
          const result = report.result;
          if (result && result.exitCode !== 0) throw new CliError(resultLine(report), result.exitCode);
        } finally {
          bar?.stop();
          process.off('SIGINT', onSigint);
          process.off('SIGTERM', onSigint);
        }
      }),
    );
}
