// MQTT attacks on the real gateway — anonymous CONNECTs, wildcard/$SYS/foreign subscriptions, client-id takeover, envelope replay, cross-family clips and relays, oversize packets, slowloris and malformed packets of every type: each refused, counted, audited within bounds, while a real toy → parent clip still goes through [PLK-3][PLK-4][PLK-8][PLK-9.2][PLK-12].
import { type Socket, connect as tcpConnect } from 'node:net';
import { generate, parser as mqttParser, type Packet } from 'mqtt-packet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectEndpoint, type EndpointConnection } from '../../device/transport/mqtt-connect.ts';
import type { AuditEvent } from '../../gateway/interfaces.ts';
import { toHex } from '../../shared/bytes.ts';
import { decodeClip } from '../../shared/envelope.ts';
import type { PrivateIdentity } from '../../shared/identity.ts';
import { seededRandom } from '../../shared/random.ts';
import { createConnectToken } from '../../shared/token.ts';
import { clipTopic, inboxTopic } from '../../shared/topics.ts';
import {
  closed,
  type Harness,
  type HarnessOptions,
  inbox,
  makeClip,
  rawConnect,
  sleep,
  startHarness,
} from '../gateway/helpers/harness.ts';

/** Only keeps a broken gateway from hanging a test; nothing is asserted about how long anything takes. */
const HANG_GUARD_MS = 10_000;
/** An audit budget no test here exhausts, so that every refusal is expected to be exactly one row [PLK-12.8]. */
const ROOMY_AUDIT = { perSourceBurst: 10_000, totalBurst: 10_000, summaryEveryMs: 0 } as const;

interface MetricReader {
  get(): Promise<{ values: { value: number; labels: Partial<Record<string, string | number>> }[] }>;
}

/** Sum of a prom-client counter's values whose labels match `labels`. */
async function counter(c: MetricReader, labels: Record<string, string> = {}): Promise<number> {
  const m = await c.get();
  return m.values
    .filter((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val))
    .reduce((n, v) => n + v.value, 0);
}

/** A raw MQTT 3.1.1 connection: bytes or mqtt-packet packets out, every packet the gateway sends parsed and kept. */
class RawMqtt {
  readonly received: Packet[] = [];
  private readonly waiters = new Set<() => void>();
  private readonly closedPromise: Promise<void>;
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
    this.closedPromise = new Promise((resolve) =>
      socket.once('close', () => {
        this.isClosed = true;
        this.wake();
        resolve();
      }),
    );
  }

  static open(port: number): Promise<RawMqtt> {
    return new Promise((resolve, reject) => {
      const s = tcpConnect({ port, host: '127.0.0.1' }, () => resolve(new RawMqtt(s)));
      s.once('error', reject);
    });
  }

  private wake(): void {
    for (const w of this.waiters) w();
  }

  get open(): boolean {
    return !this.isClosed;
  }

  write(bytes: Uint8Array): void {
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

  /** Resolves once the gateway has closed the socket (rejects after the hang guard). */
  async waitClosed(): Promise<void> {
    let t: NodeJS.Timeout | undefined;
    const guard = new Promise<never>((_, reject) => {
      t = setTimeout(() => reject(new Error('the gateway never closed the connection')), HANG_GUARD_MS);
    });
    try {
      await Promise.race([this.closedPromise, guard]);
    } finally {
      clearTimeout(t);
    }
  }

  destroy(): void {
    this.socket.destroy();
  }
}

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

function goodToken(h: Harness, identity: PrivateIdentity, now = h.clock.now): Uint8Array {
  return createConnectToken({ identity, gatewayId: h.gatewayIdentity.id, now }).bytes;
}

