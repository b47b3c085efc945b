// MQTT over WebSocket and the page's web server on the real gateway: the same authentication, ACL, packet scanner, connect rate and audit as TCP; origin, host, subprotocol and per-source refusals; strict headers and nothing served but the build.
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { generate } from 'mqtt-packet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { ConnectRefusedError, connectEndpoint } from '../../device/transport/mqtt-connect.ts';
import { contentSecurityPolicy, startWebServer, type WebServer } from '../../gateway/web.ts';
import { listenWebSocketMqtt, type WebSocketListener } from '../../gateway/websocket.ts';
import { openClip } from '../../shared/envelope.ts';
import { generateIdentity, identityToJson, publicPart } from '../../shared/identity.ts';
import { clipTopic } from '../../shared/topics.ts';
import { fixedLimiter, type Harness, makeClip, startHarness } from '../gateway/helpers/harness.ts';
import { selfSignedCert } from '../helpers/tls.ts';

interface Reply {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
}

function http(url: string, opts: { method?: string; headers?: Record<string, string> } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: opts.method ?? 'GET', headers: opts.headers ?? {} }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        body += d;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Opens a raw WebSocket; resolves with it once open, or with the HTTP status of the refusal. */
function openWs(
  url: string,
  opts: { origin?: string; protocols?: string[]; host?: string } = {},
): Promise<{ ws?: WebSocket; status?: number }> {
  return new Promise((resolve) => {
    const headers: Record<string, string> = {};
    if (opts.host) headers.host = opts.host;
    const ws = new WebSocket(url, opts.protocols ?? ['mqtt'], {
      ...(opts.origin ? { origin: opts.origin } : {}),
      headers,
    });
    ws.on('open', () => resolve({ ws }));
    ws.on('unexpected-response', (_req, res) => {
      resolve({ status: res.statusCode ?? 0 });
      ws.terminate();
    });
    ws.on('error', () => resolve({}));
  });
}

const closed = (ws: WebSocket): Promise<void> =>
  new Promise((resolve) => {
    if (ws.readyState === WebSocket.CLOSED) resolve();
    else ws.once('close', () => resolve());
  });

