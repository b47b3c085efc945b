// Pairing end to end over the modelled air: numeric comparison, bonding, encryption, reconnection, MITM detection.
import { describe, expect, it } from 'vitest';
import {
  type AirFrame,
  type BleAddress,
  type BlePeripheral,
  bleAddress,
  type Connection,
} from '../../device/ble/air.ts';
import { ATT_ERR, AttError } from '../../device/ble/att.ts';
import { CID, LinkEnd } from '../../device/ble/link.ts';
import { PAIRING_FAILED, SMP, SmpResponder } from '../../device/ble/pairing.ts';
import { p256FromPrivate } from '../../device/ble/pairing-crypto.ts';
import { BlePhone, type PhoneLink } from '../../device/ble/phone.ts';
import { SeededRandom } from '../../device/ble/random.ts';
import { expectCodeAsync } from '../helpers/errors.ts';
import { bytes, scriptedUi, world } from './helpers.ts';

describe('LE Secure Connections numeric comparison between phone and toy', () => {
  it('both sides show the same six digits, the human confirms, the link is encrypted and authenticated', async () => {
    const w = world(1);
    w.toy.pressPairingButton();
    const link = w.phone.connect(w.toy);
    const outcome = await link.pair();
    expect(outcome.ok).toBe(true);
    expect(w.human.shown.phone).toMatch(/^\d{6}$/);
    expect(w.human.shown.toy).toBe(w.human.shown.phone);
    expect(link.security).toEqual({ encrypted: true, authenticated: true });
    expect(w.toy.bondedPeers).toHaveLength(1);
    expect(w.toy.pairingWindowOpen).toBe(false); // single use
    expect(await link.readStatus()).toEqual({ recording: false, batteryPercent: 87, clipsWaiting: 2 });
    expect(w.air.errors).toEqual([]);
  });

  it('the whole exchange is deterministic from the seed (same digits, same virtual time)', async () => {
    const run = async () => {
      const w = world(5);
      w.toy.pressPairingButton();
      await w.phone.connect(w.toy).pair();
      return { digits: w.human.shown.phone, t: w.air.nowUs };
    };
    expect(await run()).toEqual(await run());
  });

  it('a user who says "no" on either side aborts pairing with Numeric Comparison Failed', async () => {
    const w = world(2, { toyUi: { confirmNumericComparison: () => false } });
    w.toy.pressPairingButton();
    const link = w.phone.connect(w.toy);
    const outcome = await link.pair();
    expect(outcome.ok).toBe(false);
    expect(w.toy.bondedPeers).toHaveLength(0);
    expect(link.security.encrypted).toBe(false);
  });

  it('a bonded phone reconnects and encrypts without pairing again; the window need not be open', async () => {
    const w = world(3);
    w.toy.pressPairingButton();
    const first = w.phone.connect(w.toy);
    expect((await first.pair()).ok).toBe(true);
    first.disconnect();
    const second = w.phone.connect(w.toy);
    await expect(second.readStatus()).rejects.toMatchObject({ code: ATT_ERR.INSUFFICIENT_ENCRYPTION });
    await second.encrypt();
    expect(second.security).toEqual({ encrypted: true, authenticated: true });
    expect((await second.readStatus()).batteryPercent).toBe(87);
  });

  it('a forgotten phone can no longer encrypt (LL_REJECT_EXT_IND, PIN or Key Missing)', async () => {
    const w = world(4);
    w.toy.pressPairingButton();
    const first = w.phone.connect(w.toy);
    await first.pair();
    first.disconnect();
    w.toy.forget(w.phone.address);
    const again = w.phone.connect(w.toy);
    await expect(again.encrypt()).rejects.toThrow(/rejected/);
    // The toy holds no key for this phone any more: Insufficient Authentication, not Insufficient Encryption.
    await expectCodeAsync(again.readStatus(), ATT_ERR.INSUFFICIENT_AUTHENTICATION, AttError);
  });

  it('over an encrypted link the sniffer sees only ciphertext', async () => {
    const clip = bytes(600, 9);
    const w = world(6, { clip });
    const seen: AirFrame[] = [];
    w.air.sniff((f) => seen.push(f.frame));
    w.toy.pressPairingButton();
    const link = w.phone.connect(w.toy);
    await link.pair();
    await link.exchangeMtu(247);
    await link.enableClipNotifications();
    await link.startRecording();
    const got = await link.stopRecordingAndDownload();
    expect(got).toEqual(clip);
    const needle = Buffer.from(clip.subarray(100, 116));
    const leaked = seen.some((f) => Buffer.from(f.bytes).includes(needle));
    expect(leaked).toBe(false);
    expect(seen.filter((f) => f.encrypted).length).toBeGreaterThan(3);
  });
});

/**
 * Naive man in the middle: relays everything between phone and toy but substitutes its own public
 * key in each direction. The toy's commitment Cb = f4(PKbx, PKax, Nb, 0) was computed over keys the
 * phone never saw, so the phone's check fails before any digits are shown (Confirm Value Failed).
 */
