// The toy's FirmwareUpdater on a real directory: installs a good release and reports it, refuses unsigned, foreign, forged, tampered, wrong-model and older releases, and keeps its anti-rollback counter across a restart [PLK-13.5].
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  FIRMWARE_STATE_FILE,
  FirmwareError,
  type FirmwareReport,
  FirmwareUpdater,
} from '../../device/firmware.ts';
import { toHex } from '../../shared/bytes.ts';
import { sha256 } from '../../shared/crypto.ts';
import { createFirmwareManifest, encodeFirmwareMessage } from '../../shared/firmware.ts';
import { generateIdentity, type PrivateIdentity, publicPart } from '../../shared/identity.ts';
import { seededRandom } from '../../shared/random.ts';
import { expectCodeAsync } from '../helpers/errors.ts';

const MODEL = 'plushbear-1';
const acme = generateIdentity('vendor', seededRandom('updater/acme'));
const rogue = generateIdentity('vendor', seededRandom('updater/rogue'));
const img = (n: number): Uint8Array => seededRandom(`updater/image/${n}`)(1000 + n);

function release(opts: {
  version: number;
  minVersion: number;
  vendor?: PrivateIdentity;
  model?: string;
  image?: Uint8Array;
}): Uint8Array {
  const image = opts.image ?? img(opts.version);
  const manifest = createFirmwareManifest({
    vendor: opts.vendor ?? acme,
    model: opts.model ?? MODEL,
    version: opts.version,
    minVersion: opts.minVersion,
    image,
    releasedAt: Date.UTC(2026, 0, 1) + opts.version,
  });
  return encodeFirmwareMessage(manifest, image);
}

let root: string;
let n = 0;
const clock = () => Date.UTC(2026, 1, 1);
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'plk-fw-updater-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function fresh(): Promise<{ dir: string; updater: FirmwareUpdater }> {
  const dir = join(root, `toy-${n++}`);
  return {
    dir,
    updater: await FirmwareUpdater.open({
      dir,
      model: MODEL,
      vendor: publicPart(acme),
      factoryVersion: 1,
      clock,
    }),
  };
}

function refusal(r: FirmwareReport): string {
  return r.outcome === 'refused' ? r.reason : r.outcome;
}

