// `plushlink gateway --postgres URL --redis URL`: the gateway as one node of several on shared PostgreSQL and Redis (gateway/cluster/node.ts); without them, the embedded gateway.
import { performance } from 'node:perf_hooks';
import { type Command, Option } from 'commander';
import { startClusterGateway } from '../../gateway/cluster/node.ts';
import type { DataDirCheck } from '../../gateway/datadir.ts';
import {
  type EmbeddedGateway,
  type EmbeddedGatewayOptions,
  startEmbeddedGateway,
} from '../../gateway/embedded.ts';
import type { AuditLog, GatewayStore } from '../../gateway/interfaces.ts';
import { CliError } from '../cli-util.ts';

export interface ClusterCliOptions {
  postgres?: string;
  redis?: string;
  pgSchema?: string;
  aedesPersistence?: 'redis' | 'memory';
}

export interface ClusterSettings {
  readonly postgres: string;
  readonly redis: string;
  readonly schema: string;
  readonly aedesPersistence: 'redis' | 'memory';
}

/** What `plushlink gateway` runs, embedded or as a cluster node. */
export type GatewayNode = Pick<
  EmbeddedGateway,
  'gateway' | 'identity' | 'dataDir' | 'keyDir' | 'created' | 'close' | 'url' | 'port'
> & {
  readonly store: GatewayStore;
  readonly audit: AuditLog;
  readonly check: Pick<DataDirCheck, 'discardedWal'>;
  /** A cluster node: whether the shared Redis answers (for /readyz; a node without it refuses every connect). */
  readonly sharedState?: () => Promise<string>;
};

const SCHEMA_RE = /^[a-z_][a-z0-9_]{0,62}$/;

/** The shared-state options of `plushlink gateway` and of every admin command. */
export function addClusterOptions(cmd: Command, what = 'run as one node of several'): Command {
  return cmd
    .option(
      '--postgres <url>',
      `PostgreSQL (postgres://user@host:port/db) for the registry, clips, deliveries, sequence numbers and audit log: ${what} (with --redis for a gateway)`,
    )
    .option('--pg-schema <name>', 'PostgreSQL schema of this gateway', 'plushlink');
}

/** `plushlink gateway` only: Redis and Aedes' persistence kind. */
export function addRedisOptions(cmd: Command): Command {
  return cmd
    .option(
      '--redis <url>',
      'Redis (redis://host:port) for MQTT pub/sub and sessions across nodes, connect nonces and rate limits (with --postgres)',
    )
    .addOption(
      new Option('--aedes-persistence <kind>', "Aedes' session persistence of a cluster node")
        .choices(['redis', 'memory'])
        .default('redis'),
    );
}

/** Checks the pair: both or neither (exit 2 otherwise). */
export function clusterSettings(opts: ClusterCliOptions): ClusterSettings | undefined {
  if (opts.postgres === undefined && opts.redis === undefined) return undefined;
  if (opts.postgres === undefined || opts.redis === undefined)
    throw new CliError('--postgres and --redis go together: a cluster node needs both', 2);
  const schema = opts.pgSchema ?? 'plushlink';
  if (!SCHEMA_RE.test(schema))
    throw new CliError(`--pg-schema ${schema}: lowercase letters, digits and _`, 2);
  if (!/^postgres(ql)?:\/\//.test(opts.postgres))
    throw new CliError('--postgres must be a postgres:// URL', 2);
  if (!/^rediss?:\/\//.test(opts.redis)) throw new CliError('--redis must be a redis:// URL', 2);
  for (const [flag, value] of [
    ['--postgres', opts.postgres],
    ['--redis', opts.redis],
  ] as const) {
    // A scheme alone is not a URL: a bad port or host is refused here, naming the flag.
    if (!URL.canParse(value)) throw new CliError(`${flag}: not a valid URL (host, port)`, 2);
  }
  return {
    postgres: opts.postgres,
    redis: opts.redis,
    schema,
    aedesPersistence: opts.aedesPersistence ?? 'redis',
  };
}

/** Starts the embedded gateway, or a cluster node when `cluster` is set (the data directory then holds only the key). */
export async function startGatewayNode(
  cluster: ClusterSettings | undefined,
  o: EmbeddedGatewayOptions,
): Promise<GatewayNode> {
  if (!cluster) return startEmbeddedGateway(o);
  const node = await startClusterGateway({
    dataDir: o.dataDir,
    postgres: cluster.postgres,
    redis: cluster.redis,
    schema: cluster.schema,
    aedesPersistence: cluster.aedesPersistence,
    ...(o.host !== undefined ? { host: o.host } : {}),
    ...(o.port !== undefined ? { port: o.port } : {}),
    ...(o.tls ? { tls: o.tls } : {}),
    ...(o.limits ? { limits: o.limits } : {}),
    ...(o.noncesPerEndpoint !== undefined ? { noncesPerEndpoint: o.noncesPerEndpoint } : {}),
    ...(o.firmwarePollMs !== undefined ? { firmwarePollMs: o.firmwarePollMs } : {}),
    ...(o.gateway ? { gateway: o.gateway } : {}),
  });
  return {
    ...node,
    check: { discardedWal: [] },
    sharedState: async () => {
      const t0 = performance.now();
      const pong = await node.redis.ping();
      if (pong !== 'PONG') throw new Error(`redis answered ${pong}`);
      return `answering (${(performance.now() - t0).toFixed(1)} ms)`;
    },
  };
}
