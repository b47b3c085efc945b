// MQTT over WebSocket (MQTT 3.1.1 §6): each WebSocket becomes a byte stream that takes the TCP socket's path into the gateway — packet scanner, limits, authentication, ACL, audit — behind an origin check and per-source limits [PLK-9.2].
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { type Logger, pino } from 'pino';
import { createWebSocketStream, type WebSocket, WebSocketServer } from 'ws';
import { CodedError } from '../shared/errors.ts';
import { LIMITS } from '../shared/limits.ts';
import type { Clock } from '../shared/types.ts';
import type { Gateway } from './gateway.ts';
import { MemoryRateLimiter } from './limits.ts';

/**
 * Why an HTTP upgrade to MQTT-over-WebSocket was refused before any MQTT byte was read (logged;
 * an accepted connection is then judged by MQTT, exactly like a TCP one).
 */
export const WEBSOCKET_REFUSALS = {
  origin: 'the Origin header is not one this listener accepts (403)',
  host: 'the Host header names no address of this gateway (421, DNS rebinding)',
  subprotocol: 'the client did not offer the "mqtt" WebSocket subprotocol (400)',
  'rate-limited': 'too many upgrades from this address (429)',
  'per-source': 'this address holds its quota of open WebSocket connections (429)',
  oversize: 'more than PRE_AUTH_BYTES arrived before the gateway answered the CONNECT (closed)',
  path: 'no MQTT endpoint at this path (404)',
  closing: 'the gateway is shutting down (503)',
} as const;
export type WebSocketRefusal = keyof typeof WEBSOCKET_REFUSALS;

const STATUS: Readonly<Record<WebSocketRefusal, [number, string]>> = {
  origin: [403, 'Forbidden'],
  host: [421, 'Misdirected Request'],
  subprotocol: [400, 'Bad Request'],
  'rate-limited': [429, 'Too Many Requests'],
  'per-source': [429, 'Too Many Requests'],
  path: [404, 'Not Found'],
  oversize: [400, 'Bad Request'],
  closing: [503, 'Service Unavailable'],
};

/**
 * Bytes a WebSocket may send before the gateway's first answer: a CONNECT (at most 1 KiB, as on
 * TCP) in a few frames (up to 14 bytes of framing each), with room to spare.
 */
export const PRE_AUTH_BYTES = 4096;

/** A WebSocket listener that cannot start (bad options, port in use: the cause says). */
export class WebSocketError extends CodedError<'WS_OPTIONS' | 'WS_LISTEN'> {}

/**
 * Decides from the request whether this Origin may connect. Browsers always send Origin on a
 * WebSocket handshake (and scripts cannot forge it); other MQTT clients usually send none.
 */
export type OriginPolicy = (origin: string | undefined, req: IncomingMessage) => boolean;

export interface WebSocketMqttOptions {
  /** Where accepted connections go: `Gateway.handleStream`. */
  readonly gateway: Pick<Gateway, 'handleStream'>;
  readonly origin: OriginPolicy;
  /**
   * Largest WebSocket message accepted. `ws` holds a whole message before the packet scanner sees
   * its first byte, so this bounds a connection's buffer before authentication. Default: the
   * largest envelope plus 2 KiB (one maximal PUBLISH and its header, as on TCP).
   */
  readonly maxMessageBytes?: number;
  /** [PLK-9.2] Upgrades per second per source address (burst twice that); default 50, as CONNECTs. */
  readonly upgradesPerSecond?: number;
  /** Open WebSocket connections per source address; default 32. */
  readonly maxPerSource?: number;
  readonly logger?: Logger;
  readonly clock?: Clock;
}

export interface WebSocketMqtt {
  /** Handles an HTTP upgrade request for MQTT (the caller has chosen the path). */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** Refuses an upgrade with the status of `reason` (for callers that check the path or Host first). */
  refuse(socket: Duplex, reason: WebSocketRefusal, source: string): void;
  /** Open WebSocket connections. */
  readonly connections: number;
  /** Stops accepting and closes every WebSocket (the gateway's own close disconnects their MQTT sessions). */
  close(): Promise<void>;
}

/** The peer address the per-source limits and the audit log use: the TCP peer, never a forwarded header. */
export function sourceOf(req: IncomingMessage): string {
  return req.socket.remoteAddress ?? 'unknown';
}

