// `plushlink fleet`: provision a seeded fleet in bulk, run its toys and parent apps against a gateway, report delivery and latency.
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import cliProgress from 'cli-progress';
import type { Command } from 'commander';
import { WifiConnector } from '../../device/transport/wifi.ts';
import { type BulkRegistration, openAdmin } from '../../gateway/admin.ts';
import { gatewayDataPaths } from '../../gateway/embedded.ts';
import { readIdentity } from '../../platform/keyfiles.ts';
import type { PublicIdentity } from '../../shared/identity.ts';
import { FleetRunner, type FleetStats } from '../../sim/fleet-runner.ts';
import { registerRoster } from '../../sim/provision.ts';
import { generateRoster, type Roster, type RosterPlan } from '../../sim/roster.ts';
import { ROSTER_KEYS_FILE, readRosterFiles, writeRosterFiles } from '../../sim/roster-file.ts';
import { action, CliError, durationOption, intOption, printJson } from '../cli-util.ts';
import { formatSummary } from './demo.ts';

interface FleetCliOptions {
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
}

function usage(message: string): CliError {
  return new CliError(message, 2);
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
  const payload = (s: FleetStats) => ({
    online: s.online,
    endpoints: s.endpoints,
    sent: s.clipsSent,
    delivered: s.delivered,
    expected: s.deliveriesExpected,
    p99: s.latency.p99,
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
  const gateway = await gatewayIdentity(o);
  const ca = o.ca ? await readFile(o.ca) : undefined;
  const { roster, reused, ms: keyMs } = await loadRoster(dir, plan);
  const endpoints = roster.families.length * (plan.toysPerFamily + plan.parentsPerFamily);
  const log = (s: string): void => {
    if (!o.json) process.stderr.write(`${s}\n`);
  };
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

  const abort = new AbortController();
  const onSignal = (): void => abort.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const runner = new FleetRunner({
    roster,
    gateway,
    connector: new WifiConnector({ url, ...(ca ? { ca } : {}) }),
    durationMs: o.duration,
    talkEveryMs: o.talkEvery,
    ...(o.parentTalkEvery !== undefined ? { parentTalkEveryMs: o.parentTalkEvery } : {}),
    clipSeconds: o.clipSeconds,
    seed: o.seed,
    ...(o.ramp !== undefined ? { rampMs: o.ramp } : {}),
    drainMs: o.drain,
    decode: o.decode,
    ...(o.reuseEncoded ? { reuseEncoded: true } : {}),
    ...(o.complexity !== undefined ? { complexity: o.complexity } : {}),
    ...(o.out ? { outDir: resolve(o.out) } : {}),
  });
  const progress = progressReporter(o.duration, o.progress && !o.json);
  const ticker = setInterval(() => progress.update(runner.stats()), 500);
  let stats: FleetStats;
  try {
    stats = await runner.run(abort.signal);
  } finally {
    clearInterval(ticker);
    progress.stop();
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
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
  };
  if (stats.connects === 0) {
    const top = Object.entries(stats.errorKinds).sort((a, b) => b[1] - a[1])[0];
    throw new CliError(`no endpoint could connect to ${url}${top ? ` (${top[0]})` : ''}`);
  }
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
    .option('--clip-seconds <s>', 'length of each clip', intOption('--clip-seconds', 1, 60), 3)
    .option(
      '--seed <seed>',
      'seed for keys, family ids, speech and timing (same seed → same fleet)',
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
    .option('--no-progress', 'no live progress on stderr')
    .option('--json', 'print the report as JSON')
    .action(
      action(async (o: FleetCliOptions) => {
        const report = await runFleetCommand(o);
        if (o.json) printJson(report);
        else {
          const p = report.provisioning;
          if (p.endpointsPerSecond !== null)
            process.stdout.write(`keys generated: ${p.endpointsPerSecond} endpoints/s\n`);
          for (const line of formatSummary(report.stats)) process.stdout.write(`${line}\n`);
        }
      }),
    );
}