/** A raw connection that passed authentication (CONNACK 0 checked). */
async function rawAuthenticated(h: Harness, identity: PrivateIdentity): Promise<RawMqtt> {
  const raw = await RawMqtt.open(h.port());
  raw.send(connectPacket(identity, goodToken(h, identity)));
  const ack = await raw.next('connack');
  expect(ack.returnCode).toBe(0);
  return raw;
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

const clipIdOf = (env: Uint8Array): string => toHex(decodeClip(env).header.clipId);

/** Sequence numbers for every clip these tests seal: strictly increasing across the whole file [PLK-8.1]. */
let nextSequence = 1;
const seq = (): number => nextSequence++;

/**
 * A legitimate toy → parent clip, end to end: a fresh family, the toy publishes (PUBACK = durably
 * stored), the parent's inbox receives it, and the accepted and forwarded counters move.
 */
async function legitimateClip(h: Harness): Promise<void> {
  const f = await h.family();
  const accepted = await counter(h.metrics.clipsAccepted);
  const forwarded = await counter(h.metrics.clipsForwarded);
  const [toy, mum] = await Promise.all([h.connect(f.toy), h.connect(f.mum)]);
  const box = inbox(mum);
  const env = makeClip(f.toy, [f.mum], { now: h.clock.now, sequence: seq() });
  await toy.publishClip(env);
  await box.wait(1, 'clip', HANG_GUARD_MS);
  expect(box.clips.map(clipIdOf)).toEqual([clipIdOf(env)]);
  expect(await counter(h.metrics.clipsAccepted)).toBe(accepted + 1);
  expect(await counter(h.metrics.clipsForwarded)).toBe(forwarded + 1);
  await Promise.all([toy.close(), mum.close()]);
}

/** Publishes with `publish` and expects a refusal: the connection is closed and no PUBACK ever came. */
async function expectRefusedPublish(
  conn: EndpointConnection,
  publish: (c: EndpointConnection) => Promise<void>,
): Promise<void> {
  const pubacks: Packet[] = [];
  conn.client.on('packetreceive', (p) => {
    if (p.cmd === 'puback') pubacks.push(p as Packet);
  });
  const outcome = publish(conn).then(
    () => 'puback',
    () => 'failed',
  );
  await closed(conn.client, HANG_GUARD_MS);
  conn.client.end(true);
  expect(await outcome).toBe('failed');
  expect(pubacks).toEqual([]);
}

/** Polls `cond` (a hang guard, not a timing assertion); returns its last value. */
async function settle(cond: () => boolean, ms = 1000): Promise<boolean> {
  const t0 = Date.now();
  while (!cond() && Date.now() - t0 < ms) await sleep(10);
  return cond();
}

const rowsWith = (h: Harness, pred: (e: AuditEvent) => boolean): AuditEvent[] => h.audit.events.filter(pred);
const reasonRows = (h: Harness, reason: string, kind?: string): AuditEvent[] =>
  rowsWith(h, (e) => e.detail?.reason === reason && (kind === undefined || e.kind === kind));

function withHarness(options: HarnessOptions = {}): () => Harness {
  let h: Harness | undefined;
  beforeAll(async () => {
    h = await startHarness({ auditBudget: ROOMY_AUDIT, ...options });
  });
  afterAll(async () => {
    await h?.close();
  });
  return () => h!;
}

// ---------------------------------------------------------------------------------------------

describe('anonymous CONNECT', () => {
  const get = withHarness();

  it('refuses a CONNECT without credentials, with a client id only, and with a username only (CONNACK 4, anonymous): counted, audited, clips still flow', async () => {
    const h = get();
    const f = await h.family();
    const attempts = [{ clientId: '' }, { clientId: f.toy.id }, { clientId: f.toy.id, username: f.toy.id }];
    for (const opts of attempts) {
      const r = await rawConnect(h.port(), opts);
      expect(r.ok).toBe(false);
      expect(r.ok ? 0 : r.code).toBe(4);
    }
    expect(await counter(h.metrics.authFailures, { reason: 'anonymous' })).toBe(attempts.length);
    expect(await counter(h.metrics.connectsAccepted)).toBe(0);
    await settle(() => h.audit.reasons('auth.refused').length >= attempts.length);
    expect(h.audit.reasons('auth.refused')).toEqual(attempts.map(() => 'anonymous'));
    // An anonymous refusal names no endpoint: there is no one to blame but the address.
    expect(rowsWith(h, (e) => e.kind === 'auth.refused').every((e) => e.endpoint === undefined)).toBe(true);
    await legitimateClip(h);
  });
});

describe('subscriptions to #, +, $SYS/# and another endpoint’s inbox', () => {
  const get = withHarness();

  it('answers SUBACK 0x80 for each, grants the own inbox at QoS 1, delivers the victim’s clip to the victim only, and closes the connection at the fifth refused filter (subscribe-flood)', async () => {
    const h = get();
    const f = await h.family();
    const victim = await h.family();
    const raw = await rawAuthenticated(h, f.toy);
    const refused: [string, string][] = [
      ['#', 'wildcard'],
      ['plk/1/+/inbox', 'wildcard'],
      ['$SYS/#', 'sys'],
      [inboxTopic(victim.mum.id), 'not-own-inbox'],
    ];
    let messageId = 1;
    for (const [topic] of refused) {
      raw.received.length = 0;
      raw.send({ cmd: 'subscribe', messageId, subscriptions: [{ topic, qos: 1 }] });
      const ack = await raw.next('suback');
      expect(ack.messageId).toBe(messageId++);
      expect(ack.granted).toEqual([0x80]);
    }
    // Four refusals are allowed [PLK-4.3]: the connection is still open and its own inbox is granted at QoS 1.
    raw.received.length = 0;
    raw.send({ cmd: 'subscribe', messageId, subscriptions: [{ topic: inboxTopic(f.toy.id), qos: 0 }] });
    expect((await raw.next('suback')).granted).toEqual([1]);
    expect(raw.open).toBe(true);

    // The victim's clip goes to the victim's inbox, and to nobody who asked for `#` or for that inbox.
    const [victimToy, victimMum] = await Promise.all([h.connect(victim.toy), h.connect(victim.mum)]);
    const box = inbox(victimMum);
    const env = makeClip(victim.toy, [victim.mum], { now: h.clock.now, sequence: seq() });
    await victimToy.publishClip(env);
    await box.wait(1, 'clip', HANG_GUARD_MS);
    const leaked = raw.received.filter(
      (p) =>
        p.cmd === 'publish' && Buffer.from(p.payload as Buffer).includes(Buffer.from(env.subarray(0, 64))),
    );
    expect(leaked).toEqual([]);

    // The fifth refused filter closes the connection [PLK-4.3].
    raw.send({
      cmd: 'subscribe',
      messageId: ++messageId,
      subscriptions: [{ topic: 'plk/1/+/clip', qos: 1 }],
    });
    await raw.waitClosed();

    expect(await counter(h.metrics.subscribeRefusals, { reason: 'wildcard' })).toBe(3);
    expect(await counter(h.metrics.subscribeRefusals, { reason: 'sys' })).toBe(1);
    expect(await counter(h.metrics.subscribeRefusals, { reason: 'not-own-inbox' })).toBe(1);
    expect(await counter(h.metrics.socketViolations, { reason: 'subscribe-flood' })).toBe(1);
    // [PLK-12.8] one row per refused filter, at most the 4 allowed ones; never the victim's clip.
    await settle(() => h.audit.reasons('subscribe.refused').length >= 4);
    const rows = rowsWith(h, (e) => e.kind === 'subscribe.refused');
    expect(rows.map((e) => e.detail?.reason)).toEqual(refused.map(([, reason]) => reason));
    expect(rows.every((e) => e.endpoint === f.toy.id)).toBe(true);
    await Promise.all([victimToy.close(), victimMum.close()]);
    await legitimateClip(h);
  });

  it('one SUBSCRIBE asking for six forbidden filters at once is closed (subscribe-flood) with at most 4 audit rows', async () => {
    const h = get();
    const f = await h.family();
    const other = await h.family();
    const violations = await counter(h.metrics.socketViolations, { reason: 'subscribe-flood' });
    const refusals = await counter(h.metrics.subscribeRefusals);
    const rowsBefore = rowsWith(h, (e) => e.kind === 'subscribe.refused').length;
    const raw = await rawAuthenticated(h, f.dad);
    const topics = ['#', '+', '$SYS/#', inboxTopic(other.toy.id), clipTopic(other.toy.id), 'plk/1/#'];
    raw.send({ cmd: 'subscribe', messageId: 7, subscriptions: topics.map((topic) => ({ topic, qos: 1 })) });
    await raw.waitClosed();
    expect(await counter(h.metrics.socketViolations, { reason: 'subscribe-flood' })).toBe(violations + 1);
    expect(await counter(h.metrics.subscribeRefusals)).toBe(refusals + topics.length);
    await settle(() => rowsWith(h, (e) => e.kind === 'subscribe.refused').length >= rowsBefore + 4);
    const rows = rowsWith(h, (e) => e.kind === 'subscribe.refused' && e.endpoint === f.dad.id);
    expect(rows.length).toBeGreaterThan(0);
    expect(rows.length).toBeLessThanOrEqual(4);
    await legitimateClip(h);
  });
});

describe('client id takeover', () => {
  const get = withHarness();

  it('an impostor with the victim’s id but a wrong token never kicks the real toy; a valid reconnect of the real toy takes over', async () => {
    const h = get();
    const f = await h.family();
    let captured: Uint8Array | undefined;
    const toy = await connectEndpoint({
      url: h.url(),
      identity: f.toy,
      gateway: h.gatewayPublic,
      clock: () => h.clock.now,
      onToken: (t) => {
        captured = Uint8Array.from(t);
      },
    });
    const mum = await h.connect(f.mum);
    const box = inbox(mum);
    const forged = goodToken(h, f.toy);
    forged[forged.length - 1]! ^= 0x01;
    const attempts: [string, Buffer | undefined][] = [
      ['anonymous', undefined],
      [
        'malformed-token',
        Buffer.from(seededRandom('takeover/random-token')(130).map((b, i) => (i === 0 ? 0xee : b))),
      ],
      ['bad-signature', Buffer.from(forged)],
      ['stale', Buffer.from(goodToken(h, f.toy, h.clock.now - 120_000))],
      ['wrong-endpoint', Buffer.from(goodToken(h, f.mum))],
      ['replay', Buffer.from(captured!)],
    ];
    for (const [, password] of attempts) {
      const r = await rawConnect(h.port(), {
        clientId: f.toy.id,
        username: f.toy.id,
        ...(password ? { password } : {}),
      });
      expect(r.ok).toBe(false);
      expect(r.ok ? 0 : r.code).toBe(4);
    }
    // The real toy was never kicked: it publishes on the same connection, and the clip arrives.
    expect(toy.client.connected).toBe(true);
    const first = makeClip(f.toy, [f.mum], { now: h.clock.now, sequence: seq() });
    await toy.publishClip(first);
    await box.wait(1, 'clip', HANG_GUARD_MS);
    for (const [reason] of attempts) expect(await counter(h.metrics.authFailures, { reason })).toBe(1);
    await settle(() => h.audit.reasons('auth.refused').length >= attempts.length);
    expect(h.audit.reasons('auth.refused')).toEqual(attempts.map(([reason]) => reason));
    // Each refused impersonation is audited against the id it claimed (except the anonymous one).
    expect(
      rowsWith(h, (e) => e.kind === 'auth.refused' && e.detail?.reason !== 'anonymous').every(
        (e) => e.endpoint === f.toy.id,
      ),
    ).toBe(true);

    // The real toy reconnecting with a fresh token replaces its old connection.
    const accepted = await counter(h.metrics.connectsAccepted);
    const again = await h.connect(f.toy);
    await closed(toy.client, HANG_GUARD_MS);
    expect(again.client.connected).toBe(true);
    expect(await counter(h.metrics.connectsAccepted)).toBe(accepted + 1);
    const second = makeClip(f.toy, [f.mum], { now: h.clock.now, sequence: seq() });
    await again.publishClip(second);
    await box.wait(2, 'clip', HANG_GUARD_MS);
    expect(box.clips.map(clipIdOf)).toEqual([clipIdOf(first), clipIdOf(second)]);
    toy.client.end(true);
    await legitimateClip(h);
  });
});

describe('envelope replay', () => {
  const get = withHarness();

  it('a captured, accepted envelope published again (resent by the toy, relayed by the family phone) is acknowledged as a retransmit and not delivered twice [PLK-8.2]', async () => {
    const h = get();
    const f = await h.family();
    const [toy, mum, dad] = await Promise.all([h.connect(f.toy), h.connect(f.mum), h.connect(f.dad)]);
    const box = inbox(mum);
    const env = makeClip(f.toy, [f.mum], { now: h.clock.now, sequence: seq() });
    await toy.publishClip(env);
    await box.wait(1, 'clip', HANG_GUARD_MS);
    const accepted = await counter(h.metrics.clipsAccepted);
    const forwarded = await counter(h.metrics.clipsForwarded);

    await toy.publishClip(env); // PUBACK again
    await dad.publishRelay(env); // PUBACK again: same sender, clip id and sequence
    expect(await counter(h.metrics.clipsRetransmitted)).toBe(2);
    expect(await counter(h.metrics.clipsAccepted)).toBe(accepted);
    expect(await counter(h.metrics.clipsForwarded)).toBe(forwarded);
    // A marker clip after the replays: when it arrives, nothing of the replays arrived before it.
    const marker = makeClip(f.toy, [f.mum], { now: h.clock.now, sequence: seq() });
    await toy.publishClip(marker);
    await box.wait(2, 'clip', HANG_GUARD_MS);
    expect(box.clips.map(clipIdOf)).toEqual([clipIdOf(env), clipIdOf(marker)]);
    // Stored once: one delivery row per clip for mum (none receipted yet).
    expect((await h.store.pendingFor(f.mum.id, 10)).length).toBe(2);
    // A retransmit is not a refusal: no refusal counted or audited, the connections stay open.
    expect(await counter(h.metrics.clipsRefused)).toBe(0);
    expect(h.audit.reasons('clip.refused')).toEqual([]);
    expect(toy.client.connected && dad.client.connected).toBe(true);
    await Promise.all([toy.close(), mum.close(), dad.close()]);
    await legitimateClip(h);
  });

  it('an old envelope with a lower sequence number than the last accepted one is refused as replay [PLK-8.1]', async () => {
    const h = get();
    const f = await h.family();
    const old = makeClip(f.toy, [f.mum], { now: h.clock.now, sequence: seq() }); // captured, never accepted
    const newer = makeClip(f.toy, [f.mum], { now: h.clock.now, sequence: seq() });
    const [toy, mum] = await Promise.all([h.connect(f.toy), h.connect(f.mum)]);
    const box = inbox(mum);
    await toy.publishClip(newer);
    await box.wait(1, 'clip', HANG_GUARD_MS);
    const before = await counter(h.metrics.clipsRefused, { reason: 'replay' });
    await expectRefusedPublish(toy, (c) => c.publishClip(old));
    expect(await counter(h.metrics.clipsRefused, { reason: 'replay' })).toBe(before + 1);
    await settle(() => reasonRows(h, 'replay', 'clip.refused').length > 0);
    const rows = reasonRows(h, 'replay', 'clip.refused');
    expect(rows).toHaveLength(1);
    expect(rows[0]!.endpoint).toBe(f.toy.id);
    // The same old envelope relayed by the family's phone is refused the same way.
    const dad = await h.connect(f.dad);
    await expectRefusedPublish(dad, (c) => c.publishRelay(old));
    expect(await counter(h.metrics.clipsRefused, { reason: 'replay' })).toBe(before + 2);
    expect(box.clips.map(clipIdOf)).toEqual([clipIdOf(newer)]);
    await mum.close();
    await legitimateClip(h);
  });
});

describe('cross-family clips and relays', () => {
  const get = withHarness();

  it('a toy sealing a clip to another family’s parent is refused (not-family); that parent never gets it', async () => {
    const h = get();
    const a = await h.family();
    const b = await h.family();
    const [toy, outsider] = await Promise.all([h.connect(a.toy), h.connect(b.mum)]);
    const outsiderBox = inbox(outsider);
    const env = makeClip(a.toy, [a.mum, b.mum], { now: h.clock.now, sequence: seq() });
    await expectRefusedPublish(toy, (c) => c.publishClip(env));
    expect(await counter(h.metrics.clipsRefused, { reason: 'not-family' })).toBe(1);
    await settle(() => reasonRows(h, 'not-family').length > 0);
    expect(reasonRows(h, 'not-family', 'clip.refused').map((e) => e.endpoint)).toEqual([a.toy.id]);
    await legitimateClip(h);
    expect(outsiderBox.clips).toEqual([]);
    expect(await h.store.pendingFor(b.mum.id, 10)).toEqual([]);
    expect(await h.store.pendingFor(a.mum.id, 10)).toEqual([]);
    await outsider.close();
  });

  it('relaying another family’s envelope is refused (relay-not-family); the toy’s own publish of it still goes through', async () => {
    const h = get();
    const a = await h.family();
    const b = await h.family();
    const env = makeClip(a.toy, [a.mum], { now: h.clock.now, sequence: seq() });
    const stranger = await h.connect(b.dad);
    await expectRefusedPublish(stranger, (c) => c.publishRelay(env));
    expect(await counter(h.metrics.clipsRefused, { reason: 'relay-not-family' })).toBe(1);
    await settle(() => reasonRows(h, 'relay-not-family').length > 0);
    expect(reasonRows(h, 'relay-not-family', 'clip.refused').map((e) => e.endpoint)).toEqual([b.dad.id]);
    // The refused relay consumed nothing of the toy's: its own publish of the same envelope is accepted.
    const [toy, mum] = await Promise.all([h.connect(a.toy), h.connect(a.mum)]);
    const box = inbox(mum);
    await toy.publishClip(env);
    await box.wait(1, 'clip', HANG_GUARD_MS);
    expect(box.clips.map(clipIdOf)).toEqual([clipIdOf(env)]);
    await Promise.all([toy.close(), mum.close()]);
    await legitimateClip(h);
  });
});

describe('oversize packets', () => {
  const get = withHarness();
  const MB200 = 200 * 1024 * 1024;

  it('a PUBLISH announcing 200 MB on an authenticated connection is refused before its body arrives: socket closed, socket_violations{oversize}, audited', async () => {
    const h = get();
    const f = await h.family();
    const raw = await rawAuthenticated(h, f.toy);
    const topic = Buffer.from(clipTopic(f.toy.id));
    // Fixed header (PUBLISH, QoS 1), 200 MB remaining length, then the start of a variable header: no body follows.
    raw.write(Buffer.from([0x32, ...varint(MB200), topic.length >> 8, topic.length & 0xff, ...topic, 0, 1]));
    await raw.waitClosed();
    expect(raw.received.filter((p) => p.cmd === 'puback')).toEqual([]);
    expect(await counter(h.metrics.socketViolations, { reason: 'oversize' })).toBe(1);
    expect(await counter(h.metrics.clipsAccepted)).toBe(0);
    // [PLK-12.8] socket violations are audited, one row each within the budget.
    await settle(() => reasonRows(h, 'oversize').length > 0);
    expect.soft(reasonRows(h, 'oversize').length, 'audit rows for the oversize socket violation').toBe(1);
    await legitimateClip(h);
  });

  it('a first packet (CONNECT) announcing 200 MB is refused before any authentication: socket closed, oversize, audited', async () => {
    const h = get();
    const before = await counter(h.metrics.socketViolations, { reason: 'oversize' });
    const rows = reasonRows(h, 'oversize').length;
    const raw = await RawMqtt.open(h.port());
    raw.write(Buffer.from([0x10, ...varint(MB200), 0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 0x02]));
    await raw.waitClosed();
    expect(raw.received).toEqual([]); // not even a CONNACK
    expect(await counter(h.metrics.socketViolations, { reason: 'oversize' })).toBe(before + 1);
    expect(await counter(h.metrics.authFailures)).toBe(0); // refused before authentication ran
    await settle(() => reasonRows(h, 'oversize').length > rows);
    expect.soft(reasonRows(h, 'oversize').length - rows, 'audit rows for the oversize CONNECT').toBe(1);
    await legitimateClip(h);
  });
});

describe('slowloris', () => {
  const CONNECT_TIMEOUT_MS = 1200;
  const get = withHarness({ connectTimeoutMs: CONNECT_TIMEOUT_MS });

  it('a TCP connection that never sends CONNECT, and one that sends it one byte a second, are both closed by the connect timeout (connect-timeout), audited', async () => {
    const h = get();
    const f = await h.family();
    const connect = generate(connectPacket(f.toy, goodToken(h, f.toy)));
    const [idle, slow] = await Promise.all([RawMqtt.open(h.port()), RawMqtt.open(h.port())]);
    let sent = 0;
    const drip = () => {
      if (slow.open && sent < connect.length) slow.write(connect.subarray(sent, ++sent));
    };
    drip();
    const timer = setInterval(drip, 1000);
    try {
      await Promise.all([idle.waitClosed(), slow.waitClosed()]);
    } finally {
      clearInterval(timer);
    }
    expect(sent).toBeLessThan(connect.length);
    expect(idle.received).toEqual([]);
    expect(slow.received).toEqual([]); // no CONNACK: the CONNECT never completed
    expect(await counter(h.metrics.socketViolations, { reason: 'connect-timeout' })).toBe(2);
    expect(await counter(h.metrics.authFailures)).toBe(0);
    expect(await counter(h.metrics.connectsAccepted)).toBe(0);
    await settle(() => reasonRows(h, 'connect-timeout').length >= 2);
    expect.soft(reasonRows(h, 'connect-timeout').length, 'audit rows for the two connect timeouts').toBe(2);
    await legitimateClip(h);
  });
});

/**
 * One malformed packet per MQTT packet type: a fixed header that is not valid MQTT 3.1.1 (§2.2:
 * reserved type 0 and 15, reserved flag bits that must be 0000 or 0010, PUBLISH with both QoS bits
 * set), and a body that does not parse as that type (or, for the header-only types, a remaining
 * length where there must be none, or a 5-byte remaining length).
 */
interface MalformedCase {
  readonly type: number;
  readonly name: string;
  readonly header: number[];
  readonly body: number[];
}

const MQTT_CONNECT_VH = [0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 0x02, 0, 30];
const FIVE_BYTE_LENGTH = [0xff, 0xff, 0xff, 0xff, 0x01];
const MALFORMED: readonly MalformedCase[] = [
  { type: 0, name: 'reserved (0)', header: [0x00, 0x00], body: [0x00, ...FIVE_BYTE_LENGTH] },
  {
    type: 1,
    name: 'CONNECT',
    header: [0x11, MQTT_CONNECT_VH.length + 3, ...MQTT_CONNECT_VH, 0, 1, 0x78],
    // Protocol name "MQTX".
    body: [0x10, 13, 0, 4, 0x4d, 0x51, 0x54, 0x58, 4, 0x02, 0, 30, 0, 1, 0x78],
  },
  { type: 2, name: 'CONNACK', header: [0x2f, 2, 0, 0], body: [0x20, 2, 0xfe, 0] },
  // PUBLISH QoS 3; then a topic length of 65,535 in a 4-byte packet.
  { type: 3, name: 'PUBLISH', header: [0x36, 5, 0, 1, 0x78, 0, 1], body: [0x32, 4, 0xff, 0xff, 0x78, 0x78] },
  { type: 4, name: 'PUBACK', header: [0x4f, 2, 0, 1], body: [0x40, 1, 0] },
  { type: 5, name: 'PUBREC', header: [0x5f, 2, 0, 1], body: [0x50, 1, 0] },
  { type: 6, name: 'PUBREL', header: [0x60, 2, 0, 1], body: [0x62, 1, 0] },
  { type: 7, name: 'PUBCOMP', header: [0x7f, 2, 0, 1], body: [0x70, 1, 0] },
  // SUBSCRIBE flags 0000 (must be 0010); then a SUBSCRIBE without any topic filter [MQTT-3.8.3-3].
  { type: 8, name: 'SUBSCRIBE', header: [0x80, 6, 0, 1, 0, 1, 0x78, 1], body: [0x82, 2, 0, 1] },
  { type: 9, name: 'SUBACK', header: [0x9f, 3, 0, 1, 0], body: [0x90, 3, 0, 1, 0x07] },
  // UNSUBSCRIBE flags 0000; then one without any topic filter [MQTT-3.10.3-2].
  { type: 10, name: 'UNSUBSCRIBE', header: [0xa0, 5, 0, 1, 0, 1, 0x78], body: [0xa2, 2, 0, 1] },
  { type: 11, name: 'UNSUBACK', header: [0xbf, 2, 0, 1], body: [0xb0, 1, 0] },
  { type: 12, name: 'PINGREQ', header: [0xcf, 0], body: [0xc0, 2, 0xde, 0xad] },
  { type: 13, name: 'PINGRESP', header: [0xdf, 0], body: [0xd0, 2, 0xde, 0xad] },
  { type: 14, name: 'DISCONNECT', header: [0xef, 0], body: [0xe0, 2, 0xde, 0xad] },
  { type: 15, name: 'reserved (15)', header: [0xf0, 0], body: [0xf0, ...FIVE_BYTE_LENGTH] },
];

describe('malformed packets of every type', () => {
  const get = withHarness();
  const PINGREQ = [0xc0, 0x00];

  /**
   * Sends `bytes` as the first packet (`who` null: unauthenticated) or after a successful CONNECT,
   * followed by a well-formed PINGREQ. A gateway that closes on the malformed packet never answers
   * the PINGREQ; one that answers it (or anything else) has accepted the malformed packet and kept
   * the connection open — no timing involved: packets on one connection are handled in order.
   */
  async function sendMalformed(
    h: Harness,
    who: PrivateIdentity | null,
    bytes: readonly number[],
  ): Promise<{ closed: boolean; answered: string[] }> {
    const raw = who ? await rawAuthenticated(h, who) : await RawMqtt.open(h.port());
    const before = raw.received.length;
    raw.write(Buffer.from([...bytes, ...PINGREQ]));
    const outcome = await Promise.race([
      raw.waitClosed().then(() => 'closed' as const),
      raw.next('pingresp').then(
        () => 'answered' as const,
        () => 'closed' as const,
      ),
    ]);
    const answered = raw.received
      .slice(before)
      .map((p) => p.cmd)
      .filter((cmd) => cmd !== 'publish'); // the gateway's own proof and roster after a SUBSCRIBE
    raw.destroy();
    return { closed: outcome === 'closed' && answered.length === 0, answered };
  }

  const malformed = (h: Harness) => counter(h.metrics.socketViolations, { reason: 'malformed' });
  const notConnect = (h: Harness) => counter(h.metrics.socketViolations, { reason: 'not-connect' });

  for (const c of MALFORMED) {
    it(`type ${c.type} (${c.name}): an invalid fixed header is closed before and after authentication, counted and audited; an invalid body is closed and counted`, async () => {
      const h = get();
      const f = await h.family();

      // 1. Unauthenticated: the first packet must be a CONNECT (PLK-12.6 `not-connect`, or `malformed`).
      const reason = c.type === 1 ? 'malformed' : 'not-connect';
      const [m0, n0, rows0] = [await malformed(h), await notConnect(h), reasonRows(h, reason).length];
      const first = await sendMalformed(h, null, c.header);
      expect
        .soft(first, `unauthenticated ${c.name} with an invalid fixed header: closed, nothing answered`)
        .toEqual({
          closed: true,
          answered: [],
        });
      expect
        .soft(
          (await malformed(h)) + (await notConnect(h)) - m0 - n0,
          `socket_violations{${reason}} (unauthenticated)`,
        )
        .toBe(1);
      await settle(() => reasonRows(h, reason).length > rows0, 500);
      expect.soft(reasonRows(h, reason).length - rows0, `audit rows for ${reason} (unauthenticated)`).toBe(1);

      // 2. Authenticated: the same invalid fixed header after a successful CONNECT (PLK-12.6 `malformed`).
      const [m1, rows1] = [await malformed(h), reasonRows(h, 'malformed').length];
      const second = await sendMalformed(h, f.toy, c.header);
      expect
        .soft(second, `authenticated ${c.name} with an invalid fixed header: closed, nothing answered`)
        .toEqual({
          closed: true,
          answered: [],
        });
      expect.soft((await malformed(h)) - m1, 'socket_violations{malformed} (authenticated)').toBe(1);
      await settle(() => reasonRows(h, 'malformed').length > rows1, 500);
      expect
        .soft(reasonRows(h, 'malformed').length - rows1, 'audit rows for malformed (authenticated)')
        .toBe(1);

      // 3. Authenticated: a valid fixed header with a body (or remaining length) this packet type cannot have.
      const t2 = await counter(h.metrics.socketViolations);
      const third = await sendMalformed(h, f.mum, c.body);
      expect.soft(third, `authenticated ${c.name} with an invalid body: closed, nothing answered`).toEqual({
        closed: true,
        answered: [],
      });
      expect
        .soft(
          (await counter(h.metrics.socketViolations)) - t2,
          'socket_violations (any reason) for the invalid body',
        )
        .toBe(1);

      // The gateway survived all three: a real clip still goes through.
      await legitimateClip(h);
    });
  }

  it('after every malformed packet of every type the gateway is up, no malformed connection is left open, and a legitimate clip goes through', async () => {
    const h = get();
    await legitimateClip(h);
    let open = -1;
    for (let i = 0; i < 100 && open !== 0; i++) {
      open = await counter(h.metrics.connections);
      if (open !== 0) await sleep(20);
    }
    expect(open).toBe(0);
  });
});