function offersMqtt(req: IncomingMessage): boolean {
  const header = req.headers['sec-websocket-protocol'];
  if (typeof header !== 'string') return false;
  return header.split(',').some((p) => p.trim() === 'mqtt');
}

/**
 * Creates the upgrade handler. Accepted WebSockets are turned into byte streams
 * (`createWebSocketStream`) and handed to `gateway.handleStream` with the TCP peer address as the
 * source, so the per-source CONNECT rate, the packet scanner and everything after it apply as on
 * TCP. Compression is off (the payloads are ciphertext, and inflating is a resource to abuse).
 */
export function createWebSocketMqtt(opts: WebSocketMqttOptions): WebSocketMqtt {
  const log = opts.logger ?? pino({ enabled: false });
  const clock = opts.clock ?? Date.now;
  const maxMessageBytes = opts.maxMessageBytes ?? LIMITS.maxEnvelopeBytes + 2048;
  const perSecond = opts.upgradesPerSecond ?? 50;
  const maxPerSource = opts.maxPerSource ?? 32;
  if (!Number.isInteger(maxMessageBytes) || maxMessageBytes < 1024)
    throw new WebSocketError(
      'WS_OPTIONS',
      `maxMessageBytes must be an integer >= 1024, got ${maxMessageBytes}`,
    );
  if (!Number.isInteger(maxPerSource) || maxPerSource < 1)
    throw new WebSocketError('WS_OPTIONS', `maxPerSource must be a positive integer, got ${maxPerSource}`);
  const upgrades = new MemoryRateLimiter({
    capacity: Math.max(1, perSecond * 2),
    refillPerSecond: perSecond,
  });
  const perSource = new Map<string, number>();
  const open = new Set<WebSocket>();
  let closing = false;
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: maxMessageBytes,
    perMessageDeflate: false,
    clientTracking: false,
    handleProtocols: (protocols) => (protocols.has('mqtt') ? 'mqtt' : false),
  });

  function refuse(socket: Duplex, reason: WebSocketRefusal, source: string): void {
    const [code, text] = STATUS[reason];
    log.info({ event: 'ws.refused', reason, source }, 'WebSocket upgrade refused');
    socket.on('error', () => {});
    if (socket.writable)
      socket.end(`HTTP/1.1 ${code} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    socket.destroy();
  }

  function accept(ws: WebSocket, socket: Duplex, source: string): void {
    open.add(ws);
    perSource.set(source, (perSource.get(source) ?? 0) + 1);
    ws.once('close', () => {
      open.delete(ws);
      const n = (perSource.get(source) ?? 1) - 1;
      if (n <= 0) perSource.delete(source);
      else perSource.set(source, n);
    });
    ws.on('error', () => {});
    const stream = createWebSocketStream(ws);
    // [PLK-9.2] Before the gateway has answered (its CONNACK is the first thing it writes), a client
    // may send one small CONNECT: on TCP the scanner refuses a first packet above 1 KiB as its
    // header arrives, but `ws` assembles a whole message before anyone sees it. Counting the raw
    // bytes keeps what one unauthenticated WebSocket can make the gateway hold to PRE_AUTH_BYTES.
    let answered = false;
    let early = 0;
    const guard = (chunk: Buffer): void => {
      if (answered) {
        socket.off('data', guard);
        return;
      }
      early += chunk.length;
      if (early > PRE_AUTH_BYTES) {
        log.info(
          { event: 'ws.refused', reason: 'oversize', source, bytes: early },
          'WebSocket closed before CONNACK',
        );
        socket.destroy();
      }
    };
    socket.on('data', guard);
    const write = stream._write.bind(stream);
    stream._write = (chunk: Buffer, encoding: BufferEncoding, cb: (err?: Error | null) => void) => {
      answered = true;
      write(chunk, encoding, cb);
    };
    // The packet scanner writes each MQTT packet as a corked batch of chunks (fixed header, length,
    // topic, id, payload); without a writev every chunk would be a WebSocket frame of its own.
    // Node's Writable calls `_writev` for a corked batch when it is set: one frame per batch.
    (stream as Duplex & { _writev: unknown })._writev = (
      chunks: { chunk: Buffer }[],
      cb: (err?: Error | null) => void,
    ) => {
      stream._write(
        chunks.length === 1 ? chunks[0]!.chunk : Buffer.concat(chunks.map((c) => c.chunk)),
        'buffer' as BufferEncoding, // what Node passes for Buffer chunks (ws ignores it)
        cb,
      );
    };
    stream.on('error', () => {});
    opts.gateway.handleStream(stream, source);
  }

  return {
    refuse,
    handleUpgrade(req, socket, head) {
      const source = sourceOf(req);
      socket.on('error', () => {});
      if (closing) return refuse(socket, 'closing', source);
      const origin = req.headers.origin;
      if (!opts.origin(typeof origin === 'string' ? origin : undefined, req))
        return refuse(socket, 'origin', source);
      if (!offersMqtt(req)) return refuse(socket, 'subprotocol', source);
      if ((perSource.get(source) ?? 0) >= maxPerSource) return refuse(socket, 'per-source', source);
      if (!upgrades.tryTake(source, 1, clock())) return refuse(socket, 'rate-limited', source);
      wss.handleUpgrade(req, socket, head, (ws) => {
        if (closing) ws.terminate();
        else accept(ws, socket, source);
      });
    },
    get connections() {
      return open.size;
    },
    async close() {
      closing = true;
      for (const ws of open) ws.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}

export interface WebSocketListenerOptions extends Omit<WebSocketMqttOptions, 'origin'> {
  /** Listen address; default 127.0.0.1. */
  readonly host?: string;
  /** 0 picks a free port. */
  readonly port: number;
  /** TLS certificate and key (PEM): `wss://`. */
  readonly tls?: { readonly cert: string | Buffer; readonly key: string | Buffer };
  /**
   * Browser origins allowed to connect (e.g. the parent page's, `http://127.0.0.1:8080`). Requests
   * without an Origin header (MQTT clients that are not browsers) are accepted; any other Origin is
   * refused, so that no web site a visitor happens to open can use their browser to reach the gateway.
   */
  readonly allowedOrigins?: readonly string[];
}

export interface WebSocketListener {
  /** `ws://host:port/mqtt` or `wss://…`. */
  readonly url: string;
  readonly port: number;
  readonly mqtt: WebSocketMqtt;
  close(): Promise<void>;
}

/** Normalises an origin ("http://LOCALHOST:80" → "http://localhost"); undefined for anything that is not one. */
export function normalizeOrigin(origin: string): string | undefined {
  try {
    const u = new URL(origin);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return undefined;
    return u.origin;
  } catch {
    return undefined;
  }
}

/**
 * `plushlink gateway --ws-port`: a listener that serves only MQTT over WebSocket, on `/mqtt` (and
 * `/`, where some clients connect by default), `wss` with TLS. Plain HTTP requests get 426.
 */
export async function listenWebSocketMqtt(opts: WebSocketListenerOptions): Promise<WebSocketListener> {
  const allowed = new Set<string>();
  for (const o of opts.allowedOrigins ?? []) {
    const n = normalizeOrigin(o);
    if (!n) throw new WebSocketError('WS_OPTIONS', `not an http(s) origin: ${o}`);
    allowed.add(n);
  }
  const mqtt = createWebSocketMqtt({
    ...opts,
    origin: (origin) => origin === undefined || allowed.has(normalizeOrigin(origin) ?? ''),
  });
  const onRequest = (_req: IncomingMessage, res: ServerResponse) => {
    res.writeHead(426, { 'content-type': 'text/plain', connection: 'close', upgrade: 'websocket' });
    res.end('MQTT over WebSocket only (subprotocol "mqtt")\n');
  };
  const server: Server = opts.tls
    ? createHttpsServer({ cert: opts.tls.cert, key: opts.tls.key, minVersion: 'TLSv1.2' }, onRequest)
    : createHttpServer(onRequest);
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/mqtt' && path !== '/') return mqtt.refuse(socket, 'path', sourceOf(req));
    mqtt.handleUpgrade(req, socket, head);
  });
  server.on('clientError', (_err, socket) => socket.destroy());
  const host = opts.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new WebSocketError('WS_LISTEN', err.message, { cause: err })));
    server.listen({ host, port: opts.port }, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `${opts.tls ? 'wss' : 'ws'}://${host.includes(':') ? `[${host}]` : host}:${port}/mqtt`,
    port,
    mqtt,
    async close() {
      await mqtt.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
