// Failures of a multi-node gateway: a node SIGKILLed mid-burst, Redis killed (mid-burst and between clips), PostgreSQL stopped (mid-burst and between clips) — no acknowledged clip is ever lost, and nothing unstored is acknowledged [PLK-3.5][PLK-12.3][PLK-12.4].
import { afterEach, describe, expect, it } from 'vitest';
import { ConnectError, type EndpointConnection } from '../../device/transport/mqtt-connect.ts';
import type { PrivateIdentity } from '../../shared/identity.ts';
import { publicPart } from '../../shared/identity.ts';
import { makeClip } from '../gateway/helpers/harness.ts';
import {
  type Cluster,
  clipKey,
  type Engines,
  type GatewayNode,
  inbox,
  receiptFor,
  startCluster,
  startEngines,
  until,
} from './cluster.ts';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

async function setup(
  nodes: number,
  opts: { aof?: boolean } = {},
): Promise<{ engines: Engines; cluster: Cluster }> {
  const engines = await startEngines(opts);
  cleanup.push(() => engines.destroy());
  const cluster = await startCluster(engines, nodes);
  cleanup.push(() => cluster.close());
  return { engines, cluster };
}

/** Publishes every envelope at once (QoS 1, in order); `acked` collects the ones whose PUBACK came. */
function burst(conn: EndpointConnection, envs: readonly Uint8Array[], acked: Set<string>): Promise<unknown> {
  return Promise.allSettled(envs.map((e) => conn.publishClip(e).then(() => acked.add(clipKey(e)))));
}

/** Connects, retrying while the gateway refuses (fail closed) — until it is back. */
async function connectWhenBack(
  cluster: Cluster,
  who: PrivateIdentity,
  node: GatewayNode,
): Promise<EndpointConnection> {
  let conn: EndpointConnection | undefined;
  await until(
    `${who.role} can connect to node ${node.index} again`,
    async () => {
      conn = await cluster.connect(who, node).catch(() => undefined);
      return conn !== undefined;
    },
    60_000,
  );
  return conn!;
}

/** Whether a publish gets its PUBACK, or the connection closes first (the gateway refused it). */
function outcome(conn: EndpointConnection, env: Uint8Array): Promise<'acked' | 'closed'> {
  return new Promise((resolve) => {
    conn.client.once('close', () => resolve('closed'));
    conn.publishClip(env).then(
      () => resolve('acked'),
      () => resolve('closed'),
    );
  });
}

/**
 * A burst of `n` clips (4 kB each) from a toy on node A to a parent on node B; `stop` (an engine
 * going away) runs once `after` PUBACKs have come. Returns the clips acknowledged by the time the
 * toy's connection closed, and every envelope.
 */
async function burstThrough(
  cluster: Cluster,
  stop: () => Promise<void>,
  opts: { n: number; after: number },
): Promise<{ ackedAtStop: Set<string>; envs: Uint8Array[]; mum: PrivateIdentity; toyId: string }> {
  const [a, b] = cluster.nodes as [GatewayNode, GatewayNode];
  const f = await cluster.family(1);
  const mum = f.parents[0]!;
  await cluster.connect(mum, b);
  const toy = await cluster.connect(f.toy, a);
  const envs = Array.from({ length: opts.n }, (_, i) =>
    makeClip(f.toy, [publicPart(mum)], { sequence: i + 1, oggBytes: 4000 }),
  );
  const acked = new Set<string>();
  const closed = new Promise<void>((r) => toy.client.once('close', () => r()));
  const settled = burst(toy, envs, acked);
  await until(`${opts.after} PUBACKs`, () => acked.size >= opts.after);
  await stop();
  // Either the gateway closes the connection (a refused clip) or every publish settles first.
  await Promise.race([closed, settled]);
  toy.client.end(true);
  return { ackedAtStop: new Set(acked), envs, mum, toyId: f.toy.id };
}

/** Every clip in `keys` is in the shared store, pending for `recipient`. */
async function expectStored(cluster: Cluster, recipient: string, keys: Set<string>): Promise<void> {
  const pending = await cluster.admin.store.pendingFor(recipient as PrivateIdentity['id'], 10_000);
  const stored = new Set(pending.map((p) => `${p.sender}:${p.clipId}`));
  const missing = [...keys].filter((k) => !stored.has(k));
  expect(missing).toEqual([]);
}

