// Admin functions in-process, and the plushlink admin commands end to end through child_process [PLK-12].
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import {
  addFamilyMember,
  backup,
  createFamily,
  eraseFamily,
  listEndpoints,
  newFamilyId,
  openAdmin,
  provisionEndpoint,
  provisionMany,
  revoke,
  verifyAudit,
} from '../../gateway/admin.ts';
import { MemoryStore } from '../../gateway/store/memory.ts';
import { readPrivateKey } from '../../platform/keyfiles.ts';
import { seededRandom } from '../../shared/random.ts';
import type { EndpointId } from '../../shared/types.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BIN = join(ROOT, 'bin', 'plushlink.js');
const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'plushlink-admin-'));
  dirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd: ROOT, timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

function oneLineError(r: { code: number; stderr: string }): void {
  expect(r.code).not.toBe(0);
  expect(r.stderr.trim().split('\n')).toHaveLength(1);
  expect(r.stderr).toMatch(/^plushlink: /);
  expect(r.stderr).not.toMatch(/\n\s+at /);
}

describe('admin functions', () => {
  it('provision → family → member → list → revoke → erase → verify → backup, all audited', async () => {
    const dir = tempDir();
    const h = await openAdmin(join(dir, 'data'), { create: true });
    const { store, audit } = h;
    const random = seededRandom('admin');
    const toy = await provisionEndpoint(store, audit, 'toy', join(dir, 'toy'), { random, now: 1000 });
    const mum = await provisionEndpoint(store, audit, 'parent', join(dir, 'mum'), { random, now: 1001 });
    expect(statSync(join(dir, 'toy', 'endpoint.key')).mode & 0o777).toBe(0o600);
    const priv = await readPrivateKey(join(dir, 'toy'));
    expect(priv.id).toBe(toy.id);
    await expect(provisionEndpoint(store, audit, 'toy', join(dir, 'toy'))).rejects.toThrow(
      /refusing to overwrite/,
    );

    const fam = await createFamily(store, audit, { random: seededRandom('fam'), now: 5 });
    expect(fam).toBe(newFamilyId(seededRandom('fam')));
    expect(fam).toMatch(/^f[a-z2-7]{26}$/);
    await addFamilyMember(store, audit, fam, toy.id);
    await addFamilyMember(store, audit, fam, mum.id);
    expect((await listEndpoints(store, audit)).map((e) => [e.id, e.familyId])).toEqual([
      [toy.id, fam],
      [mum.id, fam],
    ]);
    await revoke(store, audit, mum.id);
    await expect(revoke(store, audit, 'a'.repeat(32) as EndpointId)).rejects.toThrow(/no endpoint/);
    expect((await store.getEndpoint(mum.id))?.revoked).toBe(true);

    // The private key never reaches the database.
    const dbBytes = readFileSync(join(dir, 'data', 'gateway.db'));
    const walPath = join(dir, 'data', 'gateway.db-wal');
    const all = Buffer.concat([dbBytes, existsSync(walPath) ? readFileSync(walPath) : Buffer.alloc(0)]);
    expect(all.indexOf(Buffer.from(priv.signSeed))).toBe(-1);
    expect(all.indexOf(Buffer.from(priv.boxSecret))).toBe(-1);
    expect(all.indexOf(Buffer.from(Buffer.from(priv.signSeed).toString('hex')))).toBe(-1);

    const out = join(dir, 'backup');
    const r = await backup(store, audit, out);
    expect(r.files.map((f) => f.slice(out.length + 1)).sort()).toEqual([
      'audit.anchor',
      'audit.db',
      'gateway.db',
    ]);
    await expect(backup(store, audit, out)).rejects.toThrow(/already exists/);

    expect(await eraseFamily(store, audit, fam)).toEqual({ clips: 0, endpoints: 2 });
    expect(await store.listEndpoints()).toEqual([]);
    expect(await verifyAudit(audit)).toMatchObject({ ok: true });
    const kinds = (audit.db.prepare('SELECT kind FROM audit ORDER BY seq').all() as { kind: string }[]).map(
      (k) => k.kind,
    );
    expect(kinds).toEqual([
      'endpoint.provisioned',
      'endpoint.provisioned',
      'family.created',
      'family.member_added',
      'family.member_added',
      'admin.endpoints_listed',
      'endpoint.revoked',
      'admin.backup',
      'family.erased',
      'audit.verified',
    ]);
    await h.close();

    // The backup is itself a data directory with a verifying audit log.
    const b = await openAdmin(out);
    expect((await b.store.listEndpoints()).length).toBe(2);
    expect(await b.audit.verify()).toMatchObject({ ok: true });
    await b.close();
  });

  it('provisionMany registers endpoints in one transaction, quickly (10,000 measured by npm run bench:store)', async () => {
    const dir = tempDir();
    const h = await openAdmin(dir, { create: true });
    const t0 = performance.now();
    const ids = await provisionMany(h.store, h.audit, 'toy', 2000, seededRandom('fleet'), { now: 1 });
    const ms = performance.now() - t0;
    console.log(`provisionMany: 2,000 endpoints in ${Math.round(ms)} ms (${Math.round(2_000_000 / ms)}/s)`);
    expect(ids).toHaveLength(2000);
    expect(new Set(ids.map((i) => i.id)).size).toBe(2000);
    expect((await h.store.listEndpoints()).length).toBe(2000);
    expect(await h.store.getEndpoint(ids[1234]!.id)).toMatchObject({
      signPublicKey: ids[1234]!.signPublicKey,
    });
    // One audit event for the whole batch.
    expect(await h.audit.verify()).toMatchObject({ ok: true, rows: 1 });
    // Works against any GatewayStore.
    const mem = new MemoryStore();
    expect(await provisionMany(mem, h.audit, 'parent', 3, seededRandom('m'))).toHaveLength(3);
    await h.close();
  });
});

