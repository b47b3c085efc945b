// `plushlink demo` (npm start): an embedded gateway in ./data, a small family fleet exchanging real voice clips, a readable live log.
import { mkdir } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { type Command, InvalidArgumentError } from 'commander';
import type { OpusEncoderSettings } from '../../device/codec/opus.ts';
import type { Endpoint } from '../../device/endpoint.ts';
import { WifiConnector } from '../../device/transport/wifi.ts';
import {
  type EmbeddedGateway,
  LOOPBACK_FLEET_RATE_LIMITS,
  startEmbeddedGateway,
} from '../../gateway/embedded.ts';
import { startWebServer, type WebServer, WebServerError } from '../../gateway/web.ts';
import { toHex } from '../../shared/bytes.ts';
import { systemRandom } from '../../shared/random.ts';
import { FleetRunner, type FleetStats, fleetVerdict } from '../../sim/fleet-runner.ts';
import { NameBook } from '../../sim/names.ts';
import { registerRoster } from '../../sim/provision.ts';
import { generateRoster, type Roster, type RosterMember } from '../../sim/roster.ts';
import { readRosterFiles, writeRosterFiles } from '../../sim/roster-file.ts';
import { buildSpeechBank, type SpeechBank, speechBankFromWav } from '../../sim/speech-bank.ts';
import { action, CliError, checkOutDir, durationOption, intOption, printJson } from '../cli-util.ts';

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
  ep.on('acked', (e) =>
    line(
      `${who} clip #${e.sequence} stored by the gateway (${e.via === 'receipt' ? 'PUBACK lost; a receipt proved it' : 'PUBACK'} after ${e.ms} ms)`,
    ),
  );
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
  const b = s.ble;
  const a = b?.airtime;
  const ble = b
    ? [
        `BLE: ${b.paired} toys paired with their family's phone (numeric comparison)${b.pairingsFailed ? `, ${b.pairingsFailed} pairings failed` : ''}; ` +
          `${b.relayed} clips relayed unchanged; airtime per clip p50 ${ms(a!.p50)}, p99 ${ms(a!.p99)}, max ${ms(a!.max)} ` +
          `(model ${ms(b.modelMeanMs)} for ${kB(b.bytesMean)}; ${b.params.phy} PHY, ATT_MTU ${b.params.attMtu}, ` +
          `LL data length ${b.params.llDataLength}, ${b.params.connectionIntervalMs} ms interval)`,
      ]
    : [];
  return [
    `speech: ${s.speech}; link: ${s.link === 'ble' ? 'toys on BLE through a parent’s phone, parents on Wi-Fi' : 'Wi-Fi'}`,
    ...ble,
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
    ...(s.clipsResumed
      ? [`${s.clipsResumed} clips left unacknowledged by an earlier run were resent and stored`]
      : []),
  ];
}

// ---------------------------------------------------------------------------------------------
// What demo and fleet share: speech options and Ctrl-C

export interface SpeechCliOptions {
  speech: 'bundled' | 'synth';
  wav?: string[];
}

export function speechOption(value: string): 'bundled' | 'synth' {
  if (value !== 'bundled' && value !== 'synth')
    throw new InvalidArgumentError(`--speech must be bundled or synth, got "${value}"`);
  return value;
}

