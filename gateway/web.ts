// The parent page's web server: the page built into dist/web (fixed files, strict CSP, nothing external), the gateway's public identity, and MQTT over WebSocket on /mqtt of the same origin.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import type { Duplex } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { type Logger, pino } from 'pino';
import { CodedError } from '../shared/errors.ts';
import { identityToJson, type PublicIdentity } from '../shared/identity.ts';
import { isJsonObject, parseJson } from '../shared/json.ts';
import type { Gateway } from './gateway.ts';
import { createWebSocketMqtt, normalizeOrigin, sourceOf, type WebSocketMqttOptions } from './websocket.ts';

export type WebServerErrorCode = 'WEB_NOT_BUILT' | 'WEB_BUILD_DAMAGED' | 'WEB_OPTIONS' | 'WEB_LISTEN';

/** The parent page cannot be served: not built, built files changed, bad options, or the port. */
export class WebServerError extends CodedError<WebServerErrorCode> {}

/** The file the page build (scripts/build-web.ts) writes last: what to serve, with sizes and hashes. */
export const WEB_MANIFEST = 'manifest.json';
const FILE_NAME = /^[a-z0-9][a-z0-9-]*\.(html|js|css|svg)$/;
const TYPES: Readonly<Record<string, string>> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
  svg: 'image/svg+xml',
};

/**
 * Where the built page is: `dist/web` beside the compiled gateway (`dist/gateway/web.js` →
 * `dist/web`), or from the sources (`gateway/web.ts` → `dist/web`). Only a directory holding the
 * build's manifest counts, never the sources in `web/`.
 */
export function findWebRoot(): string | undefined {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const dir of [join(here, '..', 'web'), join(here, '..', 'dist', 'web')])
    if (existsSync(join(dir, WEB_MANIFEST))) return dir;
  return undefined;
}

interface StaticFile {
  readonly body: Buffer;
  readonly type: string;
  readonly etag: string;
}

/** Reads the manifest and every file it names, checking sizes and SHA-256: a half-written build is refused. */
export function loadWebBuild(root: string): Map<string, StaticFile> {
  const manifestPath = join(root, WEB_MANIFEST);
  if (!existsSync(manifestPath))
    throw new WebServerError(
      'WEB_NOT_BUILT',
      `the parent page is not built (${manifestPath} missing): run npm run build`,
    );
  const manifest = parseJson(readFileSync(manifestPath, 'utf8'), {
    what: WEB_MANIFEST,
    maxBytes: 64 * 1024,
    maxDepth: 4,
  });
  if (!isJsonObject(manifest) || manifest.plushlink !== 'web-build' || !Array.isArray(manifest.files))
    throw new WebServerError('WEB_BUILD_DAMAGED', `${manifestPath} is not a PlushLink web build manifest`);
  const files = new Map<string, StaticFile>();
  for (const f of manifest.files) {
    if (
      !isJsonObject(f) ||
      typeof f.path !== 'string' ||
      !FILE_NAME.test(f.path) ||
      typeof f.sha256 !== 'string'
    )
      throw new WebServerError('WEB_BUILD_DAMAGED', `${manifestPath} names a file it may not`);
    const body = readFileSync(join(root, f.path));
    const sha = createHash('sha256').update(body).digest('hex');
    if (sha !== f.sha256)
      throw new WebServerError(
        'WEB_BUILD_DAMAGED',
        `${f.path} does not match the build manifest: rebuild (npm run build)`,
      );
    const ext = f.path.slice(f.path.lastIndexOf('.') + 1);
    files.set(`/${f.path}`, { body, type: TYPES[ext]!, etag: `"${sha.slice(0, 32)}"` });
  }
  if (!files.has('/index.html'))
    throw new WebServerError('WEB_BUILD_DAMAGED', `${manifestPath} has no index.html`);
  return files;
}

export interface WebServerOptions {
  /** Where MQTT-over-WebSocket connections on /mqtt go. */
  readonly gateway: Pick<Gateway, 'handleStream'>;
  /** The gateway's public identity, served as /gateway.json: what the page pins [PLK-3.6]. */
  readonly identity: PublicIdentity;
  /** Listen address; default 127.0.0.1. */
  readonly host?: string;
  /** 0 picks a free port. */
  readonly port: number;
  /** TLS certificate and key (PEM): the page over HTTPS and MQTT over `wss` (a browser's key store needs a secure context). */
  readonly tls?: { readonly cert: string | Buffer; readonly key: string | Buffer };
  /** The built page; default findWebRoot(). */
  readonly root?: string;
  /**
   * Origins (besides this listener's loopback names and its listen address) the page may be opened
   * from, e.g. `https://plushlink.example:8443`: their host names are the only Host headers served
   * (DNS-rebinding guard) and the only WebSocket origins accepted.
   */
  readonly origins?: readonly string[];
  /** WebSocket limits (message size, upgrades and connections per source). */
  readonly ws?: Pick<WebSocketMqttOptions, 'maxMessageBytes' | 'upgradesPerSecond' | 'maxPerSource'>;
  readonly logger?: Logger;
}

export interface WebServer {
  /** The page's address on the listen host, e.g. http://127.0.0.1:8080/. */
  readonly url: string;
  readonly port: number;
  /** Origins this server accepts (page loads and WebSocket connections). */
  readonly origins: readonly string[];
  /** Open MQTT-over-WebSocket connections. */
  readonly connections: number;
  close(): Promise<void>;
}

/**
 * [PLK-9.2] The page's Content-Security-Policy: nothing but its own script and style, media only
 * from blob: (the clips it decrypted), network only to its own origin (the JSON identity and the
 * MQTT WebSocket), no frames, forms, plugins or base URL. No inline script or style exists to allow.
 */
