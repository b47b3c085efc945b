// Attacks by volume on one gateway: a SUBSCRIBE of 30,000 refused filters, a PINGREQ flood, bad CONNECTs from one and many addresses, and one key exhausting its nonce quota — each refused, counted, audited within budget, while real clips still flow [PLK-3.5][PLK-4.3][PLK-9.2][PLK-12.8].
import { type Socket, connect as tcpConnect } from 'node:net';
import { generate, parser as mqttParser, type Packet } from 'mqtt-packet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConnectRefusedError } from '../../device/transport/mqtt-connect.ts';
import { MemoryNonceStore } from '../../gateway/limits.ts';
import { decodeClip } from '../../shared/envelope.ts';
import type { PrivateIdentity } from '../../shared/identity.ts';
import { createConnectToken } from '../../shared/token.ts';
import { inboxTopic } from '../../shared/topics.ts';
import {
  type Family,
  type Harness,
  type HarnessOptions,
  inbox,
  makeClip,
  sleep,
  startHarness,
} from '../gateway/helpers/harness.ts';

interface MetricReader {
  get(): Promise<{ values: { value: number; labels: Partial<Record<string, string | number>> }[] }>;
}

/** Only keeps a broken gateway from hanging a test; nothing is asserted about how long anything takes. */
const HANG_GUARD_MS = 10_000;

/** A raw MQTT 3.1.1 connection: packets crafted with mqtt-packet, every packet the gateway sends parsed and kept. */
class RawMqtt {
  readonly received: Packet[] = [];
  private readonly waiters = new Set<() => void>();
  readonly closed: Promise<void>;
  private isClosed = false;