describe('a gateway node SIGKILLed mid-burst', () => {
  it('loses no acknowledged clip: its toy resends to another node and every clip reaches both parents [PLK-12.3][PLK-12.4]', async () => {
    const { cluster } = await setup(2);
    const [a, b] = cluster.nodes as [GatewayNode, GatewayNode];
    const f = await cluster.family(2);
    const [mum, dad] = f.parents as [PrivateIdentity, PrivateIdentity];
    const mumConn = await cluster.connect(mum, b);
    const dadConn = await cluster.connect(dad, b);
    const boxes = [inbox(mumConn), inbox(dadConn)];
    const toy = await cluster.connect(f.toy, a);
    const envs = Array.from({ length: 300 }, (_, i) =>
      makeClip(f.toy, [publicPart(mum), publicPart(dad)], { sequence: i + 1, oggBytes: 4000 }),
    );
    const acked = new Set<string>();
    const toyClosed = new Promise<void>((r) => toy.client.once('close', () => r()));
    void burst(toy, envs, acked);
    await until('some PUBACKs', () => acked.size >= 40);
    await a.kill();
    await toyClosed; // publishes still in flight never get their PUBACK
    const ackedAtKill = new Set(acked);
    expect(ackedAtKill.size).toBeGreaterThanOrEqual(40);
    // The toy's outbox: everything without a PUBACK goes again, in order, to the other node.
    const again = await cluster.connect(f.toy, b);
    for (const e of envs) if (!ackedAtKill.has(clipKey(e))) await again.publishClip(e);
    for (const box of boxes) {
      await until(
        'every clip at both parents (acknowledged ones included)',
        () => box.clips.size === envs.length,
        60_000,
      );
    }
    for (const k of ackedAtKill) for (const box of boxes) expect(box.clips.has(k)).toBe(true);
    expect(await cluster.admin.store.lastSequence(f.toy.id)).toBe(300);
    for (const e of envs) {
      await mumConn.publishReceipt(receiptFor(mum, e));
      await dadConn.publishReceipt(receiptFor(dad, e));
    }
    await until('every delivery receipted', async () => (await cluster.admin.store.backlog()) === 0);
  });
});

