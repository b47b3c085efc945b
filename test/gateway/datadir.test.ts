// A gateway (and every admin command) refuses a damaged or mismatched data directory with one line — store missing, empty or half-truncated, key lost or swapped, WAL damaged — and starts on a new one or a torn WAL tail.
import { execFile, spawn } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectEndpoint } from '../../device/transport/mqtt-connect.ts';
import { openAdmin } from '../../gateway/admin.ts';
import { DataDirError, GATEWAY_ID_META } from '../../gateway/datadir.ts';
import { startEmbeddedGateway, UNLIMITED_RATE_LIMITS } from '../../gateway/embedded.ts';
import {
  analyzeWal,
  databasePageSize,
  WAL_FRAME_HEADER_BYTES,
  WAL_HEADER_BYTES,
  walChecksum,
} from '../../gateway/store/wal-check.ts';
import { sealClip } from '../../shared/envelope.ts';
import { publicPart } from '../../shared/identity.ts';
import { systemRandom } from '../../shared/random.ts';
import { registerRoster } from '../../sim/provision.ts';
import { generateRoster } from '../../sim/roster.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BIN = join(ROOT, 'bin', 'plushlink.js');

let root: string;
let n = 0;
const fresh = (name: string): string => join(root, `${name}-${n++}`);

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'plk-datadir-'));
});
afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd: root, timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

function oneLineError(r: { code: number; stdout: string; stderr: string }, code: string): void {
  expect(r.code).not.toBe(0);
  expect(r.stdout).toBe('');
  expect(r.stderr.trim().split('\n')).toHaveLength(1);
  expect(r.stderr).toMatch(new RegExp(`^plushlink: ${code}: `));
  expect(r.stderr).not.toMatch(/\n\s+at /);
}

async function refusal(p: Promise<unknown>): Promise<DataDirError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DataDirError);
  const e = err as DataDirError;
  expect(e.message).not.toMatch(/\n/);
  return e;
}

/** A data directory a gateway has run on: 20 families registered, then stopped (WAL merged into gateway.db). */
async function usedDataDir(families = 20): Promise<{ dir: string; id: string }> {
  const dir = fresh('data');
  const eg = await startEmbeddedGateway({ dataDir: dir });
  await registerRoster(
    eg.store,
    eg.audit,
    generateRoster({ families, toysPerFamily: 1, parentsPerFamily: 2, seed: dir }),
  );
  const id = eg.identity.id;
  await eg.close();
  return { dir, id };
}

function countAccepted(dir: string): number {
  const db = new Database(join(dir, 'gateway.db'));
  try {
    return (db.prepare('SELECT count(*) AS n FROM accepted').get() as { n: number }).n;
  } finally {
    db.close();
  }
}

/** Byte offsets of the whole frames of a WAL and which of them end a transaction. */
function walFrames(wal: Buffer): { off: number; commit: boolean }[] {
  const frameBytes = WAL_FRAME_HEADER_BYTES + wal.readUInt32BE(8);
  const out: { off: number; commit: boolean }[] = [];
  for (let off = WAL_HEADER_BYTES; off + frameBytes <= wal.length; off += frameBytes) {
    out.push({ off, commit: wal.readUInt32BE(off + 4) !== 0 });
  }
  return out;
}

