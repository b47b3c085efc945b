// Clips in transit [PLK-12.9]: forwarded before their commit, receipted in transit, never written when every recipient receipted in time; replays never forwarded early; a sender's clips stay in order.
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import type { EndpointConnection } from '../../device/transport/mqtt-connect.ts';
import { DEFAULT_TRANSIT_HOLD_MS } from '../../gateway/transit.ts';
import { decodeClip, sealClip } from '../../shared/envelope.ts';
import type { PrivateIdentity } from '../../shared/identity.ts';
import { seededRandom } from '../../shared/random.ts';
import { createReceipt, decodeReceipt } from '../../shared/receipt.ts';
import {
  closed,
  type Family,
  type Harness,
  inbox,
  makeClip,
  sleep,
  startHarness,
} from './helpers/harness.ts';

const BIN = fileURLToPath(new URL('../../bin/plushlink.js', import.meta.url));

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

async function start(holdMs: number | null): Promise<Harness> {
  h = await startHarness({ transitHoldMs: holdMs });
  return h;
}

function receiptFor(h: Harness, who: PrivateIdentity, env: Uint8Array): Uint8Array {
  const d = decodeClip(env);
  return createReceipt({
    recipient: who,
    sender: d.header.sender,
    clipId: d.header.clipId,
    receivedAt: h.clock.now,
  });
}

/** Counts of the store's rows, read from the database file by a separate connection. */
function rows(h: Harness): { clips: number; deliveries: number; accepted: number } {
  const db = new Database(join(h.dir, 'store', 'gateway.db'), { readonly: true });
  try {
    const n = (t: string) => (db.prepare(`SELECT count(*) AS n FROM ${t}`).get() as { n: number }).n;
    return { clips: n('clips'), deliveries: n('deliveries'), accepted: n('accepted') };
  } finally {
    db.close();
  }
}

/** True when any file of the store directory holds these bytes. */
function storeHolds(h: Harness, bytes: Uint8Array): boolean {
  const dir = join(h.dir, 'store');
  return readdirSync(dir).some((f) => readFileSync(join(dir, f)).includes(Buffer.from(bytes)));
}

async function transitCount(h: Harness, stored: string): Promise<number> {
  const m = await h.metrics.transit.get();
  return m.values.find((v) => v.labels.stored === stored)?.value ?? 0;
}

async function connectAll(h: Harness, f: Family) {
  const toy = await h.connect(f.toy);
  const mum = await h.connect(f.mum);
  const dad = await h.connect(f.dad);
  return { toy, mum, dad, toyBox: inbox(toy), mumBox: inbox(mum), dadBox: inbox(dad) };
}

const tracked = (p: Promise<void>) => {
  const t = { done: false, promise: p };
  p.then(
    () => {
      t.done = true;
    },
    () => {},
  );
  return t;
};

