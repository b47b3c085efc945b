// Three gateway nodes on one PostgreSQL and one Redis: clips and receipts cross nodes; tokens, nonces and envelopes replayed to another node are refused; a revoke cuts a session on another node [PLK-3.5][PLK-8][PLK-12.4][PLK-12.7].
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConnectRefusedError } from '../../device/transport/mqtt-connect.ts';
import { publicPart } from '../../shared/identity.ts';
import { decodeReceipt } from '../../shared/receipt.ts';
import { makeClip } from '../gateway/helpers/harness.ts';
import {
  type Cluster,
  clipKey,
  type Engines,
  inbox,
  receiptFor,
  startCluster,
  startEngines,
  until,
} from './cluster.ts';

let engines: Engines;
let cluster: Cluster;

beforeAll(async () => {
  engines = await startEngines();
  cluster = await startCluster(engines, 3);
}, 90_000);
afterAll(async () => {
  await cluster?.close();
  await engines?.destroy();
});

describe('three nodes', () => {
  it('a toy on node A reaches parents on nodes B and C, and gets both receipts back [PLK-12.4]', async () => {
    const [a, b, c] = cluster.nodes as [
      (typeof cluster.nodes)[0],
      (typeof cluster.nodes)[0],
      (typeof cluster.nodes)[0],
    ];
    const f = await cluster.family(2);
    const [mum, dad] = f.parents as [(typeof f.parents)[0], (typeof f.parents)[0]];
    const toy = await cluster.connect(f.toy, a);
    const toyBox = inbox(toy);
    const mumConn = await cluster.connect(mum, b);
    const dadConn = await cluster.connect(dad, c);
    const mumBox = inbox(mumConn);
    const dadBox = inbox(dadConn);
    const envs = [1, 2, 3].map((s) => makeClip(f.toy, [publicPart(mum), publicPart(dad)], { sequence: s }));
    for (const e of envs) await toy.publishClip(e); // PUBACK: committed in PostgreSQL
    await until(
      'both parents have the three clips',
      () => mumBox.clips.size === 3 && dadBox.clips.size === 3,
    );
    expect([...mumBox.clips.keys()]).toEqual(envs.map(clipKey));
    expect(Buffer.from(mumBox.clips.get(clipKey(envs[0]!))!)).toEqual(Buffer.from(envs[0]!));
    for (const e of envs) {
      await mumConn.publishReceipt(receiptFor(mum, e));
      await dadConn.publishReceipt(receiptFor(dad, e));
    }
    await until('the toy has six receipts', () => toyBox.receipts.length === 6);
    expect(new Set(toyBox.receipts.map((r) => decodeReceipt(r).recipient))).toEqual(
      new Set([mum.id, dad.id]),
    );
    await until('nothing pending', async () => (await cluster.admin.store.backlog()) === 0);
  });

  it('a parent offline gets its backlog from whichever node it comes back to [PLK-12.4]', async () => {
    const [a, , c] = cluster.nodes as [
      (typeof cluster.nodes)[0],
      (typeof cluster.nodes)[0],
      (typeof cluster.nodes)[0],
    ];
    const f = await cluster.family(1);
    const mum = f.parents[0]!;
    const toy = await cluster.connect(f.toy, a);
    const envs = [1, 2].map((s) => makeClip(f.toy, [publicPart(mum)], { sequence: s }));
    for (const e of envs) await toy.publishClip(e);
    const mumBox = inbox(await cluster.connect(mum, c));
    await until('the backlog arrived on node C', () => mumBox.clips.size === 2);
  });

  it('a connect token used on node A and replayed to node B is refused as a replay [PLK-3.5]', async () => {
    const [a, b] = cluster.nodes as [(typeof cluster.nodes)[0], (typeof cluster.nodes)[0]];
    const f = await cluster.family(1);
    let captured: Uint8Array | undefined;
    const { connectEndpoint } = await import('../../device/transport/mqtt-connect.ts');
    const first = await connectEndpoint({
      url: a.url,
      identity: f.toy,
      gateway: cluster.gateway,
      onToken: (t) => {
        captured = t;
      },
    });
    await first.close();
    const err = await cluster.connect(f.toy, b, captured).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConnectRefusedError);
    expect((err as ConnectRefusedError).returnCode).toBe(4);
    // And on node A again, too.
    const again = await cluster.connect(f.toy, a, captured).catch((e: unknown) => e);
    expect((again as ConnectRefusedError).returnCode).toBe(4);
  });

  it('an envelope replayed to another node: a resend is acknowledged and stored once, an older one is refused and never delivered [PLK-8.1][PLK-8.2]', async () => {
    const [a, b, c] = cluster.nodes as [
      (typeof cluster.nodes)[0],
      (typeof cluster.nodes)[0],
      (typeof cluster.nodes)[0],
    ];
    const f = await cluster.family(1);
    const mum = f.parents[0]!;
    const mumBox = inbox(await cluster.connect(mum, c));
    const onA = await cluster.connect(f.toy, a);
    const e1 = makeClip(f.toy, [publicPart(mum)], { sequence: 10 });
    const e2 = makeClip(f.toy, [publicPart(mum)], { sequence: 11 });
    await onA.publishClip(e1);
    await onA.publishClip(e2);
    await until('two clips delivered', () => mumBox.clips.size === 2);
    await onA.close();
    const onB = await cluster.connect(f.toy, b);
    await onB.publishClip(e2); // the same envelopes again: acknowledged as retransmits, stored once
    await onB.publishClip(e1);
    // A new envelope with an old sequence number (5 after 11): refused, no PUBACK, connection closed.
    const old = makeClip(f.toy, [publicPart(mum)], { sequence: 5 });
    const refused = onB.publishClip(old).then(
      () => 'acked',
      () => 'refused',
    );
    const closed = new Promise<string>((r) => onB.client.once('close', () => r('closed')));
    expect(await Promise.race([refused, closed])).not.toBe('acked');
    const rows = await cluster.admin.store.pendingFor(mum.id, 10);
    expect(rows.map((p) => p.clipId).length).toBe(2);
    expect(await cluster.admin.store.lastSequence(f.toy.id)).toBe(11);
    // The refusal is audited (in the one audit log of every node) with its reason.
    await until('the replay refusal is in the audit log', async () => {
      const r = await cluster.admin.audit.pool.query<{ detail: string }>(
        "SELECT detail FROM audit WHERE kind = 'clip.refused' AND endpoint = $1",
        [f.toy.id],
      );
      return r.rows.some((x) => x.detail.includes('"reason":"replay"'));
    });
    // Delivery is at least once (a node that suspects a lost peer resends backlogs), so what is
    // checked is which clips arrived, not how often: the two accepted ones, never the refused one.
    expect([...mumBox.clips.keys()].sort()).toEqual([clipKey(e1), clipKey(e2)].sort());
    expect(mumBox.clips.has(clipKey(old))).toBe(false);
  });

  it('a revoke made beside node A closes the endpoint’s session on node B, and no node lets it back [PLK-12.7]', async () => {
    const [a, b] = cluster.nodes as [(typeof cluster.nodes)[0], (typeof cluster.nodes)[0]];
    const f = await cluster.family(1);
    const onB = await cluster.connect(f.toy, b);
    const closed = new Promise<void>((r) => onB.client.once('close', () => r()));
    // `plushlink revoke --postgres`: the admin command, in a process of its own.
    const r = spawnSync(
      process.execPath,
      [
        join(import.meta.dirname, '..', '..', 'bin', 'plushlink.js'),
        'revoke',
        f.toy.id,
        '--data',
        join(import.meta.dirname, 'no-such-dir'),
        '--postgres',
        engines.pg.url,
        '--pg-schema',
        cluster.schema,
      ],
      { encoding: 'utf8' },
    );
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain(`revoked ${f.toy.id}`);
    await closed;
    const err = await cluster.connect(f.toy, a).catch((e: unknown) => e);
    expect((err as ConnectRefusedError).returnCode).toBe(5);
  });

  it('one connection per endpoint across nodes: connecting to node B takes over the session on node A', async () => {
    const [a, b] = cluster.nodes as [(typeof cluster.nodes)[0], (typeof cluster.nodes)[0]];
    const f = await cluster.family(1);
    const onA = await cluster.connect(f.toy, a);
    const closed = new Promise<void>((r) => onA.client.once('close', () => r()));
    const onB = await cluster.connect(f.toy, b);
    await closed;
    expect(onB.client.connected).toBe(true);
  });
});
