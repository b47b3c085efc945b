// `plushlink gateway`: runs the authenticated MQTT gateway on a data directory, with metrics and clean shutdown [PLK-12].
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { pino } from 'pino';
import { readPrivateKey, writeKeyDir } from '../../device/keystore.ts';
import { openAdmin } from '../../gateway/admin.ts';
import { BoundedNonceStore } from '../../gateway/auth.ts';
import { createGateway, DAY_MS } from '../../gateway/gateway.ts';
import { MemoryRateLimiter } from '../../gateway/limits.ts';
import { createGatewayMetrics, serveMetrics } from '../../gateway/metrics.ts';
import { generateIdentity, type PrivateIdentity } from '../../shared/identity.ts';
import { LIMITS } from '../../shared/limits.ts';
import { action, CliError, durationOption, intOption, numberOption } from '../cli-util.ts';

/** Subdirectory of the data directory holding the gateway's key (endpoint.key 0600, identity.json). */
export const GATEWAY_KEY_DIR = 'gateway';

interface GatewayCliOptions {
  host: string;
  port: number;
  data: string;
  tlsCert?: string;
  tlsKey?: string;
  metricsPort?: number;
  metricsHost: string;
  tokenWindow: number;
  retentionUndelivered: number;
  retentionInterval: number;
  connectTimeout: number;
  maxPacket: number;
  connectRate: number;
  clipRate: number;
  clipBurst: number;
  byteRate: number;
  logLevel: string;
}

/** Loads DATA/gateway/endpoint.key, or creates the gateway identity there on first start. */
export async function loadOrCreateGatewayIdentity(
  dataDir: string,
): Promise<{ identity: PrivateIdentity; created: boolean; dir: string }> {
  const dir = join(dataDir, GATEWAY_KEY_DIR);
  if (existsSync(join(dir, 'endpoint.key'))) {
    const identity = await readPrivateKey(dir);
    if (identity.role !== 'gateway')
      throw new CliError(`${dir}/endpoint.key is a ${identity.role} key, not a gateway key`);
    return { identity, created: false, dir };
  }
  const identity = generateIdentity('gateway');
  await writeKeyDir(dir, identity);
  return { identity, created: true, dir };
}

async function runGateway(opts: GatewayCliOptions): Promise<void> {
  if ((opts.tlsCert === undefined) !== (opts.tlsKey === undefined)) {
    throw new CliError('--tls-cert and --tls-key go together', 2);
  }
  const logger = pino({ level: opts.logLevel, base: { svc: 'plushlink-gateway' } }, pino.destination(2));
  const { identity, created, dir: keyDir } = await loadOrCreateGatewayIdentity(opts.data);
  const tls =
    opts.tlsCert && opts.tlsKey
      ? { cert: await readFile(opts.tlsCert), key: await readFile(opts.tlsKey) }
      : undefined;
  const admin = await openAdmin(opts.data, { create: true, gatewayKey: keyDir });
  const metrics = createGatewayMetrics();
  const gw = createGateway({
    identity,
    store: admin.store,
    audit: admin.audit,
    nonces: new BoundedNonceStore(200_000),
    limiters: {
      connect: new MemoryRateLimiter({
        capacity: Math.max(1, opts.connectRate * 2),
        refillPerSecond: opts.connectRate,
      }),
      clips: new MemoryRateLimiter({ capacity: opts.clipBurst, refillPerSecond: opts.clipRate }),
      bytes: new MemoryRateLimiter({
        capacity: Math.max(opts.byteRate, LIMITS.maxEnvelopeBytes) * 2,
        refillPerSecond: opts.byteRate,
      }),
      // A parent coming back online receipts its whole backlog at once: generous burst.
      receipts: new MemoryRateLimiter({ capacity: 2000, refillPerSecond: 100 }),
    },
    logger,
    metrics,
    host: opts.host,
    port: opts.port,
    ...(tls ? { tls } : {}),
    tokenWindowMs: opts.tokenWindow,
    connectTimeoutMs: opts.connectTimeout,
    maxPacketBytes: opts.maxPacket,
    undeliveredMaxAgeMs: opts.retentionUndelivered,
    retentionIntervalMs: opts.retentionInterval,
  });
  let metricsServer: Awaited<ReturnType<typeof serveMetrics>> | undefined;
  try {
    const addr = await gw.listen();
    if (opts.metricsPort !== undefined) {
      metricsServer = await serveMetrics(metrics.registry, {
        port: opts.metricsPort,
        host: opts.metricsHost,
      });
    }
    const scheme = tls ? 'mqtts' : 'mqtt';
    const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
    const extra = metricsServer
      ? ` metrics=http://${opts.metricsHost}:${metricsServer.address.port}/metrics`
      : '';
    // The one line on stdout (scripts and tests read the port from it); logs go to stderr as JSON.
    process.stdout.write(
      `plushlink gateway listening on ${scheme}://${host}:${addr.port} port=${addr.port} gateway=${identity.id}` +
        ` identity=${join(keyDir, 'identity.json')}${created ? ' (new)' : ''}${extra}\n`,
    );
  } catch (err) {
    await gw.close();
    await admin.close();
    throw err;
  }
  await admin.audit.append({ at: Date.now(), kind: 'gateway.started', detail: { tls: !!tls } });

  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      logger.info({ event: 'gateway.stopping', signal }, 'shutting down');
      resolve();
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
  await gw.close();
  await metricsServer?.close();
  await admin.audit.append({ at: Date.now(), kind: 'gateway.stopped' });
  await admin.close();
  logger.flush();
  process.exit(0);
}

