// Runs the GatewayStore contract against PostgreSQL (a throwaway cluster), plus its durability, failure, backup and erasure specifics [PLK-12].
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StoreError } from '../../gateway/store/common.ts';
import {
  loadSqliteIntoPostgres,
  openPostgresStore,
  type PostgresStore,
} from '../../gateway/store/postgres.ts';
import { openSqliteStore } from '../../gateway/store/sqlite.ts';
import { newClip, newEndpoint, newFamilyId, runStoreContract } from '../gateway/store.contract.ts';
import { type PostgresEngine, startPostgres } from '../helpers/engines.ts';
import { expectCodeAsync } from '../helpers/errors.ts';

let engine: PostgresEngine;
const ready = (async () => {
  engine = await startPostgres();
  return engine;
})();
let schemas = 0;
const opened: PostgresStore[] = [];
/** A store on a schema of its own (so each contract test starts empty, on one cluster). */
async function freshStore(opts: { schema?: string } = {}): Promise<PostgresStore> {
  const e = await ready;
  const s = await openPostgresStore({ url: e.url, schema: opts.schema ?? `t${++schemas}`, poolSize: 4 });
  opened.push(s);
  return s;
}
const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'plk-pgstore-'));
  dirs.push(d);
  return d;
}

beforeAll(async () => {
  await ready;
}, 60_000);
afterAll(async () => {
  for (const s of opened) await s.close().catch(() => {});
  await (await ready).destroy();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

runStoreContract('PostgresStore', () => freshStore());

describe('PostgresStore specifics', () => {
  async function family(store: PostgresStore) {
    const id = newFamilyId();
    await store.createFamily(id, 1);
    const [toy, mum] = [newEndpoint('toy'), newEndpoint('parent')];
    for (const e of [toy, mum]) {
      await store.addEndpoint(e);
      await store.addFamilyMember(id, e.id, 1);
    }
    return { id, toy: toy.id, mum: mum.id };
  }

  it('pruning old registry changes keeps the newest: the change number never goes down (roster versions, cached rosters)', async () => {
    const store = await freshStore();
    await family(store);
    const latest = await store.latestRegistryChange();
    expect(await store.pruneRegistryChanges(1_000)).toBe(1);
    expect(await store.latestRegistryChange()).toBe(latest);
    expect(await store.registryChanges(0, 10)).toHaveLength(1);
  });

  it('group-commits a burst: 200 concurrent clips in a handful of commits, every promise after its commit [PLK-12.3]', async () => {
    const store = await freshStore();
    const f = await family(store);
    const before = store.commitStats();
    const clips = Array.from({ length: 200 }, (_, i) => newClip(f.toy, i + 1));
    const results = await Promise.all(clips.map((c) => store.acceptClip(c, [f.mum])));
    expect(results.every((r) => r.ok)).toBe(true);
    const after = store.commitStats();
    expect(after.jobs - before.jobs).toBe(200);
    expect(after.commits - before.commits).toBeLessThan(20);
    // Committed: another connection (another node) sees every one.
    const other = await openPostgresStore({ url: engine.url, schema: store.schema, poolSize: 1 });
    expect((await other.pendingFor(f.mum, 500)).length).toBe(200);
    await other.close();
  });

  it('two stores on one schema (two nodes) race the same sequence number: exactly one wins [PLK-8.1]', async () => {
    const a = await freshStore();
    const b = await openPostgresStore({ url: engine.url, schema: a.schema, poolSize: 2 });
    opened.push(b);
    const f = await family(a);
    for (let seq = 1; seq <= 20; seq++) {
      const [ra, rb] = await Promise.all([
        a.acceptClip(newClip(f.toy, seq), [f.mum]),
        b.acceptClip(newClip(f.toy, seq), [f.mum]),
      ]);
      expect([ra.ok, rb.ok].filter(Boolean)).toHaveLength(1);
    }
    expect(await a.lastSequence(f.toy)).toBe(20);
    expect(await b.backlog()).toBe(20);
    // And the same clip sent to both: one stores it, the other acknowledges a retransmit [PLK-8.2].
    const c = newClip(f.toy, 21);
    const both = await Promise.all([a.acceptClip(c, [f.mum]), b.acceptClip(c, [f.mum])]);
    expect(both).toContainEqual({ ok: true });
    expect(both).toContainEqual({ ok: true, retransmit: true });
  });

  it('claims nonces once across nodes; an expired one may be reused [PLK-3.5]', async () => {
    const a = await freshStore();
    const b = await openPostgresStore({ url: engine.url, schema: a.schema, poolSize: 2 });
    opened.push(b);
    const toy = newEndpoint('toy');
    const n = { key: `${toy.id}:00ff`, endpoint: toy.id, expiresAt: 10_000 };
    const claims = await Promise.all([a.claimNonce(n, 5000), b.claimNonce(n, 5000)]);
    expect(claims.sort()).toEqual([false, true]);
    expect(await a.claimNonce(n, 9000)).toBe(false);
    expect(await b.claimNonce({ ...n, expiresAt: 20_000 }, 10_001)).toBe(true);
  });

  it('refuses a server that does not make commits durable (fsync off)', async () => {
    const unsafe = await startPostgres({ settings: { fsync: 'off' } });
    try {
      await expectCodeAsync(openPostgresStore({ url: unsafe.url }), 'STORE_NOT_DURABLE', StoreError);
    } finally {
      await unsafe.destroy();
    }
  });

  it('PostgreSQL stopped: writes reject (nothing acknowledged); restarted: committed data is all there [PLK-12.3]', async () => {
    const own = await startPostgres();
    try {
      const store = await openPostgresStore({ url: own.url, poolSize: 2, timeoutMs: 3000 });
      const f = await family(store);
      expect(await store.acceptClip(newClip(f.toy, 1), [f.mum])).toEqual({ ok: true });
      // A crash of the server (SIGQUIT: immediate shutdown, no checkpoint): the commit was durable.
      process.kill(own.pid()!, 'SIGQUIT');
      await own.stop();
      await expectCodeAsync(store.acceptClip(newClip(f.toy, 2), [f.mum]), 'STORE_UNAVAILABLE', StoreError);
      await expectCodeAsync(store.getEndpoint(f.toy), 'STORE_UNAVAILABLE', StoreError);
      await own.start();
      // The pool reconnects; what was acknowledged is there, what was refused is not.
      let pending: Awaited<ReturnType<PostgresStore['pendingFor']>> | undefined;
      for (let i = 0; i < 50 && !pending; i++) {
        pending = await store.pendingFor(f.mum, 10).catch(() => undefined);
      }
      expect(pending?.length).toBe(1);
      expect(await store.lastSequence(f.toy)).toBe(1);
      expect(await store.acceptClip(newClip(f.toy, 2), [f.mum])).toEqual({ ok: true });
      await store.close();
    } finally {
      await own.destroy();
    }
  });

  it('backs up to a SQLite gateway.db and loads it into an empty schema: same registry, backlog, sequences, feed', async () => {
    const store = await freshStore();
    const f = await family(store);
    await store.setMeta('gateway_id', 'gw-test');
    await store.acceptClip(newClip(f.toy, 7), [f.mum]);
    const delivered = newClip(f.toy, 8);
    await store.acceptClip(delivered, [f.mum]);
    await store.markDelivered(f.mum, f.toy, delivered.clipId, 9000);
    const loner = newEndpoint('toy');
    await store.addEndpoint(loner);
    await store.revokeEndpoint(loner.id, 50);
    await store.recordNonce({ key: `${f.toy}:aa`, endpoint: f.toy, expiresAt: 99_999 });
    const dir = tempDir();
    await store.backup(join(dir, 'gateway.db'));
    // The SQLite store reads it as its own.
    const sqlite = openSqliteStore(dir);
    expect((await sqlite.pendingFor(f.mum, 10)).map((p) => p.clipId)).toHaveLength(1);
    expect(await sqlite.lastSequence(f.toy)).toBe(8);
    expect(await sqlite.isTombstoned(loner.id)).toBe(true);
    expect(await sqlite.getMeta('gateway_id')).toBe('gw-test');
    expect(await sqlite.acceptClip(delivered, [f.mum])).toEqual({ ok: true, retransmit: true });
    await sqlite.close();
    // And back into PostgreSQL.
    const target = await freshStore();
    const db = new Database(join(dir, 'gateway.db'), { readonly: true });
    await loadSqliteIntoPostgres(db, target);
    db.close();
    expect(await target.listEndpoints()).toEqual(await store.listEndpoints());
    expect(await target.pendingFor(f.mum, 10)).toEqual(await store.pendingFor(f.mum, 10));
    expect(await target.registryChanges(0, 100)).toEqual(await store.registryChanges(0, 100));
    expect(await target.loadNonces(1)).toEqual(await store.loadNonces(1));
    expect(await target.acceptClip(delivered, [f.mum])).toEqual({ ok: true, retransmit: true });
    await target.revokeEndpoint(f.mum, 60);
    const latest = await target.latestRegistryChange();
    expect(latest).toBeGreaterThan((await store.registryChanges(0, 100)).at(-1)!.seq);
    // Loading into a schema that holds data is refused.
    const again = new Database(join(dir, 'gateway.db'), { readonly: true });
    await expectCodeAsync(loadSqliteIntoPostgres(again, target), 'STORE_SCHEMA', StoreError);
    again.close();
  });

  it('erasure leaves no row that names an erased endpoint or family, in any table [PLK-12.5]', async () => {
    const store = await freshStore();
    const f = await family(store);
    const c = newClip(f.toy, 1, 5000, 4096);
    await store.acceptClip(c, [f.mum]);
    await store.acceptClip(newClip(f.mum, 1), [f.toy]);
    await store.recordNonce({ key: `${f.toy}:bb`, endpoint: f.toy, expiresAt: 99_999 });
    await store.eraseFamily(f.id, 100);
    const client = new pg.Client({ connectionString: engine.url });
    await client.connect();
    try {
      const tables = await client.query<{ table_name: string }>(
        'SELECT table_name FROM information_schema.tables WHERE table_schema = $1',
        [store.schema],
      );
      const hits: string[] = [];
      for (const { table_name } of tables.rows) {
        const rows = await client.query(`SELECT t::text AS row FROM ${store.schema}.${table_name} t`);
        for (const r of rows.rows as { row: string }[]) {
          // Tombstones and the change feed keep the endpoint ids alone, by design (as SQLite does).
          const idsAllowed = table_name === 'tombstones' || table_name === 'registry_changes';
          if (r.row.includes(f.id) || (!idsAllowed && (r.row.includes(f.toy) || r.row.includes(f.mum))))
            hits.push(`${table_name}: ${r.row.slice(0, 80)}`);
        }
      }
      expect(hits).toEqual([]);
      // The erased clip's pages were vacuumed: no live or dead tuple of the family remains.
      const dead = await client.query<{ n: number }>(
        `SELECT n_dead_tup AS n FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = 'clips'`,
        [store.schema],
      );
      expect(Number(dead.rows[0]?.n ?? 0)).toBe(0);
    } finally {
      await client.end();
    }
  });
});
