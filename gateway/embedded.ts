// A gateway on a data directory: identity, SQLite store, audit log, rate limits and listener — one setup for the CLI, demo, load test and tests.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { readIdentity, readPrivateKey, writeKeyDir } from '../platform/keyfiles.ts';
import { PlushlinkError } from '../shared/errors.ts';
import {
  generateIdentity,
  type PrivateIdentity,
  type PublicIdentity,
  publicPart,
} from '../shared/identity.ts';
import { LIMITS } from '../shared/limits.ts';
import { gatewayAuditKeys, openSqliteAuditLog, type SqliteAuditLog } from './audit.ts';
import { checkDataDir, type DataDirCheck, GATEWAY_ID_META, gatewayDataPaths } from './datadir.ts';
import { createGateway, type Gateway, type GatewayOptions, type GatewayRateLimiters } from './gateway.ts';
import { MemoryNonceStore, MemoryRateLimiter } from './limits.ts';
import { ensurePrivateDir, openSqliteStore, type SqliteStore } from './store/sqlite.ts';
import { openWorkerSqliteStore, type WorkerSqliteStore } from './store/sqlite-worker.ts';

export { DataDirError, GATEWAY_KEY_DIR, gatewayDataPaths } from './datadir.ts';

/** Loads DATA/gateway/endpoint.key, or creates the gateway identity there on first start. */
export async function loadOrCreateGatewayIdentity(
  dataDir: string,
): Promise<{ identity: PrivateIdentity; created: boolean; dir: string }> {
  const dir = gatewayDataPaths(dataDir).keyDir;
  if (existsSync(join(dir, 'endpoint.key'))) {
    const identity = await readPrivateKey(dir);
    if (identity.role !== 'gateway') {
      throw new PlushlinkError(
        'PLK_E_KEY_FILE',
        `${dir}/endpoint.key is a ${identity.role} key, not a gateway key`,
      );
    }
    return { identity, created: false, dir };
  }
  const identity = generateIdentity('gateway');
  await writeKeyDir(dir, identity);
  return { identity, created: true, dir };
}

/** Reads a gateway's public identity from its data directory (what endpoints pin). */
export function readGatewayIdentity(dataDir: string): Promise<PublicIdentity> {
  return readIdentity(gatewayDataPaths(dataDir).identityFile);
}

/** Rate limits in their user-facing units [PLK-9.2]. */
export interface RateLimitSettings {
  /** New connections per second per source address (burst: twice that). */
  readonly connectPerSecond: number;
  /** Sustained clips per second per endpoint, and the burst allowed. */
  readonly clipsPerSecond: number;
  readonly clipBurst: number;
  /** Sustained envelope bytes per second per endpoint (burst: twice that, at least two maximal envelopes). */
  readonly bytesPerSecond: number;
  /** Receipts per second per endpoint, and the burst (a parent back online receipts its backlog at once). */
  readonly receiptsPerSecond: number;
  readonly receiptBurst: number;
}

/** Production defaults of `plushlink gateway` (docs/ARCHITECTURE.md, "Default limits"). */
export const DEFAULT_RATE_LIMITS: RateLimitSettings = {
  connectPerSecond: 50,
  clipsPerSecond: 5,
  clipBurst: 100,
  bytesPerSecond: 1_000_000,
  receiptsPerSecond: 100,
  receiptBurst: 2000,
};

/** A simulated fleet on one machine: every endpoint connects from 127.0.0.1. */
export const LOOPBACK_FLEET_RATE_LIMITS: RateLimitSettings = {
  ...DEFAULT_RATE_LIMITS,
  connectPerSecond: 10_000,
};

/** Load tests measure capacity, not the limiter: limits far above any offered load. */
export const UNLIMITED_RATE_LIMITS: RateLimitSettings = {
  connectPerSecond: 1_000_000,
  clipsPerSecond: 10_000,
  clipBurst: 10_000,
  bytesPerSecond: 1e9,
  receiptsPerSecond: 10_000,
  receiptBurst: 10_000,
};

export function createRateLimiters(s: RateLimitSettings, maxKeys = 200_000): GatewayRateLimiters {
  return {
    connect: new MemoryRateLimiter({
      capacity: Math.max(1, s.connectPerSecond * 2),
      refillPerSecond: s.connectPerSecond,
      maxKeys,
    }),
    clips: new MemoryRateLimiter({ capacity: s.clipBurst, refillPerSecond: s.clipsPerSecond, maxKeys }),
    bytes: new MemoryRateLimiter({
      capacity: Math.max(s.bytesPerSecond, LIMITS.maxEnvelopeBytes) * 2,
      refillPerSecond: s.bytesPerSecond,
      maxKeys,
    }),
    receipts: new MemoryRateLimiter({
      capacity: s.receiptBurst,
      refillPerSecond: s.receiptsPerSecond,
      maxKeys,
    }),
  };
}