describe('Redis restarted mid-run', () => {
  it('killed mid-burst: every clip acknowledged (before or while it went) is in the store [PLK-12.3]', async () => {
    const { engines, cluster } = await setup(2);
    const r = await burstThrough(cluster, () => engines.redis.kill(), { n: 200, after: 20 });
    expect(r.ackedAtStop.size).toBeGreaterThanOrEqual(20);
    await expectStored(cluster, r.mum.id, r.ackedAtStop);
    await engines.redis.start();
    // And the node still stops cleanly on SIGTERM (exit 0, not the SIGKILL stopPid falls back to):
    // Aedes' close could wait forever on the bus after the restart; the gateway bounds it.
    const a = cluster.nodes[0]!;
    await a.stop();
    expect({ code: a.child.exitCode, signal: a.child.signalCode }, a.log()).toEqual({
      code: 0,
      signal: null,
    });
  });

  it('the gateways fail closed while it is gone and recover without losing an acknowledged clip [PLK-3.5]', async () => {
    const { engines, cluster } = await setup(2);
    const [a, b] = cluster.nodes as [GatewayNode, GatewayNode];
    const f = await cluster.family(1);
    const mum = f.parents[0]!;
    let mumConn = await cluster.connect(mum, b);
    const box = inbox(mumConn);
    const { connectEndpoint } = await import('../../device/transport/mqtt-connect.ts');
    let captured: Uint8Array | undefined;
    let toy = await connectEndpoint({
      url: a.url,
      identity: f.toy,
      gateway: cluster.gateway,
      onToken: (t) => {
        captured = t;
      },
    });
    const envs = Array.from({ length: 20 }, (_, i) =>
      makeClip(f.toy, [publicPart(mum)], { sequence: i + 1 }),
    );
    const acked = new Set<string>();
    for (const e of envs.slice(0, 5)) {
      await toy.publishClip(e);
      acked.add(clipKey(e));
    }
    await until('five clips delivered', () => box.clips.size === 5);

    const readyz = async (node: GatewayNode) => {
      const r = await fetch(`${node.metricsBase}/readyz`);
      return { status: r.status, body: (await r.json()) as { checks: Record<string, string> } };
    };
    expect((await readyz(a)).status).toBe(200);
    expect((await readyz(a)).body.checks.redis).toMatch(/^answering/);

    await engines.redis.kill(); // a crash: no AOF, every key it held is gone
    // The readiness probe says so (a load balancer stops sending toys here, docs/SCALING.md).
    // (Once the node has seen its connection drop; until then a ping may wait for its timeout.)
    await until('node A reports Redis down on /readyz', async () => {
      const down = await readyz(a);
      return down.status === 503 && /^not answering/.test(down.body.checks.redis ?? '');
    });
    // New connects are refused (CONNACK 3 or a closed socket), on both nodes.
    for (const node of [a, b]) {
      const err = await cluster.connect(f.parents[0]!, node).then(
        () => 'connected',
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(ConnectError);
    }
    // A clip published now gets no PUBACK: its rate limit cannot be checked.
    expect(await outcome(toy, envs[5]!)).toBe('closed');

    await engines.redis.start();
    await until('node A is ready again', async () => (await readyz(a)).status === 200);
    toy = await connectWhenBack(cluster, f.toy, a);
    for (const e of envs.slice(5)) {
      await toy.publishClip(e);
      acked.add(clipKey(e));
    }
    if (!mumConn.client.connected) {
      mumConn = await connectWhenBack(cluster, mum, b);
      const again = inbox(mumConn);
      await until(
        'every acknowledged clip at the parent',
        () => again.clips.size + box.clips.size >= acked.size,
        60_000,
      );
    } else {
      await until('every acknowledged clip at the parent', () => box.clips.size === acked.size, 60_000);
    }
    for (const k of acked)
      expect(
        (await cluster.admin.store.pendingFor(mum.id, 100)).some((p) => `${f.toy.id}:${p.clipId}` === k),
      ).toBe(true);
    // Redis forgot every nonce; PostgreSQL did not: a token used before the crash is still a replay.
    const replay = await cluster.connect(f.toy, b, captured).catch((e: unknown) => e);
    expect((replay as { returnCode?: number }).returnCode).toBe(4);
  });
});

describe('PostgreSQL stopped', () => {
  it('mid-burst: every clip acknowledged before the stop is in the store once it is back [PLK-12.3]', async () => {
    const { engines, cluster } = await setup(2);
    const r = await burstThrough(cluster, () => engines.pg.stop(), { n: 200, after: 20 });
    expect(r.ackedAtStop.size).toBeGreaterThanOrEqual(20);
    await engines.pg.start();
    await until('the store answers again', async () =>
      cluster.admin.store.lastSequence(r.toyId as PrivateIdentity['id']).then(
        () => true,
        () => false,
      ),
    );
    await expectStored(cluster, r.mum.id, r.ackedAtStop);
  });

  it('no PUBACK is ever sent for a clip that is not stored; after it returns, clips flow again [PLK-12.3]', async () => {
    const { engines, cluster } = await setup(2);
    const [a, b] = cluster.nodes as [GatewayNode, GatewayNode];
    const f = await cluster.family(1);
    const mum = f.parents[0]!;
    const mumConn = await cluster.connect(mum, b);
    const box = inbox(mumConn);
    let toy = await cluster.connect(f.toy, a);
    const envs = Array.from({ length: 30 }, (_, i) =>
      makeClip(f.toy, [publicPart(mum)], { sequence: i + 1 }),
    );
    await toy.publishClip(envs[0]!);
    await until('the first clip delivered', () => box.clips.size === 1);

    await engines.pg.stop();
    // A burst while the store is away: not one PUBACK.
    const acked = new Set<string>();
    const closed = new Promise<void>((r) => toy.client.once('close', () => r()));
    void burst(toy, envs.slice(1, 11), acked);
    await closed;
    expect(acked.size).toBe(0);
    // New connections are refused too (the registry cannot be read).
    const err = await cluster.connect(mum, a).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);

    await engines.pg.start();
    toy = await connectWhenBack(cluster, f.toy, a);
    for (const e of envs.slice(1)) await toy.publishClip(e);
    await until('all thirty at the parent', () => box.clips.size === 30, 60_000);
    expect(await cluster.admin.store.lastSequence(f.toy.id)).toBe(30);
  });
});
