// `plushlink ble airtime`: the modelled BLE transfer time of an N-byte payload (device/ble/timing.ts, docs/BLE.md §5).
import cliProgress from 'cli-progress';
import { type Command, InvalidArgumentError } from 'commander';
import { SeededRandom } from '../../device/ble/random.ts';
import {
  estimateTransfer,
  exchangeSuccessProbability,
  fragment,
  type LinkParams,
  LinkScheduler,
  linkParams,
  packetsPerEvent,
  type SimulatedTransfer,
  type TransferEstimate,
} from '../../device/ble/timing.ts';
import { action, CliError, intOption, numberOption, printJson } from '../cli-util.ts';

/**
 * Payloads up to this size are estimated by estimateTransfer itself, which lists every LL packet;
 * larger ones from the periodic packet pattern (estimateAirtime), in constant time and memory —
 * listing the 53 million packets of 1 GiB at ATT_MTU 23 takes 10 s and gigabytes.
 */
export const DIRECT_ESTIMATE_MAX_BYTES = 1 << 20;
/** Most LL exchanges a seeded simulation runs (two loss draws each): about 1.5 s on one core. */
export const MAX_SIMULATED_EXCHANGES = 50_000_000;
/** Simulations expected to take more exchanges than this show their progress on stderr. */
export const PROGRESS_MIN_EXCHANGES = 2_000_000;
/** LL packets handed to the scheduler at a time (the simulation yields and reports between chunks). */
const SIM_CHUNK_PACKETS = 1 << 18;

/**
 * estimateTransfer for any size, exactly, without listing every packet. The LL packets of N bytes
 * are the packets of one full ATT PDU (`a` of them) repeated F = ⌊N/per⌋ times, then those of the
 * remainder; removing c = t·k full PDUs from the front (k packets per connection event) removes
 * exactly t·a whole connection events and leaves the last event — the only part of the lossless
 * time that is not whole intervals — unchanged. So T(N) = T(N − c·per) + t·a·interval.
 */
export function estimateAirtime(
  bytes: number,
  params: LinkParams,
  directMaxBytes = DIRECT_ESTIMATE_MAX_BYTES,
): TransferEstimate {
  if (bytes <= directMaxBytes) return estimateTransfer(bytes, params);
  const per = estimateTransfer(1, params).attPayloadPerPdu;
  const a = estimateTransfer(per, params).llPackets;
  const k = packetsPerEvent(params);
  const full = Math.floor(bytes / per);
  const keep = Math.max(k, Math.floor(directMaxBytes / per));
  const t = Math.floor(Math.max(0, full - keep) / k);
  if (t === 0) return estimateTransfer(bytes, params);
  const c = t * k;
  const small = estimateTransfer(bytes - c * per, params);
  const q = exchangeSuccessProbability(params.lossProbability);
  const llPackets = small.llPackets + c * a;
  const losslessUs = small.losslessUs + t * a * params.connectionIntervalMs * 1000;
  const expectedUs = losslessUs / q;
  return {
    ...small,
    payloadBytes: bytes,
    attPdus: small.attPdus + c,
    llPackets,
    connectionEvents: small.connectionEvents + t * a,
    expectedAttempts: llPackets / q,
    losslessUs,
    expectedUs,
    throughputBps: expectedUs > 0 ? (bytes * 8 * 1e6) / expectedUs : 0,
  };
}

/** Progress of a long simulation on stderr: a bar on a terminal, a line per quarter otherwise. */
function simulationProgress(total: number): { update(done: number): void; stop(): void } {
  if (total < PROGRESS_MIN_EXCHANGES) return { update: () => undefined, stop: () => undefined };
  if (process.stderr.isTTY) {
    const bar = new cliProgress.SingleBar(
      {
        stream: process.stderr,
        format: 'simulating [{bar}] {percentage}% | {value}/{total} LL exchanges | ETA {eta}s',
        hideCursor: true,
      },
      cliProgress.Presets.shades_classic,
    );
    bar.start(total, 0);
    return { update: (done) => bar.update(done), stop: () => bar.stop() };
  }
  process.stderr.write(`ble airtime: simulating about ${total} LL exchanges (each with its loss draws)\n`);
  let next = 25;
  return {
    update(done) {
      const pct = Math.floor((done / total) * 100);
      while (pct >= next && next < 100) {
        process.stderr.write(`ble airtime: simulated ${next}%\n`);
        next += 25;
      }
    },
    stop: () => undefined,
  };
}

