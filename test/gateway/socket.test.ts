// Socket-level defences: packet size guard (unit and with a real oversized PUBLISH), connect timeout, per-address connect rate, full nonce cache [PLK-9] [PLK-12.1].
import { type AddressInfo, createServer, type Socket, connect as tcpConnect } from 'node:net';
import { generate as generatePacket } from 'mqtt-packet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RateLimiter } from '../../gateway/interfaces.ts';
import { MemoryNonceStore } from '../../gateway/limits.ts';
import { limitPackets, MqttHeaderScanner } from '../../gateway/packet-limit.ts';
import { type CryptoSuite, defaultCrypto } from '../../shared/crypto.ts';
import { createConnectToken } from '../../shared/token.ts';
import { clipTopic } from '../../shared/topics.ts';
import { closed, fixedLimiter, type Harness, rawConnect, startHarness } from './helpers/harness.ts';

/** MQTT 3.1.1 CONNECT with client id only (no credentials): 0x10, remaining length, body. */
function connectPacket(clientId: string): Buffer {
  const id = Buffer.from(clientId);
  const body = Buffer.concat([
    Buffer.from([0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 0x02, 0, 30, id.length >> 8, id.length & 0xff]),
    id,
  ]);
  return Buffer.concat([Buffer.from([0x10, body.length]), body]);
}

function varint(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return out;
}

/** Resolves when the socket closes; `ms` only keeps a broken gateway from hanging the test ("never closed"). */
function socketClosed(sock: Socket, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`socket still open after ${ms} ms`)), ms);
    sock.once('close', () => {
      clearTimeout(t);
      resolve();
    });
  });
}

async function violations(h: Harness, reason: string): Promise<number> {
  return (await h.metrics.socketViolations.get()).values.find((v) => v.labels.reason === reason)?.value ?? 0;
}

function openSocket(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = tcpConnect(port, '127.0.0.1', () => resolve(s));
    s.on('error', reject);
  });
}

describe('MqttHeaderScanner', () => {
  it('passes packets split at every byte boundary, refuses oversize, malformed and non-CONNECT first packets', () => {
    const stream = Buffer.concat([
      connectPacket('x'),
      Buffer.from([0x30, ...varint(300)]),
      Buffer.alloc(300, 1),
      Buffer.from([0xc0, 0]),
    ]);
    for (let cut = 1; cut < stream.length; cut += 7) {
      const sc = new MqttHeaderScanner(1000, 100);
      expect(sc.feed(stream.subarray(0, cut))).toBeNull();
      expect(sc.feed(stream.subarray(cut))).toBeNull();
    }
    const sc = new MqttHeaderScanner(1000, 100);
    expect(sc.feed(connectPacket('x'))).toBeNull();
    expect(sc.feed(Buffer.from([0x30, ...varint(1001)]))).toBe('oversize');
    expect(sc.declared).toBe(1001);
    // Refused as soon as the partial varint exceeds the limit (no need to wait for more bytes).
    expect(
      new MqttHeaderScanner(1000, 100).feed(Buffer.from([...connectPacket('x'), 0x30, 0xff, 0xff])),
    ).toBe('oversize');
    expect(
      new MqttHeaderScanner(1 << 30, 100).feed(
        Buffer.from([...connectPacket('x'), 0x30, 0xff, 0xff, 0xff, 0xff, 1]),
      ),
    ).toBe('malformed');
    expect(new MqttHeaderScanner(1000, 100).feed(Buffer.from([0x30, 0]))).toBe('not-connect');
    expect(new MqttHeaderScanner(1000, 100).feed(Buffer.from([0x10, ...varint(101)]))).toBe('oversize');
  });
});

