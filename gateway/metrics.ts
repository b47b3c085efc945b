// Gateway metrics on a private prom-client Registry, and a loopback HTTP server for GET /metrics, /healthz and /readyz.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

export interface GatewayMetrics {
  readonly registry: Registry;
  readonly connections: Gauge;
  /** Client sockets open (TCP and TLS), authenticated or not: a storm's connects still waiting show here first. */
  readonly sockets: Gauge;
  /** CONNECTs whose connection closed before their authentication ran (no crypto, no store read spent on them). */
  readonly connectsAbandoned: Counter;
  readonly authFailures: Counter<'reason'>;
  readonly connectsAccepted: Counter;
  readonly clipsAccepted: Counter;
  readonly clipsRetransmitted: Counter;
  readonly clipsRefused: Counter<'reason'>;
  readonly bytesAccepted: Counter;
  readonly clipsForwarded: Counter;
  readonly receipts: Counter<'result'>;
  /**
   * [PLK-12.9] Clips forwarded before their commit, by what the commit stored: `none` (every
   * recipient receipted in transit: the body was never written), `some`, `all`.
   */
  readonly transit: Counter<'stored'>;
  readonly storeLatency: Histogram<'op'>;
  /**
   * An accepted clip's ingest — verify, durable store, PUBACK: from the PUBLISH reaching
   * authorizePublish to the callback that lets Aedes send the PUBACK (docs/OPERATIONS.md).
   */
  readonly ingestLatency: Histogram;
  /** Marks the arrival of one PUBLISH, keyed by any object unique to it (its completion callback). */
  startIngest(publish: object): void;
  /** Observes `ingestLatency` for a PUBLISH marked by startIngest (once; unmarked ones are ignored). */
  observeIngest(publish: object): void;
  readonly backlog: Gauge;
  readonly subscribeRefusals: Counter<'reason'>;
  readonly socketViolations: Counter<'reason'>;
  /** [PLK-12.7] Sessions closed because their endpoint was revoked or erased. */
  readonly sessionsClosed: Counter<'reason'>;
  /** [PLK-12.4] Deliveries set aside (unopenable, or delivered too often without a receipt). */
  readonly deliveriesSetAside: Counter<'reason'>;
  /** Sources of the collected gauges; set by the gateway once its broker and store exist. */
  setSources(sources: {
    connections: () => number;
    sockets: () => number;
    backlog: () => Promise<number>;
  }): void;
}

export interface GatewayMetricsOptions {
  /**
   * Also collect prom-client's default `process_*` and `nodejs_*` metrics (CPU, memory, event-loop
   * lag, GC, handles) on this registry. Off by default: each collection installs process-wide
   * observers, which a process running many gateways (the tests) should not pile up; `plushlink
   * gateway` turns it on.
   */
  readonly processMetrics?: boolean;
}

/** Buckets of the ingest histogram (seconds): a group commit with its fsync is typically 1–20 ms. */
export const INGEST_BUCKETS: readonly number[] = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
];