describe('FirmwareUpdater', () => {
  it('starts at the factory version with a 0600 state file and installs a signed release', async () => {
    const { dir, updater } = await fresh();
    expect(updater.state).toMatchObject({ version: 1, antiRollback: 0, sha256: null, image: null });
    expect((await stat(join(dir, FIRMWARE_STATE_FILE))).mode & 0o777).toBe(0o600);
    expect((await stat(dir)).mode & 0o777).toBe(0o700);

    const r = await updater.handle(release({ version: 2, minVersion: 1 }));
    expect(r).toMatchObject({
      outcome: 'installed',
      model: MODEL,
      version: 2,
      minVersion: 1,
      previousVersion: 1,
      antiRollback: 1,
      vendor: acme.id,
      sha256: toHex(sha256(img(2))),
      imageBytes: img(2).length,
      at: clock(),
    });
    if (r.outcome !== 'installed') throw new Error('not installed');
    expect(toHex(await readFile(r.file))).toBe(toHex(img(2)));
    expect((await stat(r.file)).mode & 0o777).toBe(0o600);
    const state = JSON.parse(await readFile(join(dir, FIRMWARE_STATE_FILE), 'utf8')) as Record<
      string,
      unknown
    >;
    expect(state).toMatchObject({ model: MODEL, version: 2, antiRollback: 1, sha256: toHex(sha256(img(2))) });
    expect((await stat(join(dir, FIRMWARE_STATE_FILE))).mode & 0o777).toBe(0o600);
    // The same release again (delivered on every connection) is current, not a refusal.
    expect(refusal(await updater.handle(release({ version: 2, minVersion: 1 })))).toBe('current');
  });

  it('refuses unsigned, foreign, forged, tampered, wrong-model and downgraded releases and keeps what it has', async () => {
    const { dir, updater } = await fresh();
    await updater.handle(release({ version: 3, minVersion: 1 }));
    const unsigned = release({ version: 4, minVersion: 1 });
    const manifestLength = unsigned.length - img(4).length;
    unsigned.fill(0, manifestLength - 64, manifestLength);
    const tampered = release({ version: 4, minVersion: 1 });
    tampered[tampered.length - 10]! ^= 0x01;
    const forged = release({ version: 4, minVersion: 1, vendor: { ...rogue, id: acme.id } });
    const cases: [string, Uint8Array][] = [
      ['unsigned', unsigned],
      ['wrong-vendor', release({ version: 4, minVersion: 1, vendor: rogue })],
      ['bad-signature', forged],
      ['hash-mismatch', tampered],
      ['wrong-model', release({ version: 4, minVersion: 1, model: 'plushcat-1' })],
      ['downgrade', release({ version: 2, minVersion: 1 })],
      ['downgrade', release({ version: 3, minVersion: 1, image: img(33) })],
      ['malformed', img(4)],
    ];
    for (const [reason, msg] of cases) {
      const r = await updater.handle(msg);
      expect(refusal(r), reason).toBe(reason);
      if (r.outcome === 'refused') expect(r.installedVersion).toBe(3);
    }
    expect(updater.state).toMatchObject({ version: 3, antiRollback: 1, sha256: toHex(sha256(img(3))) });
    expect((await readdir(dir)).sort()).toEqual([FIRMWARE_STATE_FILE, 'image-v0000000003.bin']);
  });

  it('after an upgrade, an older release replayed is refused, also by a new updater on the same state (restart)', async () => {
    const { dir, updater } = await fresh();
    const v2 = release({ version: 2, minVersion: 1 });
    const v3 = release({ version: 3, minVersion: 3 });
    expect(refusal(await updater.handle(v2))).toBe('installed');
    expect(refusal(await updater.handle(v3))).toBe('installed');
    expect(refusal(await updater.handle(v2))).toBe('below-security-version');

    const restarted = await FirmwareUpdater.open({
      dir,
      model: MODEL,
      vendor: publicPart(acme),
      factoryVersion: 1,
      clock,
    });
    expect(restarted.state).toMatchObject({ version: 3, antiRollback: 3 });
    const replay = await restarted.handle(v2);
    expect(replay).toMatchObject({
      outcome: 'refused',
      reason: 'below-security-version',
      version: 2,
      installedVersion: 3,
    });
    expect(refusal(await restarted.handle(v3))).toBe('current');
    // A newer version that lowers the minimum version is refused too.
    expect(refusal(await restarted.handle(release({ version: 4, minVersion: 2 })))).toBe(
      'below-security-version',
    );
    expect(refusal(await restarted.handle(release({ version: 4, minVersion: 3 })))).toBe('installed');
    // The previous image is removed once the new state names the new one.
    expect((await readdir(dir)).sort()).toEqual([FIRMWARE_STATE_FILE, 'image-v0000000004.bin']);
  });

  it('handles concurrent messages one at a time (two deliveries of one release install it once)', async () => {
    const { updater } = await fresh();
    const v2 = release({ version: 2, minVersion: 0 });
    const outcomes = await Promise.all([updater.handle(v2), updater.handle(v2)]);
    expect(outcomes.map(refusal)).toEqual(['installed', 'current']);
  });

  it('fails closed on a corrupt state file or the state of another model', async () => {
    const { dir } = await fresh();
    const open = (model = MODEL) => FirmwareUpdater.open({ dir, model, vendor: publicPart(acme) });
    await expectCodeAsync(open('plushcat-1'), 'FIRMWARE_STATE_MODEL', FirmwareError);
    for (const text of ['{', '[]', '{"plushlink":"plushlink-firmware-state","v":1}', 'x'.repeat(5000)]) {
      await writeFile(join(dir, FIRMWARE_STATE_FILE), text);
      await expectCodeAsync(open(), 'FIRMWARE_STATE_CORRUPT', FirmwareError);
    }
    const lowered = JSON.stringify({
      plushlink: 'plushlink-firmware-state',
      v: 1,
      model: MODEL,
      version: 3,
      antiRollback: -1,
      sha256: null,
      image: null,
      installedAt: null,
    });
    await writeFile(join(dir, FIRMWARE_STATE_FILE), lowered);
    await expectCodeAsync(open(), 'FIRMWARE_STATE_CORRUPT', FirmwareError);
  });

  it('refuses to start without a vendor identity or with a bad model name', async () => {
    const dir = join(root, 'bad');
    await expect(FirmwareUpdater.open({ dir, model: 'Bear', vendor: publicPart(acme) })).rejects.toThrow(
      TypeError,
    );
    const toy = generateIdentity('toy', seededRandom('updater/toy'));
    await expect(FirmwareUpdater.open({ dir, model: MODEL, vendor: publicPart(toy) })).rejects.toThrow(
      TypeError,
    );
  });
});
