// Multi-node test harness: real PostgreSQL and Redis (throwaway), gateway nodes as `plushlink gateway --postgres --redis` child processes, real MQTT.js endpoints.
import { type ChildProcess, spawn } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectEndpoint, type EndpointConnection } from '../../device/transport/mqtt-connect.ts';
import { registerFamilies } from '../../gateway/admin.ts';
import { type ClusterAdminHandles, openClusterAdmin } from '../../gateway/cluster/admin.ts';
import type { FamilyId } from '../../gateway/interfaces.ts';
import { writeKeyDir } from '../../platform/keyfiles.ts';
import { toBase32, toHex } from '../../shared/bytes.ts';
import { decodeClip } from '../../shared/envelope.ts';
import {
  generateIdentity,
  type PrivateIdentity,
  type PublicIdentity,
  publicPart,
} from '../../shared/identity.ts';
import { systemRandom } from '../../shared/random.ts';
import { createReceipt } from '../../shared/receipt.ts';
import {
  alive,
  type PostgresEngine,
  type RedisEngine,
  startPostgres,
  startRedis,
  stopPid,
} from '../helpers/engines.ts';

const CLI = join(import.meta.dirname, '..', '..', 'bin', 'plushlink.js');
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `cond` until it holds; fails with `what` after `ms` (a bound on a hang, never a timing claim). */
export async function until(
  what: string,
  cond: () => boolean | Promise<boolean>,
  ms = 30_000,
): Promise<void> {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for: ${what}`);
    await sleep(20);
  }
}

export interface GatewayNode {
  readonly index: number;
  readonly port: number;
  readonly url: string;
  /** http://127.0.0.1:PORT of the node's /metrics, /healthz and /readyz (docs/OPERATIONS.md). */
  readonly metricsBase: string;
  readonly pid: number;
  readonly child: ChildProcess;
  /** SIGKILL: the node dies at once, mid-whatever. */
  kill(): Promise<void>;
  /** SIGTERM: a clean stop. */
  stop(): Promise<void>;
  log(): string;
}

export interface Engines {
  readonly pg: PostgresEngine;
  readonly redis: RedisEngine;
  destroy(): Promise<void>;
}

export async function startEngines(opts: { aof?: boolean } = {}): Promise<Engines> {
  const [pg, redis] = await Promise.all([startPostgres(), startRedis({ aof: opts.aof === true })]);
  return {
    pg,
    redis,
    async destroy() {
      await Promise.all([pg.destroy(), redis.destroy()]);
    },
  };
}

export interface TestFamily {
  readonly id: FamilyId;
  readonly toy: PrivateIdentity;
  readonly parents: readonly PrivateIdentity[];
}

export interface Cluster {
  readonly engines: Engines;
  readonly schema: string;
  readonly gateway: PublicIdentity;
  /** A data directory holding only the gateway key (DIR/gateway: endpoint.key, identity.json), as admin commands take it. */
  readonly keyDataDir: string;
  readonly nodes: GatewayNode[];
  /** The admin handles on the shared store (as `plushlink … --postgres` opens them). */
  readonly admin: ClusterAdminHandles;
  /** Starts node `index` (its own data directory holding a copy of the gateway key). */
  startNode(index: number): Promise<GatewayNode>;
  family(parents?: number): Promise<TestFamily>;
  connect(identity: PrivateIdentity, node: GatewayNode, token?: Uint8Array): Promise<EndpointConnection>;
  close(): Promise<void>;
}

let clusters = 0;

/**
 * A gateway of `nodes` nodes on the engines: a new schema and gateway identity, the key copied into
 * each node's data directory, every node a child process of the real CLI.
 */
export async function startCluster(engines: Engines, nodes: number): Promise<Cluster> {
  const base = mkdtempSync(join(tmpdir(), 'plk-cluster-'));
  const schema = `c${process.pid}_${++clusters}`;
  const gatewayIdentity = generateIdentity('gateway');
  await writeKeyDir(join(base, 'key', 'gateway'), gatewayIdentity);
  const admin = await openClusterAdmin(join(base, 'key'), {
    postgres: engines.pg.url,
    schema,
    create: true,
    gatewayKey: join(base, 'key', 'gateway'),
  });
  await admin.store.setMeta('gateway_id', gatewayIdentity.id);
  const running = new Set<GatewayNode>();
  const conns: EndpointConnection[] = [];
  const list: GatewayNode[] = [];

  const startNode = async (index: number): Promise<GatewayNode> => {
    const dir = join(base, `node${index}`);
    cpSync(join(base, 'key', 'gateway'), join(dir, 'gateway'), { recursive: true });
    const child = spawn(
      process.execPath,
      [
        CLI,
        'gateway',
        '--data',
        dir,
        '--port',
        '0',
        '--postgres',
        engines.pg.url,
        '--pg-schema',
        schema,
        '--redis',
        engines.redis.url,
        '--connect-rate',
        '100000',
        '--clip-rate',
        '100000',
        '--clip-burst',
        '100000',
        '--metrics-port',
        '0',
        '--log-level',
        'warn',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    child.stderr?.on('data', (d: Buffer) => {
      err = (err + d.toString()).slice(-50_000);
    });
    const { port, metricsBase } = await new Promise<{ port: number; metricsBase: string }>(
      (resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`node ${index} did not start: ${err}`)), 30_000);
        child.stdout?.on('data', (d: Buffer) => {
          out += d.toString();
          const m = /port=(\d+)/.exec(out);
          const metrics = /metrics=(http:\/\/[^/\s]+)\/metrics/.exec(out);
          if (m && metrics) {
            clearTimeout(t);
            resolve({ port: Number(m[1]), metricsBase: metrics[1]! });
          }
        });
        child.once('exit', (code) => {
          clearTimeout(t);
          reject(new Error(`node ${index} exited with ${code}: ${err}`));
        });
      },
    );
    const pid = child.pid!;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const node: GatewayNode = {
      index,
      port,
      url: `mqtt://127.0.0.1:${port}`,
      metricsBase,
      pid,
      child,
      async kill() {
        if (alive(pid)) process.kill(pid, 'SIGKILL');
        await exited;
        running.delete(node);
      },
      async stop() {
        await stopPid(pid, 'SIGTERM');
        await exited;
        running.delete(node);
      },
      log: () => err,
    };
    running.add(node);
    list[index] = node;
    return node;
  };

  for (let i = 0; i < nodes; i++) await startNode(i);

  return {
    engines,
    schema,
    gateway: publicPart(gatewayIdentity),
    keyDataDir: join(base, 'key'),
    nodes: list,
    admin,
    startNode,
    async family(parents = 2) {
      const toy = generateIdentity('toy');
      const ps = Array.from({ length: parents }, () => generateIdentity('parent'));
      const id = `f${toBase32(systemRandom(16))}` as FamilyId;
      await registerFamilies(admin.store, admin.audit, [{ id, members: [toy, ...ps].map(publicPart) }]);
      return { id, toy, parents: ps };
    },
    async connect(identity, node, token) {
      const c = await connectEndpoint({
        url: node.url,
        identity,
        gateway: publicPart(gatewayIdentity),
        ...(token ? { token } : {}),
      });
      conns.push(c);
      return c;
    },
    async close() {
      for (const c of conns) c.client.end(true);
      for (const n of [...running]) await n.stop();
      await admin.close();
      rmSync(base, { recursive: true, force: true });
    },
  };
}

/** Collects an endpoint's inbox: clip envelopes (by "sender:clipId") and receipts. */
export function inbox(conn: EndpointConnection): {
  clips: Map<string, Uint8Array>;
  receipts: Uint8Array[];
  all: number;
} {
  const box = { clips: new Map<string, Uint8Array>(), receipts: [] as Uint8Array[], all: 0 };
  conn.onInbox((kind, bytes) => {
    box.all++;
    if (kind === 'clip') {
      const h = decodeClip(bytes).header;
      box.clips.set(`${h.sender}:${toHex(h.clipId)}`, bytes);
    } else if (kind === 'receipt') box.receipts.push(bytes);
  });
  return box;
}

/** A parent's receipt for a clip envelope it received [PLK-6.1]. */
export function receiptFor(parent: PrivateIdentity, envelope: Uint8Array): Uint8Array {
  const h = decodeClip(envelope).header;
  return createReceipt({ recipient: parent, sender: h.sender, clipId: h.clipId, receivedAt: Date.now() });
}

export const clipKey = (envelope: Uint8Array): string => {
  const h = decodeClip(envelope).header;
  return `${h.sender}:${toHex(h.clipId)}`;
};
