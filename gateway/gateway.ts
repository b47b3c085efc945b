// The PlushLink gateway: wires Aedes to one handler module per packet kind (connect, subscribe, publish), the store, the audit log and the listener, over TCP or TLS [PLK-12].

import type { EventEmitter } from 'node:events';
import { type AddressInfo, createServer as createTcpServer, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { createServer as createTlsServer } from 'node:tls';
import { Aedes, type Client, type PublishPacket } from 'aedes';
import { type Logger, pino } from 'pino';
import { type CryptoSuite, defaultCrypto } from '../shared/crypto.ts';
import type { PrivateIdentity } from '../shared/identity.ts';
import { LIMITS } from '../shared/limits.ts';
import { DEFAULT_TOKEN_WINDOW_MS } from '../shared/token.ts';
import { inboxTopic } from '../shared/topics.ts';
import type { Clock, EndpointId } from '../shared/types.ts';
import { AuditBudget, type AuditBudgetOptions } from './audit-budget.ts';
import { connectHandlers } from './connect.ts';
import {
  type ConnState,
  type GatewayContext,
  type GatewayRateLimiters,
  SessionTable,
  safeAudit,
} from './context.ts';
import { FirmwareDistributor } from './firmware.ts';
import { Forwarder, inboxPacket } from './forward.ts';
import { acceptedVersions, type IngestContext, RegistryCache } from './ingest.ts';
import type { AuditLog, ClusterBroker, GatewayStore, NonceStore } from './interfaces.ts';
import { createGatewayMetrics, type GatewayMetrics } from './metrics.ts';
import { DEFAULT_CONTROL_BUDGET, limitPackets } from './packet-limit.ts';
import { publishHandlers } from './publish.ts';
import { RegistryWatch } from './registry-watch.ts';
import { runRetention } from './retention.ts';
import { Rosters } from './roster.ts';
import { subscribeHandlers } from './subscribe.ts';
import { DEFAULT_TRANSIT_HOLD_MS, InTransit, MAX_TRANSIT_HOLD_MS } from './transit.ts';

export type { GatewayRateLimiters } from './context.ts';

export const DAY_MS = 86_400_000;

/**
 * Endpoints publish only to their own clip, relay and rcpt topics [PLK-4.2], which the gateway
 * consumes in authorizePublish (stores, forwards through the recipients' own connections) and
 * which nobody may subscribe to [PLK-4.3]. Aedes would still route each one after its PUBACK —
 * a Packet copy, a subscription match in the persistence trie, an mqemitter match and a
 * `publish` event, per clip and per receipt — for no one: an authorized publish by a client
 * therefore ends here. Publishes without a client (Aedes' own $SYS heartbeat) go on as usual.
 */
function consumeEndpointPublishes(broker: Aedes): void {
  // Aedes' typings declare publish(packet, callback); the broker itself calls publish(packet, client, done).
  type Route = (packet: PublishPacket, client: unknown, done?: (err?: Error) => void) => void;
  const target = broker as unknown as { publish: Route };
  const route = target.publish.bind(broker) as Route;
  target.publish = (packet, client, done) => {
    if (typeof client === 'function' || client === null || client === undefined) {
      route(packet, client, done);
      return;
    }
    done?.();
  };
}

/**
 * An error of mqtt-packet's parser (a malformed packet body the socket scanner could not see),
 * as opposed to a timeout, a reset socket or one of our own refusals.
 */
function isParseError(err: Error): boolean {
  return /^(Invalid|Malformed|Cannot parse|Packet too short|Packet must not|Connect flag|Will (Retain|QoS)|Not supported|Unknown property)/.test(
    err.message,
  );
}

export interface GatewayOptions {
  /** The gateway's own identity (role 'gateway'); its id is bound into every connect token [PLK-3.3]. */
  readonly identity: PrivateIdentity;
  readonly store: GatewayStore;
  readonly audit: AuditLog;
  readonly nonces: NonceStore;
  readonly limiters: GatewayRateLimiters;
  /**
   * How long `close` waits for Aedes to close its clients and its pub/sub, ms (default 5000).
   * Seen on a cluster node after a Redis restart: a client's close waiting on a bus command that
   * never completes. Past it, `close` goes on (sockets destroyed; the store still drains).
   */
  readonly closeTimeoutMs?: number;
  readonly clock?: Clock;
  readonly crypto?: CryptoSuite;
  readonly logger?: Logger;
  readonly metrics?: GatewayMetrics;
  /** Listen address; default 127.0.0.1:1883 (port 0 picks a free port). */
  readonly host?: string;
  readonly port?: number;
  /** TLS certificate and key (PEM); plain TCP when absent. */
  readonly tls?: { readonly cert: string | Buffer; readonly key: string | Buffer };
  /** [PLK-3.4] Accepted clock skew for connect tokens; default 60 s. */
  readonly tokenWindowMs?: number;
  /** A connection that sends no CONNECT within this time is closed; default 5 s. */
  readonly connectTimeoutMs?: number;
  /** Largest MQTT packet (remaining length) accepted on a socket; default maxEnvelopeBytes + 1 KiB. */
  readonly maxPacketBytes?: number;
  /** [PLK-12.5] Undelivered clips older than this are deleted; default 7 days. */
  readonly undeliveredMaxAgeMs?: number;
  /** How often retention runs; default 10 minutes (0 disables the timer). */
  readonly retentionIntervalMs?: number;
  /** How long sender and family records are cached for clip checks; default 1000 ms (0 = always read). */
  readonly registryCacheMs?: number;
  /** Backlog clips sent per batch after an inbox subscription; default 500. */
  readonly backlogBatch?: number;
  /**
   * TCP accept queue length; default 4096 (the kernel caps it at net.core.somaxconn). Node's default
   * of 511 overflows when thousands of toys reconnect at once, and every dropped SYN costs its toy
   * a 1 s, then 3 s, 7 s... retransmission timeout.
   */
  readonly listenBacklog?: number;
  /** [PLK-12.7] How often the registry change feed is read; default 250 ms. */
  readonly registryWatchMs?: number;
  /** [PLK-12.8] Audit rows of refusals per source address and in all; defaults in audit-budget.ts. */
  readonly auditBudget?: AuditBudgetOptions;
  /** [PLK-9.2] Control packets per connection (burst, then per second); default 30, then 1/s. */
  readonly controlBudget?: { readonly burst: number; readonly perSecond: number };
  /** [PLK-13.6] Distribute the firmware releases of this data directory (DATA/firmware) to toys; none when absent. */
  readonly firmware?: { readonly dataDir: string; readonly pollMs?: number };
  /** [PLK-14.7] Clip-object protocol versions accepted, e.g. [1, 2]; default [1]. */
  readonly protocolVersions?: readonly number[];
  /**
   * [PLK-12.9] How long a clip forwarded before its commit waits there for its recipients'
   * receipts, ms (0–1000; default 10). `null`: clips are forwarded only after their commit. Only
   * with a store that offers `clipVerdict` (embedded SQLite, memory); otherwise always after.
   */
  readonly transitHoldMs?: number | null;
  /**
   * One node of several (gateway/cluster/node.ts): Aedes' shared pub/sub and persistence, a broker
   * id of this node's own, and delivery to inboxes connected to other nodes through that pub/sub
   * [PLK-12.4]. A single node when absent.
   */
  readonly cluster?: ClusterBroker;
}

export interface Gateway {
  readonly id: EndpointId;
  readonly metrics: GatewayMetrics;
  /**
   * How long a clip in transit waits for its recipients' receipts before its commit [PLK-12.9], in
   * ms; null when clips are forwarded only after their commit (the hold is off, or the store offers
   * no verdict, like the PostgreSQL cluster store).
   */
  readonly transitHoldMs: number | null;
  /** Starts the broker and the listener; resolves with the bound address. */
  listen(): Promise<AddressInfo>;
  /** The bound address (after listen()). */
  address(): AddressInfo;
  /** Runs retention once now; returns the number of expired clips [PLK-12.5]. */
  runRetention(): Promise<number>;
  /**
   * Takes a client connection that did not come through the gateway's own listener (MQTT over
   * WebSocket, gateway/websocket.ts) down exactly the path of a TCP or TLS socket: packet-size
   * scanner, control budget, per-source connect rate (`source` is the peer address), CONNECT
   * timeout, authentication, ACL and audit. Destroyed at once unless the gateway is listening.
   */
  handleStream(stream: Duplex, source: string): void;
  /** Stops accepting, disconnects every client, stops timers. The store and audit log stay open (the caller owns them). */
  close(): Promise<void>;
}

/**
 * Creates a gateway. Nothing listens until `listen()`. Every dependency is injected: store, audit
 * log, nonce store and rate limiters (shared state for a multi-node deployment), clock, crypto,
 * logger and metrics.
 */
export function createGateway(opts: GatewayOptions): Gateway {
  if (opts.identity.role !== 'gateway') throw new TypeError('identity must have role "gateway"');
  const clock = opts.clock ?? Date.now;
  const crypto = opts.crypto ?? defaultCrypto();
  const log = opts.logger ?? pino({ enabled: false });
  const metrics = opts.metrics ?? createGatewayMetrics();
  const identity = opts.identity;
  const tokenWindowMs = opts.tokenWindowMs ?? DEFAULT_TOKEN_WINDOW_MS;
  const connectTimeoutMs = opts.connectTimeoutMs ?? 5_000;
  const maxPacketBytes = opts.maxPacketBytes ?? LIMITS.maxEnvelopeBytes + 1024;
  const undeliveredMaxAgeMs = opts.undeliveredMaxAgeMs ?? 7 * DAY_MS;
  const retentionIntervalMs = opts.retentionIntervalMs ?? 600_000;
  const backlogBatch = opts.backlogBatch ?? 500;
  const listenBacklog = opts.listenBacklog ?? 4096;
  const { store, audit, nonces, limiters } = opts;

  const sources = new WeakMap<Duplex, string>();
  const states = new WeakMap<Client, ConnState>();
  const sessions = new SessionTable();
  let broker: Aedes | undefined;
  let server: Server | undefined;
  let retentionTimer: NodeJS.Timeout | undefined;
  let closing = false;

  const writeAudit = safeAudit(audit, log);
  const auditBudget = new AuditBudget(writeAudit, clock, opts.auditBudget);
  const ingest: IngestContext = {
    store,
    crypto,
    clipLimiter: limiters.clips,
    byteLimiter: limiters.bytes,
    ...(limiters.receipts ? { receiptLimiter: limiters.receipts } : {}),
    maxEnvelopeBytes: LIMITS.maxEnvelopeBytes,
    registry: new RegistryCache(store, opts.registryCacheMs ?? 1000),
    observeStore: (op, seconds) => metrics.storeLatency.observe({ op }, seconds),
    protocolVersions: acceptedVersions(opts.protocolVersions),
  };
  const firmware = opts.firmware
    ? new FirmwareDistributor({ ...opts.firmware, log, audit: writeAudit, clock, crypto })
    : undefined;
  const ctx: GatewayContext = {
    identity,
    store,
    nonces,
    limiters,
    clock,
    crypto,
    log,
    metrics,
    tokenWindowMs,
    ingest,
    states,
    sessions,
    firmware,
    closing: () => closing,
    audit: writeAudit,
    auditRefusal: (event, source) => auditBudget.refusal(event, source),
  };
  const forwarder = new Forwarder(ctx, backlogBatch);
  const rosters = new Rosters(ctx);
  const watch = new RegistryWatch(
    ctx,
    rosters,
    opts.registryWatchMs ? { intervalMs: opts.registryWatchMs } : {},
  );
  const { preConnect, authenticate } = connectHandlers(ctx, sources);
  const { authorizeSubscribe, onSubscribed } = subscribeHandlers(ctx, forwarder, rosters);
  const holdMs = opts.transitHoldMs === undefined ? DEFAULT_TRANSIT_HOLD_MS : opts.transitHoldMs;
  if (holdMs !== null && !(Number.isInteger(holdMs) && holdMs >= 0 && holdMs <= MAX_TRANSIT_HOLD_MS))
    throw new RangeError(`transitHoldMs must be an integer from 0 to ${MAX_TRANSIT_HOLD_MS}, or null`);
  const transit =
    holdMs !== null && store.clipVerdict
      ? new InTransit(ingest, forwarder, inboxTopic, metrics, log, holdMs)
      : undefined;
  ingest.transit = transit;
  const { authorizePublish, authorizeForward } = publishHandlers(ctx, forwarder, transit);
  const retention = (): Promise<number> => runRetention(ctx, undeliveredMaxAgeMs);

  // ---- listener -----------------------------------------------------------------------------

  const sockets = new Set<Socket>();

  const control = { ...(opts.controlBudget ?? DEFAULT_CONTROL_BUDGET), now: clock };
  function onSocket(socket: Socket) {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.setNoDelay(true);
    socket.on('error', () => {});
    handleStream(socket, socket.remoteAddress ?? 'unknown');
  }

  /** Every client connection, whatever carries it (TCP, TLS, WebSocket): one path to the broker. */
  function handleStream(stream: Duplex, source: string) {
    const conn = limitPackets(stream, {
      maxPacketBytes,
      control,
      subscribeQos1: true,
      onViolation: (reason, declared) => {
        metrics.socketViolations.inc({ reason });
        // [PLK-12.8] audited within the per-source budget, summarised beyond it.
        void auditBudget.refusal(
          { at: clock(), kind: 'socket.violation', detail: { reason, declared, source } },
          source,
        );
        log.info(
          { event: 'socket.violation', reason, declared, source },
          'connection closed at socket level',
        );
      },
    });
    sources.set(conn, source);
    if (!broker || closing) {
      stream.destroy();
      return;
    }
    broker.handle(conn);
  }

  let bound: AddressInfo | undefined;

  return {
    id: identity.id,
    metrics,
    transitHoldMs: transit ? holdMs : null,
    async listen() {
      if (broker) throw new Error('gateway already listening');
      // Hooks are always functions: an option passed as undefined would replace Aedes' default.
      broker = await Aedes.createBroker({
        id: opts.cluster?.brokerId ?? `plushlink-${identity.id.slice(0, 8)}`,
        ...(opts.cluster?.mq ? { mq: opts.cluster.mq } : {}),
        ...(opts.cluster?.persistence ? { persistence: opts.cluster.persistence } : {}),
        connectTimeout: connectTimeoutMs,
        maxClientsIdLength: 64,
        queueLimit: 42,
        preConnect,
        authenticate,
        authorizeSubscribe,
        authorizePublish,
        authorizeForward,
      });
      const b = broker;
      consumeEndpointPublishes(b);
      if (opts.cluster) {
        // [PLK-12.4] a recipient connected to another node: through Aedes' shared pub/sub to its inbox.
        forwarder.remote = (topic, payload) => b.publish(inboxPacket(topic, payload), () => {});
        // One resync at a time; gaps signalled meanwhile fold into one more pass after it (a flapping
        // bus must not stack backlog sends on an already loaded node).
        let resyncing = false;
        let again = false;
        const resync = async (): Promise<void> => {
          if (resyncing) {
            again = true;
            return;
          }
          resyncing = true;
          try {
            do {
              again = false;
              await forwarder.resync((c) => states.get(c)?.inbox).catch(() => {});
            } while (again);
          } finally {
            resyncing = false;
          }
        };
        opts.cluster.onDeliveryGap(() => void resync());
      }
      b.on('subscribe', onSubscribed);
      b.on('clientDisconnect', (client) => {
        const state = states.get(client);
        if (!state) return;
        forwarder.close(client, state.inbox);
        sessions.delete(state.endpoint.id, client);
      });
      /** [PLK-12.6][PLK-12.8] A violation Aedes found (a timeout, a body mqtt-packet cannot parse): counted and audited. */
      const violation = (client: Client, reason: 'connect-timeout' | 'malformed', err: Error): void => {
        metrics.socketViolations.inc({ reason });
        const source = sources.get(client.conn) ?? 'unknown';
        void auditBudget.refusal(
          {
            at: clock(),
            kind: 'socket.violation',
            endpoint: states.get(client)?.endpoint.id,
            detail: { reason, error: err.message.slice(0, 80), source },
          },
          source,
        );
      };
      b.on('connectionError', (client, err) => {
        if (/connect did not arrive in time/.test(err.message)) violation(client, 'connect-timeout', err);
        else if (isParseError(err)) violation(client, 'malformed', err);
        log.debug({ event: 'connection.error', err: err.message }, 'connection error');
      });
      b.on('clientError', (client, err) => {
        if (isParseError(err)) violation(client, 'malformed', err);
        log.debug(
          { event: 'client.error', endpoint: states.get(client)?.endpoint.id, err: err.message },
          'client error',
        );
      });
      (b as EventEmitter).on('error', (err: Error) => log.error({ err: err.message }, 'broker error'));
      metrics.setSources({
        connections: () => b.connectedClients,
        sockets: () => sockets.size,
        backlog: () => store.backlog(),
      });

      server = opts.tls
        ? createTlsServer({ cert: opts.tls.cert, key: opts.tls.key, minVersion: 'TLSv1.2' }, onSocket)
        : // Aedes reads all a connection has buffered as one batch (reading again once every packet
          // of it is handled, clips durably stored): 256 KiB lets a burst arrive as one batch.
          createTcpServer({ highWaterMark: 256 * 1024 }, onSocket);
      const srv = server;
      srv.on('error', (err) => log.error({ err: err.message }, 'listener error'));
      await new Promise<void>((resolve, reject) => {
        srv.once('error', reject);
        srv.listen(
          { port: opts.port ?? 1883, host: opts.host ?? '127.0.0.1', backlog: listenBacklog },
          () => {
            srv.off('error', reject);
            resolve();
          },
        );
      });
      bound = srv.address() as AddressInfo;
      await firmware?.start();
      auditBudget.start();
      await watch.start();
      if (retentionIntervalMs > 0) {
        retentionTimer = setInterval(() => {
          retention().catch((err: unknown) => log.error({ err: String(err) }, 'retention failed'));
        }, retentionIntervalMs);
        retentionTimer.unref();
      }
      log.info(
        {
          event: 'gateway.listening',
          address: bound.address,
          port: bound.port,
          gateway: identity.id,
          tls: !!opts.tls,
        },
        'listening',
      );
      return bound;
    },
    address() {
      if (!bound) throw new Error('gateway is not listening');
      return bound;
    },
    runRetention: retention,
    handleStream,
    async close() {
      if (closing) return;
      closing = true;
      // [PLK-12.9] held clips commit now, while the store is still open.
      transit?.releaseAll();
      if (retentionTimer) clearInterval(retentionTimer);
      firmware?.stop();
      await watch.stop();
      await auditBudget.stop();
      const srv = server;
      const closed = srv ? new Promise<void>((resolve) => srv.close(() => resolve())) : Promise.resolve();
      if (broker) {
        const b = broker;
        const limitMs = opts.closeTimeoutMs ?? 5000;
        let timer: NodeJS.Timeout | undefined;
        const outcome = await Promise.race([
          new Promise<'closed'>((resolve) => b.close(() => resolve('closed'))),
          new Promise<'timeout'>((resolve) => {
            timer = setTimeout(() => resolve('timeout'), limitMs);
          }),
        ]);
        clearTimeout(timer);
        if (outcome === 'timeout')
          log.warn(
            { event: 'gateway.close_timeout', ms: limitMs, clients: b.connectedClients },
            'the broker did not close in time; closing its sockets anyway',
          );
      }
      for (const s of sockets) s.destroy();
      await closed;
      log.info({ event: 'gateway.closed' }, 'closed');
    },
  };
}
