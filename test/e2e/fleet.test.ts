// End to end: a small fleet against a real gateway (127.0.0.1:0, SQLite in a temp dir, MQTT.js, native Opus), with forced disconnects, re-runs of one seed and resumed outboxes.
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeOggToPcm } from '../../device/codec/clip.ts';
import { Toy } from '../../device/toy.ts';
import { WifiConnector } from '../../device/transport/wifi.ts';
import { type EmbeddedGateway, startEmbeddedGateway } from '../../gateway/embedded.ts';
import type { EndpointId } from '../../shared/types.ts';
import { FleetRunner } from '../../sim/fleet-runner.ts';
import { registerRoster } from '../../sim/provision.ts';
import { familyPublics, generateRoster } from '../../sim/roster.ts';
import { readRosterFiles, writeRosterFiles } from '../../sim/roster-file.ts';

let dir: string;
let eg: EmbeddedGateway;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'plk-e2e-'));
  eg = await startEmbeddedGateway({ dataDir: join(dir, 'data') });
});
afterAll(async () => {
  await eg?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('fleet against the real gateway', () => {
  it('provisions in bulk, keys round-trip through the 0600 fleet key file, registration is idempotent', async () => {
    const roster = generateRoster({ families: 50, toysPerFamily: 2, parentsPerFamily: 2, seed: 'bulk' });
    await writeRosterFiles(join(dir, 'bulk'), roster);
    const back = await readRosterFiles(join(dir, 'bulk'));
    expect(back?.families.map((f) => f.toys[1]?.identity.id)).toEqual(
      roster.families.map((f) => f.toys[1]?.identity.id),
    );
    const first = await registerRoster(eg.store, eg.audit, roster);
    expect(first).toMatchObject({ endpoints: 200, families: 50, skipped: 0 });
    const again = await registerRoster(eg.store, eg.audit, roster);
    expect(again).toMatchObject({ endpoints: 0, families: 0, skipped: 200 });
    expect((await eg.store.familyMembers(roster.families[7]!.id)).length).toBe(4);
  });

  it('every clip arrives bit-identical and nothing is lost across forced disconnects', async () => {
    const roster = generateRoster({ families: 2, toysPerFamily: 1, parentsPerFamily: 2, seed: 'e2e' });
    await registerRoster(eg.store, eg.audit, roster);
    const outDir = join(dir, 'out');
    const runner = new FleetRunner({
      roster,
      gateway: eg.identity,
      connector: new WifiConnector({ url: eg.url }),
      durationMs: 5000,
      talkEveryMs: 700,
      parentTalkEveryMs: 1500,
      clipSeconds: 1,
      seed: 'e2e-run',
      rampMs: 200,
      drainMs: 15_000,
      outDir,
    });
    const sent = new Map<string, { ogg: Uint8Array; recipients: readonly EndpointId[] }>();
    const got = new Map<string, { ogg: Uint8Array; times: number }>();
    let toyDrops = 0;
    let resends = 0;
    let parentDrops = 0;
    const [bear1] = roster.families[0]!.toys;
    const mum2 = roster.families[1]!.parents[0]!;
    runner.on('endpoint', ({ member, endpoint }) => {
      endpoint.on('sealed', (e) => sent.set(e.clipId, { ogg: e.ogg, recipients: e.recipients }));
      endpoint.on('received', (e) => {
        const key = `${member.identity.id}:${e.clipId}`;
        const prev = got.get(key);
        if (prev) prev.times++;
        else got.set(key, { ogg: e.ogg, times: 1 });
        expect(e.duplicate).toBe(prev !== undefined);
      });
      endpoint.on('published', (e) => {
        if (e.attempt > 1) resends++;
      });
      if (member === bear1) {
        // Kill the toy's socket right after a clip went out: its PUBACK is lost, the outbox resends,
        // the gateway acknowledges the retransmission without forwarding it twice.
        let n = 0;
        endpoint.on('published', (e) => {
          if (e.attempt === 1 && ++n % 2 === 0 && toyDrops < 2) {
            toyDrops++;
            setImmediate(() => endpoint.dropConnection());
          }
        });
      }
      if (member === mum2) {
        // Kill a parent before its receipt leaves: the gateway delivers the clip again on reconnect.
        endpoint.on('received', (e) => {
          if (!e.duplicate && parentDrops < 2) {
            parentDrops++;
            endpoint.dropConnection();
          }
        });
      }
    });
    const givenUp = new Set<string>();
    runner.on('endpoint', ({ endpoint }) => endpoint.on('abandoned', (e) => givenUp.add(e.clipId)));
    const stats = await runner.run();

    expect(toyDrops).toBe(2);
    expect(parentDrops).toBe(2);
    expect(stats.clipsSent).toBeGreaterThanOrEqual(10);
    // Resends after a lost PUBACK are acknowledged again by the gateway [PLK-8.2]: nothing is given up.
    expect(givenUp.size).toBe(0);
    expect(stats.clipsAbandoned).toBe(0);
    // A clip whose PUBACK was lost counts as acknowledged once its receipt proves it stored.
    expect(stats.clipsAcked, JSON.stringify(stats.errorKinds)).toBe(stats.clipsSent);
    expect(resends).toBeGreaterThanOrEqual(1);
    expect(stats.delivered).toBe(stats.deliveriesExpected);
    expect(stats.duplicates).toBeGreaterThanOrEqual(1);
    const unexpected = Object.keys(stats.errorKinds).filter((k) => !k.startsWith('connect:'));
    expect(unexpected).toEqual([]);
    // Every clip reached every recipient, bit for bit, and decodes to the same audio.
    for (const [clipId, s] of sent) {
      for (const r of s.recipients) {
        const g = got.get(`${r}:${clipId}`);
        expect(g, `clip ${clipId} for ${r}`).toBeDefined();
        expect(Buffer.from(g!.ogg).equals(Buffer.from(s.ogg))).toBe(true);
      }
      const [first] = s.recipients;
      const a = decodeOggToPcm(got.get(`${first}:${clipId}`)!.ogg).samples;
      const b = decodeOggToPcm(s.ogg).samples;
      expect(a.length).toBe(16000);
      expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer))).toBe(true);
    }
    // Duplicates were discarded: one playable file per unique delivery.
    const files = (await readdir(outDir)).filter((f) => f.endsWith('.opus'));
    expect(files.length).toBe(stats.delivered);
    const sample = await readFile(join(outDir, files[0]!));
    expect(sample.subarray(0, 4).toString('latin1')).toBe('OggS');
    // The gateway holds nothing once everything is receipted [PLK-12.5].
    expect(await eg.store.backlog()).toBe(0);
  });

  it('re-runs of one seed deliver every time; an outbox a stopped run left behind is resent', async () => {
    const roster = generateRoster({ families: 1, toysPerFamily: 1, parentsPerFamily: 2, seed: 'rerun' });
    await registerRoster(eg.store, eg.audit, roster);
    const outboxDir = join(dir, 'rerun-outbox');
    const [bear] = roster.families[0]!.toys;
    await mkdir(outboxDir, { recursive: true });
    // A run that stopped before its clip was sent: the toy recorded offline, the clip is in its outbox file.
    const offline = new Toy({
      identity: bear!.identity,
      gateway: eg.identity,
      family: familyPublics(roster.families[0]!),
      connector: new WifiConnector({ url: 'mqtt://127.0.0.1:1' }),
      outbox: { path: join(outboxDir, `${bear!.identity.id}.outbox`), sequenceFloor: () => Date.now() },
    });
    const left = await offline.record(1, { kind: 'synth', seed: 5 });
    await offline.stop();
    const run = () =>
      new FleetRunner({
        roster,
        gateway: eg.identity,
        connector: new WifiConnector({ url: eg.url }),
        durationMs: 1500,
        talkEveryMs: 600,
        parentTalkEveryMs: 0,
        clipSeconds: 1,
        seed: 'same-seed',
        rampMs: 100,
        drainMs: 15_000,
        outboxDir,
      });
    const first = run();
    const clipIds: string[][] = [[], []];
    first.on('endpoint', ({ endpoint }) => endpoint.on('sealed', (e) => clipIds[0]!.push(e.clipId)));
    const a = await first.run();
    expect(a.clipsResumed).toBe(1);
    expect(a.backlogDelivered).toBe(2); // the resent clip reached both parents
    expect(a.clipsSent).toBeGreaterThanOrEqual(1);
    expect(a.delivered).toBe(a.deliveriesExpected);
    const second = run();
    second.on('endpoint', ({ endpoint }) => endpoint.on('sealed', (e) => clipIds[1]!.push(e.clipId)));
    const b = await second.run();
    // Same seed, new clip ids: nothing is refused as a duplicate, and everything arrives again.
    expect(clipIds[1]!.filter((id) => clipIds[0]!.includes(id) || id === left.clipId)).toEqual([]);
    expect(b.clipsAbandoned).toBe(0);
    expect(b.clipsAcked).toBe(b.clipsSent);
    expect(b.delivered).toBe(b.deliveriesExpected);
    expect(b.clipsResumed).toBe(0);
    expect(b.errors).toBe(0);
  });
});
