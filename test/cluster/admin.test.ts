// The admin commands against a gateway on PostgreSQL: provision, families, endpoints, audit verify (and a tampered log), backup, restore into a data directory or into PostgreSQL [PLK-12.2][PLK-12.5].
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectEndpoint } from '../../device/transport/mqtt-connect.ts';
import { readIdentity, readPrivateKey } from '../../platform/keyfiles.ts';
import { makeClip } from '../gateway/helpers/harness.ts';
import { stopPid } from '../helpers/engines.ts';
import { type Engines, inbox, startEngines, until } from './cluster.ts';

const CLI = join(import.meta.dirname, '..', '..', 'bin', 'plushlink.js');
let engines: Engines;
let dir: string;

beforeAll(async () => {
  engines = await startEngines();
  dir = mkdtempSync(join(tmpdir(), 'plk-cluster-admin-'));
}, 60_000);
afterAll(async () => {
  await engines?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

function plushlink(...args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

/** `plushlink gateway … --postgres --redis` until its listening line; stopped by PID. */
async function node(data: string, schema: string): Promise<{ url: string; stop(): Promise<void> }> {
  const child = spawn(
    process.execPath,
    [
      CLI,
      'gateway',
      '--data',
      data,
      '--port',
      '0',
      '--postgres',
      engines.pg.url,
      '--pg-schema',
      schema,
      '--redis',
      engines.redis.url,
      '--log-level',
      'warn',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let err = '';
  child.stderr?.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /port=(\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`gateway exited with ${code}: ${err}`)));
  });
  return {
    url: `mqtt://127.0.0.1:${port}`,
    stop: async () => {
      await stopPid(child.pid!, 'SIGTERM');
    },
  };
}

describe('admin commands with --postgres', () => {
  it('provision, families, endpoints, audit verify, backup and both restores work on the shared store', async () => {
    const data = join(dir, 'node');
    const pgArgs = ['--data', data, '--postgres', engines.pg.url, '--pg-schema', 'admin1'];
    // A first start creates the gateway identity and records it in PostgreSQL.
    const gw = await node(data, 'admin1');
    const toyId = plushlink('provision', 'toy', '--out', join(dir, 'toy'), ...pgArgs);
    expect(toyId.err).toBe('');
    const mumId = plushlink('provision', 'parent', '--out', join(dir, 'mum'), ...pgArgs);
    const fam = plushlink('family', 'create', ...pgArgs).out.trim();
    expect(plushlink('family', 'add', fam, toyId.out.trim(), ...pgArgs).code).toBe(0);
    expect(plushlink('family', 'add', fam, mumId.out.trim(), ...pgArgs).code).toBe(0);
    const list = JSON.parse(plushlink('endpoints', 'list', '--json', ...pgArgs).out) as {
      id: string;
      familyId: string;
    }[];
    expect(list.map((e) => e.id).sort()).toEqual([toyId.out.trim(), mumId.out.trim()].sort());
    expect(list.every((e) => e.familyId === fam)).toBe(true);
    // A schema nobody used is refused, and nothing is created there.
    const wrong = plushlink(
      'family',
      'list',
      '--data',
      data,
      '--postgres',
      engines.pg.url,
      '--pg-schema',
      'nobody',
    );
    expect(wrong.code).toBe(1);
    expect(wrong.err).toMatch(/no PlushLink gateway data/);

    // A clip the parent has not fetched yet: it must survive backup and restore.
    const gatewayIdentity = await readIdentity(join(data, 'gateway', 'identity.json'));
    const toy = await readPrivateKey(join(dir, 'toy'));
    const mum = await readPrivateKey(join(dir, 'mum'));
    const conn = await connectEndpoint({ url: gw.url, identity: toy, gateway: gatewayIdentity });
    await conn.publishClip(makeClip(toy, [mum], { sequence: 1 }));
    await conn.close();

    const verified = plushlink('audit', 'verify', ...pgArgs);
    expect(verified.out).toMatch(
      /audit log OK: \d+ rows, anchored through row \d+, anchor signatures checked/,
    );

    const bk = join(dir, 'bk');
    const b = plushlink('backup', bk, ...pgArgs);
    expect(b.err).toBe('');
    for (const f of ['gateway.db', 'audit.db', 'audit.anchor', 'gateway/endpoint.key'])
      expect(existsSync(join(bk, f))).toBe(true);

    // Into a data directory: an embedded gateway with the same id and backlog.
    const r1 = plushlink('restore', bk, '--data', join(dir, 'embedded'), '--json');
    expect(r1.err).toBe('');
    expect(JSON.parse(r1.out)).toMatchObject({
      gatewayId: gatewayIdentity.id,
      endpoints: 2,
      pendingDeliveries: 1,
    });

    // Into an empty schema: a cluster node starts on it and the parent gets the clip.
    const r2 = plushlink(
      'restore',
      bk,
      '--data',
      join(dir, 'restored'),
      '--postgres',
      engines.pg.url,
      '--pg-schema',
      'admin2',
    );
    expect(r2.err).toBe('');
    expect(r2.out).toMatch(/restored gateway .* 2 endpoints, 1 families, 1 pending deliveries/);
    expect(existsSync(join(dir, 'restored', 'gateway.db'))).toBe(false);
    await gw.stop();
    const gw2 = await node(join(dir, 'restored'), 'admin2');
    const mumConn = await connectEndpoint({ url: gw2.url, identity: mum, gateway: gatewayIdentity });
    const box = inbox(mumConn);
    await until('the restored backlog arrives', () => box.clips.size === 1);
    await mumConn.close();
    await gw2.stop();
    // Restoring into a schema that holds data is refused.
    const again = plushlink(
      'restore',
      bk,
      '--data',
      join(dir, 'again'),
      '--postgres',
      engines.pg.url,
      '--pg-schema',
      'admin2',
    );
    expect(again.code).not.toBe(0);
    expect(again.err).toMatch(/not empty|already holds/);
    expect(again.err).toContain('restore into an empty schema (--pg-schema NAME) or another database');
    expect(again.err.trim().split('\n')).toHaveLength(1);
    expect(
      plushlink(
        'audit',
        'verify',
        '--data',
        join(dir, 'restored'),
        '--postgres',
        engines.pg.url,
        '--pg-schema',
        'admin2',
      ).code,
    ).toBe(0);

    // Someone with database access rewrites a row (dropping the guard trigger first): verify says so.
    const c = new pg.Client({ connectionString: engines.pg.url });
    await c.connect();
    await c.query('ALTER TABLE admin1.audit DISABLE TRIGGER audit_no_change');
    await c.query("UPDATE admin1.audit SET detail = '{}' WHERE seq = 2");
    await c.end();
    const tampered = plushlink('audit', 'verify', ...pgArgs);
    expect(tampered.code).toBe(1);
    expect(tampered.err).toMatch(/TAMPERED at row 2/);
  });

  it('an unreachable --redis or --postgres: one line, exit 1, nothing claimed in the store and no data directory made', async () => {
    const data = join(dir, 'unreachable');
    const noRedis = plushlink(
      'gateway',
      '--data',
      data,
      '--port',
      '0',
      '--postgres',
      engines.pg.url,
      '--pg-schema',
      'unreach',
      '--redis',
      'redis://127.0.0.1:1',
    );
    expect(noRedis.code).toBe(1);
    expect(noRedis.err).toMatch(
      /^plushlink: REDIS_UNAVAILABLE: redis redis:\/\/127\.0\.0\.1:1 is not reachable/,
    );
    expect(noRedis.err.trim().split('\n')).toHaveLength(1);
    // No gateway identity was claimed (nor a key made, nor even the data directory) by the node
    // that could not start.
    expect(existsSync(join(data, 'gateway'))).toBe(false);
    expect(existsSync(data)).toBe(false);
    const c = new pg.Client({ connectionString: engines.pg.url });
    await c.connect();
    const meta = await c
      .query("SELECT value FROM unreach.meta WHERE key = 'gateway_id'")
      .catch(() => ({ rows: [] }));
    await c.end();
    expect(meta.rows).toEqual([]);

    const noPg = plushlink(
      'gateway',
      '--data',
      data,
      '--postgres',
      'postgres://plushlink:secret@127.0.0.1:1/plushlink',
      '--redis',
      engines.redis.url,
    );
    expect(noPg.code).toBe(1);
    expect(noPg.err).toMatch(
      /^plushlink: STORE_UNAVAILABLE: .*postgres:\/\/plushlink:\*\*\*@127\.0\.0\.1:1\/plushlink is not reachable/,
    );
    expect(noPg.err).not.toContain('secret');
    expect(noPg.err.trim().split('\n')).toHaveLength(1);
    expect(existsSync(data)).toBe(false);
  });
});