  private constructor(readonly socket: Socket) {
    const parse = mqttParser({ protocolVersion: 4 });
    parse.on('packet', (p: Packet) => {
      this.received.push(p);
      this.wake();
    });
    parse.on('error', () => {});
    socket.on('data', (d: Buffer) => parse.parse(d));
    socket.on('error', () => {});
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.isClosed = true;
        this.wake();
        resolve();
      }),
    );
  }

  static open(port: number, localAddress?: string): Promise<RawMqtt> {
    return new Promise((resolve, reject) => {
      const s = tcpConnect({ port, host: '127.0.0.1', ...(localAddress ? { localAddress } : {}) }, () =>
        resolve(new RawMqtt(s)),
      );
      s.once('error', reject);
    });
  }

  private wake(): void {
    for (const w of this.waiters) w();
  }

  get open(): boolean {
    return !this.isClosed;
  }

  write(bytes: Buffer): void {
    if (!this.socket.destroyed) this.socket.write(bytes);
  }

  send(packet: Packet): void {
    this.write(generate(packet));
  }

  /** The first received packet of `cmd` (rejects when the socket closes first, or after the hang guard). */
  next<C extends Packet['cmd']>(cmd: C): Promise<Extract<Packet, { cmd: C }>> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const p = this.received.find((x) => x.cmd === cmd);
        if (p) return done(() => resolve(p as Extract<Packet, { cmd: C }>));
        if (this.isClosed) return done(() => reject(new Error(`closed before a ${cmd}`)));
      };
      const t = setTimeout(() => done(() => reject(new Error(`no ${cmd}`))), HANG_GUARD_MS);
      const done = (f: () => void) => {
        clearTimeout(t);
        this.waiters.delete(check);
        f();
      };
      this.waiters.add(check);
      check();
    });
  }

  /** Resolves once the gateway has closed the socket. */
  async waitClosed(): Promise<void> {
    let t: NodeJS.Timeout | undefined;
    const guard = new Promise<never>((_, reject) => {
      t = setTimeout(() => reject(new Error('the gateway never closed the connection')), HANG_GUARD_MS);
    });
    try {
      await Promise.race([this.closed, guard]);
    } finally {
      clearTimeout(t);
    }
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** An MQTT 3.1.1 CONNECT of `identity` (username = client id = its id) with `password`. */
function connectPacket(identity: PrivateIdentity, password: Uint8Array): Packet {
  return {
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: 4,
    clientId: identity.id,
    username: identity.id,
    password: Buffer.from(password),
    clean: true,
    keepalive: 30,
  };
}

function goodToken(h: Harness, identity: PrivateIdentity): Uint8Array {
  return createConnectToken({ identity, gatewayId: h.gatewayIdentity.id, now: h.clock.now }).bytes;
}

/** A token that decodes, is bound to this gateway and endpoint and is fresh, but whose signature does not verify. */
function badSignatureToken(h: Harness, identity: PrivateIdentity): Uint8Array {
  const t = goodToken(h, identity);
  t[t.length - 1]! ^= 0x01;
  return t;
}

/** An authenticated raw connection (CONNACK 0 checked). */
async function rawAuthenticated(h: Harness, identity: PrivateIdentity): Promise<RawMqtt> {
  const raw = await RawMqtt.open(h.port());
  raw.send(connectPacket(identity, goodToken(h, identity)));
  const ack = await raw.next('connack');
  expect(ack.returnCode).toBe(0);
  return raw;
}

/** Sum of a prom-client counter's values whose labels match `labels`. */
async function counter(c: MetricReader, labels: Record<string, string> = {}): Promise<number> {
  const m = await c.get();
  return m.values
    .filter((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val))
    .reduce((n, v) => n + v.value, 0);
}

/** A legitimate toy → parent clip: stored (PUBACK) and delivered to the parent's inbox. */
async function clipRoundTrip(h: Harness, f: Family): Promise<void> {
  const [toy, mum] = await Promise.all([h.connect(f.toy), h.connect(f.mum)]);
  const box = inbox(mum);
  const env = makeClip(f.toy, [f.mum], { now: h.clock.now });
  await toy.publishClip(env);
  await box.wait(1, 'clip', HANG_GUARD_MS);
  expect(decodeClip(box.clips[0]!).header.clipId).toEqual(decodeClip(env).header.clipId);
  await Promise.all([toy.close(), mum.close()]);
}

/** Polls `cond` (a hang guard, not a timing assertion); returns its last value. */
async function settle(cond: () => boolean, ms = 2000): Promise<boolean> {
  const t0 = Date.now();
  while (!cond() && Date.now() - t0 < ms) await sleep(10);
  return cond();
}

function withHarness(options: HarnessOptions = {}): () => Harness {
  let h: Harness | undefined;
  beforeAll(async () => {
    h = await startHarness(options);
  });
  afterAll(async () => {
    await h?.close();
  });
  return () => h!;
}

describe('SUBSCRIBE flood: one packet with 30,000 refused filters', () => {
  const get = withHarness();

  it('refuses the ~1 MB SUBSCRIBE at its header, before the broker parses a filter (oversize), and clips still flow', async () => {
    const h = get();
    const f = await h.family();
    const other = await h.family();
    const raw = await rawAuthenticated(h, f.toy);
    const filters = Array.from({ length: 30_000 }, (_, i) => ({
      topic:
        i % 3 === 0 ? `$SYS/x${i}` : i % 3 === 1 ? `plk/1/+/inbox${i}` : `${inboxTopic(other.mum.id)}/${i}`,
      qos: 0 as const,
    }));
    raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: filters });
    await raw.waitClosed();

    // [PLK-9.2] a control packet over 4 KiB is refused at the socket: no filter is ever checked.
    expect(await counter(h.metrics.socketViolations, { reason: 'oversize' })).toBe(1);
    expect(await counter(h.metrics.subscribeRefusals)).toBe(0);
    await settle(() => h.audit.events.some((e) => e.kind === 'socket.violation'));
    await clipRoundTrip(h, other);
    expect(h.audit.events.filter((e) => e.kind === 'socket.violation')).toHaveLength(1);
    expect(h.audit.events.filter((e) => e.kind === 'subscribe.refused')).toHaveLength(0);
    expect(h.audit.events.length).toBeLessThan(50);
  });

  it('refuses a small SUBSCRIBE with more than 8 filters at the socket (subscribe-flood)', async () => {
    const h = get();
    const f = await h.family();
    const other = await h.family();
    const raw = await rawAuthenticated(h, f.toy);
    const filters = Array.from({ length: 9 }, (_, i) => ({ topic: `$SYS/${i}`, qos: 0 as const }));
    raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: filters });
    await raw.waitClosed();
    expect(await counter(h.metrics.socketViolations, { reason: 'subscribe-flood' })).toBe(1);
    expect(await counter(h.metrics.subscribeRefusals)).toBe(0);
    await clipRoundTrip(h, other);
  });

  it('closes a connection at its 5th refused filter over several SUBSCRIBEs, with at most 4 audit rows of them', async () => {
    const h = get();
    const f = await h.family();
    const other = await h.family();
    const raw = await rawAuthenticated(h, f.toy);
    const before = await counter(h.metrics.subscribeRefusals);
    for (let i = 0; i < 5 && raw.open; i++)
      raw.send({ cmd: 'subscribe', messageId: i + 1, subscriptions: [{ topic: `$SYS/${i}`, qos: 1 }] });
    await raw.waitClosed();
    expect(await counter(h.metrics.subscribeRefusals)).toBe(before + 5);
    await settle(() => h.audit.events.some((e) => e.kind === 'socket.violation'));
    const rows = h.audit.events.filter((e) => e.kind === 'subscribe.refused' && e.endpoint === f.toy.id);
    expect(rows.length).toBeGreaterThan(0);
    expect(rows.length).toBeLessThanOrEqual(4);
    await clipRoundTrip(h, other);
  });
});

