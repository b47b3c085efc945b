// Firmware end to end: vendor keys, signing, trust and publish with the real CLI, a real embedded gateway distributing releases, and a real Toy over WifiConnector installing them (and refusing the rest) [PLK-13].
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FirmwareReport } from '../../device/firmware.ts';
import { FirmwareUpdater } from '../../device/firmware.ts';
import { Toy } from '../../device/toy.ts';
import { WifiConnector } from '../../device/transport/wifi.ts';
import { registerFamilies } from '../../gateway/admin.ts';
import {
  type EmbeddedGateway,
  LOOPBACK_FLEET_RATE_LIMITS,
  startEmbeddedGateway,
} from '../../gateway/embedded.ts';
import { firmwarePaths, releaseFileName } from '../../gateway/firmware.ts';
import { readIdentity, readPrivateKey } from '../../platform/keyfiles.ts';
import { toHex } from '../../shared/bytes.ts';
import { createFirmwareManifest, encodeFirmwareMessage } from '../../shared/firmware.ts';
import { generateIdentity, type PublicIdentity, publicPart } from '../../shared/identity.ts';
import { seededRandom } from '../../shared/random.ts';
import { clipTopic, inboxTopic } from '../../shared/topics.ts';

const BIN = fileURLToPath(new URL('../../bin/plushlink.js', import.meta.url));
const MODEL = 'plushbear-1';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

let dir = '';
let data = '';
let gw: EmbeddedGateway;
const ids = seededRandom('firmware-e2e/identities');
const toyId = generateIdentity('toy', ids);
const mumId = generateIdentity('parent', ids);
const family = [toyId, mumId].map(publicPart);

function plushlink(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd: dir, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

function ok(r: Run): Run {
  expect(r.code, r.stderr).toBe(0);
  expect(r.stderr).toBe('');
  return r;
}

/** Waits (real event-loop turns, no assertion on time) until `cond` holds. */
async function until(cond: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > 20_000) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function firmwareAudit(): { kind: string; detail: Record<string, unknown> }[] {
  const rows = gw.audit.db
    .prepare("SELECT kind, detail FROM audit WHERE kind LIKE 'firmware.%' ORDER BY seq")
    .all() as { kind: string; detail: string }[];
  return rows.map((r) => ({ kind: r.kind, detail: JSON.parse(r.detail) as Record<string, unknown> }));
}

/** A toy with a firmware updater on `fwDir`, and every firmware event it reports. */
async function startToy(
  fwDir: string,
  vendor: PublicIdentity,
): Promise<{ toy: Toy; reports: FirmwareReport[] }> {
  const firmware = await FirmwareUpdater.open({ dir: fwDir, model: MODEL, vendor, factoryVersion: 1 });
  const toy = new Toy({
    identity: toyId,
    gateway: gw.identity,
    family,
    connector: new WifiConnector({ url: gw.url }),
    firmware,
    seed: 'firmware-e2e',
  });
  const reports: FirmwareReport[] = [];
  toy.on('firmware', (r) => reports.push(r));
  await toy.start();
  return { toy, reports };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'plk-fw-e2e-'));
  data = join(dir, 'data');
  gw = await startEmbeddedGateway({ dataDir: data, firmwarePollMs: 100, limits: LOOPBACK_FLEET_RATE_LIMITS });
  await registerFamilies(gw.store, gw.audit, [{ members: family }]);
  await writeFile(join(dir, 'v2.img'), seededRandom('firmware-e2e/v2')(64 * 1024));
  await writeFile(join(dir, 'v3.img'), seededRandom('firmware-e2e/v3')(80 * 1024));
  await writeFile(join(dir, 'evil.img'), seededRandom('firmware-e2e/evil')(4096));
});

