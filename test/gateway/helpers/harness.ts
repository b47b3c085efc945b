// Test harness for the gateway: real Aedes on 127.0.0.1:0, real SQLite store in a temp dir, a controllable clock, raw MQTT helpers.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { expect } from 'vitest';
import { connectEndpoint, type EndpointConnection } from '../../../device/transport/mqtt-connect.ts';
import { gatewayAuditKeys, openSqliteAuditLog } from '../../../gateway/audit.ts';
import { createGateway, type Gateway, type GatewayOptions } from '../../../gateway/gateway.ts';
import type {
  AuditEvent,
  AuditLog,
  AuditVerifyResult,
  FamilyId,
  GatewayStore,
  RateLimiter,
} from '../../../gateway/interfaces.ts';
import { MemoryNonceStore, MemoryRateLimiter } from '../../../gateway/limits.ts';
import { createGatewayMetrics, type GatewayMetrics } from '../../../gateway/metrics.ts';
import { openSqliteStore } from '../../../gateway/store/sqlite.ts';
import { toBase32 } from '../../../shared/bytes.ts';
import { sealClip } from '../../../shared/envelope.ts';
import {
  generateIdentity,
  type PrivateIdentity,
  type PublicIdentity,
  publicPart,
} from '../../../shared/identity.ts';
import { systemRandom } from '../../../shared/random.ts';

/** The real SQLite audit log, with a record of what was appended so tests can assert reasons. */
export class RecordingAudit implements AuditLog {
  readonly events: AuditEvent[] = [];
  constructor(private readonly inner: AuditLog) {}
  async append(event: AuditEvent): Promise<void> {
    await this.inner.append(event);
    this.events.push(event);
  }
  verify(): Promise<AuditVerifyResult> {
    return this.inner.verify();
  }
  close(): Promise<void> {
    return this.inner.close();
  }
  reasons(kind: string): string[] {
    return this.events.filter((e) => e.kind === kind).map((e) => String(e.detail?.reason));
  }
}

/** Real token buckets that never refill: `capacity` takes per key (deterministic without a clock). */
export function fixedLimiter(capacity = 1e12): RateLimiter {
  return new MemoryRateLimiter({ capacity, refillPerSecond: 0 });
}

export interface Family {
  readonly id: FamilyId;
  readonly toy: PrivateIdentity;
  readonly mum: PrivateIdentity;
  readonly dad: PrivateIdentity;
}

export interface Harness {
  readonly dir: string;
  readonly gatewayIdentity: PrivateIdentity;
  readonly gatewayPublic: PublicIdentity;
  gw: Gateway;
  store: GatewayStore;
  readonly audit: RecordingAudit;
  readonly metrics: GatewayMetrics;
  readonly clock: { now: number };
  readonly url: () => string;
  readonly port: () => number;
  family(): Promise<Family>;
  register(identity: PrivateIdentity): Promise<void>;
  connect(identity: PrivateIdentity): Promise<EndpointConnection>;
  /** Closes the gateway and store and opens both again on the same directory. */
  restart(): Promise<void>;
  close(): Promise<void>;
}

/** Registers `who` (its public keys, its role) at `at`, and makes it a member of `family` if given. */
export async function registerEndpoint(
  store: GatewayStore,
  who: PrivateIdentity,
  at: number,
  family?: FamilyId,
): Promise<void> {
  await store.addEndpoint({
    id: who.id,
    role: who.role === 'toy' ? 'toy' : 'parent',
    signPublicKey: who.signPublicKey,
    boxPublicKey: who.boxPublicKey,
    createdAt: at,
  });
  if (family) await store.addFamilyMember(family, who.id, at);
}

export type HarnessOptions = Partial<Omit<GatewayOptions, 'identity' | 'store' | 'audit'>>;

let seq = 0;

/**
 * `wrapStore`: wraps the real SQLite store the gateway gets (and `h.store` is), e.g. to count its
 * reads or make one of them fail; applied again after `restart`.
 */
