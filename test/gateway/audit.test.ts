// Audit log: hash chain catches edited and deleted rows, the signed anchor catches a truncated tail [PLK-12.2].
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import {
  canonicalRow,
  gatewayAuditKeys,
  openSqliteAuditLog,
  readAnchorFile,
  rowHash,
  type SqliteAuditLogOptions,
  sanitizeDetail,
} from '../../gateway/audit.ts';
import { generateIdentity } from '../../shared/identity.ts';
import { seededRandom } from '../../shared/random.ts';
import type { EndpointId } from '../../shared/types.ts';
import { runAuditLogContract } from './audit.contract.ts';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const gateway = generateIdentity('gateway', seededRandom('audit-gateway'));
const keys = gatewayAuditKeys(gateway);
const toy = generateIdentity('toy', seededRandom('audit-toy')).id;

/** A log of `n` rows written and closed (so the head is anchored); returns its directory. */
async function writtenLog(n: number, opts: SqliteAuditLogOptions = {}): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'plushlink-audit-'));
  dirs.push(dir);
  const log = openSqliteAuditLog(dir, { ...keys, anchorEvery: 4, clock: () => 1_700_000_000_000, ...opts });
  for (let i = 1; i <= n; i++) {
    await log.append({
      at: 1000 + i,
      kind: i % 2 ? 'clip.accepted' : 'auth.refused',
      endpoint: toy,
      detail: { i, ok: true, reason: 'x' },
    });
  }
  await log.close();
  return dir;
}

/** Raw SQL, as an attacker with file access would (the append-only triggers are dropped first). */
function tamper(dir: string, sql: string): void {
  const db = new Database(join(dir, 'audit.db'));
  db.exec('DROP TRIGGER IF EXISTS audit_no_update; DROP TRIGGER IF EXISTS audit_no_delete;');
  db.exec(sql);
  db.close();
}

async function verify(dir: string, opts: SqliteAuditLogOptions = keys) {
  const log = openSqliteAuditLog(dir, opts);
  const r = await log.verify();
  await log.close();
  return r;
}

runAuditLogContract('SqliteAuditLog', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'plushlink-audit-contract-'));
  dirs.push(dir);
  return { open: async () => openSqliteAuditLog(dir, keys) };
});

