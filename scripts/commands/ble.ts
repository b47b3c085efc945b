// `plushlink ble airtime`: the modelled BLE transfer time of an N-byte payload (device/ble/timing.ts, docs/BLE.md §5).
import { type Command, InvalidArgumentError } from 'commander';
import { SeededRandom } from '../../device/ble/random.ts';
import { estimateTransfer, type LinkParams, linkParams, simulateTransfer } from '../../device/ble/timing.ts';
import { action, CliError, intOption, numberOption, printJson } from '../cli-util.ts';

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

export function airtime(opts: AirtimeOpts): void {
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
  const e = estimateTransfer(opts.bytes, params);
  const sim =
    opts.seed === undefined ? undefined : simulateTransfer(opts.bytes, params, new SeededRandom(opts.seed));
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
      'also run one seeded simulation of the loss process',
      intOption('--seed', 0, 2 ** 31),
    )
    .option('--json', 'print JSON')
    .action(action((opts: AirtimeOpts) => airtime(opts)));
}