describe('clips in transit [PLK-12.9]', () => {
  it('a clip receipted by every recipient before its commit is never written; its PUBACK still follows the commit', async () => {
    const h = await start(1000);
    const f = await h.family();
    const c = await connectAll(h, f);
    const env = makeClip(f.toy, [f.mum, f.dad], { oggBytes: 6000 });
    const ack = tracked(c.toy.publishClip(env));
    await Promise.all([c.mumBox.wait(1), c.dadBox.wait(1)]);
    await sleep(50);
    expect(ack.done).toBe(false); // forwarded, not yet committed, so not acknowledged
    // A receipt absorbed in transit is acknowledged with the clip's commit, not before.
    const mumAck = tracked(c.mum.publishReceipt(receiptFor(h, f.mum, env)));
    await sleep(100);
    expect([ack.done, mumAck.done]).toEqual([false, false]); // one recipient still to go
    // The last receipt releases the commit at once (long before the 1 s hold); the PUBACKs follow it.
    const t0 = Date.now();
    await Promise.all([c.dad.publishReceipt(receiptFor(h, f.dad, env)), ack.promise, mumAck.promise]);
    expect(Date.now() - t0).toBeLessThan(800);
    await c.toyBox.wait(2, 'receipt');
    expect(c.toyBox.receipts.map((r) => decodeReceipt(r).recipient).sort()).toEqual(
      [f.mum.id, f.dad.id].sort(),
    );
    expect(rows(h)).toEqual({ clips: 0, deliveries: 0, accepted: 1 });
    expect(await h.store.lastSequence(f.toy.id)).toBe(decodeClip(env).header.sequence);
    expect(await transitCount(h, 'none')).toBe(1);
    // Not one byte of the envelope reached the disk (its signature: the last 64 bytes).
    expect(storeHolds(h, env.subarray(env.length - 64))).toBe(false);
    // A resend is still recognised: acknowledged, not delivered again.
    await c.toy.publishClip(env);
    await sleep(100);
    expect([c.mumBox.clips.length, c.dadBox.clips.length]).toEqual([1, 1]);
  });

  it('a recipient that receipts too late keeps its delivery; one that receipted in transit has none', async () => {
    const h = await start(300);
    const f = await h.family();
    const c = await connectAll(h, f);
    const env = makeClip(f.toy, [f.mum, f.dad]);
    const ack = c.toy.publishClip(env);
    await c.mumBox.wait(1);
    await c.mum.publishReceipt(receiptFor(h, f.mum, env));
    await ack;
    expect(await h.store.pendingFor(f.mum.id, 10)).toEqual([]);
    expect((await h.store.pendingFor(f.dad.id, 10)).map((p) => p.envelope)).toEqual([env]);
    expect(await transitCount(h, 'some')).toBe(1);
    // mum's receipt, resent, is still acknowledged; dad's late receipt completes the delivery.
    await c.mum.publishReceipt(receiptFor(h, f.mum, env));
    await c.dad.publishReceipt(receiptFor(h, f.dad, env));
    expect(await h.store.backlog()).toBe(0);
    expect(rows(h).clips).toBe(0);
    expect(c.mum.client.connected && c.dad.client.connected).toBe(true);
  });

  it('without receipts the clip is stored after the hold and waits in the backlog', async () => {
    const h = await start(100);
    const f = await h.family();
    const c = await connectAll(h, f);
    const env = makeClip(f.toy, [f.mum, f.dad]);
    const t0 = performance.now();
    await c.toy.publishClip(env);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(90);
    expect([c.mumBox.clips.length, c.dadBox.clips.length]).toEqual([1, 1]);
    expect(await h.store.backlog()).toBe(2);
    expect(await transitCount(h, 'all')).toBe(1);
    await c.mum.close();
    const again = await h.connect(f.mum);
    const box = inbox(again);
    await box.wait(1);
    expect(box.clips[0]).toEqual(env);
  });

  it('says which hold it runs with: the option, the default, or none when off', async () => {
    expect((await start(25)).gw.transitHoldMs).toBe(25);
    await h?.close();
    h = await startHarness({});
    expect(h.gw.transitHoldMs).toBe(DEFAULT_TRANSIT_HOLD_MS);
  });

  it('forwards only after the commit when the hold is off (null)', async () => {
    const h = await start(null);
    expect(h.gw.transitHoldMs).toBeNull();
    const f = await h.family();
    const c = await connectAll(h, f);
    const env = makeClip(f.toy, [f.mum]);
    let ackedBeforeDelivery = false;
    const ack = c.toy.publishClip(env).then(() => {
      ackedBeforeDelivery = c.mumBox.clips.length === 0;
    });
    await Promise.all([ack, c.mumBox.wait(1)]);
    expect(ackedBeforeDelivery).toBe(true);
    expect(await transitCount(h, 'all')).toBe(0);
  });

  it('never forwards a resend, a replay or a duplicate clip id before the commit', async () => {
    const h = await start(400);
    const f = await h.family();
    const c = await connectAll(h, f);
    const a = makeClip(f.toy, [f.mum], { sequence: 5 });
    const first = c.toy.publishClip(a);
    await c.mumBox.wait(1);
    // While `a` is held: the same clip again (a resend) is acknowledged with it and never delivered
    // twice; an older sequence with a new id (a replay) is refused at the commit, never delivered.
    const resend = c.toy.publishClip(a);
    c.toy.publishClip(makeClip(f.toy, [f.mum], { sequence: 4 })).catch(() => {});
    await Promise.all([first, resend]);
    await closed(c.toy.client);
    expect(c.mumBox.clips).toHaveLength(1);
    // After the commit, from the store's own state: a replay again.
    const toy1 = await h.connect(f.toy);
    toy1.publishClip(makeClip(f.toy, [f.mum], { sequence: 5 })).catch(() => {});
    await closed(toy1.client);
    // A duplicate id (same seeded randomness: same content key and clip id) with a fresh sequence.
    const dup = (sequence: number) =>
      sealClip({
        sender: f.toy,
        recipients: [f.mum],
        sequence,
        createdAt: h.clock.now,
        durationMs: 1000,
        ogg: new Uint8Array(100),
        random: seededRandom('transit-duplicate'),
      });
    const toy2 = await h.connect(f.toy);
    await toy2.publishClip(dup(6));
    await c.mumBox.wait(2);
    toy2.publishClip(dup(7)).catch(() => {});
    await closed(toy2.client);
    await sleep(100);
    expect(c.mumBox.clips.map((e) => decodeClip(e).header.sequence)).toEqual([5, 6]);
    const reasons = h.audit.events.filter((e) => e.kind === 'clip.refused').map((e) => e.detail?.reason);
    expect(reasons).toEqual(['replay', 'replay', 'duplicate']);
  });

  it("keeps a sender's clips in sequence order: a clip behind a held one waits for it", async () => {
    const h = await start(300);
    const f = await h.family();
    const toy = await h.connect(f.toy);
    const mum: EndpointConnection = await h.connect(f.mum);
    const mumBox = inbox(mum);
    // dad is offline: the second clip has no one to forward to, but must not overtake the first.
    const a = makeClip(f.toy, [f.mum], { sequence: 1 });
    const b = makeClip(f.toy, [f.dad], { sequence: 2 });
    await Promise.all([toy.publishClip(a), toy.publishClip(b)]);
    expect(toy.client.connected).toBe(true);
    expect(await h.store.lastSequence(f.toy.id)).toBe(2);
    expect((await h.store.pendingFor(f.dad.id, 10)).map((p) => p.envelope)).toEqual([b]);
    expect(mumBox.clips).toEqual([a]);
  });

  it('a recipient that reconnects before the commit gets the clip on its new connection', async () => {
    const h = await start(600);
    const f = await h.family();
    const toy = await h.connect(f.toy);
    const mum = await h.connect(f.mum);
    const first = inbox(mum);
    const env = makeClip(f.toy, [f.mum]);
    const ack = toy.publishClip(env);
    await first.wait(1);
    await mum.close();
    const again = await h.connect(f.mum);
    const second = inbox(again);
    await ack;
    await second.wait(1);
    expect(second.clips[0]).toEqual(env);
  });

  it('a gateway that closes commits its held clips first', async () => {
    const h = await start(1000);
    const f = await h.family();
    const toy = await h.connect(f.toy);
    const mum = await h.connect(f.mum);
    const box = inbox(mum);
    const env = makeClip(f.toy, [f.mum]);
    toy.publishClip(env).catch(() => {});
    await box.wait(1);
    await h.restart();
    expect((await h.store.pendingFor(f.mum.id, 10)).map((p) => p.envelope)).toEqual([env]);
  });

  it('`plushlink gateway --transit-hold off` and `0` start, say the hold on the listening line, and stop on SIGTERM with exit code 0', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'plk-transit-'));
    try {
      for (const [value, said] of [
        ['off', 'transit-hold=off'],
        ['0', 'transit-hold=0ms'],
        [null, `transit-hold=${DEFAULT_TRANSIT_HOLD_MS}ms`],
      ] as const) {
        const child = spawn(
          process.execPath,
          [
            BIN,
            'gateway',
            '--data',
            join(tmp, `data-${value}`),
            '--port',
            '0',
            ...(value === null ? [] : ['--transit-hold', value]),
          ],
          { stdio: ['ignore', 'pipe', 'pipe'] },
        );
        let err = '';
        child.stderr.on('data', (d: Buffer) => {
          err += d.toString();
        });
        const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
        const line = await new Promise<string>((resolve, reject) => {
          let out = '';
          child.stdout.on('data', (d: Buffer) => {
            out += d.toString();
            if (/listening on mqtt:.*\n/.test(out)) resolve(out);
          });
          void exited.then((code) => reject(new Error(`exited ${code}: ${err}`)));
        });
        child.kill('SIGTERM');
        expect(line.trimEnd().split(' ')).toContain(said);
        expect(await exited, err).toBe(0);
      }
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }, 60_000);

  it('refuses a hold outside 0–1000 ms, in createGateway and on the command line (one line, exit code 2)', async () => {
    for (const bad of [-1, 1001, 2.5, Number.NaN])
      await expect(startHarness({ transitHoldMs: bad })).rejects.toThrow(/transitHoldMs must be an integer/);
    const tmp = mkdtempSync(join(tmpdir(), 'plk-transit-'));
    try {
      for (const bad of ['1001', 'soon', '-5']) {
        const run = await new Promise<{ code: number; stderr: string }>((resolve) => {
          execFile(
            process.execPath,
            [BIN, 'gateway', '--data', join(tmp, 'data'), '--port', '0', '--transit-hold', bad],
            { timeout: 60_000 },
            (err, _stdout, stderr) =>
              resolve({
                code: err ? (typeof err.code === 'number' ? err.code : 1) : 0,
                stderr: String(stderr),
              }),
          );
        });
        expect(run.code, run.stderr).toBe(2);
        expect(run.stderr.split('\n')[0]).toBe(
          `plushlink: option '--transit-hold <ms|off>' argument '${bad}' is invalid. must be whole milliseconds from 0 to 1000, or off`,
        );
      }
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});
