// CloudPets attacks against the modelled toy: every one is refused and the firmware handler is never called.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type AirFrame, bleAddress } from '../../device/ble/air.ts';
import { ATT_ERR, ATT_OP, handlePdu } from '../../device/ble/att.ts';
import { COMMAND, HANDLES } from '../../device/ble/gatt.ts';
import { AUTH_REQ, IO_CAP, NUMERIC_COMPARISON_FEATURES, PAIRING_FAILED } from '../../device/ble/pairing.ts';
import { BlePhone, type PhoneLink } from '../../device/ble/phone.ts';
import { SeededRandom } from '../../device/ble/random.ts';
import { bytes, scriptedUi, type World, world } from './helpers.ts';

const ATTACKER = bleAddress('de:ad:be:ef:00:66');

function attacker(
  w: World,
  opts: { address?: typeof ATTACKER; justWorks?: boolean; seed?: number } = {},
): BlePhone {
  return new BlePhone({
    address: opts.address ?? ATTACKER,
    air: w.air,
    random: new SeededRandom(opts.seed ?? 666).source,
    pairingUi: scriptedUi(true), // the attacker confirms anything on its own screen
    ...(opts.justWorks
      ? {
          features: {
            ...NUMERIC_COMPARISON_FEATURES,
            ioCapability: IO_CAP.NO_INPUT_NO_OUTPUT,
            authReq: AUTH_REQ.BONDING | AUTH_REQ.SC,
          },
        }
      : {}),
  });
}

const refusedWith = (code: number) => ({ name: 'AttError', code });

/** (a) "start recording and download it" */
async function startRecordingAndDownload(link: PhoneLink): Promise<void> {
  await expect(link.enableClipNotifications()).rejects.toMatchObject(
    refusedWith(ATT_ERR.INSUFFICIENT_AUTHENTICATION),
  );
  await expect(link.startRecording()).rejects.toMatchObject(refusedWith(ATT_ERR.INSUFFICIENT_AUTHENTICATION));
  await expect(
    link.write(HANDLES.CONTROL_POINT, Uint8Array.of(COMMAND.STOP_RECORDING)),
  ).rejects.toMatchObject(refusedWith(ATT_ERR.INSUFFICIENT_AUTHENTICATION));
  await expect(link.readStatus()).rejects.toMatchObject(refusedWith(ATT_ERR.INSUFFICIENT_AUTHENTICATION));
}

/** (b) "upload audio and play it" */
async function uploadAndPlay(link: PhoneLink): Promise<void> {
  await expect(link.sendClipAndPlay(bytes(500, 4))).rejects.toMatchObject(
    refusedWith(ATT_ERR.INSUFFICIENT_AUTHENTICATION),
  );
  // skipping BEGIN: raw Write Commands to CLIP_IN then PLAY_CLIP
  for (let i = 0; i < 5; i++) link.writeCommand(HANDLES.CLIP_IN, bytes(20, i));
  await expect(link.write(HANDLES.CONTROL_POINT, Uint8Array.of(COMMAND.PLAY_CLIP))).rejects.toMatchObject(
    refusedWith(ATT_ERR.INSUFFICIENT_AUTHENTICATION),
  );
}