describe('PINGREQ flood on an authenticated connection', () => {
  const get = withHarness();

  it('closes the flooding connection (control-flood), audits it, while another endpoint’s clip round trip completes', async () => {
    const h = get();
    const f = await h.family();
    const other = await h.family();
    const raw = await rawAuthenticated(h, f.toy);
    const ping = generate({ cmd: 'pingreq' });
    const flood = (async () => {
      for (let i = 0; i < 10_000 && raw.open; i++) {
        raw.write(ping);
        if (i % 500 === 499) await sleep(0); // let the other endpoint's packets interleave
      }
      await raw.waitClosed();
    })();
    await Promise.all([flood, clipRoundTrip(h, other)]);

    expect(raw.open).toBe(false);
    expect(await counter(h.metrics.socketViolations, { reason: 'control-flood' })).toBe(1);
    // At most the burst (30) was answered before the connection was closed.
    expect(raw.received.filter((p) => p.cmd === 'pingresp').length).toBeLessThanOrEqual(30);
    // [PLK-12.8] socket violations are audited, one row each within the budget.
    await settle(() => h.audit.events.some((e) => e.detail?.reason === 'control-flood'));
    const rows = h.audit.events.filter((e) => e.detail?.reason === 'control-flood');
    expect(rows.length, 'audit rows for the control-flood socket violation').toBeGreaterThanOrEqual(1);
    expect(rows.length).toBeLessThanOrEqual(1);
  });
});

describe('bad CONNECTs (bad signatures) from one address and from several loopback addresses', () => {
  const BUDGET = {
    perSourceBurst: 3,
    perSourcePerMinute: 1,
    totalBurst: 8,
    totalPerSecond: 1,
    summaryEveryMs: 0,
  } as const;
  const get = withHarness({ auditBudget: BUDGET });

  it('refuses every one with CONNACK 4, writes rows only within the budget, and summarises the rest in audit.suppressed on close', async () => {
    const h = get();
    const f = await h.family();
    const other = await h.family();
    const plan: [string, number][] = [
      ['127.0.0.1', 12],
      ['127.0.0.2', 4],
      ['127.0.0.3', 4],
      ['127.0.0.4', 4],
      ['127.0.0.5', 4],
    ];
    const attempts = plan.reduce((n, [, k]) => n + k, 0);
    for (const [address, n] of plan) {
      await Promise.all(
        Array.from({ length: n }, async () => {
          const raw = await RawMqtt.open(h.port(), address);
          raw.send(connectPacket(f.toy, badSignatureToken(h, f.toy)));
          const ack = await raw.next('connack');
          expect(ack.returnCode).toBe(4);
          raw.destroy();
        }),
      );
    }
    expect(await counter(h.metrics.authFailures, { reason: 'bad-signature' })).toBe(attempts);

    // A legitimate endpoint on the same (flooded) address still gets through.
    await clipRoundTrip(h, other);

    const rows = h.audit.events.filter((e) => e.kind === 'auth.refused');
    expect(rows.every((e) => e.detail?.reason === 'bad-signature')).toBe(true);
    expect(rows.length).toBeGreaterThan(0);
    expect(rows.length).toBeLessThanOrEqual(BUDGET.totalBurst);
    for (const [address] of plan) {
      expect(rows.filter((e) => e.detail?.source === address).length).toBeLessThanOrEqual(
        BUDGET.perSourceBurst,
      );
    }
    expect(rows.filter((e) => e.detail?.source === '127.0.0.2').length).toBeGreaterThan(0);
    expect(h.audit.events.some((e) => e.kind === 'audit.suppressed')).toBe(false);

    // Closing the gateway stops the budget and flushes one summary row with the right total.
    await h.gw.close();
    const summaries = h.audit.events.filter((e) => e.kind === 'audit.suppressed');
    expect(summaries).toHaveLength(1);
    expect(summaries[0]!.detail?.total).toBe(attempts - rows.length);
    expect(summaries[0]!.detail?.['auth.refused.bad-signature']).toBe(attempts - rows.length);
    expect(JSON.stringify(summaries[0]!.detail)).not.toMatch(/127\.0\.0|[a-z2-7]{32}/);
  });
});

describe('nonce quota: one key connecting more often than its quota within the token window', () => {
  const QUOTA = 3;
  const get = withHarness({ nonces: new MemoryNonceStore(10_000, { perEndpoint: QUOTA }) });

  it('refuses the connect past the quota with CONNACK 3 (nonce-quota), while other endpoints connect and deliver', async () => {
    const h = get();
    const f = await h.family();
    const other = await h.family();
    for (let i = 0; i < QUOTA; i++) await (await h.connect(f.toy)).close();
    const err = await h.connect(f.toy).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConnectRefusedError);
    expect((err as ConnectRefusedError).returnCode).toBe(3);
    expect(h.audit.reasons('auth.refused')).toEqual(['nonce-quota']);
    expect(h.audit.events.find((e) => e.kind === 'auth.refused')?.endpoint).toBe(f.toy.id);
    expect(await counter(h.metrics.authFailures, { reason: 'nonce-quota' })).toBe(1);

    // Another endpoint (and another family's toy → parent clip) is not affected.
    await (await h.connect(f.mum)).close();
    await clipRoundTrip(h, other);

    // Once its oldest nonces leave the window, the key may connect again.
    h.clock.now += 60_001;
    await clipRoundTrip(h, f);
    expect(h.audit.reasons('auth.refused')).toEqual(['nonce-quota']);
  });
});