describe('MQTT over WebSocket (--ws-port)', () => {
  let h: Harness;
  let ws: WebSocketListener;
  beforeAll(async () => {
    h = await startHarness();
    ws = await listenWebSocketMqtt({ gateway: h.gw, port: 0, allowedOrigins: ['http://127.0.0.1:8080'] });
  });
  afterAll(async () => {
    await ws.close();
    await h.close();
  });

  it('authenticates with the signed token and the gateway proof, and delivers a clip toy → parent like TCP', async () => {
    const fam = await h.family();
    const opts = { url: ws.url, gateway: h.gatewayPublic, clock: () => h.clock.now };
    const mum = await connectEndpoint({ ...opts, identity: fam.mum });
    const toy = await connectEndpoint({ ...opts, identity: fam.toy });
    expect(mum.proof.endpointId).toBe(fam.mum.id);
    const got = new Promise<Uint8Array>((resolve) =>
      mum.onInbox((kind, bytes) => {
        if (kind === 'clip') resolve(bytes);
      }),
    );
    const envelope = makeClip(fam.toy, [publicPart(fam.mum)], { now: h.clock.now });
    await toy.publishClip(envelope); // PUBACK: verified and durably stored
    const bytes = await got;
    expect(Buffer.from(bytes).equals(Buffer.from(envelope))).toBe(true);
    expect(openClip(bytes, { recipient: fam.mum, sender: fam.toy }).ogg.length).toBe(2000);
    await Promise.all([mum.close(), toy.close()]);
  });

  it('refuses an unknown endpoint with CONNACK 5, audited with the peer address as source', async () => {
    const stranger = generateIdentity('parent');
    const err = await connectEndpoint({
      url: ws.url,
      identity: stranger,
      gateway: h.gatewayPublic,
      clock: () => h.clock.now,
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConnectRefusedError);
    expect((err as ConnectRefusedError).returnCode).toBe(5);
    const row = h.audit.events.find((e) => e.kind === 'auth.refused' && e.detail?.reason === 'unknown-id');
    expect(row?.detail?.source).toMatch(/127\.0\.0\.1$/);
  });

  it('applies the publish ACL: a clip on another endpoint’s topic closes the connection', async () => {
    const fam = await h.family();
    const toy = await connectEndpoint({
      url: ws.url,
      identity: fam.toy,
      gateway: h.gatewayPublic,
      clock: () => h.clock.now,
    });
    const gone = new Promise<void>((resolve) => toy.client.once('close', () => resolve()));
    toy.client.publish(clipTopic(fam.mum.id), Buffer.from(makeClip(fam.toy, [publicPart(fam.mum)])), {
      qos: 1,
    });
    await gone;
    expect(h.audit.reasons('clip.refused')).toContain('topic');
  });

  it('puts the packet-size scanner in front of the broker: a CONNECT announcing 200 MB is cut off, counted and audited', async () => {
    const { ws: sock } = await openWs(ws.url);
    expect(sock).toBeDefined();
    // Fixed header of a CONNECT (0x10) with remaining length 200 000 000, nothing else.
    sock!.send(Buffer.from([0x10, 0x80, 0x84, 0xaf, 0x5f]));
    await closed(sock!);
    const m = await h.metrics.socketViolations.get();
    expect(m.values.find((v) => v.labels.reason === 'oversize')?.value).toBeGreaterThanOrEqual(1);
  });

  it('closes a WebSocket that sends more than a CONNECT’s worth before the gateway answered, before `ws` has assembled it', async () => {
    const before = (await h.metrics.socketViolations.get()).values.reduce((n, v) => n + v.value, 0);
    const { ws: sock } = await openWs(ws.url);
    // One 200 kB message: `ws` would hold all of it before the packet scanner saw a byte.
    const body = Buffer.alloc(200_000, 0x41);
    body.set([0x10, 0xc0, 0x9a, 0x0c], 0); // a CONNECT announcing 200 000 bytes
    sock!.send(body);
    await closed(sock!);
    const after = (await h.metrics.socketViolations.get()).values.reduce((n, v) => n + v.value, 0);
    expect(after).toBe(before); // cut off by the byte count, not by the scanner: the message never formed
  });

  it('accepts clients without an Origin and the listed page origins, refuses other origins (403) and clients not offering "mqtt" (400)', async () => {
    const listed = await openWs(ws.url, { origin: 'http://127.0.0.1:8080' });
    expect(listed.ws).toBeDefined();
    listed.ws!.terminate();
    expect((await openWs(ws.url, { origin: 'https://evil.example' })).status).toBe(403);
    expect((await openWs(ws.url, { protocols: ['chat'] })).status).toBe(400);
    expect((await http(ws.url.replace('ws:', 'http:'))).status).toBe(426);
  });
});

describe('limits on WebSocket connections', () => {
  let h: Harness;
  let ws: WebSocketListener;
  beforeAll(async () => {
    // One CONNECT per source address, ever: the gateway's own per-source connect limiter [PLK-9.2].
    h = await startHarness({
      limiters: { connect: fixedLimiter(1), clips: fixedLimiter(), bytes: fixedLimiter() },
    });
    ws = await listenWebSocketMqtt({ gateway: h.gw, port: 0, maxPerSource: 3, upgradesPerSecond: 1000 });
  });
  afterAll(async () => {
    await ws.close();
    await h.close();
  });

  it('the per-source CONNECT rate limit of TCP applies (CONNACK 3), and open WebSockets per source are capped (429)', async () => {
    const fam = await h.family();
    const opts = { url: ws.url, gateway: h.gatewayPublic, clock: () => h.clock.now };
    const first = await connectEndpoint({ ...opts, identity: fam.mum });
    const err = await connectEndpoint({ ...opts, identity: fam.dad }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((err as ConnectRefusedError).returnCode).toBe(3);
    const open = [await openWs(ws.url), await openWs(ws.url)];
    expect(open.every((o) => o.ws)).toBe(true);
    expect((await openWs(ws.url)).status).toBe(429);
    for (const o of open) o.ws!.terminate();
    await first.close();
  });
});

describe('the parent page’s web server (--web-port)', () => {
  let h: Harness;
  let web: WebServer;
  let origin: string;
  beforeAll(async () => {
    h = await startHarness();
    web = await startWebServer({ gateway: h.gw, identity: h.gatewayPublic, port: 0 });
    origin = web.url.replace(/\/$/, '');
  });
  afterAll(async () => {
    await web.close();
    await h.close();
  });

  it('serves the built page with a strict CSP and no external resource, and the gateway identity', async () => {
    const index = await http(`${origin}/`);
    expect(index.status).toBe(200);
    expect(index.headers['content-type']).toBe('text/html; charset=utf-8');
    const csp = contentSecurityPolicy(`${origin.replace('http:', 'ws:')}`);
    expect(index.headers['content-security-policy']).toBe(csp);
    expect(csp).toBe(
      `default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; media-src blob:; connect-src 'self' ${origin.replace('http:', 'ws:')}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`,
    );
    expect(index.headers).toMatchObject({
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
      'x-frame-options': 'DENY',
      'cross-origin-opener-policy': 'same-origin',
    });
    // No inline script or style to allow, and nothing from another origin.
    expect(index.body).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>|<style|\bstyle=|\bon[a-z]+=/i);
    expect(index.body).not.toMatch(/(src|href)=["']?(https?:)?\/\//i);
    const app = await http(`${origin}/app.js`);
    expect(app.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect(app.body).not.toMatch(
      /https?:\/\/(?!www\.w3\.org)[a-z0-9.-]+\.[a-z]{2,}\/[^\s"'`]*\.(js|css|woff2?)\b/i,
    );
    expect((await http(`${origin}/gateway.json`)).body).toBe(identityToJson(h.gatewayPublic));
    expect((await http(`${origin}/`, { method: 'HEAD' })).body).toBe('');
  });

  it('serves nothing else: other paths 404, other methods 405, other Host names 421 (DNS rebinding)', async () => {
    for (const path of [
      '/manifest.json',
      '/../package.json',
      '/%2e%2e/package.json',
      '/dist/web/app.js',
      '/index.html/',
      '/mqtt',
    ])
      expect((await http(`${origin}${path}`)).status, path).toBe(404);
    expect((await http(`${origin}/`, { method: 'POST' })).status).toBe(405);
    expect((await http(`${origin}/`, { headers: { host: 'evil.example' } })).status).toBe(421);
    expect((await http(`${origin}/`, { headers: { host: `localhost:${web.port}` } })).status).toBe(200);
  });

  it('takes MQTT WebSockets at /mqtt from the page’s own origin only', async () => {
    const url = `${origin.replace('http:', 'ws:')}/mqtt`;
    const own = await openWs(url, { origin });
    expect(own.ws).toBeDefined();
    // The gateway answers a CONNECT without credentials with CONNACK 4, as on TCP.
    const answer = new Promise<Buffer>((resolve) => own.ws!.once('message', (d: Buffer) => resolve(d)));
    own.ws!.send(
      generate({
        cmd: 'connect',
        protocolId: 'MQTT',
        protocolVersion: 4,
        clientId: 'x',
        clean: true,
        keepalive: 30,
      }),
    );
    expect([...(await answer)]).toEqual([0x20, 0x02, 0x00, 0x04]);
    own.ws!.terminate();
    expect((await openWs(url)).status).toBe(403); // no Origin: not a page of this server
    expect((await openWs(url, { origin: 'https://evil.example' })).status).toBe(403);
    expect((await openWs(url, { origin, host: 'evil.example' })).status).toBe(421);
    expect((await openWs(`${origin.replace('http:', 'ws:')}/other`, { origin })).status).toBe(404);
  });
});

describe('with TLS: the page over HTTPS, MQTT over wss', () => {
  let h: Harness;
  let web: WebServer;
  let ws: WebSocketListener;
  let ca: string;
  beforeAll(async () => {
    h = await startHarness();
    const files = selfSignedCert(h.dir, 'gw');
    ca = readFileSync(files.cert, 'utf8');
    const tls = { cert: ca, key: readFileSync(files.key, 'utf8') };
    web = await startWebServer({ gateway: h.gw, identity: h.gatewayPublic, port: 0, tls });
    ws = await listenWebSocketMqtt({ gateway: h.gw, port: 0, tls });
  });
  afterAll(async () => {
    await ws.close();
    await web.close();
    await h.close();
  });

  it('serves the page over HTTPS with connect-src for wss, and a pinned endpoint delivers a clip over wss', async () => {
    expect(web.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+\/$/);
    const csp = await new Promise<string>((resolve, reject) => {
      const req = httpsRequest(web.url, { ca }, (res) => {
        res.resume();
        resolve(String(res.headers['content-security-policy']));
      });
      req.on('error', reject);
      req.end();
    });
    expect(csp).toContain(`connect-src 'self' wss://127.0.0.1:${web.port};`);
    expect(ws.url).toMatch(/^wss:\/\//);
    const fam = await h.family();
    const opts = { url: ws.url, gateway: h.gatewayPublic, clock: () => h.clock.now, ca };
    const mum = await connectEndpoint({ ...opts, identity: fam.mum });
    const toy = await connectEndpoint({ ...opts, identity: fam.toy });
    const got = new Promise<Uint8Array>((resolve) =>
      mum.onInbox((kind, bytes) => {
        if (kind === 'clip') resolve(bytes);
      }),
    );
    await toy.publishClip(makeClip(fam.toy, [publicPart(fam.mum)], { now: h.clock.now }));
    expect(openClip(await got, { recipient: fam.mum, sender: fam.toy }).ogg.length).toBe(2000);
    await Promise.all([mum.close(), toy.close()]);
  });
});