class KeySwapRelay implements BlePeripheral {
  readonly address = bleAddress('c0:ff:ee:00:00:01'); // impersonates the toy
  private readonly keyTowardPhone = p256FromPrivate(bytes(32, 101));
  private readonly keyTowardToy = p256FromPrivate(bytes(32, 102));

  constructor(private readonly toyConn: Connection) {}

  acceptConnection(phoneConn: Connection): void {
    phoneConn.attach('peripheral', (f) => this.forward(f, this.toyConn, 'central', this.keyTowardToy));
    this.toyConn.attach('central', (f) => this.forward(f, phoneConn, 'peripheral', this.keyTowardPhone));
  }

  private forward(
    f: AirFrame,
    out: Connection,
    as: 'central' | 'peripheral',
    key: { x: Uint8Array; y: Uint8Array },
  ) {
    const b = f.bytes;
    // L2CAP header (length, CID 0x0006 = SMP), then the SMP code
    if (f.llid === 'data' && b.length === 4 + 65 && b[2] === 0x06 && b[4] === SMP.PAIRING_PUBLIC_KEY) {
      const swapped = Uint8Array.from(b);
      swapped.set(Uint8Array.from(key.x).reverse(), 5);
      swapped.set(Uint8Array.from(key.y).reverse(), 37);
      out.send(as, { ...f, bytes: swapped });
      return;
    }
    out.send(as, f);
  }
}

/**
 * Full man in the middle: two complete pairings, as the toy toward the phone and as the phone
 * (spoofing its address) toward the toy, each with its own keys and nonces and a UI that always
 * says yes. Each honest side computes its six digits over a different key pair.
 */
class FullMitm implements BlePeripheral {
  readonly address = bleAddress('c0:ff:ee:00:00:01');
  towardToy: PhoneLink | undefined;
  phoneSide: SmpResponder | undefined;

  constructor(
    private readonly w: ReturnType<typeof world>,
    private readonly spoofedPhone: BleAddress,
  ) {}

  acceptConnection(conn: Connection): void {
    const mitmPhone = new BlePhone({
      address: this.spoofedPhone,
      air: this.w.air,
      random: new SeededRandom(77).source,
      pairingUi: scriptedUi(true),
    });
    const link: LinkEnd = new LinkEnd({
      connection: conn,
      role: 'peripheral',
      random: new SeededRandom(78).source,
      onL2cap: async (cid, payload) => {
        if (cid !== CID.SMP) return;
        if (!this.phoneSide) {
          this.phoneSide = new SmpResponder({
            random: new SeededRandom(79).source,
            ui: scriptedUi(true),
            localAddress: this.address,
            peerAddress: conn.centralAddress,
            send: (p) => link.sendL2cap(CID.SMP, p),
          });
          this.towardToy = mitmPhone.connect(this.w.toy);
          void this.towardToy.pair();
        }
        await this.phoneSide.handle(payload);
      },
    });
  }
}

describe('a man in the middle', () => {
  it('substituting public keys is caught by the commitment check (Confirm Value Failed)', async () => {
    const w = world(10);
    w.toy.pressPairingButton();
    const relay = new KeySwapRelay(w.air.connect(bleAddress('4a:11:ce:00:00:02'), w.toy));
    const link = w.phone.connect(relay);
    const outcome = await link.pair();
    expect(outcome).toMatchObject({ ok: false, reason: PAIRING_FAILED.CONFIRM_VALUE_FAILED });
    expect(w.human.shown.phone).toBeUndefined();
    expect(w.toy.bondedPeers).toHaveLength(0);
  });

  it('running two full pairings yields different six digits; the human rejects; nothing is bonded', async () => {
    const w = world(11);
    w.toy.pressPairingButton();
    const mitm = new FullMitm(w, w.phone.address);
    const link = w.phone.connect(mitm);
    const outcome = await link.pair();
    await w.air.settle();
    expect(w.human.shown.phone).toMatch(/^\d{6}$/);
    expect(w.human.shown.toy).toMatch(/^\d{6}$/);
    expect(w.human.shown.phone).not.toBe(w.human.shown.toy);
    expect(outcome).toMatchObject({ ok: false, reason: PAIRING_FAILED.NUMERIC_COMPARISON_FAILED });
    expect(w.toy.bondedPeers).toHaveLength(0);
    expect(w.toy.stats.lastRefusal).toBe(PAIRING_FAILED.NUMERIC_COMPARISON_FAILED);
    // the MITM's link to the toy never gets encrypted, so the toy's service stays closed to it
    await expect(mitm.towardToy!.startRecording()).rejects.toMatchObject({
      code: ATT_ERR.INSUFFICIENT_AUTHENTICATION,
    });
    expect(w.firmware.calls).toEqual([]);
  });
});