/**
 * simulateTransfer, in chunks: the same LL packets through the same LinkScheduler and seeded
 * source (so the same result for the same seed), but without listing every packet at once, with
 * progress, and yielding to the event loop between chunks.
 */
export async function simulateAirtime(
  bytes: number,
  params: LinkParams,
  rng: SeededRandom,
  onProgress: (packetsDone: number) => void = () => undefined,
): Promise<SimulatedTransfer> {
  const per = estimateTransfer(1, params).attPayloadPerPdu;
  const pattern = fragment(Math.min(per, bytes), params).llPayloads;
  const full = Math.floor(bytes / per);
  const tail = bytes % per > 0 && full > 0 ? fragment(bytes % per, params).llPayloads : [];
  const s = new LinkScheduler(params, rng);
  const pdusPerChunk = Math.max(1, Math.floor(SIM_CHUNK_PACKETS / Math.max(1, pattern.length)));
  const chunk: number[] = [];
  for (let i = 0; i < pdusPerChunk; i++) chunk.push(...pattern);
  let timeUs = 0;
  let packets = 0;
  const pdus = full > 0 ? full : bytes > 0 ? 1 : 0;
  for (let sent = 0; sent < pdus; ) {
    const n = Math.min(pdusPerChunk, pdus - sent);
    const part = n === pdusPerChunk ? chunk : chunk.slice(0, n * pattern.length);
    timeUs = s.send(0, part);
    packets += part.length;
    sent += n;
    onProgress(s.attempts);
    if (sent < pdus) await new Promise((resolve) => setImmediate(resolve));
  }
  if (tail.length > 0) {
    timeUs = s.send(0, tail);
    packets += tail.length;
  }
  return { payloadBytes: bytes, llPackets: packets, attempts: s.attempts, timeUs };
}

interface AirtimeOpts {
  bytes: number;
  mtu: number;
  intervalMs: number;
  phy: '1M' | '2M';
  dl: number;
  perEvent: number;
  loss: number;
  plain?: boolean;
  seed?: number;
  json?: boolean;
}

function phyOption(value: string): '1M' | '2M' {
  const v = value.toUpperCase();
  if (v !== '1M' && v !== '2M') throw new InvalidArgumentError(`--phy must be 1M or 2M, got "${value}"`);
  return v;
}

/** LinkParams field → the option that sets it, for error messages. */
const FLAG_OF: Record<string, string> = {
  attMtu: '--mtu',
  connectionIntervalMs: '--interval-ms',
  phy: '--phy',
  llDataLength: '--dl',
  maxPacketsPerEvent: '--per-event',
  lossProbability: '--loss',
};

const ms = (us: number): string => `${(us / 1000).toFixed(3)} ms`;

