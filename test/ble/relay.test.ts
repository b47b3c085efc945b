// The phone relays the toy's sealed clip envelope unchanged and can neither read nor forge it (shared/envelope.ts).
import { describe, expect, it } from 'vitest';
import { PhoneRelay } from '../../device/ble/phone.ts';
import { openClip, sealClip } from '../../shared/envelope.ts';
import { isPlushlinkError } from '../../shared/errors.ts';
import { generateIdentity, type PrivateIdentity } from '../../shared/identity.ts';
import { seededRandom } from '../../shared/random.ts';
import { bytes, world } from './helpers.ts';

const toyId = generateIdentity('toy', seededRandom('ble-relay/toy'));
const mum = generateIdentity('parent', seededRandom('ble-relay/mum'));
const dad = generateIdentity('parent', seededRandom('ble-relay/dad'));
// the relaying phone's own identity: not a recipient of the toy's clips
const relayPhoneId = generateIdentity('parent', seededRandom('ble-relay/phone'));

// synthetic stand-in for Ogg Opus bytes: the envelope treats the body as opaque
const ogg = bytes(3000, 17);
const envelope = sealClip({
  sender: toyId,
  recipients: [mum, dad],
  sequence: 7,
  createdAt: 1_700_000_000_000,
  durationMs: 1000,
  ogg,
  random: seededRandom('ble-relay/seal'),
});

async function relayOnce(
  seed: number,
): Promise<{ uplinked: Uint8Array[]; relay: PhoneRelay; w: ReturnType<typeof world> }> {
  const w = world(seed, { clip: envelope });
  w.toy.pressPairingButton();
  const link = w.phone.connect(w.toy);
  expect((await link.pair()).ok).toBe(true);
  await link.exchangeMtu(185);
  await link.enableClipNotifications();
  const uplinked: Uint8Array[] = [];
  const relay = new PhoneRelay((e) => {
    uplinked.push(e);
  });
  await relay.recordAndRelay(link);
  return { uplinked, relay, w };
}

/** Every Uint8Array reachable from `root` (to show the phone holds no key of the envelope). */
function byteArraysIn(root: unknown): Uint8Array[] {
  const seen = new Set<unknown>();
  const out: Uint8Array[] = [];
  const walk = (v: unknown, depth: number): void => {
    if (v === null || typeof v !== 'object' || seen.has(v) || depth > 12) return;
    seen.add(v);
    if (v instanceof Uint8Array) {
      out.push(v);
      return;
    }
    for (const k of Object.getOwnPropertyNames(v)) walk((v as Record<string, unknown>)[k], depth + 1);
  };
  walk(root, 0);
  return out;
}

function secretsOf(id: PrivateIdentity): Uint8Array[] {
  return [id.signSeed, id.boxSecret];
}

describe('phone relay of a sealed clip', () => {
  it('hands the uplink the exact bytes the toy sealed, which the parents open', async () => {
    const { uplinked } = await relayOnce(51);
    expect(uplinked).toHaveLength(1);
    expect(Buffer.from(uplinked[0]!).equals(Buffer.from(envelope))).toBe(true);
    for (const parent of [mum, dad]) {
      const opened = openClip(uplinked[0]!, { recipient: parent, sender: toyId });
      expect(Buffer.from(opened.ogg).equals(Buffer.from(ogg))).toBe(true);
    }
  });

  it('cannot read it: the phone is not a recipient, and holds no key of the toy or the parents', async () => {
    const { uplinked, relay, w } = await relayOnce(52);
    let err: unknown;
    try {
      openClip(uplinked[0]!, { recipient: relayPhoneId, sender: toyId });
    } catch (e) {
      err = e;
    }
    expect(isPlushlinkError(err, 'PLK_E_NOT_RECIPIENT')).toBe(true);
    const held = byteArraysIn([relay, w.phone]).map((b) => Buffer.from(b).toString('hex'));
    for (const secret of [...secretsOf(toyId), ...secretsOf(mum), ...secretsOf(dad)]) {
      expect(held).not.toContain(Buffer.from(secret).toString('hex'));
    }
  });

  it('cannot forge it: flipping a byte anywhere makes the parent reject the envelope', async () => {
    const { uplinked } = await relayOnce(53);
    const relayed = uplinked[0]!;
    // every byte of the header, recipients and body start, a stride through the body, the whole signature
    const positions = [...Array(relayed.length).keys()].filter(
      (i) => i < 512 || i % 29 === 0 || i >= relayed.length - 64,
    );
    let rejected = 0;
    for (const i of positions) {
      const tampered = Uint8Array.from(relayed);
      tampered[i]! ^= 0x01 << (i % 8);
      try {
        openClip(tampered, { recipient: mum, sender: toyId });
      } catch (e) {
        if (isPlushlinkError(e)) rejected++;
      }
    }
    expect(rejected).toBe(positions.length);
  });

  it('the other way round: a parent clip uploaded through the phone reaches the firmware byte-identical', async () => {
    const fromMum = sealClip({
      sender: mum,
      recipients: [toyId],
      sequence: 1,
      createdAt: 1_700_000_000_000,
      durationMs: 500,
      ogg: bytes(1500, 18),
      random: seededRandom('ble-relay/mum-seal'),
    });
    const w = world(54);
    w.toy.pressPairingButton();
    const link = w.phone.connect(w.toy);
    expect((await link.pair()).ok).toBe(true);
    await link.exchangeMtu(247);
    await link.sendClipAndPlay(fromMum);
    expect(w.firmware.calls).toEqual(['playClip']);
    expect(Buffer.from(w.firmware.played[0]!).equals(Buffer.from(fromMum))).toBe(true);
    expect(openClip(w.firmware.played[0]!, { recipient: toyId, sender: mum }).ogg).toEqual(bytes(1500, 18));
  });
});