describe('limitPackets write path', () => {
  it('sends the chunks of a corked packet as one socket write, in order', async () => {
    const received: Buffer[] = [];
    const server = createServer((s) => s.on('data', (d: Buffer) => received.push(d)));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const sock = tcpConnect((server.address() as AddressInfo).port, '127.0.0.1');
    await new Promise<void>((r) => sock.once('connect', r));
    sock.setNoDelay(true);
    const writes: number[] = [];
    const orig = sock._writev?.bind(sock);
    sock._writev = (chunks, cb) => {
      writes.push(chunks.length);
      orig?.(chunks, cb);
    };
    const conn = limitPackets(sock, { maxPacketBytes: 1024 });
    conn.cork();
    for (const part of ['ab', 'cd', 'ef', 'gh']) conn.write(Buffer.from(part));
    await new Promise<void>((r) => {
      conn.write(Buffer.from('ij'), () => r());
      conn.uncork();
    });
    await new Promise((r) => setTimeout(r, 50));
    expect(writes).toEqual([5]);
    expect(Buffer.concat(received).toString()).toBe('abcdefghij');
    sock.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  });
});

describe('gateway socket defences', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ maxPacketBytes: 64 * 1024, connectTimeoutMs: 300 });
  });
  afterAll(async () => {
    await h.close();
  });

  it('closes a silent socket by the connect timeout, counted as connect-timeout', async () => {
    const before = await violations(h, 'connect-timeout');
    const sock = await openSocket(h.port());
    await socketClosed(sock, 10_000);
    // Closed by the connect-timeout mechanism (not by the packet guard or an error), and counted once.
    expect(await violations(h, 'connect-timeout')).toBe(before + 1);
  });

  it('closes a socket whose first packet is not CONNECT, or whose CONNECT is huge', async () => {
    const [notConnect, oversize] = [await violations(h, 'not-connect'), await violations(h, 'oversize')];
    const a = await openSocket(h.port());
    a.write(Buffer.from([0x30, 5, 0, 1, 0x61, 1, 2]));
    await socketClosed(a, 10_000);
    expect(await violations(h, 'not-connect')).toBe(notConnect + 1);
    const b = await openSocket(h.port());
    b.write(Buffer.from([0x10, ...varint(50_000)]));
    await socketClosed(b, 10_000);
    expect(await violations(h, 'oversize')).toBe(oversize + 1);
  });

  it('closes an authenticated connection that sends an oversized PUBLISH (real packet)', async () => {
    const f = await h.family();
    const conn = await h.connect(f.toy);
    const before = await violations(h, 'oversize');
    conn.client.publish(clipTopic(f.toy.id), Buffer.alloc(64 * 1024 + 10, 1), { qos: 1 });
    await closed(conn.client);
    expect(await violations(h, 'oversize')).toBe(before + 1);
  });

  it('refuses a raw oversized header before its body arrives', async () => {
    const before = await violations(h, 'oversize');
    const sock = await openSocket(h.port());
    sock.write(connectPacket('abc'));
    sock.write(Buffer.from([0x32, ...varint(200 * 1024 * 1024), 0, 3]));
    await socketClosed(sock, 10_000);
    expect(await violations(h, 'oversize')).toBe(before + 1);
  });
});