describe('CloudPets attacks from a central that never pairs', () => {
  it('(a) start recording and download it: refused with Insufficient Authentication, handler never called', async () => {
    const w = world(21);
    const link = attacker(w).connect(w.toy);
    await startRecordingAndDownload(link);
    expect(w.firmware.calls).toEqual([]);
    expect(w.toy.stats.gatt.refusedForSecurity).toBe(4);
  });

  it('(b) upload audio and play it: refused, Write Commands silently dropped, handler never called', async () => {
    const w = world(22);
    const link = attacker(w).connect(w.toy);
    await uploadAndPlay(link);
    await w.air.settle();
    expect(w.firmware.calls).toEqual([]);
    expect(w.firmware.played).toEqual([]);
    expect(w.toy.stats.gatt.droppedCommands).toBe(5);
  });

  it('even while the pairing window is open, not pairing means no access', async () => {
    const w = world(23);
    w.toy.pressPairingButton();
    const link = attacker(w).connect(w.toy);
    await startRecordingAndDownload(link);
    await uploadAndPlay(link);
    expect(w.firmware.calls).toEqual([]);
  });

  it('the open Device Name is readable (security is per characteristic), nothing else', async () => {
    const w = world(24);
    const link = attacker(w).connect(w.toy);
    expect(new TextDecoder().decode(await link.read(HANDLES.DEVICE_NAME))).toBe('PlushLink toy');
    expect(w.firmware.calls).toEqual([]);
  });

  it('arbitrary ATT PDUs from an unpaired peer never reach the firmware and never crash the toy', async () => {
    const w = world(25);
    const link = attacker(w).connect(w.toy);
    const ops = [
      ATT_OP.READ_REQ,
      ATT_OP.WRITE_REQ,
      ATT_OP.WRITE_CMD,
      ATT_OP.EXCHANGE_MTU_REQ,
      0x16,
      0x18,
      0xd2,
      0x00,
    ];
    const arbPdu = fc.oneof(
      fc.uint8Array({ minLength: 0, maxLength: 30 }),
      fc
        .tuple(
          fc.constantFrom(...ops),
          fc.constantFrom(...Object.values(HANDLES), 0, 0xffff),
          fc.uint8Array({ maxLength: 16 }),
        )
        .map(([op, h, v]) => handlePdu(op, h, v)),
    );
    const pdus = fc.sample(arbPdu, { numRuns: 300, seed: 42 });
    for (const pdu of pdus) link.sendRawAtt(pdu);
    await w.air.settle();
    expect(w.firmware.calls).toEqual([]);
    expect(w.air.errors).toEqual([]);
    expect(link.connection.connected).toBe(true);
  });
});

describe('pairing without numeric comparison, or outside the pairing window, is refused', () => {
  it('"Just Works" (NoInputNoOutput, no MITM) is refused with Authentication Requirements', async () => {
    const w = world(31);
    w.toy.pressPairingButton();
    const link = attacker(w, { justWorks: true }).connect(w.toy);
    const outcome = await link.pair();
    expect(outcome).toMatchObject({ ok: false, reason: PAIRING_FAILED.AUTHENTICATION_REQUIREMENTS });
    expect(w.human.shown.toy).toBeUndefined(); // the toy never even showed digits
    await startRecordingAndDownload(link);
    await uploadAndPlay(link);
    expect(w.firmware.calls).toEqual([]);
  });

  it('an attacker that confirms on its own screen still needs the toy-side confirmation', async () => {
    const w = world(32, { toyUi: scriptedUi(false) }); // nobody presses the paw
    w.toy.pressPairingButton();
    const link = attacker(w).connect(w.toy);
    const outcome = await link.pair();
    expect(outcome).toMatchObject({ ok: false, reason: PAIRING_FAILED.NUMERIC_COMPARISON_FAILED });
    await startRecordingAndDownload(link);
    expect(w.firmware.calls).toEqual([]);
  });

  it('with the pairing window closed, pairing is refused before any key is exchanged', async () => {
    const w = world(33);
    const link = attacker(w).connect(w.toy);
    const outcome = await link.pair();
    expect(outcome).toMatchObject({ ok: false, reason: PAIRING_FAILED.PAIRING_NOT_SUPPORTED });
    expect(w.toy.stats.pairingsRefused).toBe(1);
  });

  it('the window closes by itself after its N seconds', async () => {
    const w = world(34, { policy: { windowMs: 30_000 } });
    w.toy.pressPairingButton();
    await w.air.advance(30_001);
    expect(w.toy.pairingWindowOpen).toBe(false);
    const outcome = await attacker(w).connect(w.toy).pair();
    expect(outcome).toMatchObject({ ok: false, reason: PAIRING_FAILED.PAIRING_NOT_SUPPORTED });
  });

  it('failed attempts are rate limited: exponential back-off, then the window closes', async () => {
    const w = world(35, {
      toyUi: scriptedUi(false),
      policy: { baseBackoffMs: 1000, maxAttemptsPerWindow: 3 },
    });
    w.toy.pressPairingButton();
    const tryPair = async (seed: number) =>
      (await attacker(w, {
        address: bleAddress(`de:ad:be:ef:00:${(seed % 256).toString(16).padStart(2, '0')}`),
        seed,
      })
        .connect(w.toy)
        .pair()) as { ok: false; reason: number };
    expect((await tryPair(1)).reason).toBe(PAIRING_FAILED.NUMERIC_COMPARISON_FAILED); // failure #1: 1 s back-off
    expect((await tryPair(2)).reason).toBe(PAIRING_FAILED.REPEATED_ATTEMPTS); // new address, same limit
    await w.air.advance(1000);
    expect((await tryPair(3)).reason).toBe(PAIRING_FAILED.NUMERIC_COMPARISON_FAILED); // failure #2: 2 s back-off
    await w.air.advance(1000);
    expect((await tryPair(4)).reason).toBe(PAIRING_FAILED.REPEATED_ATTEMPTS);
    await w.air.advance(1000);
    expect((await tryPair(5)).reason).toBe(PAIRING_FAILED.NUMERIC_COMPARISON_FAILED); // attempt 3 of 3
    await w.air.advance(10_000);
    expect((await tryPair(6)).reason).toBe(PAIRING_FAILED.REPEATED_ATTEMPTS); // window used up
    expect(w.toy.pairingWindowOpen).toBe(false);
    expect(w.toy.bondedPeers).toEqual([]);
  });
});