export function registerGatewayCommands(program: Command): void {
  program
    .command('gateway')
    .description('run the authenticated MQTT gateway (Aedes) on a data directory')
    .option('--host <addr>', 'listen address', '127.0.0.1')
    .option('--port <n>', 'listen port (0 picks a free one)', intOption('--port', 0, 65535), 1883)
    .option('--data <dir>', 'data directory (gateway.db, audit.db, gateway/ key)', './data')
    .option('--tls-cert <file>', 'PEM certificate: serve MQTT over TLS')
    .option('--tls-key <file>', 'PEM private key for --tls-cert')
    .option(
      '--metrics-port <n>',
      'serve Prometheus metrics on this port',
      intOption('--metrics-port', 0, 65535),
    )
    .option('--metrics-host <addr>', 'metrics listen address', '127.0.0.1')
    .option(
      '--token-window <duration>',
      'accepted connect-token clock skew',
      durationOption('--token-window', 1000, 600_000),
      60_000,
    )
    .option(
      '--retention-undelivered <duration>',
      'delete undelivered clips older than this',
      durationOption('--retention-undelivered', 60_000, 365 * DAY_MS),
      7 * DAY_MS,
    )
    .option(
      '--retention-interval <duration>',
      'how often retention runs',
      durationOption('--retention-interval', 1000, DAY_MS),
      600_000,
    )
    .option(
      '--connect-timeout <duration>',
      'close sockets that send no CONNECT',
      durationOption('--connect-timeout', 100, 60_000),
      5000,
    )
    .option(
      '--max-packet <bytes>',
      'largest MQTT packet accepted',
      intOption('--max-packet', 1024, 16 * 1024 * 1024),
      LIMITS.maxEnvelopeBytes + 1024,
    )
    .option(
      '--connect-rate <n>',
      'connections per second per source address',
      numberOption('--connect-rate', 0.01, 1e6),
      50,
    )
    .option(
      '--clip-rate <n>',
      'clips per second per endpoint (sustained)',
      numberOption('--clip-rate', 0.001, 1e6),
      5,
    )
    .option('--clip-burst <n>', 'clips per endpoint in a burst', numberOption('--clip-burst', 1, 1e7), 100)
    .option(
      '--byte-rate <n>',
      'envelope bytes per second per endpoint',
      numberOption('--byte-rate', 1024, 1e10),
      1_000_000,
    )
    .option('--log-level <level>', 'pino log level (fatal, error, warn, info, debug, silent)', 'info')
    .action(action(async (opts: GatewayCliOptions) => runGateway(opts)));
}
