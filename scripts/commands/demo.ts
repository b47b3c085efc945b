// `plushlink demo` (npm start): an embedded gateway in ./data, a small family fleet exchanging real voice clips, a readable live log.
import { mkdir } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import type { Command } from 'commander';
import type { Endpoint } from '../../device/endpoint.ts';
import { WifiConnector } from '../../device/transport/wifi.ts';
import { LOOPBACK_FLEET_RATE_LIMITS, startEmbeddedGateway } from '../../gateway/embedded.ts';
import { toHex } from '../../shared/bytes.ts';
import { systemRandom } from '../../shared/random.ts';
import { FleetRunner, type FleetStats } from '../../sim/fleet-runner.ts';
import { NameBook } from '../../sim/names.ts';
import { registerRoster } from '../../sim/provision.ts';
import { generateRoster, type Roster, type RosterMember } from '../../sim/roster.ts';
import { readRosterFiles, writeRosterFiles } from '../../sim/roster-file.ts';
import { action, durationOption, printJson } from '../cli-util.ts';

// ---------------------------------------------------------------------------------------------
// Live log

const hhmmss = (ms: number): string => new Date(ms).toTimeString().slice(0, 8);
const kB = (n: number): string => (n >= 1024 ? `${(n / 1024).toFixed(1)} kB` : `${n} B`);

/** Attaches a human-readable log to one endpoint. Display names exist only in this process. */
export function attachDemoLog(
  ep: Endpoint,
  member: RosterMember,
  names: NameBook,
  write: (line: string) => void,
  cwd = process.cwd(),
): void {
  const me = member.name;
  const who = member.role === 'toy' ? `toy ${me}` : me;
  const line = (s: string): void => write(`${hhmmss(ep.clock.now())}  ${s}`);
  const latency = new Map<string, number>();
  ep.on('state', (e) => {
    if (e.to === 'online') line(`${who} online (gateway proof verified)`);
    else if (e.to === 'connecting' && e.from === 'online') line(`${who} lost its connection, reconnecting`);
  });
  ep.on('retry', (e) => line(`${who} could not connect (${e.error.message}); retry in ${e.delayMs} ms`));
  ep.on('sealed', (e) => {
    const to = e.recipients.map((r) => names.name(r)).join(', ');
    const verb = member.role === 'toy' ? 'recorded' : 'sent a voice message of';
    line(`${who} ${verb} ${(e.durationMs / 1000).toFixed(1)} s, sealed for ${to} (${kB(e.bytes)})`);
  });
  ep.on('acked', (e) => line(`${who} clip #${e.sequence} stored by the gateway (PUBACK after ${e.ms} ms)`));
  ep.on('received', (e) => {
    if (e.duplicate) line(`${me} discarded a duplicate of ${names.name(e.sender)}'s clip (receipted again)`);
    else latency.set(e.clipId, e.latencyMs);
  });
  ep.on('played', (e) => {
    const ms = latency.get(e.clipId);
    latency.delete(e.clipId);
    const file = e.file ? `, saved ${relative(cwd, e.file)}` : '';
    line(
      `${me} received clip from ${names.name(e.sender)}: delivered in ${ms ?? '?'} ms, verified, ${(e.durationMs / 1000).toFixed(1)} s${file}`,
    );
  });
  ep.on('delivered', (e) =>
    line(`${who} got ${names.name(e.recipient)}'s signed receipt (round trip ${e.ms} ms)`),
  );
  ep.on('error', (e) => line(`${who} error in ${e.where}: ${e.error.message}`));
}

/** 8.003 → "8.0 ms", 123.4 → "123 ms": the precision a reader can use. */
const ms = (x: number): string => `${x < 100 ? x.toFixed(1) : Math.round(x)} ms`;