/** Creates every gateway metric on a fresh Registry (never prom-client's global one). */
export function createGatewayMetrics(
  prefix = 'plushlink_gateway_',
  opts: GatewayMetricsOptions = {},
): GatewayMetrics {
  const registry = new Registry();
  const registers = [registry];
  if (opts.processMetrics) collectDefaultMetrics({ register: registry });
  const ingestStarts = new WeakMap<object, number>();
  const ingestLatency = new Histogram({
    name: `${prefix}ingest_latency_seconds`,
    help: 'Accepted clips: PUBLISH received to PUBACK released (verify, durable store commit, acknowledgement)',
    buckets: [...INGEST_BUCKETS],
    registers,
  });
  let connectionsSource: () => number = () => 0;
  let socketsSource: () => number = () => 0;
  let backlogSource: () => Promise<number> = async () => 0;

  const connections = new Gauge({
    name: `${prefix}connections`,
    help: 'Authenticated MQTT connections currently open',
    registers,
    collect() {
      this.set(connectionsSource());
    },
  });
  const sockets = new Gauge({
    name: `${prefix}sockets`,
    help: 'Client TCP and TLS sockets currently open, authenticated or not',
    registers,
    collect() {
      this.set(socketsSource());
    },
  });
  const backlog = new Gauge({
    name: `${prefix}delivery_backlog`,
    help: 'Pending (undelivered) deliveries in the store',
    registers,
    async collect() {
      try {
        this.set(await backlogSource());
      } catch {
        // a closed store: keep the last value rather than failing the whole scrape
      }
    },
  });
  return {
    registry,
    connections,
    sockets,
    backlog,
    connectsAbandoned: new Counter({
      name: `${prefix}connects_abandoned_total`,
      help: 'CONNECTs whose connection closed before authentication ran (no signature check spent on them)',
      registers,
    }),
    authFailures: new Counter({
      name: `${prefix}auth_failures_total`,
      help: 'Refused connections by reason',
      labelNames: ['reason'],
      registers,
    }),
    connectsAccepted: new Counter({
      name: `${prefix}connects_accepted_total`,
      help: 'Connections that passed authentication',
      registers,
    }),
    clipsAccepted: new Counter({
      name: `${prefix}clips_accepted_total`,
      help: 'Clip envelopes verified and durably stored',
      registers,
    }),
    clipsRetransmitted: new Counter({
      name: `${prefix}clips_retransmitted_total`,
      help: 'Resends of already stored clips, acknowledged again without storing or forwarding',
      registers,
    }),
    clipsRefused: new Counter({
      name: `${prefix}clips_refused_total`,
      help: 'Publishes refused (or dropped as duplicates) by reason',
      labelNames: ['reason'],
      registers,
    }),
    bytesAccepted: new Counter({
      name: `${prefix}bytes_accepted_total`,
      help: 'Envelope bytes accepted',
      registers,
    }),
    clipsForwarded: new Counter({
      name: `${prefix}clips_forwarded_total`,
      help: 'Clip deliveries published to recipient inboxes (live and backlog)',
      registers,
    }),
    receipts: new Counter({
      name: `${prefix}receipts_total`,
      help: 'Receipts processed, by result',
      labelNames: ['result'],
      registers,
    }),
    transit: new Counter({
      name: `${prefix}transit_total`,
      help: 'Clips forwarded before their commit, by what the commit stored (none: receipted by every recipient in transit)',
      labelNames: ['stored'],
      registers,
    }),
    storeLatency: new Histogram({
      name: `${prefix}store_latency_seconds`,
      help: 'Latency of store operations on the hot path',
      labelNames: ['op'],
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    }),
    subscribeRefusals: new Counter({
      name: `${prefix}subscribe_refusals_total`,
      help: 'Refused subscriptions by reason',
      labelNames: ['reason'],
      registers,
    }),
    socketViolations: new Counter({
      name: `${prefix}socket_violations_total`,
      help: 'Connections closed at the socket level (oversize packet, malformed header, connect timeout)',
      labelNames: ['reason'],
      registers,
    }),
    sessionsClosed: new Counter({
      name: `${prefix}sessions_closed_total`,
      help: 'Live sessions closed because their endpoint was revoked or its family erased',
      labelNames: ['reason'],
      registers,
    }),
    deliveriesSetAside: new Counter({
      name: `${prefix}deliveries_set_aside_total`,
      help: 'Deliveries moved out of a backlog: the recipient could not open the clip, or never receipted it',
      labelNames: ['reason'],
      registers,
    }),
    ingestLatency,
    startIngest(publish) {
      ingestStarts.set(publish, performance.now());
    },
    observeIngest(publish) {
      const t0 = ingestStarts.get(publish);
      if (t0 === undefined) return;
      ingestStarts.delete(publish);
      ingestLatency.observe((performance.now() - t0) / 1000);
    },
    setSources(sources) {
      connectionsSource = sources.connections;
      socketsSource = sources.sockets;
      backlogSource = sources.backlog;
    },
  };
}

/** The answer of a readiness check: each part's state, ready only when every part is. */
export interface Readiness {
  readonly ready: boolean;
  /** One line per part, e.g. `{ broker: 'listening', store: 'answering (0.4 ms)' }`. */
  readonly checks: Readonly<Record<string, string>>;
}

export interface MetricsServerOptions {
  readonly port: number;
  readonly host?: string;
  /**
   * GET /readyz: 200 when it reports ready, 503 otherwise (or when it throws or takes longer than
   * `readyTimeoutMs`). Without it /readyz answers as /healthz does.
   */
  readonly ready?: () => Promise<Readiness>;
  /** Default 2000 ms. */
  readonly readyTimeoutMs?: number;
}

async function readiness(opts: MetricsServerOptions): Promise<Readiness> {
  if (!opts.ready) return { ready: true, checks: { process: 'up' } };
  let timer: NodeJS.Timeout | undefined;
  const timeoutMs = opts.readyTimeoutMs ?? 2000;
  try {
    return await Promise.race([
      opts.ready(),
      new Promise<Readiness>((resolve) => {
        timer = setTimeout(
          () => resolve({ ready: false, checks: { check: `no answer within ${timeoutMs} ms` } }),
          timeoutMs,
        );
      }),
    ]);
  } catch (err) {
    return {
      ready: false,
      checks: { check: `failed: ${String((err as Error)?.message ?? err).split('\n')[0]}` },
    };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Serves, loopback by default: GET /metrics from `registry` (Prometheus text format); GET /healthz
 * — the process is up and serving (liveness: 200 "ok"); GET /readyz — `opts.ready` says the gateway
 * can take traffic (readiness: 200, or 503 with the failing part, as JSON). Anything else is 404.
 */
export async function serveMetrics(
  registry: Registry,
  opts: MetricsServerOptions,
): Promise<{ server: Server; address: AddressInfo; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/metrics' && path !== '/healthz' && path !== '/readyz') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    const head = req.method === 'HEAD';
    if (path === '/healthz') {
      res
        .writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'no-store' })
        .end(head ? undefined : 'ok\n');
      return;
    }
    if (path === '/readyz') {
      void readiness(opts).then((r) => {
        res.writeHead(r.ready ? 200 : 503, {
          'content-type': 'application/json',
          'cache-control': 'no-store',
        });
        res.end(head ? undefined : `${JSON.stringify(r)}\n`);
      });
      return;
    }
    registry.metrics().then(
      (text) => {
        res.writeHead(200, { 'content-type': registry.contentType });
        res.end(head ? undefined : text);
      },
      () => {
        res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics unavailable\n');
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    server,
    address: server.address() as AddressInfo,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