afterAll(async () => {
  await gw?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('firmware updates through a real gateway', () => {
  it('keygen, sign, trust, publish; the toy installs after its proof, gets newer releases live, refuses the rest, and keeps its counter across a restart', async () => {
    // The vendor's side: keys (0600) and signed manifests.
    const keygen = JSON.parse(
      ok(await plushlink('firmware', 'keygen', '--out', 'acme', '--json')).stdout,
    ) as {
      id: string;
      role: string;
    };
    expect(keygen.role).toBe('vendor');
    expect((await stat(join(dir, 'acme', 'endpoint.key'))).mode & 0o777).toBe(0o600);
    ok(await plushlink('firmware', 'keygen', '--out', 'rogue'));
    const sign = (key: string, version: number, min: number, image: string, out: string) =>
      plushlink(
        'firmware',
        'sign',
        '--key',
        key,
        '--model',
        MODEL,
        '--version',
        String(version),
        '--min-version',
        String(min),
        '--image',
        image,
        '--out',
        out,
      );
    ok(await sign('acme', 2, 1, 'v2.img', 'v2.manifest'));
    ok(await sign('acme', 3, 2, 'v3.img', 'v3.manifest'));
    ok(await sign('rogue', 9, 9, 'evil.img', 'evil.manifest'));

    // The operator's side: trust the vendor, publish v2 (files 0600, audited).
    expect(ok(await plushlink('firmware', 'trust', 'acme/identity.json', '--data', data)).stdout).toMatch(
      new RegExp(`^trusted: vendor ${keygen.id}\\n$`),
    );
    const published = JSON.parse(
      ok(
        await plushlink(
          'firmware',
          'publish',
          '--data',
          data,
          '--manifest',
          'v2.manifest',
          '--image',
          'v2.img',
          '--json',
        ),
      ).stdout,
    ) as { model: string; version: number; created: boolean; latest: boolean; file: string };
    expect(published).toMatchObject({ model: MODEL, version: 2, created: true, latest: true });
    const paths = firmwarePaths(data);
    expect((await stat(published.file)).mode & 0o777).toBe(0o600);
    expect((await stat(join(paths.vendors, `${keygen.id}.json`))).mode & 0o777).toBe(0o600);

    // The toy, provisioned with the vendor's identity, connects: the proof first, then the release.
    const vendor = await readIdentity(join(dir, 'acme', 'identity.json'));
    const fwDir = join(dir, 'toy-firmware');
    const { toy, reports } = await startToy(fwDir, vendor);
    await until(() => reports.some((r) => r.outcome === 'installed' && r.version === 2), 'v2 installed');
    const v2 = reports.find((r) => r.outcome === 'installed')!;
    if (v2.outcome !== 'installed') throw new Error('unreachable');
    expect(v2).toMatchObject({
      previousVersion: 1,
      antiRollback: 1,
      vendor: vendor.id,
      imageBytes: 64 * 1024,
    });
    expect(toHex(await readFile(v2.file))).toBe(toHex(await readFile(join(dir, 'v2.img'))));

    // A newer release published while the toy is online reaches it at the gateway's next scan.
    ok(
      await plushlink(
        'firmware',
        'publish',
        '--data',
        data,
        '--manifest',
        'v3.manifest',
        '--image',
        'v3.img',
      ),
    );
    await until(() => reports.some((r) => r.outcome === 'installed' && r.version === 3), 'v3 installed');
    expect(reports.filter((r) => r.outcome === 'refused')).toEqual([]);

    // A release signed by an untrusted vendor: one line from publish, audited, nothing written.
    const evil = await plushlink(
      'firmware',
      'publish',
      '--data',
      data,
      '--manifest',
      'evil.manifest',
      '--image',
      'evil.img',
    );
    expect(evil.code).toBe(1);
    expect(evil.stderr).toMatch(/^plushlink: PLK_E_WRONG_VENDOR: [^\n]+\n$/);
    expect(existsSync(join(paths.releases, releaseFileName(MODEL, 9)))).toBe(false);
    // (The CLI's `published` and the gateway's `release_loaded` rows are written by two processes.)
    const kinds = firmwareAudit().map((a) => a.kind);
    expect([...kinds].sort()).toEqual([
      'firmware.publish_refused',
      'firmware.published',
      'firmware.published',
      'firmware.release_loaded',
      'firmware.release_loaded',
      'firmware.vendor_trusted',
    ]);
    expect(kinds.at(-1)).toBe('firmware.publish_refused');
    expect(firmwareAudit().at(-1)?.detail).toMatchObject({ reason: 'PLK_E_WRONG_VENDOR', version: 9 });

    // The same release put in the folder by hand is checked too: audited once, never distributed.
    const rogue = await readPrivateKey(join(dir, 'rogue'));
    const evilImage = await readFile(join(dir, 'evil.img'));
    const evilManifest = createFirmwareManifest({
      vendor: rogue,
      model: MODEL,
      version: 9,
      minVersion: 9,
      image: evilImage,
      releasedAt: Date.now(),
    });
    await writeFile(
      join(paths.releases, releaseFileName(MODEL, 9)),
      encodeFirmwareMessage(evilManifest, evilImage),
    );
    await until(
      () => firmwareAudit().some((a) => a.kind === 'firmware.release_refused'),
      'hand-placed release refused',
    );
    const before = reports.length;
    toy.dropConnection(); // reconnects: the proof, then the latest trusted release — still v3
    await until(() => reports.length > before, 'a release after reconnecting');
    expect(reports.slice(before)[0]).toMatchObject({ outcome: 'current', version: 3 });

    // The operator withdraws v3 (and the rogue file): v2 becomes the latest, and the toy refuses it.
    await rm(join(paths.releases, releaseFileName(MODEL, 3)));
    await rm(join(paths.releases, releaseFileName(MODEL, 9)));
    await until(() => reports.some((r) => r.outcome === 'refused'), 'v2 offered again');
    expect(reports.find((r) => r.outcome === 'refused')).toMatchObject({
      reason: 'below-security-version',
      version: 2,
      installedVersion: 3,
    });
    await toy.stop();

    // Restart: a new updater on the same state still refuses the replayed v2.
    const again = await startToy(fwDir, vendor);
    await until(() => again.reports.length > 0, 'release after restart');
    expect(again.reports[0]).toMatchObject({
      outcome: 'refused',
      reason: 'below-security-version',
      version: 2,
    });
    await again.toy.stop();
  });

  it('no endpoint can publish a firmware message: not on its clip topic, not into a toy inbox', async () => {
    const vendor = generateIdentity('vendor', seededRandom('firmware-e2e/anyone'));
    const image = seededRandom('firmware-e2e/anyone-image')(512);
    const message = encodeFirmwareMessage(
      createFirmwareManifest({ vendor, model: MODEL, version: 50, minVersion: 0, image, releasedAt: 1 }),
      image,
    );
    const connector = new WifiConnector({ url: gw.url });
    for (const topic of [clipTopic(mumId.id), inboxTopic(toyId.id)]) {
      const link = await connector.connect({ identity: mumId, gateway: gw.identity });
      await expect(link.publish(topic, message)).rejects.toThrow();
      expect(link.closed).toBe(true);
    }
  });
});
