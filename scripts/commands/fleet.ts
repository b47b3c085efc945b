// `plushlink fleet`: provision a seeded fleet in bulk, run its toys and parent apps against a gateway, report delivery and latency.
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import cliProgress from 'cli-progress';
import { type Command, InvalidArgumentError } from 'commander';
import { WifiConnector } from '../../device/transport/wifi.ts';
import { type BulkRegistration, openAdmin } from '../../gateway/admin.ts';
import { gatewayDataPaths } from '../../gateway/embedded.ts';
import { readIdentity } from '../../platform/keyfiles.ts';
import type { PublicIdentity } from '../../shared/identity.ts';
import { FleetRunner, type FleetStats, type FleetVerdict, fleetVerdict } from '../../sim/fleet-runner.ts';
import { registerRoster } from '../../sim/provision.ts';
import { generateRoster, type Roster, type RosterPlan } from '../../sim/roster.ts';
import { ROSTER_KEYS_FILE, readRosterFiles, writeRosterFiles } from '../../sim/roster-file.ts';
import type { SpeechBank } from '../../sim/speech-bank.ts';
import { action, CliError, checkOutDir, durationOption, intOption, printJson } from '../cli-util.ts';
import {
  collectWav,
  exitSoon,
  formatSummary,
  onInterrupt,
  type SpeechCliOptions,
  speechFromOptions,
  speechOption,
} from './demo.ts';

/** Where FLEETDIR keeps one outbox file per endpoint (what a stopped run left unacknowledged). */
export const FLEET_OUTBOX_DIR = 'outbox';

interface FleetCliOptions extends SpeechCliOptions {
  gateway?: string;
  families: number;
  toysPerFamily: number;
  parentsPerFamily: number;
  duration: number;
  talkEvery: number;
  parentTalkEvery?: number;
  clipSeconds: number;
  seed: string;
  dir?: string;
  gatewayData?: string;
  gatewayIdentity?: string;
  ca?: string;
  out?: string;
  ramp?: number;
  drain: number;
  decode: boolean;
  reuseEncoded?: boolean;
  complexity?: number;
  link: 'wifi' | 'ble';
  outboxFiles: boolean;
  progress: boolean;
  json?: boolean;
}

export interface FleetReport {
  readonly plan: Omit<RosterPlan, 'seed'>;
  readonly provisioning: {
    readonly keys: 'generated' | 'reused';
    readonly keyMs: number;
    readonly endpointsPerSecond: number | null;
    readonly register: BulkRegistration | null;
  };
  readonly stats: FleetStats;
  readonly verdict: FleetVerdict;
}

function usage(message: string): CliError {
  return new CliError(message, 2);
}

function linkOption(value: string): 'wifi' | 'ble' {
  if (value !== 'wifi' && value !== 'ble')
    throw new InvalidArgumentError(`--link must be wifi or ble, got "${value}"`);
  return value;
}

function checkOptions(o: FleetCliOptions): { url: string; dir: string } {
  if (!o.gateway) throw usage('--gateway <url> is required (mqtt://host:port or mqtts://host:port)');
  if (!/^mqtts?:\/\/[^/\s]+$/.test(o.gateway))
    throw usage(`--gateway must be mqtt://host:port or mqtts://host:port, got "${o.gateway}"`);
  if (o.gateway.startsWith('mqtts://') && !o.ca)
    throw usage('an mqtts:// gateway needs --ca <gateway-cert.pem> to pin its certificate');
  if (!o.dir) throw usage('--dir <fleetdir> is required (the fleet keys are written there)');
  if ((o.gatewayData ? 1 : 0) + (o.gatewayIdentity ? 1 : 0) !== 1) {
    throw usage(
      'give exactly one of --gateway-data <dir> (register the fleet too) or --gateway-identity <identity.json>',
    );
  }
  if (o.families * (o.toysPerFamily + o.parentsPerFamily) > 100_000)
    throw usage('a fleet holds at most 100000 endpoints');
  if (o.seed.length === 0 || o.seed.length > 200) throw usage('--seed must be 1..200 characters');
  if (o.link === 'ble' && (o.parentTalkEvery ?? 0) > 0)
    throw usage(
      '--link ble: parents only listen (a toy on BLE has no inbox through the phone); drop --parent-talk-every',
    );
  return { url: o.gateway, dir: resolve(o.dir) };
}

async function gatewayIdentity(o: FleetCliOptions): Promise<PublicIdentity> {
  const path = o.gatewayIdentity ?? gatewayDataPaths(o.gatewayData!).identityFile;
  const id = await readIdentity(path);
  if (id.role !== 'gateway') throw new CliError(`${path} is a ${id.role} identity, not a gateway's`);
  return id;
}