describe('SqliteAuditLog', () => {
  it('untouched log verifies; files are private; anchors are signed', async () => {
    const dir = await writtenLog(10);
    expect(await verify(dir)).toEqual({ ok: true, rows: 10, anchoredSeq: 10, signaturesChecked: true });
    expect(statSync(join(dir, 'audit.db')).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'audit.anchor')).mode & 0o777).toBe(0o600);
    const a = readAnchorFile(join(dir, 'audit.anchor'));
    expect(a?.seq).toBe(10);
    expect(a?.signature).toMatch(/^[0-9a-f]{128}$/);
    // Appending again continues the chain, across processes/instances.
    const log = openSqliteAuditLog(dir, keys);
    await log.append({ at: 5, kind: 'family.erased', detail: { clips: 3 } });
    expect(await log.verify()).toMatchObject({ ok: true, rows: 11 });
    await log.close();
  });

  it('each row hash is SHA-256(prev_hash || canonical row) with sorted detail keys', async () => {
    const dir = await writtenLog(2);
    const db = new Database(join(dir, 'audit.db'), { readonly: true });
    const rows = db.prepare('SELECT * FROM audit ORDER BY seq').all() as {
      seq: number;
      at: number;
      kind: string;
      endpoint: string | null;
      detail: string;
      prev_hash: Buffer;
      hash: Buffer;
    }[];
    db.close();
    expect(rows[0]!.detail).toBe('{"i":1,"ok":true,"reason":"x"}');
    let prev: Uint8Array = new Uint8Array(32);
    for (const r of rows) {
      const h = rowHash(prev, canonicalRow(r.seq, r.at, r.kind, r.endpoint, r.detail));
      expect(Buffer.from(h)).toEqual(r.hash);
      prev = h;
    }
  });

  it('an edited row fails at that row', async () => {
    const dir = await writtenLog(10);
    tamper(dir, `UPDATE audit SET detail = '{"i":5,"ok":false,"reason":"x"}' WHERE seq = 5`);
    expect(await verify(dir)).toMatchObject({ ok: false, firstBadRow: 5 });
  });

  it('an edited row with recomputed hashes for the rest of the chain contradicts the signed anchor', async () => {
    const dir = await writtenLog(10);
    const db = new Database(join(dir, 'audit.db'));
    db.exec('DROP TRIGGER audit_no_update');
    const rows = db.prepare('SELECT * FROM audit ORDER BY seq').all() as {
      seq: number;
      at: number;
      kind: string;
      endpoint: string | null;
      detail: string;
      hash: Buffer;
    }[];
    let prev: Uint8Array = new Uint8Array(32);
    for (const r of rows) {
      const detail = r.seq === 9 ? '{"i":9,"ok":false,"reason":"forged"}' : r.detail;
      const h = rowHash(prev, canonicalRow(r.seq, r.at, r.kind, r.endpoint, detail));
      db.prepare('UPDATE audit SET detail = ?, prev_hash = ?, hash = ? WHERE seq = ?').run(
        detail,
        prev,
        h,
        r.seq,
      );
      prev = h;
    }
    db.close();
    const r = await verify(dir);
    expect(r.ok).toBe(false);
    expect(r.reason).toMatch(/anchor/);
  });

  it('a deleted middle row fails', async () => {
    const dir = await writtenLog(10);
    tamper(dir, 'DELETE FROM audit WHERE seq = 6');
    expect(await verify(dir)).toMatchObject({ ok: false, firstBadRow: 6 });
  });

  it('deleted last rows are detected through the signed anchor (table copy and file copy)', async () => {
    const dir = await writtenLog(10);
    tamper(dir, 'DELETE FROM audit WHERE seq > 7');
    const r = await verify(dir);
    expect(r).toMatchObject({ ok: false, firstBadRow: 8 });
    expect(r.reason).toMatch(/deleted/);
    // Even when the anchors table is wiped as well, the mirrored anchor file still catches it.
    tamper(dir, 'DELETE FROM anchors');
    expect(await verify(dir)).toMatchObject({ ok: false, firstBadRow: 8 });
  });

  it('a forged anchor (attacker without the gateway key) is refused', async () => {
    const dir = await writtenLog(10);
    tamper(dir, 'DELETE FROM audit WHERE seq > 7; DELETE FROM anchors');
    const file = join(dir, 'audit.anchor');
    const a = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    const db = new Database(join(dir, 'audit.db'), { readonly: true });
    const head = db.prepare('SELECT hash FROM audit WHERE seq = 7').get() as { hash: Buffer };
    db.close();
    writeFileSync(file, JSON.stringify({ ...a, seq: 7, hash: head.hash.toString('hex') }));
    const r = await verify(dir);
    expect(r).toMatchObject({ ok: false });
    expect(r.reason).toMatch(/signature/);
  });

  it('detects tail deletion while running (in-memory head), without any anchor yet', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'plushlink-audit-'));
    dirs.push(dir);
    const log = openSqliteAuditLog(dir, { anchorEvery: 1000 });
    for (let i = 0; i < 5; i++) await log.append({ at: i, kind: 'auth.refused' });
    tamper(dir, 'DELETE FROM audit WHERE seq = 5');
    expect(await log.verify()).toMatchObject({ ok: false, firstBadRow: 5 });
    await log.close();
  });

  it('keeps only primitive detail values, truncates long strings, never echoes a bad endpoint', async () => {
    const d = sanitizeDetail({
      long: 'x'.repeat(1000),
      n: 3,
      inf: Number.POSITIVE_INFINITY,
      key: new Uint8Array(32) as unknown as string,
      nested: { a: 1 } as unknown as string,
      gone: undefined as unknown as string,
    });
    expect((d.long as string).length).toBeLessThanOrEqual(161);
    expect(d).toMatchObject({
      n: 3,
      inf: 'Infinity',
      key: '[dropped Uint8Array]',
      nested: '[dropped Object]',
    });
    expect('gone' in d).toBe(false);
    const dir = mkdtempSync(join(tmpdir(), 'plushlink-audit-'));
    dirs.push(dir);
    const log = openSqliteAuditLog(dir);
    await log.append({ at: 1, kind: 'auth.refused', endpoint: '#/evil+' as EndpointId });
    await expect(log.append({ at: 1, kind: 'Bad Kind!' })).rejects.toThrow(TypeError);
    await log.close();
    const db = new Database(join(dir, 'audit.db'), { readonly: true });
    const row = db.prepare('SELECT endpoint, detail FROM audit').get() as {
      endpoint: string | null;
      detail: string;
    };
    db.close();
    expect(row).toEqual({ endpoint: null, detail: '{"endpointInvalid":true}' });
  });

  it('many concurrent appends form one unbroken chain; the triggers refuse casual edits', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'plushlink-audit-'));
    dirs.push(dir);
    const log = openSqliteAuditLog(dir, { ...keys, anchorEvery: 100 });
    await Promise.all(
      Array.from({ length: 1000 }, (_, i) => log.append({ at: i, kind: 'clip.accepted', detail: { i } })),
    );
    expect(await log.verify()).toMatchObject({ ok: true, rows: 1000, anchoredSeq: 1000 });
    expect(() => log.db.exec('DELETE FROM audit WHERE seq = 1')).toThrow(/append-only/);
    await log.close();
    expect(existsSync(join(dir, 'audit.anchor'))).toBe(true);
  });
});