export function contentSecurityPolicy(wsOrigin: string): string {
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self'",
    'media-src blob:',
    `connect-src 'self' ${wsOrigin}`,
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

const LOOPBACK = ['127.0.0.1', 'localhost', '[::1]'];
const WILDCARD = new Set(['0.0.0.0', '::', '']);

/**
 * Serves the parent page over HTTP, or HTTPS with `tls`, and MQTT over WebSocket at /mqtt on the
 * same origin: GET and HEAD of the built files only (everything else 404/405), Host headers of
 * this gateway only, Origin equal to one of the page's origins for the WebSocket.
 */
export async function startWebServer(opts: WebServerOptions): Promise<WebServer> {
  const log = opts.logger ?? pino({ enabled: false });
  const root = opts.root ?? findWebRoot();
  if (!root)
    throw new WebServerError(
      'WEB_NOT_BUILT',
      'the parent page is not built (no dist/web): run npm run build',
    );
  const files = loadWebBuild(root);
  const gatewayJson = Buffer.from(identityToJson(opts.identity));
  const scheme = opts.tls ? 'https' : 'http';
  const host = opts.host ?? '127.0.0.1';
  const extra: string[] = [];
  for (const o of opts.origins ?? []) {
    const n = normalizeOrigin(o);
    if (!n) throw new WebServerError('WEB_OPTIONS', `not an http(s) origin: ${o}`);
    extra.push(n);
  }
  let origins = new Set<string>();
  let hosts = new Set<string>();

  const mqtt = createWebSocketMqtt({
    gateway: opts.gateway,
    ...opts.ws,
    logger: log,
    origin: (origin) => origin !== undefined && origins.has(normalizeOrigin(origin) ?? ''),
  });

  /** The Host header, when it names this server ("127.0.0.1:8080"); undefined otherwise. */
  const hostOf = (req: IncomingMessage): string | undefined => {
    const h = req.headers.host;
    if (typeof h !== 'string' || h.length > 255) return undefined;
    const n = normalizeOrigin(`${scheme}://${h}`);
    if (!n) return undefined;
    const hostPart = n.slice(`${scheme}://`.length);
    return hosts.has(hostPart) ? hostPart : undefined;
  };

  const headers = (hostPart: string, type: string, length: number): Record<string, string | number> => ({
    'content-type': type,
    'content-length': length,
    'content-security-policy': contentSecurityPolicy(`${opts.tls ? 'wss' : 'ws'}://${hostPart}`),
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'cross-origin-opener-policy': 'same-origin',
    'cross-origin-resource-policy': 'same-origin',
    'x-frame-options': 'DENY',
    'permissions-policy': 'microphone=(self), camera=(), geolocation=()',
    'cache-control': 'no-cache',
  });

  const plain = (
    res: ServerResponse,
    code: number,
    text: string,
    extraHeaders: Record<string, string> = {},
  ) => {
    res.writeHead(code, {
      'content-type': 'text/plain; charset=utf-8',
      'x-content-type-options': 'nosniff',
      ...extraHeaders,
    });
    res.end(`${text}\n`);
  };

  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    const hostPart = hostOf(req);
    if (!hostPart) return plain(res, 421, 'misdirected request: unknown host');
    if (req.method !== 'GET' && req.method !== 'HEAD')
      return plain(res, 405, 'method not allowed', { allow: 'GET, HEAD' });
    const path = (req.url ?? '/').split('?')[0]!;
    let file: StaticFile | undefined;
    if (path === '/gateway.json')
      file = { body: gatewayJson, type: 'application/json; charset=utf-8', etag: '' };
    else file = files.get(path === '/' ? '/index.html' : path);
    if (!file) return plain(res, 404, 'not found');
    const h = headers(hostPart, file.type, file.body.length);
    if (file.etag) {
      h.etag = file.etag;
      if (req.headers['if-none-match'] === file.etag) {
        res.writeHead(304, h);
        res.end();
        return;
      }
    }
    res.writeHead(200, h);
    res.end(req.method === 'HEAD' ? undefined : file.body);
  };

  const server: Server = opts.tls
    ? createHttpsServer({ cert: opts.tls.cert, key: opts.tls.key, minVersion: 'TLSv1.2' }, onRequest)
    : createHttpServer(onRequest);
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;
  server.maxHeadersCount = 64;
  server.on('clientError', (_err, socket) => socket.destroy());
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const source = sourceOf(req);
    if (!hostOf(req)) return mqtt.refuse(socket, 'host', source);
    if ((req.url ?? '').split('?')[0] !== '/mqtt') return mqtt.refuse(socket, 'path', source);
    mqtt.handleUpgrade(req, socket, head);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new WebServerError('WEB_LISTEN', err.message, { cause: err })));
    server.listen({ host, port: opts.port }, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const names = [...LOOPBACK, ...(WILDCARD.has(host) ? [] : [host.includes(':') ? `[${host}]` : host])];
  origins = new Set([...names.map((n) => normalizeOrigin(`${scheme}://${n}:${port}`)!), ...extra]);
  hosts = new Set([...origins].map((o) => o.slice(o.indexOf('://') + 3)));
  const shown = WILDCARD.has(host) ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  log.info({ event: 'web.listening', port, tls: !!opts.tls }, 'parent page listening');
  return {
    url: `${normalizeOrigin(`${scheme}://${shown}:${port}`)}/`,
    port,
    origins: [...origins],
    get connections() {
      return mqtt.connections;
    },
    async close() {
      await mqtt.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
