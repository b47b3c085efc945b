// Attacks at the edges of the protocol: other MQTT versions, clips and receipts outside the time windows, receipts for clips one never got, off-by-one tokens, QoS downgrades and poison clips — each refused or contained, counted and audited, while real clips keep flowing [PLK-3.1][PLK-4.3][PLK-6][PLK-9.3][PLK-12.4].
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { IClientOptions, MqttClient } from 'mqtt';
import type { Packet } from 'mqtt-packet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EndpointEvents } from '../../device/endpoint.ts';
import { ParentApp } from '../../device/parent.ts';
import { Toy } from '../../device/toy.ts';
import { connectEndpoint, type EndpointConnection } from '../../device/transport/mqtt-connect.ts';
import { WifiConnector } from '../../device/transport/wifi.ts';
import { type EmbeddedGateway, startEmbeddedGateway } from '../../gateway/embedded.ts';
import { toHex } from '../../shared/bytes.ts';
import { defaultCrypto } from '../../shared/crypto.ts';
import { decodeClip, openClip, sealClip } from '../../shared/envelope.ts';
import { isPlushlinkError } from '../../shared/errors.ts';
import { type PrivateIdentity, type PublicIdentity, publicPart } from '../../shared/identity.ts';
import { systemRandom } from '../../shared/random.ts';
import { createReceipt, decodeReceipt } from '../../shared/receipt.ts';
import { createConnectToken } from '../../shared/token.ts';
import { inboxTopic } from '../../shared/topics.ts';
import { registerRoster } from '../../sim/provision.ts';
import { generateRoster } from '../../sim/roster.ts';
import {
  closed,
  type Family,
  type Harness,
  type HarnessOptions,
  inbox,
  makeClip,
  rawConnect,
  sleep,
  startHarness,
} from '../gateway/helpers/harness.ts';

interface MetricReader {
  get(): Promise<{ values: { value: number; labels: Partial<Record<string, string | number>> }[] }>;
}

/** Only keeps a broken gateway from hanging a test; nothing is asserted about how long anything takes. */
const HANG_GUARD_MS = 10_000;
const DAY_MS = 86_400_000;

