// `plushlink gateway`: runs the authenticated MQTT gateway on a data directory, with metrics and clean shutdown [PLK-12].
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { pino } from 'pino';
import { GATEWAY_ID_META } from '../../gateway/datadir.ts';
import { DEFAULT_RATE_LIMITS } from '../../gateway/embedded.ts';
import { DAY_MS } from '../../gateway/gateway.ts';
import { createGatewayMetrics, serveMetrics } from '../../gateway/metrics.ts';
import { DEFAULT_TRANSIT_HOLD_MS, MAX_TRANSIT_HOLD_MS } from '../../gateway/transit.ts';
import { LIMITS } from '../../shared/limits.ts';
import { CLIP_VERSIONS, DEFAULT_PROTOCOL_VERSIONS, parseProtocolVersions } from '../../shared/versions.ts';
import { action, CliError, durationOption, intOption, numberOption } from '../cli-util.ts';
import {
  addClusterOptions,
  addRedisOptions,
  type ClusterCliOptions,
  clusterSettings,
  startGatewayNode,
} from './gateway-cluster.ts';
import { addWebOptions, startWebListeners, type WebCliOptions, type WebListeners } from './web.ts';

/** pino's levels: anything else makes pino throw "default level:X must be included in custom levels". */
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

interface GatewayCliOptions extends WebCliOptions, ClusterCliOptions {
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
  discardDamagedWal?: boolean;
  protocolVersions: readonly number[];
  transitHold: number | 'off';
}

/**
 * `--transit-hold MS|off` [PLK-12.9]: 0–1000 ms, or off (forward only after the commit). `off`
 * stays a string here: commander stores a parser's `null` as an empty string.
 */
function transitHoldOption(value: string): number | 'off' {
  if (value === 'off') return 'off';
  if (!/^\d+$/.test(value) || Number(value) > MAX_TRANSIT_HOLD_MS)
    throw new InvalidArgumentError(`must be whole milliseconds from 0 to ${MAX_TRANSIT_HOLD_MS}, or off`);
  return Number(value);
}