/** Generates (or reuses) the fleet's keys in FLEETDIR. */
async function loadRoster(
  dir: string,
  plan: RosterPlan,
): Promise<{ roster: Roster; reused: boolean; ms: number }> {
  const t0 = performance.now();
  const existing = await readRosterFiles(dir);
  if (existing) {
    const p = existing.plan;
    if (
      p.families !== plan.families ||
      p.toysPerFamily !== plan.toysPerFamily ||
      p.parentsPerFamily !== plan.parentsPerFamily
    ) {
      throw new CliError(
        `${join(dir, ROSTER_KEYS_FILE)} holds another fleet (${p.families}×(${p.toysPerFamily}+${p.parentsPerFamily})); use another --dir`,
      );
    }
    return { roster: existing, reused: true, ms: performance.now() - t0 };
  }
  const roster = generateRoster(plan);
  await writeRosterFiles(dir, roster);
  return { roster, reused: false, ms: performance.now() - t0 };
}

type Progress = { update(stats: FleetStats): void; stop(): void };

function progressReporter(totalMs: number, enabled: boolean): Progress {
  if (!enabled) return { update() {}, stop() {} };
  let stopped = false;
  const inner = innerReporter(totalMs);
  return {
    update: (s) => {
      if (!stopped) inner.update(s);
    },
    stop: () => {
      if (stopped) return;
      stopped = true;
      inner.stop();
    },
  };
}

function innerReporter(totalMs: number): Progress {
  const payload = (s: FleetStats) => ({
    online: s.online,
    endpoints: s.endpoints,
    sent: s.clipsSent,
    delivered: s.delivered,
    expected: s.deliveriesExpected,
    p99: Math.round(s.latency.p99),
    errors: s.errors,
  });
  if (process.stderr.isTTY) {
    const bar = new cliProgress.SingleBar(
      {
        stream: process.stderr,
        format:
          'fleet |{bar}| {value}/{total} s | online {online}/{endpoints} | clips {sent} | delivered {delivered}/{expected} | p99 {p99} ms | errors {errors}',
        hideCursor: true,
        clearOnComplete: false,
      },
      cliProgress.Presets.shades_classic,
    );
    bar.start(
      Math.ceil(totalMs / 1000),
      0,
      payload({
        online: 0,
        endpoints: 0,
        clipsSent: 0,
        delivered: 0,
        deliveriesExpected: 0,
        latency: { p99: 0 },
        errors: 0,
      } as FleetStats),
    );
    return {
      update: (s) =>
        bar.update(Math.min(Math.floor(s.elapsedMs / 1000), Math.ceil(totalMs / 1000)), payload(s)),
      stop: () => bar.stop(),
    };
  }
  let last = 0;
  return {
    update(s) {
      if (s.elapsedMs - last < 5000) return;
      last = s.elapsedMs;
      const p = payload(s);
      process.stderr.write(
        `fleet ${Math.round(s.elapsedMs / 1000)} s: online ${p.online}/${p.endpoints}, clips ${p.sent}, delivered ${p.delivered}/${p.expected}, p99 ${p.p99} ms, errors ${p.errors}\n`,
      );
    },
    stop() {},
  };
}

export async function runFleetCommand(o: FleetCliOptions): Promise<FleetReport> {
  const { url, dir } = checkOptions(o);
  const plan: RosterPlan = {
    families: o.families,
    toysPerFamily: o.toysPerFamily,
    parentsPerFamily: o.parentsPerFamily,
    seed: o.seed,
  };
  // Everything that can be refused is checked before keys are generated or a toy connects.
  await checkOutDir(o.dir!, '--dir');
  if (o.out) await checkOutDir(o.out, '--out');
  const gateway = await gatewayIdentity(o);
  const ca = o.ca ? await readFile(o.ca) : undefined;
  const encode = o.reuseEncoded
    ? o.complexity !== undefined
      ? { complexity: o.complexity }
      : {}
    : undefined;
  const speech = await speechFromOptions(o, o.clipSeconds, o.seed, encode);
  const log = (s: string): void => {
    if (!o.json) process.stderr.write(`${s}\n`);
  };
  // The first Ctrl-C/SIGTERM stops talking and drains; the second quits at once (onInterrupt).
  const stop = new AbortController();
  let progress: Progress | undefined;
  const removeHandlers = onInterrupt((signal) => {
    progress?.stop();
    log(
      `fleet: ${signal === 'SIGINT' ? 'Ctrl-C' : signal}: stopping; up to ${Math.round(o.drain / 1000)} s for clips in flight (Ctrl-C again quits at once)`,
    );
    stop.abort();
  });
  try {
    return await provisionAndRun(o, { url, dir, plan, gateway, ca, speech, log, stop: stop.signal }, (p) => {
      progress = p;
    });
  } finally {
    removeHandlers();
    progress?.stop();
  }
}