export async function startHarness(
  options: HarnessOptions = {},
  wrapStore: (store: GatewayStore) => GatewayStore = (store) => store,
): Promise<Harness> {
  const dir = await mkdtemp(join(tmpdir(), 'plk-gw-'));
  const gatewayIdentity = generateIdentity('gateway');
  const audit = new RecordingAudit(openSqliteAuditLog(join(dir, 'audit'), gatewayAuditKeys(gatewayIdentity)));
  const clock = { now: Date.now() };
  const metrics = options.metrics ?? createGatewayMetrics();
  const conns: EndpointConnection[] = [];

  const make = (store: GatewayStore): Gateway =>
    createGateway({
      identity: gatewayIdentity,
      store,
      audit,
      nonces: new MemoryNonceStore(10_000),
      limiters: {
        connect: fixedLimiter(),
        clips: fixedLimiter(),
        bytes: fixedLimiter(),
      },
      clock: () => clock.now,
      port: 0,
      retentionIntervalMs: 0,
      metrics,
      ...options,
    });

  const h: Harness = {
    dir,
    gatewayIdentity,
    gatewayPublic: publicPart(gatewayIdentity),
    store: wrapStore(openSqliteStore(join(dir, 'store'))),
    gw: undefined as unknown as Gateway,
    audit,
    metrics,
    clock,
    url: () => `mqtt://127.0.0.1:${h.gw.address().port}`,
    port: () => h.gw.address().port,
    async register(identity) {
      await registerEndpoint(h.store, identity, clock.now);
    },
    async family() {
      const id = `f${toBase32(systemRandom(16))}` as FamilyId;
      await h.store.createFamily(id, clock.now);
      const toy = generateIdentity('toy');
      const mum = generateIdentity('parent');
      const dad = generateIdentity('parent');
      for (const e of [toy, mum, dad]) {
        await h.register(e);
        await h.store.addFamilyMember(id, e.id, 1);
      }
      return { id, toy, mum, dad };
    },
    async connect(identity) {
      const c = await connectEndpoint({
        url: h.url(),
        identity,
        gateway: h.gatewayPublic,
        clock: () => clock.now,
      });
      conns.push(c);
      return c;
    },
    async restart() {
      await h.gw.close();
      await h.store.close();
      h.store = wrapStore(openSqliteStore(join(dir, 'store')));
      h.gw = make(h.store);
      await h.gw.listen();
    },
    async close() {
      for (const c of conns) c.client.end(true);
      await h.gw.close();
      await h.store.close();
      expect(await audit.verify()).toMatchObject({ ok: true });
      await audit.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
  h.gw = make(h.store);
  await h.gw.listen();
  seq = 0;
  return h;
}

/** A sealed clip from `sender` to `recipients` with the next sequence number. */
export function makeClip(
  sender: PrivateIdentity,
  recipients: readonly PublicIdentity[],
  opts: { sequence?: number; now?: number; oggBytes?: number } = {},
): Uint8Array {
  seq++;
  return sealClip({
    sender,
    recipients,
    sequence: opts.sequence ?? seq,
    createdAt: opts.now ?? Date.now(),
    durationMs: 1000,
    ogg: systemRandom(opts.oggBytes ?? 2000),
  });
}

export type RawResult =
  | { ok: true; client: MqttClient }
  | { ok: false; code: number | undefined; error: Error };

/** Connects a plain MQTT.js client with arbitrary credentials; resolves with CONNACK success or the refusal code. */
export function rawConnect(port: number, opts: IClientOptions): Promise<RawResult> {
  return new Promise((resolve) => {
    const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, {
      protocolVersion: 4,
      reconnectPeriod: 0,
      connectTimeout: 3000,
      clean: true,
      ...opts,
    });
    client.once('connect', () => resolve({ ok: true, client }));
    client.once('error', (err: Error & { code?: unknown }) => {
      client.end(true);
      resolve({ ok: false, code: typeof err.code === 'number' ? err.code : undefined, error: err });
    });
    client.once('close', () => resolve({ ok: false, code: undefined, error: new Error('closed') }));
  });
}

/** Resolves when the client's connection closes (or rejects after `ms`). */
export function closed(client: MqttClient, ms = 3000): Promise<void> {
  return new Promise((resolve, reject) => {
    if (!client.connected) {
      resolve();
      return;
    }
    const t = setTimeout(() => reject(new Error('connection was not closed')), ms);
    client.once('close', () => {
      clearTimeout(t);
      resolve();
    });
  });
}

/** Collects inbox messages of a connection. */
export function inbox(conn: EndpointConnection): {
  clips: Uint8Array[];
  receipts: Uint8Array[];
  wait(n: number, kind?: 'clip' | 'receipt', ms?: number): Promise<void>;
} {
  const box = {
    clips: [] as Uint8Array[],
    receipts: [] as Uint8Array[],
    async wait(n: number, kind: 'clip' | 'receipt' = 'clip', ms = 5000) {
      const list = kind === 'clip' ? box.clips : box.receipts;
      const t0 = Date.now();
      while (list.length < n) {
        if (Date.now() - t0 > ms) throw new Error(`expected ${n} ${kind}s, got ${list.length}`);
        await sleep(10);
      }
    },
  };
  conn.onInbox((kind, bytes) => {
    if (kind === 'clip') box.clips.push(bytes);
    else if (kind === 'receipt') box.receipts.push(bytes);
  });
  return box;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
