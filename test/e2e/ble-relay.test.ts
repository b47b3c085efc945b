// A toy without Wi-Fi: clip recorded over paired BLE, relayed unchanged by a phone to the real gateway, opened by the parents [PLK-4.5].
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { synthesizeSpeech } from '../../device/audio/synth.ts';
import { PhoneRelay } from '../../device/ble/phone.ts';
import { decodeOggToPcm, encodePcmToOgg } from '../../device/codec/clip.ts';
import { toHex } from '../../shared/bytes.ts';
import { openClip, sealClip } from '../../shared/envelope.ts';
import { generateIdentity } from '../../shared/identity.ts';
import { seededRandom } from '../../shared/random.ts';
import { world } from '../ble/helpers.ts';
import { closed, type Harness, inbox, startHarness } from '../gateway/helpers/harness.ts';

describe('BLE relay through a phone to the gateway', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await h.close();
  });

  it('delivers the toy clip to the parents byte for byte; a tampered or foreign relay is refused', async () => {
    const f = await h.family();
    // The family's phone relays for the toy; it is a family member but not a recipient.
    const phoneId = generateIdentity('parent', seededRandom('relay-phone'));
    await h.register(phoneId);
    await h.store.addFamilyMember(f.id, phoneId.id, 1);

    // The toy records 1 s of synthetic speech, encodes it and seals it for both parents.
    const pcm = synthesizeSpeech({ seed: 7, durationMs: 1000 });
    const { ogg } = encodePcmToOgg(pcm, { serial: 1 });
    const envelope = sealClip({
      sender: f.toy,
      recipients: [f.mum, f.dad],
      sequence: 1,
      createdAt: Date.now(),
      durationMs: 1000,
      ogg,
    });

    // Over the air: pair (numeric comparison), download the sealed clip, hand it to the uplink.
    const w = world(11, { clip: envelope });
    w.toy.pressPairingButton();
    const link = w.phone.connect(w.toy);
    expect((await link.pair()).ok).toBe(true);
    await link.exchangeMtu(247);
    await link.enableClipNotifications();
    const mum = await h.connect(f.mum);
    const mumBox = inbox(mum);
    const phone = await h.connect(phoneId);
    const relayed = await new PhoneRelay((e) => phone.publishRelay(e)).recordAndRelay(link);
    expect(toHex(relayed)).toBe(toHex(envelope));

    await mumBox.wait(1);
    expect(toHex(mumBox.clips[0]!)).toBe(toHex(envelope));
    const opened = openClip(mumBox.clips[0]!, { recipient: f.mum, sender: f.toy });
    expect(toHex(opened.ogg)).toBe(toHex(ogg));
    expect(decodeOggToPcm(opened.ogg).samples.length).toBe(pcm.length);
    expect(await h.store.pendingFor(f.dad.id, 10)).toHaveLength(1);

    // The phone flips one byte of the next clip: the toy's signature no longer holds.
    const next = sealClip({
      sender: f.toy,
      recipients: [f.mum],
      sequence: 2,
      createdAt: Date.now(),
      durationMs: 1000,
      ogg,
    });
    next[200] = next[200]! ^ 1;
    phone.publishRelay(next).catch(() => {});
    await closed(phone.client);
    expect(h.audit.reasons('clip.refused').at(-1)).toBe('bad-signature');

    // A registered endpoint of another family cannot relay this family's toy.
    const g = await h.family();
    const stranger = await h.connect(g.mum);
    const third = sealClip({
      sender: f.toy,
      recipients: [f.mum],
      sequence: 3,
      createdAt: Date.now(),
      durationMs: 1000,
      ogg,
    });
    stranger.publishRelay(third).catch(() => {});
    await closed(stranger.client);
    expect(h.audit.reasons('clip.refused').at(-1)).toBe('relay-not-family');
    await mum.close();
  });
});
