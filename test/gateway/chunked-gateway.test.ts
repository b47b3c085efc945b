// Protocol versions at the real gateway (Aedes on 127.0.0.1:0, SQLite in a temp dir): a v1-only gateway refuses v2 chunks by name and audits it; one configured for 1,2 verifies, stores (durably before PUBACK), forwards and receipts each chunk [PLK-14.7] [PLK-14.9].
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Counter } from 'prom-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { splitOggIntoChunks } from '../../device/codec/ogg-chunks.ts';
import { inspectBytes } from '../../scripts/commands/clip.ts';
import { toHex } from '../../shared/bytes.ts';
import {
  chunkChainHash,
  decodeChunk,
  type SealedChunkedClip,
  sealChunkedClip,
  sealChunkRaw,
} from '../../shared/chunked.ts';
import {
  generateIdentity,
  type PrivateIdentity,
  type PublicIdentity,
  publicPart,
} from '../../shared/identity.ts';
import { seededRandom } from '../../shared/random.ts';
import { createReceipt, decodeReceipt } from '../../shared/receipt.ts';
import { fakeOggOpus } from '../protocol/fake-ogg.ts';
import { closed, type Harness, inbox, makeClip, startHarness } from './helpers/harness.ts';

const OGG = fakeOggOpus({ durationMs: 600, packetBytes: 50 });
const PIECES = splitOggIntoChunks(OGG, 200);
const BIN = fileURLToPath(new URL('../../bin/plushlink.js', import.meta.url));

let seedNo = 0;
function chunked(
  sender: PrivateIdentity,
  recipients: readonly PublicIdentity[],
  sequence: number,
): SealedChunkedClip {
  return sealChunkedClip({
    sender,
    recipients,
    chunks: PIECES,
    sequence,
    createdAt: Date.now(),
    random: seededRandom(`gw-chunked-${seedNo++}`),
  });
}

async function refusedCount(counter: Counter<'reason'>, reason: string): Promise<number> {
  return (await counter.get()).values.find((v) => v.labels.reason === reason)?.value ?? 0;
}

const pendingIds = async (h: Harness, id: PublicIdentity): Promise<string[]> =>
  (await h.store.pendingFor(id.id, 100)).map((p) => p.clipId);

describe('a v1-only gateway (the default) and a v2 toy [PLK-14.7]', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await h.close();
  });

  it('refuses the chunk with reason "version", audits it, closes the connection and stores nothing', async () => {
    const f = await h.family();
    const mum = await h.connect(f.mum);
    const mumBox = inbox(mum);
    const toy = await h.connect(f.toy);
    const before = await refusedCount(h.metrics.clipsRefused, 'version');
    const clip = chunked(f.toy, [f.mum, f.dad], 1);
    // No PUBACK: the connection is closed on it (MQTT 3.1.1 has no other refusal).
    toy.publishClip(clip.chunks[0]!).catch(() => {});
    await closed(toy.client);
    expect(await refusedCount(h.metrics.clipsRefused, 'version')).toBe(before + 1);
    const row = h.audit.events.filter((e) => e.kind === 'clip.refused').at(-1);
    expect(row).toMatchObject({ endpoint: f.toy.id, detail: { reason: 'version' } });
    expect(String(row?.detail?.detail)).toMatch(/version 2; accepted: 1/);
    expect(await h.store.lastSequence(f.toy.id)).toBe(0);
    expect(await pendingIds(h, f.mum)).toEqual([]);
    // The same toy speaking v1 on a new connection is served as always.
    const again = await h.connect(f.toy);
    const v1 = makeClip(f.toy, [f.mum], { sequence: 2 });
    await again.publishClip(v1);
    await mumBox.wait(1);
    expect(toHex(mumBox.clips[0]!)).toBe(toHex(v1));
  });
});