/** `--protocol-versions 1,2`: versions this build knows, each once [PLK-14.7]. */
function protocolVersionsOption(value: string): readonly number[] {
  try {
    return parseProtocolVersions(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

/** A PEM file an option names: a directory or a device is refused by name, not as Node's bare "EISDIR". */
async function readPem(path: string, option: string): Promise<Buffer> {
  if (!(await stat(path)).isFile()) throw new CliError(`${option} ${path} is not a file`);
  return readFile(path);
}

async function runGateway(opts: GatewayCliOptions): Promise<void> {
  if ((opts.tlsCert === undefined) !== (opts.tlsKey === undefined)) {
    throw new CliError('--tls-cert and --tls-key go together', 2);
  }
  const logger = pino({ level: opts.logLevel, base: { svc: 'plushlink-gateway' } }, pino.destination(2));
  const tls =
    opts.tlsCert && opts.tlsKey
      ? { cert: await readPem(opts.tlsCert, '--tls-cert'), key: await readPem(opts.tlsKey, '--tls-key') }
      : undefined;
  // The gateway's own registry, with the process_* and nodejs_* defaults (docs/OPERATIONS.md).
  const metrics = createGatewayMetrics(undefined, { processMetrics: true });
  // --postgres and --redis: one node of several (docs/SCALING.md); otherwise the embedded gateway.
  const eg = await startGatewayNode(clusterSettings(opts), {
    dataDir: opts.data,
    host: opts.host,
    port: opts.port,
    ...(tls ? { tls } : {}),
    discardDamagedWal: opts.discardDamagedWal === true,
    limits: {
      ...DEFAULT_RATE_LIMITS,
      connectPerSecond: opts.connectRate,
      clipsPerSecond: opts.clipRate,
      clipBurst: opts.clipBurst,
      bytesPerSecond: opts.byteRate,
    },
    gateway: {
      logger,
      metrics,
      tokenWindowMs: opts.tokenWindow,
      connectTimeoutMs: opts.connectTimeout,
      maxPacketBytes: opts.maxPacket,
      undeliveredMaxAgeMs: opts.retentionUndelivered,
      retentionIntervalMs: opts.retentionInterval,
      protocolVersions: opts.protocolVersions,
      transitHoldMs: opts.transitHold === 'off' ? null : opts.transitHold,
    },
  });
  // Before the listening line: whoever reads it may stop the gateway at once.
  let stopping = false;
  const stopped = new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      logger.info({ event: 'gateway.stopping', signal }, 'shutting down');
      resolve();
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
  if (eg.created) {
    logger.info(
      { event: 'datadir.created', dataDir: eg.dataDir, gateway: eg.identity.id },
      `first start: new data directory ${eg.dataDir} with a new gateway identity (if you meant an existing gateway, stop and check --data)`,
    );
  }
  for (const d of eg.check.discardedWal) {
    logger.warn(
      {
        event: 'datadir.wal_discarded',
        wal: d.path,
        keptAs: d.keptAs,
        droppedTransactions: d.droppedTransactions,
      },
      'damaged WAL accepted: committed transactions after the broken frame were dropped',
    );
  }
  let metricsServer: Awaited<ReturnType<typeof serveMetrics>> | undefined;
  let web: WebListeners | undefined;
  try {
    // [PLK-9.2] the parent page and MQTT over WebSocket (docs/WEB.md): the same broker, limits and audit.
    web = await startWebListeners(eg, opts, tls, logger);
    if (opts.metricsPort !== undefined) {
      metricsServer = await serveMetrics(metrics.registry, {
        port: opts.metricsPort,
        host: opts.metricsHost,
        // Ready = the broker is listening (not shutting down) and the store answers a read.
        ready: async () => {
          const broker = stopping ? 'shutting down' : `listening on port ${eg.gateway.address().port}`;
          const t0 = performance.now();
          const id = await eg.store.getMeta(GATEWAY_ID_META);
          const store =
            id === eg.identity.id
              ? `answering (${(performance.now() - t0).toFixed(1)} ms)`
              : `answered with gateway id ${String(id)}, not ${eg.identity.id}`;
          // A cluster node also needs Redis: without it every connect is refused (fail closed).
          let redis: string | undefined;
          let redisOk = true;
          if (eg.sharedState) {
            redis = await eg.sharedState().catch((err: unknown) => {
              redisOk = false;
              return `not answering (${err instanceof Error ? err.message : String(err)})`;
            });
          }
          return {
            ready: !stopping && id === eg.identity.id && redisOk,
            checks: { broker, store, ...(redis !== undefined ? { redis } : {}) },
          };
        },
      });
    }
    const addr = eg.gateway.address();
    const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
    const extra =
      (metricsServer ? ` metrics=http://${opts.metricsHost}:${metricsServer.address.port}/metrics` : '') +
      web.summary;
    // The one line on stdout (scripts and tests read the port from it); logs go to stderr as JSON.
    process.stdout.write(
      `plushlink gateway listening on ${tls ? 'mqtts' : 'mqtt'}://${host}:${addr.port} port=${addr.port} gateway=${eg.identity.id}` +
        // The hold for clips in transit it runs with [PLK-12.9] (what figures measured on it depend on).
        ` transit-hold=${eg.gateway.transitHoldMs === null ? 'off' : `${eg.gateway.transitHoldMs}ms`}` +
        ` identity=${join(eg.keyDir, 'identity.json')}${eg.created ? ' (new)' : ''}${extra}\n`,
    );
  } catch (err) {
    await web?.close();
    await eg.close();
    throw err;
  }
  logger.info(
    { event: 'gateway.protocol_versions', versions: opts.protocolVersions },
    `accepting clip protocol versions ${opts.protocolVersions.join(',')}`,
  );
  await eg.audit.append({
    at: Date.now(),
    kind: 'gateway.started',
    detail: { tls: !!tls, protocolVersions: opts.protocolVersions.join(',') },
  });

  await stopped;
  await web.close();
  await metricsServer?.close();
  await eg.audit.append({ at: Date.now(), kind: 'gateway.stopped' });
  await eg.close();
  logger.flush();
  process.exit(0);
}

export function registerGatewayCommands(program: Command): void {
  const cmd = program
    .command('gateway')
    .description(
      'run the authenticated MQTT gateway (Aedes) on a data directory. A new or empty directory is a first start (new gateway key); ' +
        'an existing one is checked first — store missing or empty beside a gateway key, key not matching the database, ' +
        'PRAGMA quick_check, damaged WAL — and refused with one line (restore it with plushlink restore)',
    )
    .option('--host <addr>', 'listen address', '127.0.0.1')
    .option('--port <n>', 'listen port (0 picks a free one)', intOption('--port', 0, 65535), 1883)
    .option(
      '--data <dir>',
      'data directory (gateway.db, audit.db, gateway/ key); checked on every start. A directory that does not exist (or is empty) is a first start: it is created with a NEW gateway identity, and the listening line says "(new)" — admin commands, by contrast, refuse a missing --data unless --create',
      './data',
    )
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
      DEFAULT_RATE_LIMITS.connectPerSecond,
    )
    .option(
      '--clip-rate <n>',
      'clips per second per endpoint (sustained)',
      numberOption('--clip-rate', 0.001, 1e6),
      DEFAULT_RATE_LIMITS.clipsPerSecond,
    )
    .option(
      '--clip-burst <n>',
      'clips per endpoint in a burst',
      numberOption('--clip-burst', 1, 1e7),
      DEFAULT_RATE_LIMITS.clipBurst,
    )
    .option(
      '--byte-rate <n>',
      'envelope bytes per second per endpoint',
      numberOption('--byte-rate', 1024, 1e10),
      DEFAULT_RATE_LIMITS.bytesPerSecond,
    )
    .option(
      '--protocol-versions <list>',
      `clip protocol versions to accept, comma-separated (known: ${[...CLIP_VERSIONS.values()]
        .map((m) => `${m.version} ${m.name}${m.status === 'experimental' ? ', experimental' : ''}`)
        .join('; ')}); a clip of any other version is refused (reason "version", audited)`,
      protocolVersionsOption,
      DEFAULT_PROTOCOL_VERSIONS,
    )
    .option(
      '--transit-hold <ms|off>',
      'forward a clip to connected recipients before its commit and hold the commit up to this long for their receipts: a clip receipted in time is never written to disk; its PUBACK waits that long plus up to 20 ms for a shared commit (0-1000; 0: forward first, commit at once; off: forward after the commit; only the embedded store does this, a --postgres node always forwards after the commit) [PLK-12.9]',
      transitHoldOption,
      DEFAULT_TRANSIT_HOLD_MS,
    )
    .addOption(new Option('--log-level <level>', 'pino log level').choices(LOG_LEVELS).default('info'))
    .option(
      '--discard-damaged-wal',
      'start although gateway.db-wal or audit.db-wal is damaged, accepting that SQLite drops the committed transactions after the broken frame (the log is copied to FILE.damaged-TIME first)',
    );
  addRedisOptions(addClusterOptions(cmd));
  addWebOptions(cmd).action(action(async (opts: GatewayCliOptions) => runGateway(opts)));
}