describe('plushlink admin CLI', () => {
  // Each CLI start is a separate Node process (about 0.1 s compiled, more on a loaded 2-core box), so
  // the fixtures are prepared in-process and the commands run side by side on separate directories.
  it('end to end: 0600 key, one-line errors, backup beside an open database, tamper → exit 1', {
    timeout: 60_000,
  }, async () => {
    const dir = tempDir();
    // Fixture 1: a data directory with endpoints and a family (refusing to overwrite a key is covered above).
    const data = join(dir, 'data');
    const h = await openAdmin(data, { create: true });
    const fleet = await provisionMany(h.store, h.audit, 'toy', 5, seededRandom('cli'));
    const familyId = await createFamily(h.store, h.audit);
    await addFamilyMember(h.store, h.audit, familyId, fleet[1]!.id);
    // Fixture 2: a data directory whose audit log has been tampered with.
    const tampered = join(dir, 'tampered');
    const t = await openAdmin(tampered, { create: true });
    await provisionMany(t.store, t.audit, 'parent', 3, seededRandom('t'));
    for (let i = 0; i < 5; i++) await t.audit.append({ at: i, kind: 'auth.refused' });
    await t.close();
    const tdb = new Database(join(tampered, 'audit.db'));
    tdb.exec("DROP TRIGGER audit_no_update; UPDATE audit SET kind = 'auth.accepted' WHERE seq = 3");
    tdb.close();

    // `h` stays open and keeps writing, as a running gateway would, while the CLI runs.
    let writing = true;
    const writer = (async () => {
      for (let i = 0; writing; i++) {
        await h.audit.append({ at: i, kind: 'auth.refused' });
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const [prov, unknown, noYes, bk, bad] = await Promise.all([
      cli('provision', 'toy', '--create', '--data', join(dir, 'fresh'), '--out', join(dir, 'newkey')),
      cli('family', 'add', `f${'b'.repeat(26)}`, fleet[0]!.id, '--data', data),
      cli('family', 'erase', familyId, '--data', data),
      cli('backup', join(dir, 'bk'), '--data', data),
      cli('audit', 'verify', '--data', tampered),
    ]);
    writing = false;
    await writer;

    expect(prov.stderr).toBe('');
    expect(prov.code).toBe(0);
    const id = prov.stdout.trim();
    expect(id).toMatch(/^[a-z2-7]{32}$/);
    expect(statSync(join(dir, 'newkey', 'endpoint.key')).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'fresh', 'gateway.db')).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'fresh')).mode & 0o777).toBe(0o700);
    expect((await readPrivateKey(join(dir, 'newkey'))).id).toBe(id);

    oneLineError(unknown);
    expect(unknown.stderr).toMatch(/no family/);
    oneLineError(noYes);
    expect(noYes.stderr).toMatch(/--yes/);
    expect((await h.store.familyMembers(familyId)).length).toBe(1);

    expect(bk.stderr).toBe('');
    expect(bk.code).toBe(0);
    const copy = new Database(join(dir, 'bk', 'gateway.db'), { readonly: true });
    expect((copy.prepare('SELECT count(*) AS n FROM endpoints').get() as { n: number }).n).toBe(5);
    copy.close();
    await h.close();
    const restored = await openAdmin(join(dir, 'bk'));
    expect(await restored.audit.verify()).toMatchObject({ ok: true });
    await restored.close();

    oneLineError(bad);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/TAMPERED at row 3/);
  });
});
