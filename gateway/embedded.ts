// A gateway on a data directory: identity, SQLite store, audit log, rate limits and listener — one setup for the CLI, demo, load test and tests.
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
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
import { createGateway, type Gateway, type GatewayOptions, type GatewayRateLimiters } from './gateway.ts';
import { MemoryNonceStore, MemoryRateLimiter } from './limits.ts';
import { openSqliteStore, type SqliteStore, STORE_FILE } from './store/sqlite.ts';
import { openWorkerSqliteStore, type WorkerSqliteStore } from './store/sqlite-worker.ts';

/** The gateway's own key directory inside a data directory: endpoint.key (0600) and identity.json. */
export const GATEWAY_KEY_DIR = 'gateway';

export function gatewayDataPaths(dataDir: string): { keyDir: string; identityFile: string } {
  return {
    keyDir: join(dataDir, GATEWAY_KEY_DIR),
    identityFile: join(dataDir, GATEWAY_KEY_DIR, 'identity.json'),
  };
}

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
  /** `worker`: the SQLite writer runs in a worker thread (see docs/LOADTEST.md). */
  readonly storeKind?: 'sqlite' | 'worker';
  /** Any other gateway option (logger, metrics, token window, retention, ...). */
  readonly gateway?: Partial<Omit<GatewayOptions, 'identity' | 'store' | 'audit' | 'nonces' | 'limiters'>>;
}

/** Opens (or creates) a gateway data directory and starts a gateway on it. */
export async function startEmbeddedGateway(opts: EmbeddedGatewayOptions): Promise<EmbeddedGateway> {
  const dataDir = resolve(opts.dataDir);
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const created = !existsSync(join(dataDir, STORE_FILE));
  const { identity, dir: keyDir } = await loadOrCreateGatewayIdentity(dataDir);
  const store = opts.storeKind === 'worker' ? openWorkerSqliteStore(dataDir) : openSqliteStore(dataDir);
  let audit: SqliteAuditLog;
  try {
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
    nonces: new MemoryNonceStore(opts.nonceCapacity ?? 200_000),
    limiters: createRateLimiters(opts.limits ?? DEFAULT_RATE_LIMITS),
    host,
    port: opts.port ?? 0,
    ...(opts.tls ? { tls: opts.tls } : {}),
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
    async close() {
      if (closed) return;
      closed = true;
      await gateway.close();
      await audit.close();
      await store.close();
    },
  };
}