/** Sum of a prom-client counter's values whose labels match `labels`. */
async function counter(c: MetricReader, labels: Record<string, string> = {}): Promise<number> {
  const m = await c.get();
  return m.values
    .filter((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val))
    .reduce((n, v) => n + v.value, 0);
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

/** Every packet a client receives (MQTT.js `packetreceive`). */
function recordPackets(client: MqttClient): Packet[] {
  const got: Packet[] = [];
  client.on('packetreceive', (p) => got.push(p as Packet));
  return got;
}

function tokenFor(h: Harness, identity: PrivateIdentity): Buffer {
  return Buffer.from(
    createConnectToken({ identity, gatewayId: h.gatewayIdentity.id, now: h.clock.now }).bytes,
  );
}

function credentials(h: Harness, identity: PrivateIdentity): IClientOptions {
  return { clientId: identity.id, username: identity.id, password: tokenFor(h, identity) };
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

/**
 * Publishes `payload` with `publish` on `conn` and expects the gateway to refuse it: the connection
 * is closed and no PUBACK ever came back.
 */
async function expectRefusedPublish(
  conn: EndpointConnection,
  publish: (c: EndpointConnection) => Promise<void>,
): Promise<void> {
  const packets = recordPackets(conn.client);
  const outcome = publish(conn).then(
    () => 'puback',
    () => 'failed',
  );
  await closed(conn.client, HANG_GUARD_MS);
  expect(packets.filter((p) => p.cmd === 'puback')).toEqual([]);
  conn.client.end(true);
  expect(await outcome).toBe('failed');
}

/** A clip validly signed by `sender` and addressed to `recipient`'s id, whose content key is sealed to a random X25519 key. */
function poisonClip(
  sender: PrivateIdentity,
  recipient: PublicIdentity,
  sequence: number,
  now: number,
): Uint8Array {
  const randomBoxKey = defaultCrypto().boxPublicKey(systemRandom(32));
  return sealClip({
    sender,
    recipients: [{ ...publicPart(recipient), boxPublicKey: randomBoxKey }],
    sequence,
    createdAt: now,
    durationMs: 1000,
    ogg: systemRandom(2000),
  });
}

const clipIdOf = (env: Uint8Array): string => toHex(decodeClip(env).header.clipId);

/** Polls `cond` (a hang guard, not a timing assertion); returns its last value. */
async function settle(cond: () => boolean, ms = 2000): Promise<boolean> {
  const t0 = Date.now();
  while (!cond() && Date.now() - t0 < ms) await sleep(10);
  return cond();
}

describe('other MQTT protocol levels (3.1 and 5.0)', () => {
  const get = withHarness();

  it('refuses MQTT 3.1 (MQIsdp, level 3) with CONNACK 1, audited as protocol-version', async () => {
    const h = get();
    const f = await h.family();
    const r = await rawConnect(h.port(), {
      ...credentials(h, f.toy),
      protocolVersion: 3,
      protocolId: 'MQIsdp',
    });
    expect(r.ok).toBe(false);
    expect.soft(r.ok ? undefined : r.code, 'CONNACK code for an MQTT 3.1 CONNECT').toBe(1);
    // This refusal's audit row is written without holding the CONNACK: let it land.
    await settle(() => h.audit.reasons('auth.refused').includes('protocol-version'));
    expect(h.audit.reasons('auth.refused')).toEqual(['protocol-version']);
    expect(await counter(h.metrics.authFailures, { reason: 'protocol-version' })).toBe(1);
    await clipRoundTrip(h, f);
  });

  it('refuses MQTT 5.0 (level 5): the connection never comes up, audited as protocol-version', async () => {
    const h = get();
    const f = await h.family();
    const count = () => h.audit.reasons('auth.refused').filter((x) => x === 'protocol-version').length;
    const before = count();
    const metricBefore = await counter(h.metrics.authFailures, { reason: 'protocol-version' });
    const r = await rawConnect(h.port(), { ...credentials(h, f.toy), protocolVersion: 5 });
    expect(r.ok).toBe(false);
    expect(r.ok ? undefined : r.code).toBe(1);
    await settle(() => count() > before);
    expect.soft(count() - before, 'protocol-version audit rows for the MQTT 5 CONNECT').toBe(1);
    expect(
      (await counter(h.metrics.authFailures, { reason: 'protocol-version' })) - metricBefore,
      'auth_failures_total{reason="protocol-version"} for the MQTT 5 CONNECT',
    ).toBe(1);
    await clipRoundTrip(h, f);
  });
});

describe('clips outside the creation-time window', () => {
  const get = withHarness();

  for (const [what, at] of [
    ['created at 0 (the epoch)', () => 0],
    ['created a year ahead of the gateway clock', (now: number) => now + 365 * DAY_MS],
  ] as const) {
    it(`refuses a clip ${what}: clip-time, connection closed, no PUBACK, nothing stored`, async () => {
      const h = get();
      const f = await h.family();
      const before = await counter(h.metrics.clipsRefused, { reason: 'clip-time' });
      const toy = await h.connect(f.toy);
      const env = makeClip(f.toy, [f.mum], { now: at(h.clock.now) });
      await expectRefusedPublish(toy, (c) => c.publishClip(env));
      expect(await counter(h.metrics.clipsRefused, { reason: 'clip-time' })).toBe(before + 1);
      const row = h.audit.events.find((e) => e.kind === 'clip.refused' && e.endpoint === f.toy.id);
      expect(row?.detail?.reason).toBe('clip-time');
      expect(await h.store.pendingFor(f.mum.id, 10)).toEqual([]);
      await clipRoundTrip(h, f);
    });
  }
});

describe('receipts outside the time window', () => {
  const get = withHarness();

  it('refuses receipts dated 61 s ahead and 7 days + 1 ms old (receipt-time, connection closed), then accepts a fresh one', async () => {
    const h = get();
    const f = await h.family();
    const toy = await h.connect(f.toy);
    const toyBox = inbox(toy);
    const env = makeClip(f.toy, [f.mum], { now: h.clock.now });
    await toy.publishClip(env);
    const clipId = decodeClip(env).header.clipId;
    const receipt = (receivedAt: number) =>
      createReceipt({ recipient: f.mum, sender: f.toy.id, clipId, receivedAt });

    for (const receivedAt of [h.clock.now + 61_000, h.clock.now - 7 * DAY_MS - 1]) {
      const mum = await h.connect(f.mum);
      const box = inbox(mum);
      await box.wait(1, 'clip', HANG_GUARD_MS);
      await expectRefusedPublish(mum, (c) => c.publishReceipt(receipt(receivedAt)));
    }
    expect(h.audit.reasons('clip.refused')).toEqual(['receipt-time', 'receipt-time']);
    expect(await counter(h.metrics.clipsRefused, { reason: 'receipt-time' })).toBe(2);
    expect((await h.store.pendingFor(f.mum.id, 10)).map((p) => p.clipId)).toEqual([toHex(clipId)]);
    expect(toyBox.receipts).toEqual([]);

    const mum = await h.connect(f.mum);
    await mum.publishReceipt(receipt(h.clock.now));
    await toyBox.wait(1, 'receipt', HANG_GUARD_MS);
    expect(decodeReceipt(toyBox.receipts[0]!).recipient).toBe(f.mum.id);
    expect(await h.store.pendingFor(f.mum.id, 10)).toEqual([]);
  });
});

describe('receipts for clips the recipient never had', () => {
  const get = withHarness();

  it('refuses a receipt for a clip id that was never accepted: receipt-unknown, connection closed', async () => {
    const h = get();
    const f = await h.family();
    const mum = await h.connect(f.mum);
    const forged = createReceipt({
      recipient: f.mum,
      sender: f.toy.id,
      clipId: systemRandom(16),
      receivedAt: h.clock.now,
    });
    await expectRefusedPublish(mum, (c) => c.publishReceipt(forged));
    expect(h.audit.reasons('clip.refused')).toEqual(['receipt-unknown']);
    expect(await counter(h.metrics.clipsRefused, { reason: 'receipt-unknown' })).toBe(1);
    await clipRoundTrip(h, f);
  });

  it('refuses a receipt for a clip addressed to someone else: receipt-unknown, and that delivery stays pending', async () => {
    const h = get();
    const f = await h.family();
    const toy = await h.connect(f.toy);
    const toyBox = inbox(toy);
    const forDad = makeClip(f.toy, [f.dad], { now: h.clock.now });
    await toy.publishClip(forDad);
    const clipId = decodeClip(forDad).header.clipId;
    const before = await counter(h.metrics.clipsRefused, { reason: 'receipt-unknown' });
    const mum = await h.connect(f.mum);
    const stolen = createReceipt({ recipient: f.mum, sender: f.toy.id, clipId, receivedAt: h.clock.now });
    await expectRefusedPublish(mum, (c) => c.publishReceipt(stolen));
    const row = h.audit.events.filter((e) => e.kind === 'clip.refused' && e.endpoint === f.mum.id).at(-1);
    expect(row?.detail?.reason).toBe('receipt-unknown');
    expect(await counter(h.metrics.clipsRefused, { reason: 'receipt-unknown' })).toBe(before + 1);
    expect((await h.store.pendingFor(f.dad.id, 10)).map((p) => p.clipId)).toEqual([toHex(clipId)]);
    expect(toyBox.receipts).toEqual([]);

    // The real recipient's receipt is accepted and reaches the toy.
    const dad = await h.connect(f.dad);
    await dad.publishReceipt(
      createReceipt({ recipient: f.dad, sender: f.toy.id, clipId, receivedAt: h.clock.now }),
    );
    await toyBox.wait(1, 'receipt', HANG_GUARD_MS);
    expect(decodeReceipt(toyBox.receipts[0]!).recipient).toBe(f.dad.id);
  });
});

describe('connect tokens one byte too long or too short', () => {
  const get = withHarness();

  it('refuses a 131-byte and a 129-byte token as the MQTT password with CONNACK 4 (malformed-token)', async () => {
    const h = get();
    const f = await h.family();
    const token = tokenFor(h, f.toy);
    for (const password of [Buffer.concat([token, Buffer.from([0])]), token.subarray(0, 129)]) {
      expect(password.length === 131 || password.length === 129).toBe(true);
      const r = await rawConnect(h.port(), { clientId: f.toy.id, username: f.toy.id, password });
      expect(r.ok).toBe(false);
      expect(r.ok ? undefined : r.code).toBe(4);
    }
    expect(h.audit.reasons('auth.refused')).toEqual(['malformed-token', 'malformed-token']);
    expect(await counter(h.metrics.authFailures, { reason: 'malformed-token' })).toBe(2);
    await clipRoundTrip(h, f);
  });
});

describe('inbox subscription asking for QoS 0 or QoS 2', () => {
  const get = withHarness();

  it('grants QoS 1 whatever was asked, and delivers every inbox message at QoS 1', async () => {
    const h = get();
    const f = await h.family();
    const toy = await h.connect(f.toy);
    for (const asked of [0, 2] as const) {
      const r = await rawConnect(h.port(), credentials(h, f.mum));
      if (!r.ok) throw r.error;
      const packets = recordPackets(r.client);
      const granted = await r.client.subscribeAsync(inboxTopic(f.mum.id), { qos: asked });
      expect(granted.map((g) => g.qos)).toEqual([1]);
      const env = makeClip(f.toy, [f.mum], { now: h.clock.now });
      const got = new Promise<void>((resolve) =>
        r.client.on('message', (_t, payload) => {
          if (payload[0] === 0x01 && clipIdOf(payload) === clipIdOf(env)) resolve();
        }),
      );
      // The proof arrives first; publish once the inbox is live so the clip goes live (not backlog).
      await toy.publishClip(env);
      await got;
      const publishes = packets.filter((p) => p.cmd === 'publish');
      expect(publishes.length).toBeGreaterThanOrEqual(2); // proof, roster, the clip (and any backlog)
      expect(publishes.map((p) => (p.cmd === 'publish' ? p.qos : -1))).toEqual(publishes.map(() => 1));
      await r.client.endAsync();
    }
    expect(await counter(h.metrics.subscribeRefusals)).toBe(0);
    expect(h.audit.events.filter((e) => e.kind === 'subscribe.refused')).toEqual([]);
  });
});

describe('poison clip: validly signed, addressed to mum, but its key sealed to a random X25519 key', () => {
  describe('a real parent app reports it unopenable', () => {
    let dir: string;
    let eg: EmbeddedGateway;
    const running: { stop(): Promise<void> }[] = [];
    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'plk-sec-poison-'));
      // One delivery per backlog batch: the good clip is only sent once the poison one is dealt with.
      eg = await startEmbeddedGateway({ dataDir: join(dir, 'data'), gateway: { backlogBatch: 1 } });
    });
    afterAll(async () => {
      for (const e of running) await e.stop().catch(() => undefined);
      await eg?.close();
      await rm(dir, { recursive: true, force: true });
    });

    it('sets the poison delivery aside on the unopenable receipt (audited, counted) and plays the good clip queued behind it', async () => {
      const roster = generateRoster({
        families: 1,
        toysPerFamily: 1,
        parentsPerFamily: 1,
        seed: 'sec-poison',
      });
      await registerRoster(eg.store, eg.audit, roster);
      const bear = roster.families[0]!.toys[0]!.identity;
      const mum = roster.families[0]!.parents[0]!.identity;
      const family = [bear, mum].map(publicPart);

      // The poison clip, first in mum's backlog (sequence 1 from the toy's key).
      const raw = await connectEndpoint({ url: eg.url, identity: bear, gateway: eg.identity });
      const poison = poisonClip(bear, mum, 1, Date.now());
      await raw.publishClip(poison);
      await raw.close();
      expect(() => openClip(poison, { recipient: mum, sender: bear })).toThrow();

      // A real toy records a good clip (its sequence numbers start above the poison's).
      const connector = new WifiConnector({ url: eg.url });
      const toy = new Toy({
        identity: bear,
        gateway: eg.identity,
        family,
        connector,
        outbox: { sequenceFloor: () => 1000 },
      });
      running.push(toy);
      const acked = new Promise<void>((resolve) => toy.on('acked', () => resolve()));
      const undeliverable = new Promise<EndpointEvents['undeliverable']>((resolve) =>
        toy.on('undeliverable', resolve),
      );
      await toy.start();
      const good = await toy.record(1, { kind: 'synth', seed: 7 });
      await acked;
      expect((await eg.store.pendingFor(mum.id, 10)).map((p) => p.clipId)).toEqual([
        clipIdOf(poison),
        good.clipId,
      ]);

      const parent = new ParentApp({ identity: mum, gateway: eg.identity, family, connector });
      running.push(parent);
      parent.on('error', () => {}); // the poison clip is reported as an inbox error too
      const unopenable = new Promise<EndpointEvents['unopenable']>((resolve) =>
        parent.on('unopenable', resolve),
      );
      const played = new Promise<EndpointEvents['played']>((resolve) => parent.on('played', resolve));
      const received = new Promise<EndpointEvents['received']>((resolve) => parent.on('received', resolve));
      const delivered = new Promise<EndpointEvents['delivered']>((resolve) => toy.on('delivered', resolve));
      await parent.start();

      expect((await unopenable).clipId).toBe(clipIdOf(poison));
      expect((await played).clipId).toBe(good.clipId);
      expect(Buffer.from((await received).ogg).equals(Buffer.from(good.ogg))).toBe(true);
      // The sender learns both outcomes [PLK-6.3].
      expect((await undeliverable).clipId).toBe(clipIdOf(poison));
      expect((await delivered).clipId).toBe(good.clipId);

      expect(await eg.store.pendingFor(mum.id, 10)).toEqual([]);
      const m = eg.gateway.metrics;
      expect(await counter(m.receipts, { result: 'set-aside' })).toBe(1);
      const rows = eg.audit.db
        .prepare("SELECT detail FROM audit WHERE kind = 'delivery.set_aside'")
        .all() as { detail: string }[];
      expect(rows.map((r) => JSON.parse(r.detail).reason)).toEqual(['unopenable']);
      expect(
        await counter(m.deliveriesSetAside, { reason: 'unopenable' }),
        'deliveries_set_aside_total{reason="unopenable"}',
      ).toBe(1);
    });
  });

  describe('a raw client that never receipts it', () => {
    const get = withHarness({ backlogBatch: 1 });

    it('stops redelivering the poison clip after 5 sends (set aside, audited no-receipt) and delivers the good clip behind it', async () => {
      const h = get();
      const f = await h.family();
      const toy = await h.connect(f.toy);
      const toyBox = inbox(toy);
      const poison = poisonClip(f.toy, f.mum, 1, h.clock.now);
      const good = makeClip(f.toy, [f.mum], { sequence: 2, now: h.clock.now });
      await toy.publishClip(poison);
      await toy.publishClip(good);

      // Five connections: each gets the poison clip (which it cannot open) and never receipts it.
      for (let i = 1; i <= 5; i++) {
        const mum = await h.connect(f.mum);
        const box = inbox(mum);
        await box.wait(1, 'clip', HANG_GUARD_MS);
        expect(box.clips.map(clipIdOf)).toEqual([clipIdOf(poison)]);
        let code: unknown;
        try {
          openClip(box.clips[0]!, { recipient: f.mum, sender: f.toy });
        } catch (err) {
          code = isPlushlinkError(err) ? err.code : err;
        }
        expect(code).toBe('PLK_E_DECRYPT');
        await mum.close();
      }
      expect(h.audit.events.filter((e) => e.kind === 'delivery.set_aside')).toEqual([]);

      // The sixth: the poison clip is set aside, the good one arrives and is receipted.
      const mum = await h.connect(f.mum);
      const box = inbox(mum);
      await box.wait(1, 'clip', 3000).catch(() => undefined);
      expect(box.clips.map(clipIdOf), 'clips delivered on the sixth connection').toEqual([clipIdOf(good)]);
      const opened = openClip(box.clips[0]!, { recipient: f.mum, sender: f.toy });
      await mum.publishReceipt(
        createReceipt({
          recipient: f.mum,
          sender: f.toy.id,
          clipId: opened.header.clipId,
          receivedAt: h.clock.now,
        }),
      );
      await toyBox.wait(1, 'receipt', HANG_GUARD_MS);

      const rows = h.audit.events.filter((e) => e.kind === 'delivery.set_aside');
      expect(rows.map((e) => [e.endpoint, e.detail?.reason])).toEqual([[f.mum.id, 'no-receipt']]);
      expect(await counter(h.metrics.deliveriesSetAside, { reason: 'no-receipt' })).toBe(1);
      expect(await h.store.pendingFor(f.mum.id, 10)).toEqual([]);
    });
  });
});