export function collectWav(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/**
 * The speech bank `--speech` / `--wav` choose, loaded (and checked) before any other work: the
 * bundled recordings by default, the operator's WAV files, or synthetic speech.
 */
export async function speechFromOptions(
  o: SpeechCliOptions,
  clipSeconds: number,
  seed: string,
  encode?: Partial<OpusEncoderSettings>,
): Promise<SpeechBank> {
  const wav = o.wav ?? [];
  if (wav.length > 0 && o.speech === 'synth')
    throw new CliError('--wav sends recordings; it cannot be combined with --speech synth', 2);
  if (o.speech === 'synth' && wav.length === 0)
    return buildSpeechBank({ count: 8, seconds: clipSeconds, seed, ...(encode ? { encode } : {}) });
  if (wav.length > 64) throw new CliError('at most 64 --wav files', 2);
  return speechBankFromWav(wav.length > 0 ? wav.map((f) => resolve(f)) : 'bundled', {
    maxSeconds: clipSeconds,
    seed,
    ...(encode ? { encode } : {}),
  });
}

/**
 * Ctrl-C and SIGTERM: the first calls `first` (stop talking, drain, summary); the second ends the
 * process at once with exit code 130. Returns the function that removes the handlers.
 */
export function onInterrupt(first: (signal: NodeJS.Signals) => void): () => void {
  let seen = 0;
  const handler = (signal: NodeJS.Signals): void => {
    if (++seen === 1) {
      first(signal);
      return;
    }
    process.stderr.write(`plushlink: ${signal} again: exiting at once, without a summary\n`);
    process.exit(130);
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return () => {
    process.removeListener('SIGINT', handler);
    process.removeListener('SIGTERM', handler);
  };
}

/** After the last line: exit within a second even if a socket is still closing (the summary is out). */
export function exitSoon(): void {
  setTimeout(() => process.exit(), 1000).unref();
}

// ---------------------------------------------------------------------------------------------
// The demo command

interface DemoOptions extends SpeechCliOptions {
  duration: number;
  data: string;
  out: string;
  json?: boolean;
  /** The parent page (docs/WEB.md): its port, and false for --no-web. */
  webPort?: number;
  web?: boolean;
}

/**
 * The parent page beside the demo's gateway: on the asked port, or any free one when it is taken
 * (two demos, another server); a line instead of it when the page is not built.
 */
async function startDemoWeb(
  eg: EmbeddedGateway,
  port: number,
  write: (line: string) => void,
): Promise<WebServer | undefined> {
  const start = (p: number) => startWebServer({ gateway: eg.gateway, identity: eg.identity, port: p });
  try {
    return await start(port);
  } catch (err) {
    if (err instanceof WebServerError && err.code === 'WEB_LISTEN' && port !== 0) return start(0);
    if (err instanceof WebServerError) {
      write(`parent page not served: ${err.message}`);
      return undefined;
    }
    throw err;
  }
}

export async function runDemo(
  opts: DemoOptions,
  write: (line: string) => void = (s) => process.stdout.write(`${s}\n`),
): Promise<FleetStats> {
  const dataDir = resolve(opts.data);
  const outDir = resolve(opts.out);
  await checkOutDir(opts.data, '--data');
  await checkOutDir(opts.out, '--out');
  const speech = await speechFromOptions(opts, 4, toHex(systemRandom(8)));
  const eg = await startEmbeddedGateway({ dataDir, limits: LOOPBACK_FLEET_RATE_LIMITS });
  const drainMs = 8000;
  const abort = new AbortController();
  let web: WebServer | undefined;
  const removeHandlers = onInterrupt(() => {
    write(`stopping (Ctrl-C): up to ${drainMs / 1000} s for clips in flight; Ctrl-C again quits at once`);
    abort.abort();
  });
  try {
    write(`gateway data: ${eg.dataDir} (${eg.created ? 'created' : 'reused'})`);
    write(`gateway ${eg.identity.id} listening on ${eg.url}`);
    web = opts.web === false ? undefined : await startDemoWeb(eg, opts.webPort ?? 8080, write);
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
    const first = roster.families[0];
    if (web && first) {
      // The browser makes its own key; the one command it shows registers it in this family [PLK-1.5].
      const data = opts.data === 'data' || opts.data === './data' ? '' : ` (add --data ${opts.data})`;
      write(
        `parent page: ${web.url}#family=${first.id} — open it to listen as a parent of ${first.toys[0]?.name ?? 'the toy'} in your browser; ` +
          `it shows the one command${data} that registers its key, and gets the clips recorded after that (try --duration 5m)`,
      );
    }
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
      speech,
      rampMs: 500,
      drainMs,
      outDir,
      outboxDir: join(fleetDir, 'outbox'),
      clockSequence: false, // the demo's keys live and die with its outbox folder: "clip #1, #2, …" in the log
      nameOf: (id) => names.name(id),
    });
    runner.on('endpoint', ({ member, endpoint }) => attachDemoLog(endpoint, member, names, write));
    const stats = await runner.run(abort.signal);
    write('');
    for (const s of formatSummary(stats)) write(s);
    if (opts.json) printJson(stats);
    const verdict = fleetVerdict(stats);
    write(verdict.line);
    if (!verdict.ok) process.exitCode = 1;
    return stats;
  } finally {
    removeHandlers();
    await web?.close();
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
    .option(
      '--speech <kind>',
      'what the toys and parents say: bundled (recorded speech in assets/speech) or synth (synthetic babble)',
      speechOption,
      'bundled' as const,
    )
    .option(
      '--wav <file>',
      'send this recording instead (16-bit PCM WAV, any common rate, cut at 4 s; repeat for several)',
      collectWav,
    )
    .option('--json', 'also print the statistics as JSON')
    .option(
      '--web-port <n>',
      'serve the parent page (docs/WEB.md) on this port, or a free one when it is taken',
      intOption('--web-port', 0, 65535),
      8080,
    )
    .option('--no-web', 'do not serve the parent page')
    .addHelpText(
      'after',
      '\nThe last line says whether every clip was delivered ("ok: …" or "FAILED: …"; exit code 1).\n' +
        'Ctrl-C stops talking and waits up to 8 s for clips in flight; a second Ctrl-C quits at once.',
    )
    .action(
      action(async (opts: DemoOptions) => {
        await runDemo(opts);
        exitSoon();
      }),
    );
}
