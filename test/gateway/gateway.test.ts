// Gateway broker core end to end: topic ACL, verified ingest, forwarding, receipts, offline delivery, restart, retention, refusals [PLK-4] [PLK-12].
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveMetrics } from '../../gateway/metrics.ts';
import { toHex } from '../../shared/bytes.ts';
import { decodeClip, openClip } from '../../shared/envelope.ts';
import { generateIdentity } from '../../shared/identity.ts';
import { MSG } from '../../shared/limits.ts';
import { createReceipt, decodeReceipt } from '../../shared/receipt.ts';
import { createConnectToken } from '../../shared/token.ts';
import { clipTopic, inboxTopic, receiptTopic } from '../../shared/topics.ts';
import {
  closed,
  type Family,
  type Harness,
  inbox,
  makeClip,
  rawConnect,
  sleep,
  startHarness,
} from './helpers/harness.ts';

const DAY = 86_400_000;

/** The SUBACK code for one topic (MQTT.js reports an all-refused SUBACK as an error carrying the packet). */
function suback(client: MqttClient, topic: string): Promise<number> {
  return new Promise((resolve) => {
    client.subscribe(topic, { qos: 1 }, (err, granted) => {
      const packet = (err as { packet?: { granted?: number[] } } | null)?.packet;
      resolve(packet?.granted?.[0] ?? granted?.[0]?.qos ?? -1);
    });
  });
}