describe('first start', () => {
  it('a directory that does not exist, or is empty, starts a new gateway and records its id in gateway.db', async () => {
    const empty = fresh('empty');
    mkdirSync(empty);
    for (const dir of [fresh('new'), empty]) {
      const eg = await startEmbeddedGateway({ dataDir: dir });
      expect(eg.created).toBe(true);
      expect(await eg.store.getMeta(GATEWAY_ID_META)).toBe(eg.identity.id);
      expect(statSync(dir).mode & 0o777).toBe(0o700);
      await eg.close();
      const again = await startEmbeddedGateway({ dataDir: dir });
      expect(again.created).toBe(false);
      expect(again.identity.id).toBe(eg.identity.id);
      expect(again.check.quickCheckMs).toBeGreaterThanOrEqual(0);
      await again.close();
    }
  });

  it('data from before the recorded id gets it at its first start after the upgrade', async () => {
    const { dir, id } = await usedDataDir(1);
    const db = new Database(join(dir, 'gateway.db'));
    db.prepare('DELETE FROM meta WHERE key = ?').run(GATEWAY_ID_META);
    db.close();
    const eg = await startEmbeddedGateway({ dataDir: dir });
    expect(eg.check.storedGatewayId).toBeUndefined();
    expect(await eg.store.getMeta(GATEWAY_ID_META)).toBe(id);
    await eg.close();
  });

  it('an admin command may create the store around a gateway key placed before the first start', async () => {
    const { dir } = await usedDataDir(1);
    const keyOnly = fresh('keyonly');
    mkdirSync(keyOnly, { mode: 0o700 });
    cpSync(join(dir, 'gateway'), join(keyOnly, 'gateway'), { recursive: true });
    // A gateway refuses it (a gateway used to be here), an admin command creating the store does not.
    expect((await refusal(startEmbeddedGateway({ dataDir: keyOnly }))).code).toBe('DATADIR_STORE_MISSING');
    const h = await openAdmin(keyOnly, { create: true });
    await h.close();
    const eg = await startEmbeddedGateway({ dataDir: keyOnly });
    expect(eg.created).toBe(false);
    await eg.close();
  });
});

