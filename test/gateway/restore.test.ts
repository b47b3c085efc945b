// Backup while clips flow, then restore: same gateway id, the pinned toy reconnects, the audit log verifies, and the offline parent gets every clip acknowledged before the backup; the CLI path and its one-line refusals.
import { execFile } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectEndpoint, type EndpointConnection } from '../../device/transport/mqtt-connect.ts';
import { backup, restore } from '../../gateway/admin.ts';
import { type EmbeddedGateway, startEmbeddedGateway, UNLIMITED_RATE_LIMITS } from '../../gateway/embedded.ts';
import { toHex } from '../../shared/bytes.ts';
import { decodeClip, sealClip } from '../../shared/envelope.ts';
import { type PrivateIdentity, type PublicIdentity, publicPart } from '../../shared/identity.ts';
import { systemRandom } from '../../shared/random.ts';
import { registerRoster } from '../../sim/provision.ts';
import { generateRoster, type Roster } from '../../sim/roster.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BIN = join(ROOT, 'bin', 'plushlink.js');

let root: string;
const open: EmbeddedGateway[] = [];
const conns: EndpointConnection[] = [];
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'plk-restore-'));
});
afterAll(async () => {
  for (const c of conns) c.client.end(true);
  for (const g of open) await g.close();
  rmSync(root, { recursive: true, force: true });
});

async function start(dataDir: string): Promise<EmbeddedGateway> {
  const eg = await startEmbeddedGateway({ dataDir, limits: UNLIMITED_RATE_LIMITS });
  open.push(eg);
  return eg;
}

async function connect(eg: EmbeddedGateway, identity: PrivateIdentity, pinned: PublicIdentity) {
  const c = await connectEndpoint({ url: eg.url, identity, gateway: pinned });
  conns.push(c);
  return c;
}

function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd: root, timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

function oneLineError(r: { code: number; stdout: string; stderr: string }, match: RegExp): void {
  expect(r.code).toBe(1);
  expect(r.stdout).toBe('');
  expect(r.stderr.trim().split('\n')).toHaveLength(1);
  expect(r.stderr).toMatch(/^plushlink: /);
  expect(r.stderr).toMatch(match);
  expect(r.stderr).not.toMatch(/\n\s+at /);
}

const mode = (p: string): number => statSync(p).mode & 0o777;

/** A family of one toy and two parents, registered with the gateway. */
async function family(
  eg: EmbeddedGateway,
  seed: string,
): Promise<{ roster: Roster; toy: PrivateIdentity; parents: PrivateIdentity[] }> {
  const roster = generateRoster({ families: 1, toysPerFamily: 1, parentsPerFamily: 2, seed });
  await registerRoster(eg.store, eg.audit, roster);
  const f = roster.families[0]!;
  return { roster, toy: f.toys[0]!.identity, parents: f.parents.map((p) => p.identity) };
}

function clip(
  toy: PrivateIdentity,
  parents: PrivateIdentity[],
  sequence: number,
): { bytes: Uint8Array; id: string } {
  const bytes = sealClip({
    sender: toy,
    recipients: parents.map(publicPart),
    sequence,
    createdAt: Date.now(),
    durationMs: 1000,
    ogg: systemRandom(1500),
  });
  return { bytes, id: toHex(decodeClip(bytes).header.clipId) };
}

/** Collects the clip ids arriving in a connection's inbox; `until` waits for a set of them. */
function collect(c: EndpointConnection) {
  const got = new Set<string>();
  c.onInbox((kind, bytes) => {
    if (kind === 'clip') got.add(toHex(decodeClip(bytes).header.clipId));
  });
  return {
    got,
    async until(ids: Iterable<string>, ms = 15_000): Promise<string[]> {
      const want = [...ids];
      const t0 = Date.now();
      while (want.some((id) => !got.has(id)) && Date.now() - t0 < ms)
        await new Promise((r) => setTimeout(r, 20));
      return want.filter((id) => !got.has(id));
    },
  };
}