async function provisionAndRun(
  o: FleetCliOptions,
  c: {
    url: string;
    dir: string;
    plan: RosterPlan;
    gateway: PublicIdentity;
    ca: Buffer | undefined;
    speech: SpeechBank;
    log: (s: string) => void;
    stop: AbortSignal;
  },
  onProgress: (p: Progress) => void,
): Promise<FleetReport> {
  const { url, dir, plan, gateway, ca, log } = c;
  const { roster, reused, ms: keyMs } = await loadRoster(dir, plan);
  const endpoints = roster.families.length * (plan.toysPerFamily + plan.parentsPerFamily);
  log(
    `fleet: ${endpoints} endpoints in ${roster.families.length} families; keys ${reused ? 'reused from' : 'generated into'} ${join(dir, ROSTER_KEYS_FILE)} (0600) in ${keyMs.toFixed(0)} ms`,
  );

  let register: BulkRegistration | null = null;
  if (o.gatewayData) {
    const admin = await openAdmin(resolve(o.gatewayData), {
      gatewayKey: gatewayDataPaths(resolve(o.gatewayData)).keyDir,
    });
    try {
      register = await registerRoster(admin.store, admin.audit, roster, { source: 'fleet' });
    } finally {
      await admin.close();
    }
    log(
      `registered ${register.endpoints} endpoints and ${register.families} families in ${register.ms.toFixed(0)} ms (${register.skipped} already known)`,
    );
  } else {
    log('not registering (no --gateway-data): the gateway must already know FLEETDIR/fleet.json');
  }

  if (c.stop.aborted) throw new CliError('interrupted before the fleet started', 130);
  log(
    `speech: ${c.speech.source}; link: ${o.link === 'ble' ? "toys on BLE, each paired with its family's first parent's phone" : 'Wi-Fi'}` +
      `; outboxes ${o.outboxFiles ? `in ${join(dir, FLEET_OUTBOX_DIR)}` : 'in memory'}`,
  );
  const runner = new FleetRunner({
    roster,
    gateway,
    connector: new WifiConnector({ url, ...(ca ? { ca } : {}) }),
    durationMs: o.duration,
    talkEveryMs: o.talkEvery,
    ...(o.parentTalkEvery !== undefined ? { parentTalkEveryMs: o.parentTalkEvery } : {}),
    clipSeconds: o.clipSeconds,
    seed: o.seed,
    speech: c.speech,
    link: o.link,
    ...(o.outboxFiles ? { outboxDir: join(dir, FLEET_OUTBOX_DIR) } : {}),
    ...(o.ramp !== undefined ? { rampMs: o.ramp } : {}),
    drainMs: o.drain,
    decode: o.decode,
    ...(o.reuseEncoded ? { reuseEncoded: true } : {}),
    ...(o.complexity !== undefined ? { complexity: o.complexity } : {}),
    ...(o.out ? { outDir: resolve(o.out) } : {}),
  });
  runner.on('pairing', (e) =>
    log(
      `${e.toy.name} ↔ ${e.phoneOwner.name}'s phone: confirm ${e.digits} — ${e.ok ? 'same digits on both, confirmed: paired' : 'digits differ, refused'}`,
    ),
  );
  const progress = progressReporter(o.duration, o.progress && !o.json);
  onProgress(progress);
  const ticker = setInterval(() => progress.update(runner.stats()), 500);
  let stats: FleetStats;
  try {
    stats = await runner.run(c.stop);
  } finally {
    clearInterval(ticker);
    progress.stop();
  }
  const report: FleetReport = {
    plan: {
      families: plan.families,
      toysPerFamily: plan.toysPerFamily,
      parentsPerFamily: plan.parentsPerFamily,
    },
    provisioning: {
      keys: reused ? 'reused' : 'generated',
      keyMs: Math.round(keyMs),
      endpointsPerSecond: reused ? null : Math.round(endpoints / (keyMs / 1000)),
      register,
    },
    stats,
    verdict: fleetVerdict(stats),
  };
  return report;
}

