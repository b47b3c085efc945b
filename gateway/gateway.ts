// The PlushLink gateway: Aedes with authentication, topic ACL, verified durable clip ingest and inbox delivery, over TCP or TLS [PLK-12].

import type { EventEmitter } from 'node:events';
import { type AddressInfo, createServer as createTcpServer, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { createServer as createTlsServer } from 'node:tls';
import {
  Aedes,
  type AedesPublishPacket,
  type AuthenticateError,
  type Client,
  type PublishPacket,
  type Subscription,
} from 'aedes';
import { type Logger, pino } from 'pino';
import { type CryptoSuite, defaultCrypto } from '../shared/crypto.ts';
import type { PrivateIdentity } from '../shared/identity.ts';
import { LIMITS } from '../shared/limits.ts';
import { createGatewayProof, DEFAULT_TOKEN_WINDOW_MS } from '../shared/token.ts';
import { inboxTopic, mayPublish, maySubscribe, parseTopic } from '../shared/topics.ts';
import type { Clock, EndpointId } from '../shared/types.ts';
import { AUTH_RETURN_CODES, type AuthReason, authenticateConnect } from './auth.ts';
import { InboxRegistry, publishTo } from './forward.ts';
import {
  type ClipOutcome,
  commitClip,
  type IngestContext,
  type IngestReason,
  ingestReceipt,
  prepareClip,
  type ReceiptOutcome,
  RegistryCache,
} from './ingest.ts';
import type {
  AuditEvent,
  AuditLog,
  EndpointRecord,
  GatewayStore,
  NonceStore,
  RateLimiter,
} from './interfaces.ts';
import { createGatewayMetrics, type GatewayMetrics } from './metrics.ts';
import { limitPackets } from './packet-limit.ts';

export const DAY_MS = 86_400_000;

export interface GatewayRateLimiters {
  /** New connections per source address (cost 1 per CONNECT). */
  readonly connect: RateLimiter;
  /** Clips per endpoint (cost 1 per clip). */
  readonly clips: RateLimiter;
  /** Envelope bytes per endpoint (cost = envelope size). */
  readonly bytes: RateLimiter;
  /** Receipts per endpoint (cost 1); unlimited when absent. */
  readonly receipts?: RateLimiter;
}

export interface GatewayOptions {
  /** The gateway's own identity (role 'gateway'); its id is bound into every connect token [PLK-3.3]. */
  readonly identity: PrivateIdentity;
  readonly store: GatewayStore;
  readonly audit: AuditLog;
  readonly nonces: NonceStore;
  readonly limiters: GatewayRateLimiters;
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
}

export interface Gateway {
  readonly id: EndpointId;
  readonly metrics: GatewayMetrics;
  /** Starts the broker and the listener; resolves with the bound address. */
  listen(): Promise<AddressInfo>;
  /** The bound address (after listen()). */
  address(): AddressInfo;
  /** Runs retention once now; returns the number of expired clips [PLK-12.5]. */
  runRetention(): Promise<number>;
  /** Stops accepting, disconnects every client, stops timers. The store and audit log stay open (the caller owns them). */
  close(): Promise<void>;
}

interface ConnectInfo {
  readonly source: string;
  readonly rateLimited: boolean;
  readonly clean: boolean;
  readonly hasWill: boolean;
}

interface ConnState {
  readonly endpoint: EndpointRecord;
  readonly nonce: Uint8Array;
  readonly source: string;
  readonly inbox: string;
  proofSent: boolean;
  /** Publishes of one connection are ingested one after the other (sequence order [PLK-8.1]). */
  queue: Promise<void>;
  /** Backlog deliveries not yet receipted in this session ("sender:clipId"), and whether more are waiting. */
  readonly backlogOutstanding: Set<string>;
  backlogTruncated: boolean;
  backlogRunning: boolean;
  backlogAgain: boolean;
}

/**
 * Passed to the authorizePublish callback to refuse a publish: Aedes then sends no PUBACK and
 * closes the connection (handlePublish → done(err) → client 'error' → _onError → conn.destroy),
 * the only refusal MQTT 3.1.1 has for a PUBLISH.
 */
class RefusedError extends Error {
  constructor(readonly reason: string) {
    super(`refused: ${reason}`);
    this.name = 'RefusedError';
  }
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
  const connects = new WeakMap<Client, ConnectInfo>();
  const states = new WeakMap<Client, ConnState>();
  const inboxes = new InboxRegistry();
  let broker: Aedes | undefined;
  let server: Server | undefined;
  let retentionTimer: NodeJS.Timeout | undefined;
  let closing = false;

  const ingestCtx: IngestContext = {
    store,
    crypto,
    clipLimiter: limiters.clips,
    byteLimiter: limiters.bytes,
    ...(limiters.receipts ? { receiptLimiter: limiters.receipts } : {}),
    maxEnvelopeBytes: LIMITS.maxEnvelopeBytes,
    registry: new RegistryCache(store, opts.registryCacheMs ?? 1000),
    observeStore: (op, seconds) => metrics.storeLatency.observe({ op }, seconds),
  };

  /** [PLK-12.2] Audit appends never throw into the broker; a failing audit log is logged loudly. */
  async function auditEvent(event: AuditEvent): Promise<void> {
    try {
      await audit.append(event);
    } catch (err) {
      log.error({ err: String(err), kind: event.kind }, 'audit append failed');
    }
  }

  // ---- connect ------------------------------------------------------------------------------

  function preConnect(
    client: Client,
    packet: { clean?: boolean; will?: unknown },
    cb: (e: Error | null, ok: boolean) => void,
  ) {
    const source = sources.get(client.conn) ?? 'unknown';
    // [PLK-12.1] Per-source-address connection rate (token bucket). The refusal itself is sent as
    // CONNACK 3 from authenticate, so that well-behaved clients back off; no crypto work is done.
    limiters.connect.take(source, 1, clock()).then(
      (allowed) => {
        connects.set(client, {
          source,
          rateLimited: !allowed,
          clean: packet.clean !== false,
          hasWill: packet.will !== undefined && packet.will !== null,
        });
        cb(null, true);
      },
      (err: unknown) => {
        log.error({ err: String(err) }, 'connect rate limiter failed');
        cb(new Error('rate limiter unavailable'), false);
      },
    );
  }

  function refuseConnect(
    reason: AuthReason | 'rate-limited',
    endpoint: EndpointId | undefined,
    source: string,
  ) {
    metrics.authFailures.inc({ reason });
    log.info({ event: 'auth.refused', reason, endpoint, source }, 'connection refused');
    const err = new Error(`connection refused: ${reason}`) as AuthenticateError;
    err.returnCode = reason === 'rate-limited' ? 3 : AUTH_RETURN_CODES[reason];
    return err;
  }

  function authenticate(
    client: Client,
    username: Readonly<string | undefined>,
    password: Readonly<Buffer | undefined>,
    done: (error: AuthenticateError | null, success: boolean | null) => void,
  ) {
    const info = connects.get(client);
    const source = info?.source ?? 'unknown';
    if (!info || info.rateLimited) {
      // Not audited: a connection storm must not turn into an audit-log write storm.
      done(refuseConnect('rate-limited', undefined, source), false);
      return;
    }
    const now = clock();
    authenticateConnect(
      { gatewayId: identity.id, store, nonces, crypto, tokenWindowMs },
      { clientId: client.id, username, password, clean: info.clean, hasWill: info.hasWill, now },
    ).then(
      async (result) => {
        if (result.ok) {
          states.set(client, {
            endpoint: result.endpoint,
            nonce: result.token.nonce,
            source,
            inbox: inboxTopic(result.endpoint.id),
            proofSent: false,
            queue: Promise.resolve(),
            backlogOutstanding: new Set(),
            backlogTruncated: false,
            backlogRunning: false,
            backlogAgain: false,
          });
          metrics.connectsAccepted.inc();
          log.debug({ event: 'auth.ok', endpoint: result.endpoint.id }, 'connected');
          done(null, true);
          return;
        }
        const err = refuseConnect(result.reason, result.endpoint, source);
        await auditEvent({
          at: now,
          kind: 'auth.refused',
          endpoint: result.endpoint,
          detail: { reason: result.reason, code: err.returnCode, source },
        });
        done(err, false);
      },
      (err: unknown) => {
        log.error({ err: String(err) }, 'authenticate failed');
        done(refuseConnect('store-error', undefined, source), false);
      },
    );
  }

  // ---- subscribe ----------------------------------------------------------------------------

  function authorizeSubscribe(
    client: Client,
    sub: Subscription,
    cb: (error: Error | null, subscription?: Subscription | null) => void,
  ) {
    const state = states.get(client);
    if (state && maySubscribe(state.endpoint.id, sub.topic)) {
      // [PLK-4.3] own inbox only; deliveries are QoS 1, so never grant more.
      cb(null, { ...sub, qos: sub.qos === 2 ? 1 : sub.qos });
      return;
    }
    const reason = sub.topic.startsWith('$')
      ? 'sys'
      : sub.topic.includes('#') || sub.topic.includes('+')
        ? 'wildcard'
        : 'not-own-inbox';
    metrics.subscribeRefusals.inc({ reason });
    log.info({ event: 'subscribe.refused', reason, endpoint: state?.endpoint.id }, 'subscription refused');
    void auditEvent({
      at: clock(),
      kind: 'subscribe.refused',
      endpoint: state?.endpoint.id,
      detail: { reason, topic: sub.topic.slice(0, 80) },
    });
    // (null, null) makes Aedes answer 0x80 for this topic in the SUBACK (aedes/lib/handlers/subscribe.js).
    cb(null, null);
  }

  /** [PLK-4.4] On the inbox subscription: the proof, bound to the token nonce, then the backlog. */
  function onSubscribed(subs: Subscription[], client: Client) {
    const state = states.get(client);
    if (!state || state.proofSent) return;
    if (!subs.some((s) => s.topic === state.inbox && (s.qos as number) !== 128)) return;
    state.proofSent = true;
    const proof = createGatewayProof({
      gateway: identity,
      endpointId: state.endpoint.id,
      nonce: state.nonce,
      now: clock(),
      crypto,
    });
    publishTo(client, state.inbox, proof).catch(() => {});
    inboxes.set(state.endpoint.id, client);
    void sendBacklog(client, state);
  }

  /**
   * Sends up to `backlogBatch` undelivered clips, oldest first [PLK-12.4]. When the batch was full,
   * the next one is sent once this session has receipted the whole batch (a refill requested while
   * a batch is still being written runs right after it).
   */
  async function sendBacklog(client: Client, state: ConnState): Promise<void> {
    if (state.backlogRunning) {
      state.backlogAgain = true;
      return;
    }
    state.backlogRunning = true;
    try {
      do {
        state.backlogAgain = false;
        const t0 = performance.now();
        const pending = await store.pendingFor(state.endpoint.id, backlogBatch);
        metrics.storeLatency.observe({ op: 'pendingFor' }, (performance.now() - t0) / 1000);
        state.backlogTruncated = pending.length >= backlogBatch;
        for (const p of pending) {
          if (client.closed) return;
          const key = `${p.sender}:${p.clipId}`;
          if (state.backlogOutstanding.has(key)) continue;
          state.backlogOutstanding.add(key);
          await publishTo(client, state.inbox, p.envelope);
          metrics.clipsForwarded.inc();
        }
      } while (state.backlogAgain && !client.closed);
    } catch (err) {
      if (!client.closed)
        log.warn({ err: String(err), endpoint: state.endpoint.id }, 'backlog delivery failed');
    } finally {
      state.backlogRunning = false;
    }
  }

  // ---- publish ------------------------------------------------------------------------------

  function authorizePublish(
    client: Client | null,
    packet: PublishPacket,
    callback: (error?: Error | null) => void,
  ) {
    let called = false;
    const cb = (error?: Error | null) => {
      if (called) return;
      called = true;
      callback(error);
    };
    const state = client ? states.get(client) : undefined;
    if (!client || !state) {
      // Internal publishes do not come here; wills are refused at connect.
      cb(new Error('publish without an authenticated endpoint'));
      return;
    }
    const id = state.endpoint.id;
    // Cheap synchronous ACL checks first [PLK-4.2].
    if (!mayPublish(id, packet.topic)) {
      void refusePublish(state, 'topic', packet.topic.slice(0, 80)).then(() => cb(new RefusedError('topic')));
      return;
    }
    if (packet.retain) {
      void refusePublish(state, 'retain').then(() => cb(new RefusedError('retain')));
      return;
    }
    if (packet.qos > 1) {
      void refusePublish(state, 'qos').then(() => cb(new RefusedError('qos')));
      return;
    }
    const kind = parseTopic(packet.topic).kind;
    const payload = packet.payload as Buffer;
    const refuse = async (reason: IngestReason, detail?: string) => {
      await refusePublish(state, reason, detail);
      cb(new RefusedError(reason));
    };
    const onClip = (outcome: ClipOutcome) => {
      if (outcome.kind === 'refused') return refuse(outcome.reason, outcome.detail);
      if (outcome.kind === 'retransmit') {
        // [PLK-8.2] durable since its first arrival: PUBACK again; recipients got or will get it.
        metrics.clipsRetransmitted.inc();
        return cb(null);
      }
      metrics.clipsAccepted.inc();
      metrics.bytesAccepted.inc(payload.length);
      // [PLK-12.3] the store write is durable: only now may Aedes send the PUBACK. In
      // aedes/lib/handlers/publish.js the chain is authorizePublish → (callback) → write PUBACK
      // → broker.publish, so nothing is acknowledged before this call.
      cb(null);
      for (const r of outcome.recipients) {
        const target = inboxes.get(r);
        if (!target) continue; // offline: delivered from the store when it subscribes again
        publishTo(target, inboxTopic(r), payload).then(
          () => metrics.clipsForwarded.inc(),
          () => {},
        );
      }
    };
    const onReceipt = (outcome: ReceiptOutcome) => {
      if (outcome.kind === 'refused') return refuse(outcome.reason);
      metrics.receipts.inc({ result: outcome.kind });
      cb(null);
      const r = outcome.receipt;
      if (outcome.kind === 'delivered') {
        // [PLK-12.4] the sender learns that (and when) its clip arrived.
        const target = inboxes.get(r.sender);
        if (target) publishTo(target, inboxTopic(r.sender), payload).catch(() => {});
      }
      // Refill a truncated backlog once this session's batch has been receipted.
      const key = `${r.sender}:${Buffer.from(r.clipId).toString('hex')}`;
      if (
        state.backlogOutstanding.delete(key) &&
        state.backlogTruncated &&
        state.backlogOutstanding.size === 0
      ) {
        void sendBacklog(client, state);
      }
    };
    const fail = (err: unknown) => {
      log.error({ err: String(err), endpoint: id }, 'ingest failed');
      cb(new Error('ingest failed'));
    };
    // The checks of one connection's publishes run one after the other, and each store write is
    // *submitted* in arrival order (sequence order [PLK-8.1]) without waiting for the previous one
    // to be durable, so that a burst shares group commits. Completion (PUBACK, forwarding) follows.
    const job = async () => {
      if (client.closed || closing) {
        cb(new Error('connection closed'));
        return;
      }
      const now = clock();
      if (kind === 'clip' || kind === 'relay') {
        const prepared = await prepareClip(ingestCtx, state.endpoint, payload, now, {
          relay: kind === 'relay',
        });
        if (prepared.kind === 'refused') {
          await refuse(prepared.reason, prepared.detail);
          return;
        }
        if (client.closed) {
          cb(new Error('connection closed'));
          return;
        }
        commitClip(ingestCtx, prepared).then(onClip).catch(fail);
        return;
      }
      // kind === 'rcpt' (mayPublish allows only clip, relay and rcpt); verification is synchronous.
      ingestReceipt(ingestCtx, state.endpoint, payload, now).then(onReceipt).catch(fail);
    };
    state.queue = state.queue.then(job).catch(fail);
  }

  async function refusePublish(state: ConnState, reason: IngestReason, detail?: string) {
    metrics.clipsRefused.inc({ reason });
    log.info(
      { event: 'publish.refused', reason, endpoint: state.endpoint.id },
      'publish refused; closing connection',
    );
    await auditEvent({
      at: clock(),
      kind: 'clip.refused',
      endpoint: state.endpoint.id,
      detail: detail ? { reason, detail: detail.slice(0, 120) } : { reason },
    });
  }

  /** Defence in depth: a client only ever receives messages of its own inbox. */
  function authorizeForward(client: Client, packet: AedesPublishPacket): AedesPublishPacket | null {
    const state = states.get(client);
    return state?.proofSent && packet.topic === state.inbox ? packet : null;
  }

  // ---- retention ----------------------------------------------------------------------------

  async function runRetention(): Promise<number> {
    const now = clock();
    const n = await store.expireUndelivered(now - undeliveredMaxAgeMs);
    if (n > 0) {
      log.info({ event: 'retention.expired', clips: n }, 'expired undelivered clips');
      await auditEvent({
        at: now,
        kind: 'retention.expired',
        detail: { clips: n, maxAgeMs: undeliveredMaxAgeMs },
      });
    }
    return n;
  }

  // ---- listener -----------------------------------------------------------------------------

  const sockets = new Set<Socket>();

  function onSocket(socket: Socket) {
    const source = socket.remoteAddress ?? 'unknown';
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.setNoDelay(true);
    socket.on('error', () => {});
    const conn = limitPackets(socket, {
      maxPacketBytes,
      onViolation: (reason, declared) => {
        metrics.socketViolations.inc({ reason });
        log.info(
          { event: 'socket.violation', reason, declared, source },
          'connection closed at socket level',
        );
      },
    });
    sources.set(conn, source);
    if (!broker || closing) {
      socket.destroy();
      return;
    }
    broker.handle(conn);
  }

  let bound: AddressInfo | undefined;

  return {
    id: identity.id,
    metrics,
    async listen() {
      if (broker) throw new Error('gateway already listening');
      // Hooks are always functions: an option passed as undefined would replace Aedes' default.
      broker = await Aedes.createBroker({
        id: `plushlink-${identity.id.slice(0, 8)}`,
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
      b.on('subscribe', onSubscribed);
      b.on('clientDisconnect', (client) => {
        const state = states.get(client);
        if (state) inboxes.delete(state.endpoint.id, client);
      });
      b.on('connectionError', (_client, err) => {
        if (/connect did not arrive in time/.test(err.message))
          metrics.socketViolations.inc({ reason: 'connect-timeout' });
        log.debug({ event: 'connection.error', err: err.message }, 'connection error');
      });
      b.on('clientError', (client, err) => {
        log.debug(
          { event: 'client.error', endpoint: states.get(client)?.endpoint.id, err: err.message },
          'client error',
        );
      });
      (b as EventEmitter).on('error', (err: Error) => log.error({ err: err.message }, 'broker error'));
      metrics.setSources({ connections: () => b.connectedClients, backlog: () => store.backlog() });

      server = opts.tls
        ? createTlsServer({ cert: opts.tls.cert, key: opts.tls.key, minVersion: 'TLSv1.2' }, onSocket)
        : createTcpServer(onSocket);
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
      if (retentionIntervalMs > 0) {
        retentionTimer = setInterval(() => {
          runRetention().catch((err: unknown) => log.error({ err: String(err) }, 'retention failed'));
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
    runRetention,
    async close() {
      if (closing) return;
      closing = true;
      if (retentionTimer) clearInterval(retentionTimer);
      const srv = server;
      const closed = srv ? new Promise<void>((resolve) => srv.close(() => resolve())) : Promise.resolve();
      if (broker) {
        const b = broker;
        await new Promise<void>((resolve) => b.close(() => resolve()));
      }
      for (const s of sockets) s.destroy();
      await closed;
      log.info({ event: 'gateway.closed' }, 'closed');
    },
  };
}
