// Durability: a gateway process killed with SIGKILL during a burst loses no PUBACKed clip; every one reaches every recipient after restart; and no PUBACK precedes the WAL sync that makes its clip durable (strace) [PLK-12.3].
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
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
import { createReceipt } from '../../shared/receipt.ts';
import { makeClip } from './helpers/harness.ts';

const FIXTURE = join(import.meta.dirname, 'fixtures', 'gateway-child.ts');

function startChild(
  dir: string,
  wrapper: string[] = [],
  env: Record<string, string> = {},
  extra: string[] = [],
): Promise<{ child: ChildProcess; port: number }> {
  const command = [
    process.execPath,
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
    ...extra,
  ];
  const all = [...wrapper, ...command];
  const child = spawn(all[0]!, all.slice(1), {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
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

  /** A data directory with a gateway identity and one family: a toy and two parents. */
  async function provisionedDir() {
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
    return { dir, gwId, toy, mum, dad };
  }

  it('every PUBACKed clip reaches every recipient after a crash and restart', async () => {
    const { dir, gwId, toy, mum, dad } = await provisionedDir();
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

  it('clips receipted in transit [PLK-12.9]: after SIGKILL every PUBACKed clip reaches every parent that had not receipted it, none whose receipt was acknowledged, and is a retransmit', async () => {
    const { dir, gwId, toy, mum, dad } = await provisionedDir();
    // A long hold, so that most receipts arrive while their clip is held.
    const first = await startChild(dir, [], {}, ['--transit-hold', '200']);
    cleanup.push(() => void first.child.kill('SIGKILL'));
    const gateway = publicPart(gwId);
    const url = `mqtt://127.0.0.1:${first.port}`;
    const conn = await connectEndpoint({ url, identity: toy, gateway });
    // mum receipts every clip, dad only even sequence numbers. A parent that sent a receipt has the
    // clip (its receipt is resent if unacknowledged); one whose receipt was acknowledged must never
    // be sent that clip again.
    const receiptSent = new Map<string, Set<string>>([
      [mum.id, new Set()],
      [dad.id, new Set()],
    ]);
    const receiptAcked = new Map<string, Set<string>>([
      [mum.id, new Set()],
      [dad.id, new Set()],
    ]);
    const parents = await Promise.all(
      [mum, dad].map(async (who) => {
        const c = await connectEndpoint({ url, identity: who, gateway });
        c.onInbox((kind, bytes) => {
          if (kind !== 'clip') return;
          const h = decodeClip(bytes).header;
          if (who === dad && h.sequence % 2 === 1) return;
          const id = toHex(h.clipId);
          receiptSent.get(who.id)!.add(id);
          c.publishReceipt(
            createReceipt({ recipient: who, sender: toy.id, clipId: h.clipId, receivedAt: Date.now() }),
          )
            .then(() => receiptAcked.get(who.id)!.add(id))
            .catch(() => {});
        });
        return c;
      }),
    );
    const n = 200;
    const clips = Array.from({ length: n }, (_, i) =>
      makeClip(toy, [mum, dad], { sequence: i + 1, oggBytes: 4000 }),
    );
    const acked = new Map<string, Uint8Array>();
    await new Promise<void>((resolve) => {
      clips.forEach((c, i) => {
        // Spread over time, so that clips are held, receipted and committed while others arrive.
        setTimeout(() => {
          conn.publishClip(c).then(
            () => {
              acked.set(toHex(decodeClip(c).header.clipId), c);
              if (acked.size === 60) {
                first.child.kill('SIGKILL');
                resolve();
              }
            },
            () => {},
          );
        }, i * 5);
      });
      conn.client.once('close', () => resolve());
    });
    for (const c of [conn, ...parents]) c.client.end(true);
    await new Promise((r) => first.child.once('exit', r));
    const ackedAtKill = new Map(acked);
    const receipted = new Map([...receiptAcked].map(([k, v]) => [k, new Set(v)]));
    const sentReceipt = new Map([...receiptSent].map(([k, v]) => [k, new Set(v)]));
    const both = [...ackedAtKill.keys()].filter(
      (id) => receipted.get(mum.id)!.has(id) && receipted.get(dad.id)!.has(id),
    );
    console.log(
      `durability (transit): ${ackedAtKill.size} clips PUBACKed before SIGKILL, ${both.length} receipted by both parents in time`,
    );
    expect(ackedAtKill.size).toBeGreaterThanOrEqual(60);
    expect(both.length).toBeGreaterThan(0);

    const second = await startChild(dir);
    cleanup.push(() => void second.child.kill('SIGKILL'));
    const url2 = `mqtt://127.0.0.1:${second.port}`;
    for (const who of [mum, dad]) {
      const c = await connectEndpoint({ url: url2, identity: who, gateway });
      const got = new Set<string>();
      c.onInbox((kind, bytes) => {
        if (kind === 'clip') got.add(toHex(decodeClip(bytes).header.clipId));
      });
      const owed = [...ackedAtKill.keys()].filter((id) => !sentReceipt.get(who.id)!.has(id));
      const t0 = Date.now();
      while (owed.some((id) => !got.has(id)) && Date.now() - t0 < 15_000)
        await new Promise((r) => setTimeout(r, 50));
      expect(owed.filter((id) => !got.has(id))).toEqual([]);
      // Nothing acknowledged as receipted comes back.
      expect([...got].filter((id) => receipted.get(who.id)!.has(id))).toEqual([]);
      await c.close();
    }
    // Every PUBACKed clip is remembered: sent again, each is acknowledged as a retransmit.
    const again = await connectEndpoint({ url: url2, identity: toy, gateway });
    for (const c of ackedAtKill.values()) await again.publishClip(c);
    expect(again.client.connected).toBe(true);
    await again.close();
    second.child.kill('SIGTERM');
    await new Promise((r) => second.child.once('exit', r));
  }, 90_000);

  it.each([
    ['inline', 'SQLite syncs inside each commit'],
    ['thread', 'the store syncs in the thread pool'],
  ])(
    'sends no PUBACK before a WAL sync that began after its PUBLISH was sent (strace; sync %s: %s)',
    async (mode) => {
      const st = spawnSync('strace', ['-V'], { stdio: 'ignore' });
      if (st.status !== 0) throw new Error('strace is missing: apt-get install strace (.ci/run installs it)');
      const { dir, gwId, toy, mum, dad } = await provisionedDir();
      const trace = join(dir, 'strace.txt');
      // Only the sync calls are traced (seccomp filter): the gateway runs at nearly full speed.
      const { child, port } = await startChild(
        dir,
        ['strace', '-f', '--seccomp-bpf', '-ttt', '-y', '-e', 'trace=fdatasync,fsync', '-o', trace],
        { PLK_STORE_SYNC: mode },
      );
      const traced = (): number[] => {
        try {
          return readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8')
            .trim()
            .split(/\s+/)
            .map(Number);
        } catch {
          return [];
        }
      };
      cleanup.push(() => {
        for (const pid of traced()) if (pid > 0) process.kill(pid, 'SIGKILL');
        child.kill('SIGKILL');
      });
      const conn = await connectEndpoint({
        url: `mqtt://127.0.0.1:${port}`,
        identity: toy,
        gateway: publicPart(gwId),
      });
      const wallUs = () => (performance.timeOrigin + performance.now()) * 1000;
      const windows: { sent: number; acked: number }[] = [];
      let seq = 0;
      // Bursts of different sizes: lone clips, and clips sharing group commits while a sync runs.
      for (const burst of [1, 1, 8, 3, 20, 1, 12]) {
        await Promise.all(
          Array.from({ length: burst }, async () => {
            const clip = makeClip(toy, [mum, dad], { sequence: ++seq, oggBytes: 6000 });
            const sent = wallUs();
            await conn.publishClip(clip);
            windows.push({ sent, acked: wallUs() });
          }),
        );
      }
      await conn.close();
      const [gatewayPid] = traced();
      expect(gatewayPid).toBeGreaterThan(0);
      process.kill(gatewayPid!, 'SIGTERM');
      await new Promise((r) => child.once('exit', r));

      // strace -ttt: one line per call, or an "unfinished" line and a "resumed" line when threads interleave.
      const syncs: { start: number; end: number }[] = [];
      const open = new Map<string, number>();
      for (const line of readFileSync(trace, 'utf8').split('\n')) {
        const m = /^(\d+)\s+(\d+\.\d+) (.*)$/.exec(line);
        if (!m) continue;
        const [, pid, ts, rest] = m as unknown as [string, string, string, string];
        const at = Number(ts) * 1e6;
        if (/^f(data)?sync\(\d+<[^>]*gateway\.db-wal>\) = 0/.test(rest!)) syncs.push({ start: at, end: at });
        else if (/^f(data)?sync\(\d+<[^>]*gateway\.db-wal> <unfinished/.test(rest!)) open.set(pid!, at);
        else if (/^<\.\.\. f(data)?sync resumed>\) += 0/.test(rest!) && open.has(pid!)) {
          syncs.push({ start: open.get(pid!)!, end: at });
          open.delete(pid!);
        }
      }
      console.log(`durability: ${windows.length} clips, ${syncs.length} WAL syncs traced`);
      expect(syncs.length).toBeGreaterThan(0);
      const unsynced = windows.filter((w) => !syncs.some((x) => x.start > w.sent && x.end < w.acked));
      expect(unsynced).toEqual([]);
    },
    60_000,
  );
});