describe('a gateway accepting versions 1 and 2 [PLK-14.7]', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ protocolVersions: [1, 2] });
  });
  afterAll(async () => {
    await h.close();
  });

  it('each chunk is durable before its PUBACK, forwarded unchanged, stored under its delivery id, receipted per chunk', async () => {
    const f = await h.family();
    const mum = await h.connect(f.mum);
    const mumBox = inbox(mum);
    const toy = await h.connect(f.toy);
    const toyBox = inbox(toy);
    const clip = chunked(f.toy, [f.mum, f.dad], 10);
    const ids = clip.chunks.map((c) => toHex(decodeChunk(c).deliveryId));
    for (let i = 0; i < clip.chunks.length; i++) {
      await toy.publishClip(clip.chunks[i]!);
      // [PLK-12.3] the PUBACK came: the chunk (and every one before it) is in the store for each recipient.
      expect(await pendingIds(h, f.dad)).toEqual(ids.slice(0, i + 1));
    }
    expect(await h.store.lastSequence(f.toy.id)).toBe(10 + clip.chunks.length - 1);
    await mumBox.wait(clip.chunks.length);
    expect(mumBox.clips.map(toHex)).toEqual(clip.chunks.map(toHex));
    // Ciphertext only: no stored chunk contains its Ogg payload.
    for (const p of await h.store.pendingFor(f.dad.id, 100)) {
      const i = ids.indexOf(p.clipId);
      expect(Buffer.from(p.envelope).includes(Buffer.from(PIECES[i]!.ogg.subarray(40, 100)))).toBe(false);
    }
    // [PLK-14.9] one PLK-6 receipt per chunk, naming its delivery id; forwarded to the toy.
    for (const c of clip.chunks) {
      await mum.publishReceipt(
        createReceipt({
          recipient: f.mum,
          sender: f.toy.id,
          clipId: decodeChunk(c).deliveryId,
          receivedAt: h.clock.now,
        }),
      );
    }
    await toyBox.wait(clip.chunks.length, 'receipt');
    expect(toyBox.receipts.map((r) => toHex(decodeReceipt(r).clipId))).toEqual(ids);
    expect(await pendingIds(h, f.mum)).toEqual([]);
    expect(await pendingIds(h, f.dad)).toEqual(ids);
  });

  it('unreceipted chunks survive a restart and come from the backlog, in order', async () => {
    const f = await h.family();
    const toy = await h.connect(f.toy);
    const clip = chunked(f.toy, [f.mum], 3);
    for (const c of clip.chunks) await toy.publishClip(c);
    await h.restart();
    const mum = await h.connect(f.mum);
    const box = inbox(mum);
    await box.wait(clip.chunks.length);
    expect(box.clips.map(toHex)).toEqual(clip.chunks.map(toHex));
  });

  it('replay per chunk: an identical resend is acknowledged and not forwarded again; an older chunk is refused (audited)', async () => {
    const f = await h.family();
    const mum = await h.connect(f.mum);
    const box = inbox(mum);
    const toy = await h.connect(f.toy);
    const clip = chunked(f.toy, [f.mum], 20);
    await toy.publishClip(clip.chunks[0]!);
    await toy.publishClip(clip.chunks[1]!);
    // [PLK-8.2] the resend of a chunk whose PUBACK was lost: acknowledged again.
    await toy.publishClip(clip.chunks[1]!);
    await toy.publishClip(clip.chunks[2]!);
    // Even chunk 0 again, after chunk 2: the same (delivery id, sequence) is a retransmission.
    await toy.publishClip(clip.chunks[0]!);
    await box.wait(3);
    // A chunk whose sequence is not above the last accepted one is a replay [PLK-8.1].
    const replays = h.audit.reasons('clip.refused').filter((r) => r === 'replay').length;
    const older = chunked(f.toy, [f.mum], 21);
    toy.publishClip(older.chunks[0]!).catch(() => {});
    await closed(toy.client);
    expect(h.audit.reasons('clip.refused').filter((r) => r === 'replay').length).toBe(replays + 1);
    // Every chunk reached mum exactly once.
    const again = await h.connect(f.toy);
    await again.publishClip(makeClip(f.toy, [f.mum], { sequence: 50 }));
    await box.wait(4);
    expect(box.clips.slice(0, 3).map(toHex)).toEqual(clip.chunks.map(toHex));
    expect(box.clips.length).toBe(4);
  });

  it('a chunk signed out of order is accepted in publish order (sequence) — the gateway keeps no chain state', async () => {
    const f = await h.family();
    const mum = await h.connect(f.mum);
    const box = inbox(mum);
    const toy = await h.connect(f.toy);
    const clip = chunked(f.toy, [f.mum], 40);
    const c0 = decodeChunk(clip.chunks[0]!);
    const early = sealChunkRaw({
      sender: f.toy,
      recipients: [f.mum],
      clipId: clip.clipId,
      contentKey: clip.contentKey,
      index: 1,
      final: false,
      previous: chunkChainHash(c0),
      sequence: 39,
      createdAt: Date.now(),
      durationMs: 200,
      ogg: PIECES[1]!.ogg,
      random: seededRandom('early'),
    }).bytes;
    await toy.publishClip(early);
    await toy.publishClip(clip.chunks[0]!);
    await box.wait(2);
    expect(box.clips.map(toHex)).toEqual([toHex(early), toHex(clip.chunks[0]!)]);
  });

  it('v1 clips keep flowing beside v2 chunks; an unknown version byte is still "malformed"', async () => {
    const f = await h.family();
    const mum = await h.connect(f.mum);
    const box = inbox(mum);
    const toy = await h.connect(f.toy);
    const v1 = makeClip(f.toy, [f.mum], { sequence: 1 });
    await toy.publishClip(v1);
    const clip = chunked(f.toy, [f.mum], 2);
    await toy.publishClip(clip.chunks[0]!);
    await box.wait(2);
    const bad = makeClip(f.toy, [f.mum], { sequence: 100 });
    bad[1] = 0x7f;
    toy.publishClip(bad).catch(() => {});
    await closed(toy.client);
    expect(h.audit.reasons('clip.refused').at(-1)).toBe('malformed');
  });
});