export function formatSummary(s: FleetStats): string[] {
  const l = s.latency;
  return [
    `endpoints ${s.endpoints}, at most ${s.peakOnline} online at once, ${s.connects} connects, ${s.retries} retries`,
    `clips sent ${s.clipsSent}, stored (PUBACK) ${s.clipsAcked}, delivered ${s.delivered}/${s.deliveriesExpected}, duplicates discarded ${s.duplicates}, receipts ${s.receipts}` +
      (s.backlogDelivered ? `, ${s.backlogDelivered} left over from an earlier run` : '') +
      (s.clipsAbandoned ? `, ${s.clipsAbandoned} given up` : ''),
    `delivery latency (sealed → opened): p50 ${ms(l.p50)}, p90 ${ms(l.p90)}, p99 ${ms(l.p99)}, max ${ms(l.max)} (n=${l.count})`,
    `errors ${s.errors}${
      s.errors
        ? ` (${Object.entries(s.errorKinds)
            .map(([k, v]) => `${k}×${v}`)
            .join(', ')})`
        : ''
    }`,
  ];
}

// ---------------------------------------------------------------------------------------------
// The demo command

interface DemoOptions {
  duration: number;
  data: string;
  out: string;
  json?: boolean;
}

export async function runDemo(
  opts: DemoOptions,
  write: (line: string) => void = (s) => process.stdout.write(`${s}\n`),
): Promise<FleetStats> {
  const dataDir = resolve(opts.data);
  const outDir = resolve(opts.out);
  const eg = await startEmbeddedGateway({ dataDir, limits: LOOPBACK_FLEET_RATE_LIMITS });
  const abort = new AbortController();
  const onSigint = (): void => {
    write('stopping (Ctrl-C)…');
    abort.abort();
  };
  process.once('SIGINT', onSigint);
  process.once('SIGTERM', onSigint);
  try {
    write(`gateway data: ${eg.dataDir} (${eg.created ? 'created' : 'reused'})`);
    write(`gateway ${eg.identity.id} listening on ${eg.url}`);
    const fleetDir = join(dataDir, 'demo-fleet');
    let roster: Roster | undefined = await readRosterFiles(fleetDir);
    if (!roster) {
      roster = generateRoster({
        families: 2,
        toysPerFamily: 1,
        parentsPerFamily: 2,
        seed: toHex(systemRandom(16)),
      });
      await writeRosterFiles(fleetDir, roster);
    }
    const reg = await registerRoster(eg.store, eg.audit, roster, { source: 'demo' });
    write(
      `fleet: ${roster.families.length} families (1 toy + 2 parent apps each); keys in ${relative(process.cwd(), fleetDir) || fleetDir}/fleet.keys (0600); ` +
        `${reg.endpoints} endpoints registered, ${reg.skipped} already known`,
    );
    await mkdir(outDir, { recursive: true });
    write(
      `received clips are saved as playable Ogg Opus files in ${relative(process.cwd(), outDir) || outDir}/`,
    );
    const names = new NameBook();
    for (const f of roster.families)
      for (const m of [...f.toys, ...f.parents]) names.set(m.identity.id, m.name);
    const runner = new FleetRunner({
      roster,
      gateway: eg.identity,
      connector: new WifiConnector({ url: eg.url }),
      durationMs: opts.duration,
      talkEveryMs: 9000,
      parentTalkEveryMs: 16_000,
      clipSeconds: 4,
      firstTalkWithinMs: 5000,
      pacedRecording: true,
      seed: toHex(systemRandom(8)),
      rampMs: 500,
      drainMs: 8000,
      outDir,
      outboxDir: join(fleetDir, 'outbox'),
      nameOf: (id) => names.name(id),
    });
    runner.on('endpoint', ({ member, endpoint }) => attachDemoLog(endpoint, member, names, write));
    const stats = await runner.run(abort.signal);
    write('');
    for (const s of formatSummary(stats)) write(s);
    if (opts.json) printJson(stats);
    return stats;
  } finally {
    process.removeListener('SIGINT', onSigint);
    process.removeListener('SIGTERM', onSigint);
    await eg.close();
  }
}

export function registerDemoCommands(program: Command): void {
  program
    .command('demo')
    .description(
      'start an embedded gateway (./data) and a small family fleet exchanging real voice clips (npm start)',
    )
    .option(
      '--duration <time>',
      'how long the families talk (e.g. 30s, 2m)',
      durationOption('--duration', 1000, 3_600_000),
      30_000,
    )
    .option('--data <dir>', 'gateway data directory (reused if present)', 'data')
    .option('--out <dir>', 'where received clips are saved as .opus files', 'out')
    .option('--json', 'also print the statistics as JSON')
    .action(
      action(async (opts: DemoOptions) => {
        await runDemo(opts);
      }),
    );
}