describe('refused data directories (in-process, and through the CLI)', () => {
  it('store deleted, store truncated to 0 bytes, half-truncated, not a database, key lost, key of another gateway', {
    timeout: 60_000,
  }, async () => {
    const other = await usedDataDir(1);
    const cases: { name: string; code: string; damage: (dir: string) => void; match: RegExp }[] = [
      {
        name: 'deleted',
        code: 'DATADIR_STORE_MISSING',
        damage: (d) => rmSync(join(d, 'gateway.db')),
        match: /gateway\.db is missing but .*gateway\/endpoint\.key exists: a gateway used to be here/,
      },
      {
        name: 'zero',
        code: 'DATADIR_STORE_EMPTY',
        damage: (d) => truncateSync(join(d, 'gateway.db'), 0),
        match: /gateway\.db is empty \(0 bytes\)/,
      },
      {
        name: 'half',
        code: 'DATADIR_CORRUPT',
        damage: (d) =>
          truncateSync(join(d, 'gateway.db'), Math.floor(statSync(join(d, 'gateway.db')).size / 2)),
        match: /gateway\.db is damaged \(/,
      },
      {
        name: 'garbage',
        code: 'DATADIR_CORRUPT',
        damage: (d) => {
          const b = readFileSync(join(d, 'gateway.db'));
          b.fill(0x5a, 0, 100);
          writeFileSync(join(d, 'gateway.db'), b);
        },
        match: /gateway\.db is damaged \(/,
      },
      {
        name: 'keylost',
        code: 'DATADIR_IDENTITY_LOST',
        damage: (d) => rmSync(join(d, 'gateway'), { recursive: true }),
        match:
          /belongs to gateway [a-z2-7]{32} but .*endpoint\.key is missing: the gateway's identity is lost/,
      },
      {
        name: 'keyswap',
        code: 'DATADIR_IDENTITY_MISMATCH',
        damage: (d) => {
          rmSync(join(d, 'gateway'), { recursive: true });
          cpSync(join(other.dir, 'gateway'), join(d, 'gateway'), { recursive: true });
        },
        match: new RegExp(
          `is gateway ${other.id} but .*gateway\\.db belongs to gateway [a-z2-7]{32}: the key and the data come from different gateways`,
        ),
      },
    ];
    const dirs: Record<string, string> = {};
    for (const c of cases) {
      const { dir } = await usedDataDir(c.name === 'half' ? 200 : 20);
      c.damage(dir);
      dirs[c.name] = dir;
      const before = existsSync(join(dir, 'gateway.db')) ? readFileSync(join(dir, 'gateway.db')) : undefined;
      const e = await refusal(startEmbeddedGateway({ dataDir: dir }));
      expect([c.name, e.code]).toEqual([c.name, c.code]);
      expect(e.message).toMatch(c.match);
      // The admin functions refuse it the same way.
      const a = await refusal(openAdmin(dir, { create: true }));
      expect(a.code).toBe(c.code);
      // Refusing changes nothing: no empty store created, no new key written.
      expect(existsSync(join(dir, 'gateway.db')) ? readFileSync(join(dir, 'gateway.db')) : undefined).toEqual(
        before,
      );
      if (c.name === 'keylost') expect(existsSync(join(dir, 'gateway'))).toBe(false);
    }

    // The CLI prints the same refusal as one line and exits 1: the gateway, and admin commands.
    const runs = await Promise.all([
      ...cases.map((c) => cli('gateway', '--data', dirs[c.name]!, '--port', '0')),
      cli('provision', 'toy', '--data', dirs.deleted!, '--out', fresh('key')),
      cli('endpoints', 'list', '--data', dirs.half!),
      cli('audit', 'verify', '--data', dirs.keyswap!),
      cli('family', 'create', '--data', dirs.zero!),
      cli('backup', fresh('bk'), '--data', dirs.keylost!),
    ]);
    cases.forEach((c, i) => {
      oneLineError(runs[i]!, c.code);
      expect(runs[i]!.code).toBe(1);
    });
    const admin = runs.slice(cases.length);
    for (const [r, code] of [
      [admin[0], 'DATADIR_STORE_MISSING'],
      [admin[1], 'DATADIR_CORRUPT'],
      [admin[2], 'DATADIR_IDENTITY_MISMATCH'],
      [admin[3], 'DATADIR_STORE_EMPTY'],
      [admin[4], 'DATADIR_IDENTITY_LOST'],
    ] as const) {
      oneLineError(r!, code);
    }
  });

  it('plushlink gateway --help says an existing data directory is checked; a new one starts and stops cleanly', async () => {
    const help = await cli('gateway', '--help');
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/an existing one is checked first/);
    expect(help.stdout).toMatch(/--discard-damaged-wal/);
    const dir = fresh('cli-new');
    const run = (): Promise<{ code: number | null; stdout: string; stderr: string }> =>
      new Promise((done) => {
        const child = spawn(
          process.execPath,
          [BIN, 'gateway', '--data', dir, '--port', '0', '--log-level', 'warn'],
          {
            cwd: root,
            stdio: ['ignore', 'pipe', 'pipe'],
          },
        );
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (b: Buffer) => {
          stdout += b.toString();
          if (stdout.includes('\n')) child.kill('SIGINT');
        });
        child.stderr.on('data', (b: Buffer) => {
          stderr += b.toString();
        });
        child.on('close', (code) => done({ code, stdout, stderr }));
      });
    const first = await run();
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/^plushlink gateway listening on mqtt:\/\/127\.0\.0\.1:\d+ .* \(new\)\n$/);
    const second = await run(); // the directory it left behind passes the check
    expect(second.code).toBe(0);
    expect(second.stdout).not.toMatch(/\(new\)/);
    expect(second.stdout.match(/gateway=([a-z2-7]{32})/)?.[1]).toBe(
      first.stdout.match(/gateway=([a-z2-7]{32})/)?.[1],
    );
  });
});