describe('configuring the versions', () => {
  let tmp = '';
  afterEach(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
    tmp = '';
  });

  it('`plushlink clip inspect` describes and verifies a v2 chunk through the registry', () => {
    const toy = generateIdentity('toy', seededRandom('inspect-toy'));
    const mum = generateIdentity('parent', seededRandom('inspect-mum'));
    const clip = chunked(toy, [mum], 7);
    expect(inspectBytes(clip.chunks[1]!, publicPart(toy))).toMatchObject({
      type: 'clip-chunk',
      version: 2,
      experimental: true,
      index: 1,
      sequence: 8,
      deliveryId: toHex(decodeChunk(clip.chunks[1]!).deliveryId),
      signature: 'valid',
    });
    expect(() => inspectBytes(clip.chunks[1]!, publicPart(mum))).toThrow(/clip is from/);
  });

  it('createGateway refuses a version this build does not know', async () => {
    await expect(startHarness({ protocolVersions: [1, 3] })).rejects.toThrow(/protocol version 3 is unknown/);
    await expect(startHarness({ protocolVersions: [] })).rejects.toThrow(RangeError);
  });

  it('`plushlink gateway --protocol-versions` refuses an unknown version in one line, exit code 2', async () => {
    tmp = mkdtempSync(join(tmpdir(), 'plk-gwv-'));
    const run = await new Promise<{ code: number; stderr: string }>((resolve) => {
      execFile(
        process.execPath,
        [BIN, 'gateway', '--data', join(tmp, 'data'), '--port', '0', '--protocol-versions', '1,7'],
        { timeout: 60_000 },
        (err, _stdout, stderr) =>
          resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stderr: String(stderr) }),
      );
    });
    expect(run.code, run.stderr).toBe(2);
    expect(run.stderr.split('\n')[0]).toMatch(
      /^plushlink: option '--protocol-versions <list>' argument '1,7' is invalid\. protocol version 7 is unknown \(known: 1, 2\)$/,
    );
  });
});