export interface EmbeddedGateway {
  readonly gateway: Gateway;
  readonly store: SqliteStore | WorkerSqliteStore;
  readonly audit: SqliteAuditLog;
  /** The gateway's public identity (what endpoints pin). */
  readonly identity: PublicIdentity;
  readonly url: string;
  readonly port: number;
  readonly dataDir: string;
  readonly keyDir: string;
  /** True when the data directory had no store yet. */
  readonly created: boolean;
  /** What the start-up check of the data directory found (quick_check time, WAL state, discarded logs). */
  readonly check: DataDirCheck;
  /** Closes the listener, then the audit log and the store. */
  close(): Promise<void>;
}

export interface EmbeddedGatewayOptions {
  readonly dataDir: string;
  readonly host?: string;
  /** 0 (default) picks a free port. */
  readonly port?: number;
  /** Serve MQTT over TLS with this certificate and key (PEM); endpoints pin the certificate. */
  readonly tls?: { readonly cert: string | Buffer; readonly key: string | Buffer };
  readonly limits?: RateLimitSettings;
  /** Replay-cache capacity (connect-token nonces); full → CONNACK 3. */
  readonly nonceCapacity?: number;
  /** Most unexpired nonces (connects within the token window) per endpoint; default 64 [PLK-3.5]. */
  readonly noncesPerEndpoint?: number;
  /** `worker`: the SQLite writer runs in a worker thread (see docs/LOADTEST.md). */
  readonly storeKind?: 'sqlite' | 'worker';
  /** [PLK-13.6] How often DATA/firmware is scanned for new firmware releases; default 5 s. */
  readonly firmwarePollMs?: number;
  /**
   * Start although a WAL is damaged, accepting that SQLite drops the committed transactions after
   * the broken frame (a copy of the log is kept beside it). Default false: refuse (DataDirError).
   */
  readonly discardDamagedWal?: boolean;
  /** Any other gateway option (logger, metrics, token window, retention, ...). */
  readonly gateway?: Partial<Omit<GatewayOptions, 'identity' | 'store' | 'audit' | 'nonces' | 'limiters'>>;
}

/**
 * Opens (or creates) a gateway data directory and starts a gateway on it. An existing directory is
 * checked first (`checkDataDir`): a missing or empty store beside a gateway key, a damaged WAL, a
 * failing PRAGMA quick_check, or a key that is not the one the database belongs to is refused with
 * a DataDirError (one line) before anything is opened. A new or empty directory is a first start.
 */
export async function startEmbeddedGateway(opts: EmbeddedGatewayOptions): Promise<EmbeddedGateway> {
  const dataDir = resolve(opts.dataDir);
  const check = await checkDataDir(dataDir, {
    purpose: 'gateway',
    discardDamagedWal: opts.discardDamagedWal === true,
  });
  ensurePrivateDir(dataDir);
  const created = check.fresh;
  // The store before a new key: a start interrupted in between leaves a store without a key and
  // without a recorded id (started again as a first start), never a key beside a missing store.
  const store = opts.storeKind === 'worker' ? openWorkerSqliteStore(dataDir) : openSqliteStore(dataDir);
  let identity: PrivateIdentity;
  let keyDir: string;
  let audit: SqliteAuditLog;
  try {
    if (check.gatewayKey) {
      identity = check.gatewayKey;
      keyDir = gatewayDataPaths(dataDir).keyDir;
    } else ({ identity, dir: keyDir } = await loadOrCreateGatewayIdentity(dataDir));
    // Written at the first start (and at the first start of data older than the record).
    if (check.storedGatewayId === undefined) await store.setMeta(GATEWAY_ID_META, identity.id);
    audit = openSqliteAuditLog(dataDir, gatewayAuditKeys(identity));
  } catch (err) {
    await store.close();
    throw err;
  }
  const host = opts.host ?? '127.0.0.1';
  const gateway = createGateway({
    ...opts.gateway,
    identity,
    store,
    audit,
    // [PLK-3.5] durable nonces: a token captured before a restart stays refused after it.
    nonces: await MemoryNonceStore.open(opts.nonceCapacity ?? 200_000, {
      persist: store,
      now: (opts.gateway?.clock ?? Date.now)(),
      ...(opts.noncesPerEndpoint !== undefined ? { perEndpoint: opts.noncesPerEndpoint } : {}),
    }),
    limiters: createRateLimiters(opts.limits ?? DEFAULT_RATE_LIMITS),
    host,
    port: opts.port ?? 0,
    ...(opts.tls ? { tls: opts.tls } : {}),
    firmware: { dataDir, ...(opts.firmwarePollMs !== undefined ? { pollMs: opts.firmwarePollMs } : {}) },
  });
  let port: number;
  try {
    port = (await gateway.listen()).port;
  } catch (err) {
    await gateway.close();
    await audit.close();
    await store.close();
    throw err;
  }
  let closed = false;
  return {
    gateway,
    store,
    audit,
    identity: publicPart(identity),
    url: `${opts.tls ? 'mqtts' : 'mqtt'}://${host.includes(':') ? `[${host}]` : host}:${port}`,
    port,
    dataDir,
    keyDir,
    created,
    check,
    async close() {
      if (closed) return;
      closed = true;
      await gateway.close();
      await audit.close();
      await store.close();
    },
  };
}
