// Runs the GatewayStore contract against SQLite and memory, plus SQLite-only durability and no-plaintext checks [PLK-12].
import { closeSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import type { FamilyId } from '../../gateway/interfaces.ts';
import { MemoryStore } from '../../gateway/store/memory.ts';
import { openSqliteStore, type SqliteStore } from '../../gateway/store/sqlite.ts';
import { openWorkerSqliteStore } from '../../gateway/store/sqlite-worker.ts';
import { toHex, utf8 } from '../../shared/bytes.ts';
import { decodeClip, openClip, sealClip } from '../../shared/envelope.ts';
import { generateIdentity, type PrivateIdentity } from '../../shared/identity.ts';
import { seededRandom } from '../../shared/random.ts';
import type { EndpointId } from '../../shared/types.ts';
import { newClip, newEndpoint, newFamilyId, runStoreContract } from './store.contract.ts';

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'plushlink-store-'));
  dirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

runStoreContract('SqliteStore', async () => openSqliteStore(tempDir()));
runStoreContract('SqliteStore (WAL synced in the thread pool)', async () =>
  openSqliteStore(tempDir(), { sync: 'thread' }),
);
runStoreContract('SqliteStore (checkpoints in a thread)', async () =>
  openSqliteStore(tempDir(), { checkpoint: 'thread' }),
);
runStoreContract('WorkerSqliteStore', async () => openWorkerSqliteStore(tempDir()));
runStoreContract('MemoryStore', async () => new MemoryStore());

/** A synthetic Ogg Opus-like payload: real container magic strings and a recognisable 16-bit sine. */
function syntheticOgg(): { ogg: Uint8Array; samples: Uint8Array } {
  const samples = new Uint8Array(4096);
  const dv = new DataView(samples.buffer);
  for (let i = 0; i < samples.length / 2; i++) dv.setInt16(i * 2, Math.round(12000 * Math.sin(i / 7)), true);
  const head = utf8('OggS\0\x02OpusHead\x01\x01synthetic-header-OpusTags\x0bsynthetic ');
  const ogg = new Uint8Array(head.length + samples.length);
  ogg.set(head);
  ogg.set(samples, head.length);
  return { ogg, samples };
}

function dbBytes(dir: string): Buffer {
  const parts = [readFileSync(join(dir, 'gateway.db'))];
  const wal = join(dir, 'gateway.db-wal');
  if (existsSync(wal)) parts.push(readFileSync(wal));
  return Buffer.concat(parts);
}

function windows(b: Uint8Array, size = 48): Buffer[] {
  const at = [0, Math.floor(b.length / 2), b.length - size];
  return at.map((o) => Buffer.from(b.subarray(o, o + size)));
}