export function registerFleetCommands(program: Command): void {
  program
    .command('fleet')
    .description(
      'provision a seeded fleet of toys and parent apps and run it against a gateway for a bounded time',
    )
    .option('--gateway <url>', 'gateway URL: mqtt://host:port or mqtts://host:port')
    .option('--families <n>', 'number of families', intOption('--families', 1, 100_000), 10)
    .option('--toys-per-family <k>', 'toys per family', intOption('--toys-per-family', 1, 16), 1)
    .option('--parents-per-family <p>', 'parent apps per family', intOption('--parents-per-family', 1, 16), 2)
    .option(
      '--duration <time>',
      'how long the fleet talks',
      durationOption('--duration', 1000, 24 * 3_600_000),
      60_000,
    )
    .option(
      '--talk-every <time>',
      'each toy records a clip this often (0 = never: a connect-only fleet)',
      durationOption('--talk-every', 0, 24 * 3_600_000),
      30_000,
    )
    .option(
      '--parent-talk-every <time>',
      'each parent sends a message this often (0 = never; default 4 × --talk-every)',
      durationOption('--parent-talk-every', 0, 24 * 3_600_000),
    )
    .option(
      '--clip-seconds <s>',
      'length of each synthetic clip; recordings are cut at this',
      intOption('--clip-seconds', 1, 60),
      3,
    )
    .option(
      '--seed <seed>',
      'seed for keys, family ids, speech and timing (same seed → same fleet; clip ids are new in every run)',
      'plushlink',
    )
    .option('--dir <fleetdir>', 'where the fleet keys are kept (fleet.keys, mode 0600; fleet.json, public)')
    .option(
      '--gateway-data <dir>',
      "the gateway's data directory: read its identity and register the fleet in its store",
    )
    .option(
      '--gateway-identity <file>',
      "the gateway's public identity.json (the fleet must already be registered)",
    )
    .option('--ca <pem>', "the gateway's TLS certificate to pin (mqtts://)")
    .option('--out <dir>', 'save every received clip here as an .opus file')
    .option(
      '--ramp <time>',
      'spread the connects over this time (default: 6 ms per endpoint, at least min(5 s, duration / 4))',
      durationOption('--ramp', 0, 3_600_000),
    )
    .option(
      '--drain <time>',
      'after the duration, wait this long at most for clips in flight',
      durationOption('--drain', 0, 600_000),
      10_000,
    )
    .option('--no-decode', 'do not decode received clips (saves CPU in big fleets)')
    .option(
      '--reuse-encoded',
      'encode the speech bank once; every clip is still sealed and signed on its own (big fleets)',
    )
    .option('--complexity <n>', 'Opus complexity 0..10 (default 10)', intOption('--complexity', 0, 10))
    .option(
      '--speech <kind>',
      'what the endpoints say: bundled (recorded speech in assets/speech) or synth (synthetic babble)',
      speechOption,
      'bundled' as const,
    )
    .option(
      '--wav <file>',
      'send this recording instead (16-bit PCM WAV, any common rate, cut at --clip-seconds; repeat for several)',
      collectWav,
    )
    .option(
      '--link <link>',
      "wifi, or ble: toys pair (numeric comparison) with their family's first parent's phone, which relays their clips",
      linkOption,
      'wifi' as const,
    )
    .option(
      '--no-outbox-files',
      'keep outboxes in memory, not in FLEETDIR/outbox (big fleets: two fsyncs less per clip; nothing to resume)',
    )
    .option('--no-progress', 'no live progress on stderr')
    .option('--json', 'print the report as JSON')
    .addHelpText(
      'after',
      '\nSafe to re-run: clip ids are new in every run (the seed fixes keys and audio), sequence numbers\n' +
        'follow the clock, and what a stopped run left unacknowledged in FLEETDIR/outbox is resent.\n' +
        'The last line says whether everything was delivered ("ok: 22/22 delivered" or\n' +
        '"FAILED: 3 of 22 deliveries missing"; exit code 1). Ctrl-C or SIGTERM stops talking and\n' +
        'waits up to --drain for clips in flight, then prints the summary; a second Ctrl-C quits at once.',
    )
    .action(
      action(async (o: FleetCliOptions) => {
        const report = await runFleetCommand(o);
        if (o.json) {
          printJson(report);
          process.stderr.write(`${report.verdict.line}\n`);
        } else {
          const p = report.provisioning;
          if (p.endpointsPerSecond !== null)
            process.stdout.write(`keys generated: ${p.endpointsPerSecond} endpoints/s\n`);
          for (const line of formatSummary(report.stats)) process.stdout.write(`${line}\n`);
          process.stdout.write(`${report.verdict.line}\n`);
        }
        if (!report.verdict.ok) process.exitCode = 1;
        exitSoon();
      }),
    );
}