describe('gateway broker core', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ undeliveredMaxAgeMs: 7 * DAY });
  });
  afterAll(async () => {
    await h.close();
  });

  async function rawAuthed(f: Family) {
    const pw = Buffer.from(
      createConnectToken({ identity: f.toy, gatewayId: h.gatewayIdentity.id, now: h.clock.now }).bytes,
    );
    const r = await rawConnect(h.port(), { clientId: f.toy.id, username: f.toy.id, password: pw });
    if (!r.ok) throw r.error;
    return r.client;
  }

  it('grants only the own inbox, at QoS 1; #, +, $SYS and other inboxes get SUBACK 0x80 [PLK-4.3]', async () => {
    const f = await h.family();
    // At most 4 refused filters per connection: two connections ask for 3 each.
    const batches = [
      ['#', '+/+/+/inbox', '$SYS/#'],
      [inboxTopic(f.mum.id), clipTopic(f.toy.id), 'plk/1/+/inbox'],
    ];
    for (const topics of batches) {
      const client = await rawAuthed(f);
      const codes: number[] = [];
      for (const t of topics) codes.push(await suback(client, t));
      expect(codes).toEqual(topics.map(() => 128));
      expect(await suback(client, inboxTopic(f.toy.id))).toBe(1);
      client.end(true);
    }
    const refusals = await h.metrics.subscribeRefusals.get();
    expect(refusals.values.reduce((a, v) => a + v.value, 0)).toBeGreaterThanOrEqual(6);
    expect(h.audit.reasons('subscribe.refused')).toContain('wildcard');
    expect(h.audit.reasons('subscribe.refused')).toContain('sys');
  });

  it('grants the inbox at QoS 1 whatever QoS was asked for, and delivers at QoS 1 [PLK-4.3][PLK-4.4]', async () => {
    const f = await h.family();
    for (const qos of [0, 2] as const) {
      const client = await rawAuthed(f);
      const granted = await new Promise<number>((res, rej) =>
        client.subscribe(inboxTopic(f.toy.id), { qos }, (err, g) =>
          err ? rej(err) : res(g?.[0]?.qos ?? -1),
        ),
      );
      expect(granted).toBe(1);
      const packets: { qos: number }[] = [];
      client.on('packetreceive', (p) => {
        if (p.cmd === 'publish') packets.push({ qos: p.qos });
      });
      await new Promise((r) => setTimeout(r, 100));
      expect(packets.length).toBeGreaterThan(0); // at least the proof
      expect(packets.every((p) => p.qos === 1)).toBe(true);
      client.end(true);
    }
  });

  it('forwards a clip from the toy to both parents, and receipts back to the toy', async () => {
    const f = await h.family();
    const [toy, mum, dad] = await Promise.all([h.connect(f.toy), h.connect(f.mum), h.connect(f.dad)]);
    const toyBox = inbox(toy);
    const mumBox = inbox(mum);
    const dadBox = inbox(dad);
    const env = makeClip(f.toy, [f.mum, f.dad]);
    await toy.publishClip(env);
    await Promise.all([mumBox.wait(1), dadBox.wait(1)]);
    const opened = openClip(mumBox.clips[0]!, { recipient: f.mum, sender: f.toy });
    expect(opened.header.sender).toBe(f.toy.id);
    expect(await h.store.backlog()).toBeGreaterThanOrEqual(2);
    // Receipts: each parent signs; the gateway marks delivery and tells the toy.
    const clip = decodeClip(env);
    for (const [conn, who] of [
      [mum, f.mum],
      [dad, f.dad],
    ] as const) {
      await conn.publishReceipt(
        createReceipt({
          recipient: who,
          sender: f.toy.id,
          clipId: clip.header.clipId,
          receivedAt: h.clock.now,
        }),
      );
    }
    await toyBox.wait(2, 'receipt');
    expect(toyBox.receipts.map((r) => decodeReceipt(r).recipient).sort()).toEqual(
      [f.mum.id, f.dad.id].sort(),
    );
    expect(await h.store.pendingFor(f.mum.id, 10)).toEqual([]);
    expect(await h.store.pendingFor(f.dad.id, 10)).toEqual([]);
    await Promise.all([toy.close(), mum.close(), dad.close()]);
  });

  it('delivers to an offline parent on reconnect, also after a gateway restart', async () => {
    const f = await h.family();
    const toy = await h.connect(f.toy);
    const a = makeClip(f.toy, [f.mum, f.dad]);
    const b = makeClip(f.toy, [f.mum]);
    await toy.publishClip(a);
    await toy.publishClip(b);
    await toy.close();
    const mum = await h.connect(f.mum);
    const mumBox = inbox(mum);
    await mumBox.wait(2);
    expect(mumBox.clips.map(toHex)).toEqual([toHex(a), toHex(b)]);
    await mum.close();

    await h.restart();
    // Not receipted: delivered again (at least once) after the restart, in order.
    const mum2 = await h.connect(f.mum);
    const dad = await h.connect(f.dad);
    const mumBox2 = inbox(mum2);
    const dadBox = inbox(dad);
    await Promise.all([mumBox2.wait(2), dadBox.wait(1)]);
    expect(mumBox2.clips.map(toHex)).toEqual([toHex(a), toHex(b)]);
    expect(toHex(dadBox.clips[0]!)).toBe(toHex(a));
    // A resend of an accepted clip (a lost PUBACK) is acknowledged again and not forwarded twice.
    const toy2 = await h.connect(f.toy);
    await toy2.publishClip(a);
    expect(await h.store.backlog()).toBe(3);
    // The sequence survives the restart: a new clip with an old sequence number is a replay.
    const decodedA = decodeClip(a);
    toy2.publishClip(makeClip(f.toy, [f.mum], { sequence: decodedA.header.sequence })).catch(() => {});
    await closed(toy2.client);
    expect(h.audit.reasons('clip.refused').at(-1)).toBe('replay');
    await Promise.all([mum2.close(), dad.close()]);
  });

  it('expires undelivered clips after the retention period (injected clock)', async () => {
    const f = await h.family();
    const toy = await h.connect(f.toy);
    await toy.publishClip(makeClip(f.toy, [f.dad]));
    await toy.close();
    expect(await h.store.pendingFor(f.dad.id, 10)).toHaveLength(1);
    expect(await h.gw.runRetention()).toBe(0);
    const saved = h.clock.now;
    h.clock.now += 8 * DAY;
    try {
      expect(await h.gw.runRetention()).toBeGreaterThanOrEqual(1);
    } finally {
      h.clock.now = saved;
    }
    expect(await h.store.pendingFor(f.dad.id, 10)).toEqual([]);
    expect(h.audit.events.some((e) => e.kind === 'retention.expired')).toBe(true);
  });

  describe('refused publishes close the connection and are audited', () => {
    const cases: [string, (f: Family) => { topic: string; payload: Uint8Array; retain?: boolean }][] = [
      ['topic', (f) => ({ topic: clipTopic(f.mum.id), payload: makeClip(f.toy, [f.mum]) })],
      ['topic', (f) => ({ topic: inboxTopic(f.mum.id), payload: makeClip(f.toy, [f.mum]) })],
      ['retain', (f) => ({ topic: clipTopic(f.toy.id), payload: makeClip(f.toy, [f.mum]), retain: true })],
      ['malformed', (f) => ({ topic: clipTopic(f.toy.id), payload: new Uint8Array([MSG.CLIP, 1, 2, 3]) })],
      ['sender', (f) => ({ topic: clipTopic(f.toy.id), payload: makeClip(f.mum, [f.dad]) })],
      [
        'not-family',
        (f) => ({ topic: clipTopic(f.toy.id), payload: makeClip(f.toy, [generateIdentity('parent')]) }),
      ],
      [
        'bad-signature',
        (f) => {
          const env = makeClip(f.toy, [f.mum]);
          env[env.length - 1]! ^= 0x40;
          return { topic: clipTopic(f.toy.id), payload: env };
        },
      ],
      ['receipt-malformed', (f) => ({ topic: receiptTopic(f.toy.id), payload: new Uint8Array(10) })],
      [
        'receipt-recipient',
        (f) => ({
          topic: receiptTopic(f.toy.id),
          payload: createReceipt({
            recipient: f.mum,
            sender: f.toy.id,
            clipId: new Uint8Array(16),
            receivedAt: 1,
          }),
        }),
      ],
    ];
    for (const [reason, build] of cases) {
      it(`refuses: ${reason}`, async () => {
        const f = await h.family();
        const toy = await h.connect(f.toy);
        const { topic, payload, retain } = build(f);
        let acked = false;
        toy.client.publish(topic, Buffer.from(payload), { qos: 1, retain: retain ?? false }, (err) => {
          if (!err) acked = true;
        });
        await closed(toy.client);
        expect(acked).toBe(false);
        expect(
          h.audit.events
            .filter((e) => e.kind === 'clip.refused' && e.endpoint === f.toy.id)
            .map((e) => e.detail?.reason),
        ).toEqual([reason]);
        const m = await h.metrics.clipsRefused.get();
        expect(m.values.find((v) => v.labels.reason === reason)?.value).toBeGreaterThan(0);
      });
    }

    it('refuses a clip from a sender without family, and one to a revoked recipient', async () => {
      const loner = generateIdentity('toy');
      await h.register(loner);
      const conn = await h.connect(loner);
      conn.publishClip(makeClip(loner, [generateIdentity('parent')])).catch(() => {});
      await closed(conn.client);
      expect(
        h.audit.events.find((e) => e.endpoint === loner.id && e.kind === 'clip.refused')?.detail?.reason,
      ).toBe('no-family');

      const f = await h.family();
      await h.store.revokeEndpoint(f.dad.id, 1);
      const toy = await h.connect(f.toy);
      toy.publishClip(makeClip(f.toy, [f.mum, f.dad])).catch(() => {});
      await closed(toy.client);
      expect(
        h.audit.events.find((e) => e.endpoint === f.toy.id && e.kind === 'clip.refused')?.detail?.reason,
      ).toBe('recipient-revoked');
    });
  });

  it('serves metrics on GET /metrics only', async () => {
    const srv = await serveMetrics(h.metrics.registry, { port: 0 });
    try {
      const base = `http://127.0.0.1:${srv.address.port}`;
      const res = await fetch(`${base}/metrics`);
      expect(res.status).toBe(200);
      const text = await res.text();
      for (const name of [
        'plushlink_gateway_connections',
        'plushlink_gateway_auth_failures_total',
        'plushlink_gateway_clips_accepted_total',
        'plushlink_gateway_clips_refused_total',
        'plushlink_gateway_bytes_accepted_total',
        'plushlink_gateway_store_latency_seconds',
        'plushlink_gateway_delivery_backlog',
        'plushlink_gateway_subscribe_refusals_total',
      ]) {
        expect(text).toContain(name);
      }
      expect((await fetch(`${base}/`)).status).toBe(404);
      expect((await fetch(`${base}/metrics`, { method: 'POST' })).status).toBe(405);
    } finally {
      await srv.close();
    }
  });

  it('keeps per-sender order under a burst and measures throughput', async () => {
    const f = await h.family();
    const [toy, mum] = await Promise.all([h.connect(f.toy), h.connect(f.mum)]);
    const mumBox = inbox(mum);
    const n = 200;
    const clips = Array.from({ length: n }, () => makeClip(f.toy, [f.mum], { oggBytes: 20_000 }));
    const t0 = performance.now();
    await Promise.all(clips.map((c) => toy.publishClip(c)));
    await mumBox.wait(n, 'clip', 20_000);
    const s = (performance.now() - t0) / 1000;
    console.log(
      `burst: ${n} clips of ${clips[0]!.length} B in ${s.toFixed(2)} s = ${(n / s).toFixed(0)} clips/s`,
    );
    expect(mumBox.clips.map((c) => decodeClip(c).header.sequence)).toEqual(
      clips.map((c) => decodeClip(c).header.sequence),
    );
    await sleep(10);
    await Promise.all([toy.close(), mum.close()]);
  });
});

describe('backlog in batches', () => {
  it('sends a long backlog batch by batch as the recipient receipts it', async () => {
    const h = await startHarness({ backlogBatch: 3 });
    try {
      const f = await h.family();
      const toy = await h.connect(f.toy);
      const sent = Array.from({ length: 7 }, () => makeClip(f.toy, [f.dad]));
      for (const c of sent) await toy.publishClip(c);
      await toy.close();
      const dad = await h.connect(f.dad);
      const got: string[] = [];
      dad.onInbox((kind, bytes) => {
        if (kind !== 'clip') return;
        const clip = decodeClip(bytes);
        got.push(toHex(bytes));
        dad
          .publishReceipt(
            createReceipt({
              recipient: f.dad,
              sender: f.toy.id,
              clipId: clip.header.clipId,
              receivedAt: h.clock.now,
            }),
          )
          .catch(() => {});
      });
      const t0 = Date.now();
      while (got.length < 7 && Date.now() - t0 < 5000) await sleep(20);
      expect(got).toEqual(sent.map(toHex));
      await sleep(50);
      expect(await h.store.pendingFor(f.dad.id, 10)).toEqual([]);
      await dad.close();
    } finally {
      await h.close();
    }
  });
});
