// Toys without Wi-Fi in a fleet: paired with a parent's phone over the BLE link model (numeric comparison), clips relayed unchanged to the real gateway [PLK-4.5], in-process and from the command line.
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { estimateTransfer } from '../../device/ble/timing.ts';
import { type Connector, WifiConnector } from '../../device/transport/wifi.ts';
import { type EmbeddedGateway, startEmbeddedGateway } from '../../gateway/embedded.ts';
import type { EndpointId } from '../../shared/types.ts';
import { PHONE_LINK_PARAMS } from '../../sim/ble-relay.ts';
import { FleetRunner, fleetVerdict } from '../../sim/fleet-runner.ts';
import { registerRoster } from '../../sim/provision.ts';
import { generateRoster } from '../../sim/roster.ts';

const BIN = resolve(import.meta.dirname, '../../bin/plushlink.js');

let dir: string;
let eg: EmbeddedGateway;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'plk-fleet-ble-'));
  eg = await startEmbeddedGateway({ dataDir: join(dir, 'data'), host: '127.0.0.1', port: 0 });
});
afterAll(async () => {
  await eg?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('fleet --link ble', () => {
  it('pairs every toy with its phone, relays each clip byte for byte, and only the parents use Wi-Fi', async () => {
    const roster = generateRoster({ families: 2, toysPerFamily: 2, parentsPerFamily: 2, seed: 'ble-fleet' });
    await registerRoster(eg.store, eg.audit, roster);
    // The real Wi-Fi connector, wrapped to see who opens a connection to the gateway.
    const wifi = new WifiConnector({ url: eg.url });
    const onWifi = new Set<EndpointId>();
    const connector: Connector = {
      connect: (req) => {
        onWifi.add(req.identity.id);
        return wifi.connect(req);
      },
    };
    const runner = new FleetRunner({
      roster,
      gateway: eg.identity,
      connector,
      link: 'ble',
      durationMs: 2500,
      talkEveryMs: 800,
      clipSeconds: 1,
      speech: 'bundled',
      seed: 'ble-fleet',
      rampMs: 200,
      drainMs: 15_000,
    });
    const pairings: { toy: string; phone: string; digits: string; ok: boolean }[] = [];
    runner.on('pairing', (e) =>
      pairings.push({ toy: e.toy.name, phone: e.phoneOwner.name, digits: e.digits, ok: e.ok }),
    );
    const relays: { bytes: number; airtimeMs: number; modelMs: number }[] = [];
    runner.on('relayed', (e) => relays.push(e));
    const sealed = new Map<string, Uint8Array>();
    const opened = new Map<string, Uint8Array>();
    runner.on('endpoint', ({ member, endpoint }) => {
      if (member.role === 'toy') endpoint.on('sealed', (e) => sealed.set(e.clipId, e.ogg));
      else endpoint.on('received', (e) => opened.set(`${member.identity.id}:${e.clipId}`, e.ogg));
    });
    const stats = await runner.run();

    // Numeric comparison: each toy paired once with the phone of its family's first parent.
    expect(pairings.map((p) => `${p.toy}↔${p.phone}`).sort()).toEqual(
      ['bear-1↔mum-1', 'bunny-1↔mum-1', 'bear-2↔mum-2', 'bunny-2↔mum-2'].sort(),
    );
    for (const p of pairings) {
      expect(p.digits).toMatch(/^\d{6}$/);
      expect(p.ok).toBe(true);
    }
    // Toys never talk to the gateway themselves: only the parents' apps are on Wi-Fi.
    for (const f of roster.families) {
      for (const t of f.toys) expect(onWifi.has(t.identity.id)).toBe(false);
      for (const p of f.parents) expect(onWifi.has(p.identity.id)).toBe(true);
    }
    expect(stats.link).toBe('ble');
    expect(stats.clipsSent).toBeGreaterThanOrEqual(4);
    expect(sealed.size).toBe(stats.clipsSent); // parents only listen on a BLE fleet
    expect(stats.ble?.relayed).toBe(stats.clipsSent);
    expect(stats.ble?.paired).toBe(4);
    expect(fleetVerdict(stats).line).toMatch(/^ok: /);
    // Every toy clip reached both parents exactly as the toy sealed it.
    for (const [clipId, ogg] of sealed) {
      const family = roster.families.find((f) =>
        f.parents.some((p) => opened.has(`${p.identity.id}:${clipId}`)),
      );
      expect(family, `clip ${clipId} delivered`).toBeDefined();
      for (const p of family!.parents)
        expect(Buffer.from(opened.get(`${p.identity.id}:${clipId}`)!).equals(Buffer.from(ogg))).toBe(true);
    }
    // Simulated air time (virtual, from the link model): at least the model's lossless notification stream.
    for (const r of relays) {
      const lossless = estimateTransfer(r.bytes + 4, PHONE_LINK_PARAMS).losslessUs / 1000;
      expect(r.airtimeMs).toBeGreaterThanOrEqual(lossless);
      expect(r.modelMs).toBeCloseTo(lossless, 6); // no loss configured: expected = lossless
    }
    expect(stats.ble!.airtime.count).toBe(relays.length);
    expect(await eg.store.backlog()).toBe(0);
  }, 60_000);

  it('runs from the command line: the digits in the log, the air time in the summary, exit 0', async () => {
    const r = await new Promise<{ code: number | null; stdout: string; stderr: string }>((done) => {
      const child = spawn(
        process.execPath,
        [
          BIN,
          'fleet',
          '--link',
          'ble',
          '--gateway',
          eg.url,
          '--gateway-data',
          join(dir, 'data'),
          '--families',
          '2',
          '--duration',
          '2s',
          '--talk-every',
          '700ms',
          '--seed',
          'ble-cli',
          '--dir',
          join(dir, 'fleet'),
          '--no-progress',
        ],
        { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (b: Buffer) => {
        stdout += b.toString();
      });
      child.stderr.on('data', (b: Buffer) => {
        stderr += b.toString();
      });
      child.on('close', (code) => done({ code, stdout, stderr }));
    });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stderr).toMatch(
      /^bear-1 ↔ mum-1's phone: confirm \d{6} — same digits on both, confirmed: paired$/m,
    );
    expect(r.stderr).toMatch(/^bear-2 ↔ mum-2's phone: confirm \d{6}/m);
    expect(r.stdout).toMatch(
      /^BLE: 2 toys paired with their family's phone \(numeric comparison\); \d+ clips relayed unchanged; airtime per clip p50 [\d.]+ ms/m,
    );
    expect(r.stdout.trimEnd().split('\n').at(-1)).toMatch(/^ok: (\d+)\/\1 delivered/);
    // Parents only listen on a BLE fleet: asking them to talk is a usage error.
    const bad = await new Promise<number | null>((done) => {
      const child = spawn(
        process.execPath,
        [
          BIN,
          'fleet',
          '--link',
          'ble',
          '--parent-talk-every',
          '5s',
          '--gateway',
          eg.url,
          '--gateway-data',
          join(dir, 'data'),
          '--dir',
          join(dir, 'x'),
        ],
        { cwd: dir, stdio: 'ignore' },
      );
      child.on('close', done);
    });
    expect(bad).toBe(2);
  }, 60_000);
});