export async function airtime(opts: AirtimeOpts): Promise<void> {
  let params: LinkParams;
  try {
    params = linkParams({
      attMtu: opts.mtu,
      connectionIntervalMs: opts.intervalMs,
      phy: opts.phy,
      llDataLength: opts.dl,
      maxPacketsPerEvent: opts.perEvent,
      lossProbability: opts.loss,
      encrypted: opts.plain !== true,
    });
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    throw new CliError(
      message.replace(/^(\w+)/, (f) => FLAG_OF[f] ?? f),
      2,
      { cause: err },
    );
  }
  const e = estimateAirtime(opts.bytes, params);
  let sim: SimulatedTransfer | undefined;
  if (opts.seed !== undefined) {
    if (e.expectedAttempts > MAX_SIMULATED_EXCHANGES) {
      const maxBytes = Math.floor((MAX_SIMULATED_EXCHANGES / e.expectedAttempts) * opts.bytes);
      throw new CliError(
        `--seed simulates every LL exchange: ${opts.bytes} bytes at loss ${params.lossProbability} take about ${Math.round(e.expectedAttempts)} exchanges, more than the ${MAX_SIMULATED_EXCHANGES} a simulation runs; drop --seed for the exact lossless and expected times, or simulate --bytes ${maxBytes} or fewer`,
        2,
      );
    }
    const progress = simulationProgress(Math.round(e.expectedAttempts));
    try {
      sim = await simulateAirtime(opts.bytes, params, new SeededRandom(opts.seed), (n) => progress.update(n));
    } finally {
      progress.stop();
    }
  }
  if (opts.json) {
    printJson({
      params,
      payloadBytes: e.payloadBytes,
      attPayloadPerPdu: e.attPayloadPerPdu,
      attPdus: e.attPdus,
      llPackets: e.llPackets,
      packetsPerEvent: e.packetsPerEvent,
      connectionEvents: e.connectionEvents,
      expectedAttempts: e.expectedAttempts,
      losslessUs: e.losslessUs,
      expectedUs: e.expectedUs,
      throughputBps: e.throughputBps,
      ...(sim ? { simulated: { seed: opts.seed, attempts: sim.attempts, timeUs: sim.timeUs } } : {}),
    });
    return;
  }
  const lines = [
    `payload          ${e.payloadBytes} bytes`,
    `link             ${params.phy} PHY, ATT_MTU ${params.attMtu}, LL data length ${params.llDataLength}, ` +
      `interval ${params.connectionIntervalMs} ms, max ${params.maxPacketsPerEvent} packets/event, ` +
      `${params.encrypted ? 'encrypted' : 'unencrypted'}, loss ${params.lossProbability}`,
    `ATT PDUs         ${e.attPdus} x up to ${e.attPayloadPerPdu} bytes`,
    `LL packets       ${e.llPackets} (${e.packetsPerEvent} per connection event, ${e.connectionEvents} events)`,
    `lossless time    ${ms(e.losslessUs)}`,
    `expected time    ${ms(e.expectedUs)} (${e.expectedAttempts.toFixed(1)} exchanges)`,
    `throughput       ${(e.throughputBps / 1000).toFixed(1)} kbit/s`,
  ];
  if (sim) lines.push(`simulated        ${ms(sim.timeUs)} (seed ${opts.seed}, ${sim.attempts} exchanges)`);
  process.stdout.write(`${lines.join('\n')}\n`);
}

export function registerBleCommands(program: Command): void {
  const ble = program.command('ble').description('BLE link model between the toy and a phone');
  ble
    .command('airtime')
    .description('modelled time to send N bytes over BLE (fragmentation, connection events, loss)')
    .requiredOption('--bytes <n>', 'payload size in bytes', intOption('--bytes', 0, 1 << 30))
    .option('--mtu <n>', 'ATT_MTU, 23..517', intOption('--mtu', 23, 517), 23)
    .option(
      '--interval-ms <ms>',
      'connection interval, 7.5..4000 in 1.25 ms steps',
      numberOption('--interval-ms', 7.5, 4000),
      30,
    )
    .option('--phy <phy>', '1M or 2M', phyOption, '1M' as const)
    .option('--dl <n>', 'LL data length (DLE), 27..251', intOption('--dl', 27, 251), 27)
    .option('--per-event <n>', 'max packets per connection event', intOption('--per-event', 1, 1000), 4)
    .option('--loss <p>', 'LL packet loss probability, 0..0.9', numberOption('--loss', 0, 0.9), 0)
    .option('--plain', 'unencrypted link (no MIC)')
    .option(
      '--seed <n>',
      `also run one seeded simulation of the loss process (every exchange: at most ${MAX_SIMULATED_EXCHANGES} of them, progress on stderr above ${PROGRESS_MIN_EXCHANGES})`,
      intOption('--seed', 0, 2 ** 31),
    )
    .option('--json', 'print JSON')
    .action(action(async (opts: AirtimeOpts) => airtime(opts)));
}
