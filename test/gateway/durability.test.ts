// Durability: a gateway process killed with SIGKILL during a burst loses no PUBACKed clip; every one reaches every recipient after restart [PLK-12.3].
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { connectEndpoint } from '../../device/transport/mqtt-connect.ts';
import { addFamilyMember, createFamily, openAdmin } from '../../gateway/admin.ts';
import { writeKeyDir } from '../../platform/keyfiles.ts';
import { toHex } from '../../shared/bytes.ts';
import { decodeClip } from '../../shared/envelope.ts';
import { generateIdentity, publicPart } from '../../shared/identity.ts';
import { makeClip } from './helpers/harness.ts';

const FIXTURE = join(import.meta.dirname, 'fixtures', 'gateway-child.ts');

function startChild(dir: string): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      FIXTURE,
      'gateway',
      '--data',
      dir,
      '--port',
      '0',
      '--clip-rate',
      '100000',
      '--clip-burst',
      '100000',
      '--log-level',
      'warn',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const t = setTimeout(() => reject(new Error(`gateway did not start: ${err}`)), 25_000);
    child.stderr?.on('data', (d: Buffer) => {
      err += d.toString();
    });
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /port=(\d+)/.exec(out);
      if (m) {
        clearTimeout(t);
        resolve({ child, port: Number(m[1]) });
      }
    });
    child.once('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`gateway exited with ${code}: ${err}`));
    });
  });
}

describe('durability across SIGKILL', () => {
  const cleanup: (() => Promise<void> | void)[] = [];
  afterAll(async () => {
    for (const c of cleanup.reverse()) await c();
  });

  it('every PUBACKed clip reaches every recipient after a crash and restart', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'plk-dur-'));
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    const gwId = generateIdentity('gateway');
    await writeKeyDir(join(dir, 'gateway'), gwId);
    const toy = generateIdentity('toy');
    const mum = generateIdentity('parent');
    const dad = generateIdentity('parent');
    const admin = await openAdmin(dir, { create: true });
    const fam = await createFamily(admin.store, admin.audit);
    for (const e of [toy, mum, dad]) {
      await admin.store.addEndpoint({
        id: e.id,
        role: e.role === 'toy' ? 'toy' : 'parent',
        signPublicKey: e.signPublicKey,
        boxPublicKey: e.boxPublicKey,
        createdAt: Date.now(),
      });
      await addFamilyMember(admin.store, admin.audit, fam, e.id);
    }
    await admin.close();

    const first = await startChild(dir);
    cleanup.push(() => void first.child.kill('SIGKILL'));
    const gateway = publicPart(gwId);
    const conn = await connectEndpoint({ url: `mqtt://127.0.0.1:${first.port}`, identity: toy, gateway });
    const n = 300;
    const clips = Array.from({ length: n }, (_, i) =>
      makeClip(toy, [mum, dad], { sequence: i + 1, oggBytes: 8000 }),
    );
    const acked = new Set<string>();
    let killedAt = -1;
    await new Promise<void>((resolve) => {
      for (const c of clips) {
        conn.publishClip(c).then(
          () => {
            acked.add(toHex(decodeClip(c).header.clipId));
            if (acked.size === 60 && killedAt < 0) {
              killedAt = acked.size;
              first.child.kill('SIGKILL');
              resolve();
            }
          },
          () => {},
        );
      }
      conn.client.once('close', () => resolve());
    });
    conn.client.end(true);
    await new Promise((r) => first.child.once('exit', r));
    const ackedAtKill = new Set(acked);
    console.log(`durability: ${n} clips sent, ${ackedAtKill.size} PUBACKed before SIGKILL`);
    expect(ackedAtKill.size).toBeGreaterThanOrEqual(60);

    const second = await startChild(dir);
    cleanup.push(() => void second.child.kill('SIGKILL'));
    for (const who of [mum, dad]) {
      const c = await connectEndpoint({ url: `mqtt://127.0.0.1:${second.port}`, identity: who, gateway });
      const got = new Set<string>();
      c.onInbox((kind, bytes) => {
        if (kind === 'clip') got.add(toHex(decodeClip(bytes).header.clipId));
      });
      const t0 = Date.now();
      while ([...ackedAtKill].some((id) => !got.has(id)) && Date.now() - t0 < 15_000) {
        await new Promise((r) => setTimeout(r, 50));
      }
      const missing = [...ackedAtKill].filter((id) => !got.has(id));
      expect(missing).toEqual([]);
      await c.close();
    }
    second.child.kill('SIGTERM');
    await new Promise((r) => second.child.once('exit', r));
  }, 60_000);
});