describe('SqliteStore specifics', () => {
  it('creates the directory 0700 and the database 0600, in WAL mode with FULL sync and secure_delete', async () => {
    const dir = join(tempDir(), 'data');
    const store = openSqliteStore(dir);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(join(dir, 'gateway.db')).mode & 0o777).toBe(0o600);
    expect(store.db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(store.db.pragma('synchronous', { simple: true })).toBe(2);
    expect(store.db.pragma('secure_delete', { simple: true })).toBe(1);
    expect(store.db.pragma('foreign_keys', { simple: true })).toBe(1);
    const version = store.db.prepare('SELECT max(version) AS v FROM schema_version').get() as { v: number };
    expect(version.v).toBe(3);
    await store.close();
  });

  it('pruning old registry changes keeps the newest: the change number never goes down (roster versions, cached rosters)', async () => {
    const store = openSqliteStore(tempDir());
    const fam = newFamilyId();
    await store.createFamily(fam, 1);
    for (const [i, e] of [newEndpoint('toy'), newEndpoint('parent')].entries()) {
      await store.addEndpoint(e);
      await store.addFamilyMember(fam, e.id, 10 + i);
    }
    const latest = await store.latestRegistryChange();
    expect(await store.pruneRegistryChanges(1_000)).toBe(1);
    expect(await store.latestRegistryChange()).toBe(latest);
    expect(await store.registryChanges(0, 10)).toHaveLength(1);
    await store.close();
  });

  it('sequence numbers survive close and reopen [PLK-8.1]', async () => {
    const dir = tempDir();
    let store = openSqliteStore(dir);
    const toy = newEndpoint('toy');
    const mum = newEndpoint('parent');
    await store.addEndpoint(toy);
    await store.addEndpoint(mum);
    expect(await store.acceptClip(newClip(toy.id, 41), [mum.id])).toEqual({ ok: true });
    await store.close();
    store = openSqliteStore(dir);
    expect(await store.lastSequence(toy.id)).toBe(41);
    expect(await store.acceptClip(newClip(toy.id, 41), [mum.id])).toEqual({ ok: false, reason: 'replay' });
    expect(await store.backlog()).toBe(1);
    await store.close();
  });

  it('online backup while another connection writes; never overwrites', async () => {
    const dir = tempDir();
    const store = openSqliteStore(dir);
    const toy = newEndpoint('toy');
    const mum = newEndpoint('parent');
    await store.addEndpoints([toy, mum]);
    for (let s = 1; s <= 50; s++) await store.acceptClip(newClip(toy.id, s, 5000, 25_000), [mum.id]);
    // A second connection (e.g. the CLI beside the running gateway) holds the file open and writes.
    const other = new Database(join(dir, 'gateway.db'), { timeout: 5000 });
    other.prepare('UPDATE endpoints SET revoked = 1 WHERE id = ?').run(toy.id);
    const out = join(dir, 'backup.db');
    await store.backup(out);
    other.close();
    expect(statSync(out).mode & 0o777).toBe(0o600);
    const copy = new Database(out, { readonly: true });
    expect((copy.prepare('SELECT count(*) AS n FROM clips').get() as { n: number }).n).toBe(50);
    expect(
      (copy.prepare('SELECT revoked FROM endpoints WHERE id = ?').get(toy.id) as { revoked: number }).revoked,
    ).toBe(1);
    copy.close();
    await expect(store.backup(out)).rejects.toThrow(/EEXIST|exists/);
    await store.close();
  });

  it.each([['inline'], ['thread']] as const)(
    'holds no plaintext: no Ogg/Opus magic, no audio samples, no client-side labels; erase leaves no trace (checkpoints %s) [PLK-12.5]',
    async (checkpoint) => {
      const dir = tempDir();
      const store: SqliteStore = openSqliteStore(dir, { checkpoint });
      const rnd = seededRandom('no-plaintext');
      const { ogg, samples } = syntheticOgg();
      // Labels exist only on the client side (an app's address book); the store never sees them.
      const labels = new Map<string, PrivateIdentity>();
      const families: {
        id: FamilyId;
        toy: PrivateIdentity;
        parents: PrivateIdentity[];
        envelopes: Uint8Array[];
      }[] = [];
      for (const name of ['Mia Example', 'Noah Sample']) {
        const id = newFamilyId();
        await store.createFamily(id, 1);
        const toy = generateIdentity('toy', rnd);
        const parents = [generateIdentity('parent', rnd), generateIdentity('parent', rnd)];
        labels.set(`Teddy of ${name}`, toy);
        labels.set(`Mum of ${name}`, parents[0]!);
        labels.set(`Dad of ${name}`, parents[1]!);
        for (const e of [toy, ...parents]) {
          await store.addEndpoint({
            id: e.id,
            role: e.role === 'toy' ? 'toy' : 'parent',
            signPublicKey: e.signPublicKey,
            boxPublicKey: e.boxPublicKey,
            createdAt: 1,
          });
          await store.addFamilyMember(id, e.id, 1);
        }
        families.push({ id, toy, parents, envelopes: [] });
      }
      for (const f of families) {
        for (let seq = 1; seq <= 5; seq++) {
          const env = sealClip({
            sender: f.toy,
            recipients: f.parents,
            sequence: seq,
            createdAt: 1000 + seq,
            durationMs: 2000,
            ogg,
            random: rnd,
          });
          const h = decodeClip(env).header;
          const r = await store.acceptClip(
            {
              sender: h.sender,
              clipId: toHex(h.clipId),
              sequence: h.sequence,
              createdAt: h.createdAt,
              receivedAt: 2000 + seq,
              envelope: env,
            },
            f.parents.map((p) => p.id),
          );
          expect(r).toEqual({ ok: true });
          f.envelopes.push(env);
        }
        const back = sealClip({
          sender: f.parents[0]!,
          recipients: [f.toy],
          sequence: 1,
          createdAt: 3000,
          durationMs: 2000,
          ogg,
          random: rnd,
        });
        const h = decodeClip(back).header;
        await store.acceptClip(
          {
            sender: h.sender,
            clipId: toHex(h.clipId),
            sequence: 1,
            createdAt: 3000,
            receivedAt: 3001,
            envelope: back,
          },
          [f.toy.id],
        );
        f.envelopes.push(back);
      }
      // The stored bytes still open for a recipient (sanity: we stored the real thing).
      const pending = await store.pendingFor(families[0]!.parents[0]!.id as EndpointId, 1);
      expect(
        openClip(pending[0]!.envelope, { recipient: families[0]!.parents[0]!, sender: families[0]!.toy }).ogg,
      ).toEqual(ogg);

      const forbidden: [string, Buffer][] = [
        ['OggS', Buffer.from('OggS')],
        ['OpusHead', Buffer.from('OpusHead')],
        ['OpusTags', Buffer.from('OpusTags')],
        ['sample pattern', Buffer.from(samples.subarray(1000, 1032))],
        ...[...labels.keys()].flatMap((l): [string, Buffer][] => [
          [l, Buffer.from(l)],
          [l, Buffer.from(l, 'utf16le')],
        ]),
        ['Mia', Buffer.from('Mia')],
        ['Noah', Buffer.from('Noah')],
      ];
      const check = (bytes: Buffer): void => {
        for (const [what, needle] of forbidden)
          expect(bytes.indexOf(needle), `${what} found in the database`).toBe(-1);
      };
      expect(existsSync(join(dir, 'gateway.db-wal'))).toBe(true);
      check(dbBytes(dir)); // while open: main file + WAL

      // Erase the first family: none of its envelope bytes or ids remain in the file or the WAL.
      const [a, b] = [families[0]!, families[1]!];
      expect(await store.eraseFamily(a.id, 1)).toEqual({ clips: 6, endpoints: 3 });
      const afterErase = dbBytes(dir);
      check(afterErase);
      for (const env of a.envelopes) for (const w of windows(env)) expect(afterErase.indexOf(w)).toBe(-1);
      for (const e of [a.toy, ...a.parents]) {
        expect(afterErase.indexOf(Buffer.from(e.signPublicKey))).toBe(-1);
        expect(afterErase.indexOf(Buffer.from(e.boxPublicKey))).toBe(-1);
      }
      expect(afterErase.indexOf(Buffer.from(a.id))).toBe(-1);
      // An erased id survives only as a tombstone and as its own `erased` change (the id alone: no
      // key, no family), so that it can never be registered again [PLK-12.5].
      const ids = [a.toy, ...a.parents].map((e) => e.id);
      const tables = (
        store.db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[]
      ).map((t) => t.name);
      for (const t of tables) {
        const rows = store.db.prepare(`SELECT * FROM ${t}`).all() as Record<string, unknown>[];
        const hits = rows.filter((r) =>
          Object.values(r).some((v) => typeof v === 'string' && (ids as string[]).includes(v)),
        );
        if (t === 'tombstones') expect(hits).toHaveLength(3);
        else if (t === 'registry_changes') {
          expect(hits.length).toBeGreaterThan(0);
          for (const h of hits) expect(h.family).toBeNull();
          expect(hits.filter((h) => h.kind === 'erased')).toHaveLength(3);
        } else expect(hits, `erased ids in ${t}`).toEqual([]);
      }
      // ... while the other family's data is still there (the search itself works).
      for (const env of b.envelopes)
        for (const w of windows(env)) expect(afterErase.indexOf(w)).toBeGreaterThan(-1);
      await store.close();
      check(dbBytes(dir));
    },
  );

  it('checkpoint: thread: commits never checkpoint, the thread copies the WAL into the database, and close leaves no WAL', async () => {
    const dir = tempDir();
    const store = openSqliteStore(dir, { checkpoint: 'thread' });
    expect(store.db.pragma('wal_autocheckpoint', { simple: true })).toBe(0);
    const toy = newEndpoint('toy');
    const mum = newEndpoint('parent');
    await store.addEndpoint(toy);
    await store.addEndpoint(mum);
    const dbSize0 = statSync(join(dir, 'gateway.db')).size;
    for (let i = 1; i <= 40; i++)
      expect(await store.acceptClip(newClip(toy.id, i), [mum.id])).toEqual({ ok: true });
    // The thread copies the frames into gateway.db on its own: the main file grows without a
    // single checkpoint on the store's connection (wal_autocheckpoint is 0 there).
    const t0 = Date.now();
    while (store.checkpoints.count === 0 || statSync(join(dir, 'gateway.db')).size <= dbSize0) {
      if (Date.now() - t0 > 20_000) throw new Error('gave up waiting for the checkpoint thread');
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(await store.backlog()).toBe(40);
    await store.close();
    expect(existsSync(join(dir, 'gateway.db-wal'))).toBe(false);
    const again = openSqliteStore(dir);
    expect(await again.lastSequence(toy.id)).toBe(40);
    await again.close();
  });

  it('sync: thread commits with synchronous=NORMAL: the store itself syncs the WAL before settling [PLK-12.3]', async () => {
    const store = openSqliteStore(tempDir(), { sync: 'thread' });
    expect(store.db.pragma('synchronous', { simple: true })).toBe(1);
    await store.close();
  });

  it('a failed WAL sync (sync: thread) acknowledges nothing it covered and fails every later write closed', async () => {
    const dir = tempDir();
    const store = openSqliteStore(dir, { sync: 'thread' });
    const toy = newEndpoint('toy');
    const mum = newEndpoint('parent');
    await store.addEndpoint(toy);
    await store.addEndpoint(mum);
    expect(await store.acceptClip(newClip(toy.id, 1), [mum.id])).toEqual({ ok: true });
    // Fault injection without a double: the descriptor the store syncs is closed under it (EBADF).
    const fd = (store as unknown as { walFd: number }).walFd;
    closeSync(fd);
    await expect(store.acceptClip(newClip(toy.id, 2), [mum.id])).rejects.toMatchObject({
      name: 'StoreError',
      code: 'STORE_SYNC_FAILED',
    });
    await expect(store.markDelivered(mum.id, toy.id, 'ab'.repeat(16), 9000)).rejects.toMatchObject({
      code: 'STORE_SYNC_FAILED',
    });
    (store as unknown as { walFd: number | undefined }).walFd = undefined; // already closed
    await store.close();
  });

  it('a lazy accept [PLK-12.9] rides the next commit another write asks for, or commits on its timer; durable when it resolves', async () => {
    const dir = tempDir();
    const store = openSqliteStore(dir);
    const toy = newEndpoint('toy');
    const mum = newEndpoint('parent');
    await store.addEndpoint(toy);
    await store.addEndpoint(mum);
    const before = store.commitStats();
    const lazy = [1, 2, 3].map((n) => store.acceptClip(newClip(toy.id, n), [mum.id], { lazy: true }));
    await new Promise((r) => setImmediate(r));
    expect(store.commitStats().commits).toBe(before.commits); // nothing asked for a commit yet
    const eager = store.acceptClip(newClip(toy.id, 4), [mum.id]);
    expect(await Promise.all([...lazy, eager])).toEqual(Array(4).fill({ ok: true }));
    const after = store.commitStats();
    expect([after.commits - before.commits, after.jobs - before.jobs]).toEqual([1, 4]);
    // Alone, it still commits within the lazy window, and a second connection sees it.
    const t0 = performance.now();
    expect(await store.acceptClip(newClip(toy.id, 5), [mum.id], { lazy: true, receipted: [mum.id] })).toEqual(
      {
        ok: true,
      },
    );
    expect(performance.now() - t0).toBeLessThan(2000);
    const other = new Database(join(dir, 'gateway.db'), { readonly: true });
    const n = (other.prepare('SELECT count(*) AS n FROM accepted').get() as { n: number }).n;
    other.close();
    expect(n).toBe(5);
    await store.close();
  });

  it('receipts ride the next group commit instead of forcing one each, and are durable when they resolve', async () => {
    const dir = tempDir();
    const store = openSqliteStore(dir);
    const toy = newEndpoint('toy');
    const mum = newEndpoint('parent');
    await store.addEndpoint(toy);
    await store.addEndpoint(mum);
    const clips = Array.from({ length: 6 }, (_, i) => newClip(toy.id, i + 1));
    for (const c of clips) expect(await store.acceptClip(c, [mum.id])).toEqual({ ok: true });
    const before = store.commitStats();
    // Five receipts, then a clip a turn later: the receipts waited for it, one commit, not two.
    const marks = clips.slice(0, 5).map((c) => store.markDelivered(mum.id, toy.id, c.clipId, 9000));
    await new Promise((r) => setImmediate(r));
    const extra = store.acceptClip(newClip(toy.id, 7), [mum.id]);
    expect(await Promise.all(marks)).toEqual(Array(5).fill('delivered'));
    expect(await extra).toEqual({ ok: true });
    const after = store.commitStats();
    expect(after.commits - before.commits).toBe(1);
    expect(after.jobs - before.jobs).toBe(6);
    // A receipt alone still commits (on its timer) and resolves only once durable: a second connection sees it.
    expect(await store.markDelivered(mum.id, toy.id, clips[5]!.clipId, 9001)).toBe('delivered');
    expect(store.commitStats().commits - after.commits).toBe(1);
    const other = new Database(join(dir, 'gateway.db'), { readonly: true });
    const pending = other
      .prepare('SELECT count(*) AS n FROM deliveries WHERE delivered_at IS NULL')
      .get() as { n: number };
    other.close();
    expect(pending.n).toBe(1); // only clip 7 still awaits mum's receipt
    await store.close();
  });
});

describe('WorkerSqliteStore specifics', () => {
  it('commits every write made before close(), with the SqliteStore pragmas, readable by a later SqliteStore', async () => {
    const dir = tempDir();
    const store = openWorkerSqliteStore(dir);
    expect(store.db.pragma('query_only', { simple: true })).toBe(1);
    const fam = newFamilyId();
    await store.createFamily(fam, 1);
    const toy = newEndpoint('toy');
    const mum = newEndpoint('parent');
    await store.addEndpoints([toy, mum]);
    for (const e of [toy, mum]) await store.addFamilyMember(fam, e.id, 1);
    // Not awaited: close() must still commit them (and resolve them) before it returns.
    const writes = Array.from({ length: 200 }, (_, i) => {
      // A view into a larger buffer: only its own bytes may be stored.
      const big = new Uint8Array(4096).fill(0xee);
      const envelope = big.subarray(100, 400).fill(i & 0xff);
      return store.acceptClip({ ...newClip(toy.id, i + 1), envelope }, [mum.id]);
    });
    await store.close();
    expect((await Promise.all(writes)).every((r) => r.ok)).toBe(true);
    await expect(store.getEndpoint(toy.id)).rejects.toThrow(/closed/);
    const again = openSqliteStore(dir);
    expect(again.db.pragma('synchronous', { simple: true })).toBe(2);
    expect(await again.lastSequence(toy.id)).toBe(200);
    const pending = await again.pendingFor(mum.id, 500);
    expect(pending).toHaveLength(200);
    expect(pending[7]!.envelope).toEqual(new Uint8Array(300).fill(7));
    await again.close();
  });

  it('reports refused writes with the same StoreError codes, in call order', async () => {
    const store = openWorkerSqliteStore(tempDir());
    const toy = newEndpoint('toy');
    const results = await Promise.allSettled([store.addEndpoint(toy), store.addEndpoint(toy)]);
    expect(results[0]!.status).toBe('fulfilled');
    expect(results[1]!.status).toBe('rejected');
    expect((results[1] as PromiseRejectedResult).reason).toMatchObject({
      name: 'StoreError',
      code: 'STORE_ENDPOINT_EXISTS',
    });
    await store.close();
  });
});