describe('write-ahead log', () => {
  /**
   * A running gateway's files copied while its WAL is alive (no checkpoint below 4000 pages): a
   * toy sent `clips` clips one by one (one committed transaction each) to an offline parent.
   */
  async function liveCopy(clips: number): Promise<{ dir: string; copy: () => string }> {
    const dir = fresh('live');
    const eg = await startEmbeddedGateway({ dataDir: dir, limits: UNLIMITED_RATE_LIMITS });
    const roster = generateRoster({ families: 1, toysPerFamily: 1, parentsPerFamily: 1, seed: dir });
    await registerRoster(eg.store, eg.audit, roster);
    const toy = roster.families[0]!.toys[0]!.identity;
    const parent = publicPart(roster.families[0]!.parents[0]!.identity);
    const conn = await connectEndpoint({ url: eg.url, identity: toy, gateway: eg.identity });
    for (let i = 1; i <= clips; i++) {
      await conn.publishClip(
        sealClip({
          sender: toy,
          recipients: [parent],
          sequence: i,
          createdAt: Date.now(),
          durationMs: 1000,
          ogg: systemRandom(1500),
        }),
      );
    }
    await conn.close();
    const snapshot = fresh('snap');
    cpSync(dir, snapshot, { recursive: true, filter: (src) => !src.endsWith('-shm') });
    expect(existsSync(join(snapshot, 'gateway.db-wal'))).toBe(true);
    await eg.close();
    return {
      dir: snapshot,
      copy: () => {
        const d = fresh('copy');
        cpSync(snapshot, d, { recursive: true });
        return d;
      },
    };
  }

  it('damage in the middle (later committed transactions behind it) is refused before SQLite drops them; a torn tail starts', {
    timeout: 60_000,
  }, async () => {
    const clips = 12;
    const live = await liveCopy(clips);
    const intact = analyzeWal(readFileSync(join(live.dir, 'gateway.db-wal')));
    expect(['ok', 'torn-tail']).toContain(intact.verdict); // a write still in flight when copied is a torn tail
    expect(intact.committedTransactions).toBeGreaterThanOrEqual(clips);
    expect(countAccepted(live.copy())).toBe(clips);

    // One byte flipped in a page in the middle of the log.
    const damaged = live.copy();
    const walPath = join(damaged, 'gateway.db-wal');
    const wal = readFileSync(walPath);
    const frames = walFrames(wal);
    const commits = frames.flatMap((f, i) => (f.commit ? [i] : []));
    // A commit frame in the middle: its transaction and every later one would be lost.
    const target = commits[Math.floor(commits.length / 2)]!;
    wal[frames[target]!.off + WAL_FRAME_HEADER_BYTES + 100]! ^= 0xff;
    writeFileSync(walPath, wal);
    const a = analyzeWal(wal);
    expect(a.verdict).toBe('damaged');
    expect(a.firstBadFrame).toBe(target + 1);
    expect(a.droppedTransactions).toBe(commits.filter((c) => c > target).length);

    // What SQLite alone would do with it: start, and silently lose acknowledged clips.
    const silent = fresh('silent');
    cpSync(damaged, silent, { recursive: true });
    expect(countAccepted(silent)).toBeLessThan(clips);

    const e = await refusal(startEmbeddedGateway({ dataDir: damaged }));
    expect(e.code).toBe('DATADIR_WAL_DAMAGED');
    expect(e.message).toContain(`${walPath} is damaged: frame ${target + 1}`);
    expect(e.message).toMatch(/committed transaction\(s\) after it would be silently dropped/);
    expect(readFileSync(walPath)).toEqual(wal); // refused before any connection touched it
    expect((await refusal(openAdmin(damaged))).code).toBe('DATADIR_WAL_DAMAGED');
    const r = await cli('gateway', '--data', damaged, '--port', '0');
    oneLineError(r, 'DATADIR_WAL_DAMAGED');
    expect(r.stderr).toContain('gateway.db-wal');
    expect(r.stderr).toContain('--discard-damaged-wal');

    // Accepting the loss explicitly: a copy of the log is kept (0600), the gateway starts, and the
    // next start is clean (the discarded log is gone).
    const eg = await startEmbeddedGateway({ dataDir: damaged, discardDamagedWal: true });
    const kept = eg.check.discardedWal[0]!;
    expect(kept.path).toBe(walPath);
    expect(readFileSync(kept.keptAs)).toEqual(wal);
    expect(statSync(kept.keptAs).mode & 0o777).toBe(0o600);
    expect(await eg.store.getMeta(GATEWAY_ID_META)).toBe(eg.identity.id);
    await eg.close();
    expect(countAccepted(damaged)).toBeLessThan(clips);
    const next = await startEmbeddedGateway({ dataDir: damaged });
    expect(next.check.discardedWal).toEqual([]);
    await next.close();

    // A torn tail (the last transaction cut short, as a crash mid-commit leaves it) is not damage.
    const torn = live.copy();
    const tornWal = readFileSync(join(torn, 'gateway.db-wal'));
    const tornFrames = walFrames(tornWal);
    writeFileSync(join(torn, 'gateway.db-wal'), tornWal.subarray(0, tornFrames.at(-1)!.off + 1000));
    const t = await startEmbeddedGateway({ dataDir: torn });
    expect(t.check.wal.find((w) => w.path.endsWith('gateway.db-wal'))?.verdict).toBe('torn-tail');
    await t.close();

    // Nor is a bad byte in the last transaction (never acknowledged if the crash hit its commit).
    const badLast = live.copy();
    const last = readFileSync(join(badLast, 'gateway.db-wal'));
    last[walFrames(last).at(-1)!.off + WAL_FRAME_HEADER_BYTES + 10]! ^= 0x01;
    writeFileSync(join(badLast, 'gateway.db-wal'), last);
    expect(analyzeWal(last).verdict).toBe('torn-tail');
    const b = await startEmbeddedGateway({ dataDir: badLast });
    await b.close();
  });

  it('checksums are computed as SQLite does in both word orders (a log rewritten big-endian still reads)', async () => {
    const live = await liveCopy(3);
    const d = live.copy();
    const walPath = join(d, 'gateway.db-wal');
    const wal = readFileSync(walPath);
    expect(wal.readUInt32BE(0)).toBe(0x377f0682); // little-endian words on this machine
    const be = Buffer.from(wal);
    const v = new DataView(be.buffer, be.byteOffset, be.byteLength);
    be.writeUInt32BE(0x377f0683, 0);
    let s = walChecksum(v, 0, 24, false, [0, 0]);
    be.writeUInt32BE(s[0], 24);
    be.writeUInt32BE(s[1], 28);
    for (const f of walFrames(be)) {
      s = walChecksum(v, f.off, 8, false, s);
      s = walChecksum(v, f.off + WAL_FRAME_HEADER_BYTES, be.readUInt32BE(8), false, s);
      be.writeUInt32BE(s[0], f.off + 16);
      be.writeUInt32BE(s[1], f.off + 20);
    }
    const le = analyzeWal(wal);
    expect(analyzeWal(be)).toMatchObject({
      verdict: le.verdict,
      committedTransactions: le.committedTransactions,
    });
    expect(le.committedTransactions).toBeGreaterThanOrEqual(3);
    writeFileSync(walPath, be);
    expect(countAccepted(d)).toBe(3); // SQLite accepts our big-endian checksums: every frame used
    // And a damaged header (SQLite would ignore the whole log) is damage too.
    const h = Buffer.from(wal);
    h[17]! ^= 0x01; // salt-1
    expect(analyzeWal(h)).toMatchObject({ verdict: 'damaged', headerValid: false, firstBadFrame: 0 });
    // Even its page size field: the database's own page size then finds the frames.
    const ps = Buffer.from(wal);
    ps.writeUInt32BE(4095, 8);
    expect(analyzeWal(ps, databasePageSize(join(d, 'gateway.db')))).toMatchObject({
      verdict: 'damaged',
      headerValid: false,
    });
  });
});
