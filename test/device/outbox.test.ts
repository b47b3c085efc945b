// Outbox tests: bounded FIFO, typed OUTBOX_FULL, strictly increasing sequence numbers, atomic persistence across a restart.
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Outbox, OutboxError, type OutboxItem } from '../../device/outbox.ts';
import { toHex } from '../../shared/bytes.ts';
import { decodeClip, sealClip } from '../../shared/envelope.ts';
import { generateIdentity } from '../../shared/identity.ts';
import { seededRandom } from '../../shared/random.ts';

const rnd = seededRandom('outbox-test');
const toy = generateIdentity('toy', rnd);
const parent = generateIdentity('parent', rnd);

function item(sequence: number, size = 2000): OutboxItem {
  const envelope = sealClip({
    sender: toy,
    recipients: [parent],
    sequence,
    createdAt: 1_700_000_000_000 + sequence,
    durationMs: 1000,
    ogg: new Uint8Array(size).fill(sequence & 0xff),
    random: rnd,
  });
  const h = decodeClip(envelope).header;
  return {
    clipId: toHex(h.clipId),
    sequence,
    createdAt: h.createdAt,
    durationMs: 1000,
    recipients: [parent.id],
    envelope,
  };
}

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'plk-outbox-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('Outbox', () => {
  it('is a FIFO that refuses when full and never drops the oldest', async () => {
    const box = await Outbox.open({ maxItems: 3 });
    for (let s = 1; s <= 3; s++) await box.add(item(box.nextSequence()));
    const before = box.items().map((i) => i.clipId);
    const extra = item(box.nextSequence());
    await expect(box.add(extra)).rejects.toMatchObject({ name: 'OutboxError', code: 'OUTBOX_FULL' });
    expect(() => box.assertRoom()).toThrow(OutboxError);
    expect(box.items().map((i) => i.clipId)).toEqual(before);
    expect(box.peek()?.sequence).toBe(1);
    expect(await box.remove(before[0]!)).toBe(true);
    expect(await box.remove(before[0]!)).toBe(false);
    await box.add(extra);
    expect(box.items().map((i) => i.sequence)).toEqual([2, 3, 4]);
  });

  it('bounds bytes too', async () => {
    const box = await Outbox.open({ maxBytes: 4000 });
    await box.add(item(1));
    await expect(box.add(item(2))).rejects.toMatchObject({ code: 'OUTBOX_FULL' });
    expect(box.size).toBe(1);
  });

  it('hands out strictly increasing sequence numbers and refuses going back', async () => {
    const box = await Outbox.open({ sequenceFloor: () => 1000 });
    expect(box.nextSequence()).toBe(1000);
    expect(box.nextSequence()).toBe(1001);
    await box.add(item(1001));
    await expect(box.add(item(1001))).rejects.toMatchObject({ code: 'OUTBOX_SEQUENCE' });
    expect(box.nextSequence()).toBe(1002);
  });

  it('survives a restart: unacknowledged envelopes and the last sequence come back from disk', async () => {
    const path = join(dir, 'outbox.json');
    const a = await Outbox.open({ path });
    const items = [item(a.nextSequence()), item(a.nextSequence()), item(a.nextSequence())];
    for (const it of items) await a.add(it);
    await a.remove(items[0]!.clipId); // PUBACKed
    // "Crash": drop `a` without any shutdown, reopen from the file.
    const b = await Outbox.open({ path });
    expect(b.items().map((i) => i.clipId)).toEqual([items[1]!.clipId, items[2]!.clipId]);
    expect(Buffer.from(b.items()[1]!.envelope).equals(Buffer.from(items[2]!.envelope))).toBe(true);
    expect(b.lastSequence).toBe(3);
    expect(b.nextSequence()).toBe(4);
    // Even an emptied outbox remembers the last sequence number.
    await b.remove(items[1]!.clipId);
    await b.remove(items[2]!.clipId);
    const c = await Outbox.open({ path });
    expect(c.size).toBe(0);
    expect(c.nextSequence()).toBe(4);
  });

  it('writes atomically: mode 0600, no temp files left, concurrent changes all land', async () => {
    const path = join(dir, 'outbox.json');
    const box = await Outbox.open({ path, maxItems: 100 });
    const items = Array.from({ length: 10 }, () => item(box.nextSequence(), 500));
    await Promise.all(items.map((it) => box.add(it)));
    await Promise.all(items.slice(0, 4).map((it) => box.remove(it.clipId)));
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect((await readdir(dir)).filter((f) => f !== 'outbox.json')).toEqual([]);
    const again = await Outbox.open({ path, maxItems: 100 });
    expect(again.items().map((i) => i.sequence)).toEqual([5, 6, 7, 8, 9, 10]);
  });

  it('refuses a corrupt or tampered file with OUTBOX_CORRUPT', async () => {
    const path = join(dir, 'outbox.json');
    await writeFile(path, 'not json');
    await expect(Outbox.open({ path })).rejects.toMatchObject({ code: 'OUTBOX_CORRUPT' });
    const box = await Outbox.open({ path: join(dir, 'ok.json') });
    await box.add(item(box.nextSequence()));
    const text = await readFile(join(dir, 'ok.json'), 'utf8');
    await writeFile(path, text.replace('"sequence":1', '"sequence":7'));
    await expect(Outbox.open({ path })).rejects.toMatchObject({ code: 'OUTBOX_CORRUPT' });
  });
});