describe('backup and restore', () => {
  it('a backup taken while a toy keeps sending restores the same gateway with its whole backlog', {
    timeout: 60_000,
  }, async () => {
    const data = join(root, 'data');
    const eg = await start(data);
    const gatewayId = eg.identity.id;
    const pinned = eg.identity; // what the toy and the parent apps pin
    const { toy, parents } = await family(eg, 'restore');
    const toyConn = await connect(eg, toy, pinned);

    // The parents stay offline: every clip builds the backlog. The toy keeps publishing, one clip
    // after another, while the backup is taken.
    let seq = 0;
    const acked: string[] = [];
    let stop = false;
    const producer = (async () => {
      while (!stop) {
        const c = clip(toy, parents, ++seq);
        await toyConn.publishClip(c.bytes);
        acked.push(c.id);
      }
    })();
    while (acked.length < 10) await new Promise((r) => setTimeout(r, 5));
    const ackedBeforeBackup = [...acked];
    const bk = join(root, 'bk');
    const b = await backup(eg.store, eg.audit, bk);
    const ackedByBackupEnd = acked.length;
    while (acked.length < ackedByBackupEnd + 5) await new Promise((r) => setTimeout(r, 5));
    stop = true;
    await producer;
    const ackedAfterBackup = acked.slice(ackedByBackupEnd);
    console.log(
      `restore: ${ackedBeforeBackup.length} clips acknowledged before the backup, ${ackedByBackupEnd - ackedBeforeBackup.length} during it, ${ackedAfterBackup.length} after it`,
    );
    await toyConn.close();
    await eg.close();

    // The backup holds the identity: the private key 0600 in a 0700 directory.
    expect(b.gatewayId).toBe(gatewayId);
    expect(b.privateKey).toBe(true);
    expect(b.files.map((f) => f.slice(bk.length + 1)).sort()).toEqual([
      'audit.anchor',
      'audit.db',
      'gateway.db',
      'gateway/endpoint.key',
      'gateway/identity.json',
    ]);
    expect(mode(bk)).toBe(0o700);
    expect(mode(join(bk, 'gateway'))).toBe(0o700);
    for (const f of b.files) expect([f, mode(f)]).toEqual([f, 0o600]);

    const restored = join(root, 'restored');
    const r = await restore(bk, restored);
    expect(r).toMatchObject({ gatewayId, endpoints: 3, families: 1, idRecorded: true });
    expect(r.pendingDeliveries).toBeGreaterThanOrEqual(2 * ackedBeforeBackup.length);
    expect(r.audit).toMatchObject({ ok: true, signaturesChecked: true });
    expect(r.audit.anchoredSeq).toBe(r.audit.rows);
    expect(mode(restored)).toBe(0o700);
    for (const f of r.files) expect([f, mode(join(restored, f))]).toEqual([f, 0o600]);
    expect(readFileSync(join(restored, 'gateway', 'endpoint.key'))).toEqual(
      readFileSync(join(data, 'gateway', 'endpoint.key')),
    );

    const eg2 = await start(restored);
    expect(eg2.identity.id).toBe(gatewayId);
    expect(eg2.created).toBe(false);
    // The toy, still pinned to the original gateway key, connects (the proof verifies) and sends on.
    const toyAgain = await connect(eg2, toy, pinned);
    const next = clip(toy, parents, ++seq);
    await toyAgain.publishClip(next.bytes);
    expect(await eg2.audit.verify()).toMatchObject({ ok: true, signaturesChecked: true });

    // The parents come online: every clip acknowledged before the backup was taken is delivered.
    for (const p of parents) {
      const inbox = collect(await connect(eg2, p, pinned));
      expect(await inbox.until([...ackedBeforeBackup, next.id])).toEqual([]);
      // A backup is a point in time: what was acknowledged after it finished is not in it.
      expect(ackedAfterBackup.filter((id) => inbox.got.has(id))).toEqual([]);
    }
  });

  it('plushlink backup beside a running gateway and plushlink restore, with one-line refusals', {
    timeout: 60_000,
  }, async () => {
    const data = join(root, 'cli-data');
    const eg = await start(data);
    const gatewayId = eg.identity.id;
    const { toy, parents } = await family(eg, 'restore-cli');
    const toyConn = await connect(eg, toy, eg.identity);
    const sent: string[] = [];
    for (let i = 1; i <= 5; i++) {
      const c = clip(toy, parents, i);
      await toyConn.publishClip(c.bytes);
      sent.push(c.id);
    }
    const bk = join(root, 'cli-bk');
    const made = await cli('backup', bk, '--data', data);
    expect(made.stderr).toBe('');
    expect(made.code).toBe(0);
    expect(made.stdout).toContain(`backup of gateway ${gatewayId} in ${bk}`);
    expect(made.stdout).toMatch(
      /this backup holds the gateway's PRIVATE key .*endpoint\.key, 0600\): keep it as safe as the data directory/,
    );
    expect(mode(bk)).toBe(0o700);
    expect(mode(join(bk, 'gateway', 'endpoint.key'))).toBe(0o600);
    await toyConn.close();
    await eg.close();

    // Broken backups, each a copy of the good one.
    const variant = (name: string, damage: (d: string) => void): string => {
      const d = join(root, `cli-bk-${name}`);
      cpSync(bk, d, { recursive: true });
      damage(d);
      return d;
    };
    const other = await start(join(root, 'cli-other'));
    const otherKey = join(root, 'cli-other', 'gateway');
    const noKey = variant('nokey', (d) => rmSync(join(d, 'gateway', 'endpoint.key')));
    const swapped = variant('swapped', (d) => {
      rmSync(join(d, 'gateway'), { recursive: true });
      cpSync(otherKey, join(d, 'gateway'), { recursive: true });
    });
    const corrupt = variant('corrupt', (d) => {
      const db = readFileSync(join(d, 'gateway.db'));
      db.fill(0x5a, 0, 100);
      writeFileSync(join(d, 'gateway.db'), db);
    });
    const forged = variant('forged', (d) => {
      // The audit anchor re-signed by another gateway's key: only the backup's own key may sign it.
      const a = JSON.parse(readFileSync(join(d, 'audit.anchor'), 'utf8')) as Record<string, unknown>;
      a.signature = 'ab'.repeat(64);
      writeFileSync(join(d, 'audit.anchor'), `${JSON.stringify(a)}\n`);
    });
    await other.close();
    const nonEmpty = join(root, 'cli-nonempty');
    mkdirSync(nonEmpty);
    writeFileSync(join(nonEmpty, 'x'), 'x');

    const [again, intoNonEmpty, fromMissing, fromNoKey, fromSwapped, fromCorrupt, fromForged, ok] =
      await Promise.all([
        cli('backup', bk, '--data', data),
        cli('restore', bk, '--data', nonEmpty),
        cli('restore', join(root, 'no-such-backup'), '--data', join(root, 'r-missing')),
        cli('restore', noKey, '--data', join(root, 'r-nokey')),
        cli('restore', swapped, '--data', join(root, 'r-swapped')),
        cli('restore', corrupt, '--data', join(root, 'r-corrupt')),
        cli('restore', forged, '--data', join(root, 'r-forged')),
        cli('restore', bk, '--data', join(root, 'r-ok')),
      ]);
    oneLineError(again, /already exists and is not an empty directory/);
    oneLineError(
      intoNonEmpty,
      /cli-nonempty already exists and is not an empty directory; restore into a new directory/,
    );
    oneLineError(fromMissing, /no-such-backup is not a directory: no backup there/);
    oneLineError(
      fromNoKey,
      /incomplete: gateway\/endpoint\.key missing \(a backup without the gateway identity/,
    );
    oneLineError(
      fromSwapped,
      /cannot be restored: .*cli-bk-swapped\/gateway\/endpoint\.key is gateway [a-z2-7]{32} but .*belongs to gateway/,
    );
    expect(fromSwapped.stderr).not.toMatch(/restoring-/); // told about the backup, not the staging copy
    oneLineError(fromCorrupt, /cannot be restored: .*cli-bk-corrupt\/gateway\.db is damaged/);
    oneLineError(
      fromForged,
      /cannot be restored: its audit log does not verify with its gateway key .*invalid signature/,
    );
    // Nothing is left behind by a refused restore.
    for (const d of ['r-missing', 'r-nokey', 'r-swapped', 'r-corrupt', 'r-forged'])
      expect(existsSync(join(root, d))).toBe(false);
    expect(readFileSync(join(nonEmpty, 'x'), 'utf8')).toBe('x');

    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(
      new RegExp(
        `^restored gateway ${gatewayId} from .*cli-bk into .*r-ok: 3 endpoints, 1 families, 10 pending deliveries; audit log \\d+ rows verified`,
      ),
    );
    expect(ok.stdout).toMatch(
      /files: gateway\.db, audit\.db, gateway\/endpoint\.key, gateway\/identity\.json, audit\.anchor/,
    );
    const verify = await cli('audit', 'verify', '--data', join(root, 'r-ok'));
    expect(verify.stderr).toBe('');
    expect(verify.stdout).toMatch(/^audit log OK: .* anchor signatures checked/);

    const eg2 = await start(join(root, 'r-ok'));
    expect(eg2.identity.id).toBe(gatewayId);
    const inbox = collect(await connect(eg2, parents[0]!, eg.identity));
    expect(await inbox.until(sent)).toEqual([]);
  });
});
