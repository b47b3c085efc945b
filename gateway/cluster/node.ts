// One gateway node of several: PostgreSQL store and audit log, Redis nonces and rate limits, Aedes' own Redis pub/sub and persistence, and the gateway identity every node shares [PLK-12].
import { existsSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import aedesPersistenceRedis from 'aedes-persistence-redis';
import { Redis } from 'ioredis';
import MQEmitterRedis from 'mqemitter-redis';
import { readPrivateKey } from '../../platform/keyfiles.ts';
import { toHex } from '../../shared/bytes.ts';
import { type PrivateIdentity, type PublicIdentity, publicPart } from '../../shared/identity.ts';
import { LIMITS } from '../../shared/limits.ts';
import { systemRandom } from '../../shared/random.ts';
import { gatewayAuditKeys } from '../audit.ts';
import { openPostgresAuditLog, type PostgresAuditLog } from '../audit-postgres.ts';
import { DataDirError, GATEWAY_ID_META, gatewayDataPaths } from '../datadir.ts';
import { DEFAULT_RATE_LIMITS, loadOrCreateGatewayIdentity, type RateLimitSettings } from '../embedded.ts';
import { createGateway, type Gateway, type GatewayOptions, type GatewayRateLimiters } from '../gateway.ts';
import type { ClusterBroker } from '../interfaces.ts';
import { openPostgresStore, type PostgresStore } from '../store/postgres.ts';
import { ensurePrivateDir } from '../store/sqlite.ts';
import { connectRedis, RedisNonceStore, RedisRateLimiter, redactUrl } from './redis.ts';

/** [PLK-9.2] The limits of embedded.ts (same units, same capacities), as buckets every node shares. */
export function redisRateLimiters(redis: Redis, s: RateLimitSettings, prefix = 'plk'): GatewayRateLimiters {
  return {
    connect: new RedisRateLimiter(redis, {
      name: 'connect',
      prefix,
      capacity: Math.max(1, s.connectPerSecond * 2),
      refillPerSecond: s.connectPerSecond,
    }),
    clips: new RedisRateLimiter(redis, {
      name: 'clips',
      prefix,
      capacity: s.clipBurst,
      refillPerSecond: s.clipsPerSecond,
    }),
    bytes: new RedisRateLimiter(redis, {
      name: 'bytes',
      prefix,
      capacity: Math.max(s.bytesPerSecond, LIMITS.maxEnvelopeBytes) * 2,
      refillPerSecond: s.bytesPerSecond,
    }),
    receipts: new RedisRateLimiter(redis, {
      name: 'receipts',
      prefix,
      capacity: s.receiptBurst,
      refillPerSecond: s.receiptsPerSecond,
    }),
  };
}

/**
 * The gateway identity of a cluster: every node holds the same key (DATA/gateway, copied from the
 * first node), and PostgreSQL records whose it is (meta `gateway_id`). A node with a key of another
 * gateway is refused; so is a node without a key once the store belongs to a gateway (copy the
 * key: a node never invents a second identity). Only a first start on an empty store creates one —
 * and if another node won that race, the key made here is removed and the start refused.
 */
export async function clusterIdentity(
  dataDir: string,
  store: PostgresStore,
): Promise<{ identity: PrivateIdentity; created: boolean; keyDir: string }> {
  const { keyDir } = gatewayDataPaths(dataDir);
  const recorded = await store.getMeta(GATEWAY_ID_META);
  const hasKey = existsSync(join(keyDir, 'endpoint.key'));
  if (!hasKey && recorded !== undefined) {
    throw new DataDirError(
      'DATADIR_IDENTITY_LOST',
      `${keyDir} holds no gateway key, but the PostgreSQL store belongs to gateway ${recorded}`,
      "copy that gateway's key directory (DATA/gateway of the first node, or of a backup) here: every node of a cluster is the same gateway",
    );
  }
  const { identity, created } = hasKey
    ? { identity: await readPrivateKey(keyDir), created: false }
    : await loadOrCreateGatewayIdentity(dataDir);
  if (identity.role !== 'gateway') {
    throw new DataDirError('DATADIR_IDENTITY_MISMATCH', `${keyDir}/endpoint.key is a ${identity.role} key`);
  }
  const owner = await store.claimMeta(GATEWAY_ID_META, identity.id);
  if (owner !== identity.id) {
    if (created) rmSync(keyDir, { recursive: true, force: true });
    throw new DataDirError(
      'DATADIR_IDENTITY_MISMATCH',
      `${keyDir} is gateway ${identity.id}'s key, but the PostgreSQL store belongs to gateway ${owner}`,
      "use that gateway's key directory on every node",
    );
  }
  return { identity, created, keyDir };
}

export interface ClusterGatewayOptions {
  /** Node-local directory: the gateway key (DATA/gateway), this node's audit anchor mirror, firmware/. */
  readonly dataDir: string;
  /** postgres:// URL of the shared store and audit log. */
  readonly postgres: string;
  /** redis:// URL of the shared pub/sub, sessions, nonces and rate limits. */
  readonly redis: string;
  /** PostgreSQL schema of this gateway; default `plushlink`. */
  readonly schema?: string;
  /** Redis key prefix of this gateway; default `plk`. */
  readonly redisPrefix?: string;
  readonly host?: string;
  readonly port?: number;
  readonly tls?: { readonly cert: string | Buffer; readonly key: string | Buffer };
  readonly limits?: RateLimitSettings;
  /** Most unexpired nonces per endpoint; default 64 [PLK-3.5]. */
  readonly noncesPerEndpoint?: number;
  readonly firmwarePollMs?: number;
  /**
   * Aedes' session persistence: `redis` (aedes-persistence-redis, the default) or `memory` (each
   * node its own; PlushLink endpoints use clean sessions only, so nothing of theirs is persisted
   * either way — docs/SCALING.md measures what `redis` costs per connect).
   */
  readonly aedesPersistence?: 'redis' | 'memory';
  /** Connections of this node's store pool; default 8. */
  readonly poolSize?: number;
  readonly gateway?: Partial<
    Omit<GatewayOptions, 'identity' | 'store' | 'audit' | 'nonces' | 'limiters' | 'cluster'>
  >;
}

export interface ClusterGateway {
  readonly gateway: Gateway;
  readonly store: PostgresStore;
  readonly audit: PostgresAuditLog;
  /** The fail-closed connection of nonces and rate limits. */
  readonly redis: Redis;
  readonly identity: PublicIdentity;
  readonly url: string;
  readonly port: number;
  readonly dataDir: string;
  readonly keyDir: string;
  /** A first start: this node created the gateway identity. */
  readonly created: boolean;
  /** This node's Aedes broker id (unique per node and run). */
  readonly brokerId: string;
  close(): Promise<void>;
}

/**
 * Starts one node. Everything shared lives in PostgreSQL (registry, clips, deliveries, sequence
 * numbers, tombstones, audit log: durable, committed before any PUBACK) and Redis (pub/sub, MQTT
 * sessions, nonce cache, rate limits: fast, atomic, fail closed). Refuses to start when either is
 * unreachable.
 */
export async function startClusterGateway(opts: ClusterGatewayOptions): Promise<ClusterGateway> {
  const dataDir = resolve(opts.dataDir);
  const brokerSuffix = toHex(systemRandom(6));
  const store = await openPostgresStore({
    url: opts.postgres,
    ...(opts.schema ? { schema: opts.schema } : {}),
    ...(opts.poolSize ? { poolSize: opts.poolSize } : {}),
    applicationName: `plushlink-gateway-${brokerSuffix}`,
  });
  const cleanup: (() => Promise<unknown> | unknown)[] = [() => store.close()];
  const undo = async () => {
    for (const f of cleanup.reverse()) await Promise.resolve(f()).catch(() => {});
  };
  try {
    // Redis first: a node that cannot reach it must not have claimed or created anything yet.
    const redis = await connectRedis(opts.redis, { name: `plk-${brokerSuffix}` });
    cleanup.push(() => redis.quit());
    // Only now the data directory: a node that cannot reach its engines leaves nothing behind.
    ensurePrivateDir(dataDir);
    const { identity, created, keyDir } = await clusterIdentity(dataDir, store);
    const audit = await openPostgresAuditLog({
      url: opts.postgres,
      ...(opts.schema ? { schema: opts.schema } : {}),
      ...gatewayAuditKeys(identity),
      anchorFile: join(dataDir, 'audit.anchor'),
    });
    cleanup.push(() => audit.close());
    const prefix = opts.redisPrefix ?? 'plk';
    const bus = clusterBus(opts.redis, brokerSuffix, identity, opts.aedesPersistence ?? 'redis');
    cleanup.push(() => bus.disconnect());
    const host = opts.host ?? '127.0.0.1';
    const gateway = createGateway({
      ...opts.gateway,
      identity,
      store,
      audit,
      // [PLK-3.5] atomic in Redis across nodes, durable in PostgreSQL before the CONNACK.
      nonces: new RedisNonceStore(redis, {
        prefix,
        ledger: store,
        ...(opts.noncesPerEndpoint !== undefined ? { perEndpoint: opts.noncesPerEndpoint } : {}),
      }),
      limiters: redisRateLimiters(redis, opts.limits ?? DEFAULT_RATE_LIMITS, prefix),
      host,
      port: opts.port ?? 0,
      ...(opts.tls ? { tls: opts.tls } : {}),
      firmware: { dataDir, ...(opts.firmwarePollMs !== undefined ? { pollMs: opts.firmwarePollMs } : {}) },
      cluster: bus.broker,
    });
    let port: number;
    try {
      port = (await gateway.listen()).port;
    } catch (err) {
      await gateway.close();
      throw err;
    }
    let closed = false;
    return {
      gateway,
      store,
      audit,
      redis,
      identity: publicPart(identity),
      url: `${opts.tls ? 'mqtts' : 'mqtt'}://${host.includes(':') ? `[${host}]` : host}:${port}`,
      port,
      dataDir,
      keyDir,
      created,
      brokerId: bus.broker.brokerId,
      async close() {
        if (closed) return;
        closed = true;
        await bus.farewell();
        await gateway.close();
        await undo();
      },
    };
  } catch (err) {
    await undo();
    throw err;
  }
}

/**
 * Aedes' own cluster parts on Redis: mqemitter-redis as the broker's pub/sub (publishes, client
 * takeovers and inbox deliveries cross nodes) and aedes-persistence-redis as its persistence. Their
 * connections queue commands while Redis is away (Aedes has no way to refuse inside them); what
 * must fail closed does so on the nonce and rate-limit connection, which every connect and every
 * clip crosses first.
 */
function clusterBus(
  url: string,
  suffix: string,
  identity: PrivateIdentity,
  persistenceKind: 'redis' | 'memory',
): { broker: ClusterBroker; farewell(): Promise<void>; disconnect(): Promise<void> } {
  const connect = (role: string): Redis => {
    const r = new Redis(url, { maxRetriesPerRequest: null, connectionName: `plk-${suffix}-${role}` });
    r.on('error', () => {});
    return r;
  };
  const brokerId = `plushlink-${identity.id.slice(0, 8)}-${suffix}`;
  const subConn = connect('sub');
  const pubConn = connect('pub');
  const mq = MQEmitterRedis({ subConn, pubConn, matchEmptyLevels: true });
  // mqemitter-redis re-emits connection errors here; unheard, an 'error' event would end the process.
  (mq as unknown as { state: NodeJS.EventEmitter }).state.on('error', () => {});
  const persistConn = persistenceKind === 'redis' ? connect('persistence') : undefined;
  const persistence = persistConn ? aedesPersistenceRedis({ conn: persistConn }) : undefined;
  const listeners: (() => void)[] = [];
  const timers = new Set<NodeJS.Timeout>();
  const gap = (delays: readonly number[]): void => {
    for (const delay of delays) {
      const t = setTimeout(() => {
        timers.delete(t);
        for (const l of listeners) l();
      }, delay);
      t.unref();
      timers.add(t);
    }
  };
  let ready = false;
  subConn.on('ready', () => {
    if (!ready) {
      ready = true;
      return;
    }
    // Back after an outage: resend backlogs once its subscriptions are restored, and once more a
    // little later, for a clip another node published while this one was still resubscribing.
    gap([250, 2000]);
  });
  // [PLK-12.4] Liveness of the other nodes: a node that crashed after a PUBACK but before its
  // forward left clips pending for recipients connected here, which nothing would send them until
  // they reconnect. A node that stops announcing itself (and did not say goodbye) is such a gap.
  const peers = new Map<string, number>();
  const ALIVE_MS = 1000;
  const LOST_MS = 3500;
  type Packet = { topic: string; payload?: unknown };
  const idOf = (p: Packet): string => String(p.payload ?? '');
  mq.on('$SYS/+/plk-alive', (p: Packet, done: () => void) => {
    const id = idOf(p);
    if (id !== brokerId) peers.set(id, Date.now());
    done();
  });
  // Aedes announces each client it registers: a node serving clients is alive, even before its first beat.
  mq.on('$SYS/+/new/clients', (p: Packet, done: () => void) => {
    const id = p.topic.split('/')[1] ?? '';
    if (id !== brokerId && id !== '') peers.set(id, Date.now());
    done();
  });
  mq.on('$SYS/+/plk-bye', (p: Packet, done: () => void) => {
    peers.delete(idOf(p));
    done();
  });
  // This node's own stalls: a beat that arrives late because this event loop (or the bus) was busy
  // says nothing about the peer. After a tick that came late, every peer gets a fresh start rather
  // than being declared lost — under overload a false alarm would resend every backlog and add load.
  let lastTick = Date.now();
  const alive = setInterval(() => {
    mq.emit({ topic: `$SYS/${brokerId}/plk-alive`, payload: Buffer.from(brokerId) }, () => {});
    const now = Date.now();
    const stalled = now - lastTick > 2 * ALIVE_MS;
    lastTick = now;
    let lost = false;
    for (const [id, at] of peers) {
      if (stalled) peers.set(id, Math.max(at, now - ALIVE_MS));
      else if (now - at > LOST_MS) {
        peers.delete(id);
        lost = true;
      }
    }
    if (lost) gap([0]);
  }, ALIVE_MS);
  alive.unref();
  return {
    broker: {
      brokerId,
      mq,
      // Aedes' in-memory default when absent (its `persistence` option must then be left out).
      persistence,
      onDeliveryGap: (l) => listeners.push(l),
    },
    /** Tells the other nodes this one stops cleanly (no gap to fill); before Aedes closes the bus. */
    farewell() {
      clearInterval(alive);
      if (pubConn.status !== 'ready') return Promise.resolve();
      return new Promise<void>((resolve) => {
        mq.emit({ topic: `$SYS/${brokerId}/plk-bye`, payload: Buffer.from(brokerId) }, () => resolve());
      });
    },
    /** Drops whatever connection Aedes has not closed. */
    async disconnect() {
      clearInterval(alive);
      for (const t of timers) clearTimeout(t);
      subConn.disconnect();
      pubConn.disconnect();
      persistConn?.disconnect();
    },
  };
}

export { redactUrl };