describe('attacks on a paired phone and its encrypted link', () => {
  async function pairedWorld(seed: number) {
    const w = world(seed);
    w.toy.pressPairingButton();
    const link = w.phone.connect(w.toy);
    expect((await link.pair()).ok).toBe(true);
    await link.enableClipNotifications();
    return { w, link };
  }

  it('spoofing the bonded phone address without its key: Insufficient Encryption, encryption fails on the MIC', async () => {
    const { w, link } = await pairedWorld(41);
    link.disconnect();
    const spoofer = attacker(w, { address: w.phone.address });
    const s = spoofer.connect(w.toy);
    await expect(s.startRecording()).rejects.toMatchObject(refusedWith(ATT_ERR.INSUFFICIENT_ENCRYPTION));
    // it guesses a key: the toy's LL_START_ENC_RSP check fails and the toy drops the link
    spoofer.remember(w.toy.address, bytes(16, 99));
    await expect(s.encrypt()).rejects.toThrow(/terminated|disconnected/);
    expect(s.connection.disconnectReason).toBe(0x3d);
    expect(w.toy.stats.link.micFailures).toBe(1);
    expect(w.firmware.calls).toEqual([]);
  });

  it('a command injected into the encrypted link fails the MIC; the link is dropped; the handler is not called', async () => {
    const { w, link } = await pairedWorld(42);
    const plain = Uint8Array.of(
      4,
      0,
      4,
      0,
      ...handlePdu(ATT_OP.WRITE_REQ, HANDLES.CONTROL_POINT, Uint8Array.of(1)),
    );
    link.connection.inject('peripheral', { llid: 'data', encrypted: false, bytes: plain });
    await w.air.settle();
    expect(w.firmware.calls).toEqual([]);
    expect(link.connection.connected).toBe(false);
    expect(link.connection.disconnectReason).toBe(0x3d);
  });

  it('a replayed encrypted command is refused (implicit packet counter), so it runs only once', async () => {
    const { w, link } = await pairedWorld(43);
    const captured: AirFrame[] = [];
    w.air.sniff((f) => {
      if (f.from === 'central' && f.frame.llid === 'data') captured.push(f.frame);
    });
    await link.startRecording();
    expect(w.firmware.calls).toEqual(['startRecording']);
    const startCmd = captured.at(-1)!;
    link.connection.inject('peripheral', startCmd);
    await w.air.settle();
    expect(w.firmware.calls).toEqual(['startRecording']);
    expect(link.connection.disconnectReason).toBe(0x3d);
  });

  it('a forged (bit-flipped) encrypted command is refused', async () => {
    const { w, link } = await pairedWorld(44);
    const captured: AirFrame[] = [];
    w.air.sniff((f) => {
      if (f.from === 'central' && f.frame.llid === 'data') captured.push(f.frame);
    });
    // capture a status read, forge it into something else by flipping a ciphertext bit
    await link.readStatus();
    const frame = captured.at(-1)!;
    const forged = Uint8Array.from(frame.bytes);
    forged[4]! ^= 0x01;
    link.connection.inject('peripheral', { ...frame, bytes: forged });
    await w.air.settle();
    expect(w.firmware.calls).toEqual(['getStatus']);
    expect(link.connection.connected).toBe(false);
  });
});