/** Polls `read` every 5 ms until it returns true; `ms` only keeps a broken gateway from hanging the test. */
async function until(read: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await read())) {
    if (Date.now() > end) throw new Error(`never: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const gaugeValue = async (g: { get(): Promise<{ values: { value: number }[] }> }): Promise<number> =>
  (await g.get()).values[0]?.value ?? 0;

describe('a CONNECT whose connection closed while it waited (a storm: the toy gave up)', () => {
  it('costs no signature check and no registry read: counted as abandoned, not accepted or refused', async () => {
    // The connect limiter holds every CONNECT until released, as a backlog of connects would.
    let release: () => void = () => {};
    const held = new Promise<void>((r) => {
      release = r;
    });
    let waiting: () => void = () => {};
    const waitingNow = new Promise<void>((r) => {
      waiting = r;
    });
    const real = fixedLimiter();
    const connect: RateLimiter = {
      take: (key, cost, now) => {
        waiting();
        return held.then(() => real.take(key, cost, now));
      },
    };
    const base = defaultCrypto();
    let verifies = 0;
    const crypto: CryptoSuite = {
      ...base,
      name: base.name,
      verify: (pk, msg, sig) => {
        verifies++;
        return base.verify(pk, msg, sig);
      },
    };
    const h = await startHarness({
      limiters: { connect, clips: fixedLimiter(), bytes: fixedLimiter() },
      crypto,
    });
    try {
      const f = await h.family();
      const reads = { n: 0 };
      const getEndpoint = h.store.getEndpoint.bind(h.store);
      h.store.getEndpoint = (id) => {
        reads.n++;
        return getEndpoint(id);
      };
      const sock = await openSocket(h.port());
      await until(async () => (await gaugeValue(h.metrics.sockets)) === 1, 5000, 'the socket counted');
      const token = createConnectToken({
        identity: f.toy,
        gatewayId: h.gatewayIdentity.id,
        now: h.clock.now,
      });
      sock.write(
        generatePacket({
          cmd: 'connect',
          protocolId: 'MQTT',
          protocolVersion: 4,
          clean: true,
          keepalive: 30,
          clientId: f.toy.id,
          username: f.toy.id,
          password: Buffer.from(token.bytes),
        }),
      );
      await waitingNow;
      const before = { verifies, reads: reads.n };
      sock.destroy();
      // The gateway has seen the close once its socket is gone.
      await until(async () => (await gaugeValue(h.metrics.sockets)) === 0, 5000, 'the socket closed');
      release();
      await until(
        async () => (await gaugeValue(h.metrics.connectsAbandoned)) === 1,
        5000,
        'counted abandoned',
      );
      expect(verifies).toBe(before.verifies);
      expect(reads.n).toBe(before.reads);
      expect(await gaugeValue(h.metrics.connectsAccepted)).toBe(0);
      expect((await h.metrics.authFailures.get()).values).toEqual([]);
      expect(h.audit.reasons('auth.refused')).toEqual([]);
      // The same toy connecting normally afterwards is served as ever.
      const ok = await rawConnect(h.port(), {
        clientId: f.toy.id,
        username: f.toy.id,
        password: Buffer.from(
          createConnectToken({ identity: f.toy, gatewayId: h.gatewayIdentity.id, now: h.clock.now }).bytes,
        ),
      });
      expect(ok.ok).toBe(true);
      if (ok.ok) ok.client.end(true);
    } finally {
      release();
      await h.close();
    }
  });
});

describe('connect rate limit and nonce capacity', () => {
  it('answers CONNACK 3 when the source address is over its connect rate or the nonce cache is full', async () => {
    const nonces = new MemoryNonceStore(1);
    const h = await startHarness({
      limiters: {
        connect: fixedLimiter(3),
        clips: fixedLimiter(),
        bytes: fixedLimiter(),
      },
      nonces,
    });
    try {
      const f = await h.family();
      const pw = (id = f.toy) =>
        Buffer.from(
          createConnectToken({ identity: id, gatewayId: h.gatewayIdentity.id, now: h.clock.now }).bytes,
        );
      const ok = await rawConnect(h.port(), { clientId: f.toy.id, username: f.toy.id, password: pw() });
      expect(ok.ok).toBe(true);
      if (ok.ok) ok.client.end(true);
      const full = await rawConnect(h.port(), {
        clientId: f.mum.id,
        username: f.mum.id,
        password: pw(f.mum),
      });
      expect(full.ok ? 0 : full.code).toBe(3);
      expect(h.audit.reasons('auth.refused').at(-1)).toBe('nonce-store-full');
      await rawConnect(h.port(), { clientId: f.mum.id });
      const limited = await rawConnect(h.port(), {
        clientId: f.mum.id,
        username: f.mum.id,
        password: pw(f.mum),
      });
      expect(limited.ok ? 0 : limited.code).toBe(3);
      const m = await h.metrics.authFailures.get();
      expect(m.values.find((v) => v.labels.reason === 'rate-limited')?.value).toBe(1);
    } finally {
      await h.close();
    }
  });
});
