// The phone as a BLE central: pairing (initiator), encryption, GATT client for the toy's service, and the clip relay.
import { LIMITS } from '../../shared/limits.ts';
import type { RandomSource } from '../../shared/types.ts';
import type { Air, BleAddress, BlePeripheral, Connection } from './air.ts';
import { sameAddress } from './air.ts';
import { ATT_ERR, ATT_OP, AttError, handlePdu, readU16, u16 } from './att.ts';
import { COMMAND, decodeStatus, HANDLES, type ToyBleStatus } from './gatt.ts';
import { CID, LinkEnd, type LinkSecurity } from './link.ts';
import { type PairingFeatures, type PairingOutcome, type PairingUi, SmpInitiator } from './pairing.ts';
import type { LinkParams } from './timing.ts';

export interface BlePhoneOptions {
  readonly address: BleAddress;
  readonly air: Air;
  readonly random: RandomSource;
  /** The phone's screen: shows the six digits, returns the user's yes/no. */
  readonly pairingUi: PairingUi;
  /** Pairing features to offer (an attacker's test double may offer Just Works). */
  readonly features?: PairingFeatures;
}

interface PhoneBond {
  readonly peer: BleAddress;
  readonly ltk: Uint8Array;
}

/** A phone: connects to toys and remembers the keys of toys it paired with. */
export class BlePhone {
  private readonly bonds: PhoneBond[] = [];

  constructor(readonly opts: BlePhoneOptions) {}

  get address(): BleAddress {
    return this.opts.address;
  }

  /** Connects to a toy with the given link parameters. */
  connect(toy: BlePeripheral, params: Partial<LinkParams> = {}): PhoneLink {
    const conn = this.opts.air.connect(this.opts.address, toy, params);
    return new PhoneLink(this, conn);
  }

  /** @internal */
  keyFor(peer: BleAddress): Uint8Array | undefined {
    return this.bonds.find((b) => sameAddress(b.peer, peer))?.ltk;
  }

  /** @internal */
  remember(peer: BleAddress, ltk: Uint8Array): void {
    const i = this.bonds.findIndex((b) => sameAddress(b.peer, peer));
    if (i >= 0) this.bonds.splice(i, 1);
    this.bonds.push({ peer, ltk });
  }
}

type Waiter = { resolve: (pdu: Uint8Array) => void; reject: (e: Error) => void; opcode: number };

/** One connection from the phone to a toy. */
export class PhoneLink {
  readonly link: LinkEnd;
  private smp: SmpInitiator | undefined;
  private waiter: Waiter | undefined;
  private mtu = 23;
  private clipOut: { total: number; buf: Uint8Array; filled: number } | undefined;
  private readonly clipListeners: ((envelope: Uint8Array) => void)[] = [];
  private readonly clipQueue: Uint8Array[] = [];

  constructor(
    private readonly phone: BlePhone,
    readonly connection: Connection,
  ) {
    this.link = new LinkEnd({
      connection,
      role: 'central',
      random: phone.opts.random,
      onL2cap: (cid, payload) => {
        if (cid === CID.ATT) return this.onAtt(payload);
        if (cid === CID.SMP) return this.smp?.handle(payload);
      },
    });
    connection.onDisconnect((reason) => {
      this.waiter?.reject(new Error(`disconnected (reason 0x${reason.toString(16)})`));
      this.waiter = undefined;
    });
  }

  get security(): LinkSecurity {
    return this.link.security;
  }

  get attMtu(): number {
    return this.mtu;
  }

  /** Runs LE Secure Connections numeric comparison pairing as initiator; on success, bonds and encrypts. */
  async pair(): Promise<PairingOutcome> {
    const o = this.phone.opts;
    this.smp = new SmpInitiator({
      random: o.random,
      ui: o.pairingUi,
      localAddress: o.address,
      peerAddress: this.connection.peripheralAddress,
      send: (pdu) => this.link.sendL2cap(CID.SMP, pdu),
      ...(o.features ? { features: o.features } : {}),
    });
    this.smp.start();
    const outcome = await Promise.race([this.smp.outcome, this.closed()]);
    if (outcome.ok) {
      this.phone.remember(this.connection.peripheralAddress, outcome.ltk);
      await this.link.startEncryption(outcome.ltk, true);
    }
    return outcome;
  }

  private closed(): Promise<PairingOutcome> {
    return new Promise((resolve) =>
      this.connection.onDisconnect(() => resolve({ ok: false, reason: 0x08, sentByPeer: true })),
    );
  }

  /** Encrypts the link with the key from an earlier pairing with this toy (reconnection). */
  async encrypt(): Promise<void> {
    const ltk = this.phone.keyFor(this.connection.peripheralAddress);
    if (!ltk) throw new Error('no bond with this toy: pair first');
    await this.link.startEncryption(ltk, true);
  }

  /** ATT Exchange MTU (Vol 3 Part F §3.4.2); also applies it to the link timing model. */
  async exchangeMtu(clientRxMtu: number): Promise<number> {
    if (!Number.isInteger(clientRxMtu) || clientRxMtu < 23 || clientRxMtu > 517) {
      throw new RangeError(`clientRxMtu must be an integer in 23..517, got ${clientRxMtu}`);
    }
    const rsp = await this.request(
      Uint8Array.of(ATT_OP.EXCHANGE_MTU_REQ, ...u16(clientRxMtu)),
      ATT_OP.EXCHANGE_MTU_RSP,
    );
    if (rsp.length !== 3) throw new AttError(ATT_ERR.INVALID_PDU, ATT_OP.EXCHANGE_MTU_REQ, 0);
    this.mtu = Math.max(23, Math.min(clientRxMtu, readU16(rsp, 1)));
    this.connection.update({ attMtu: this.mtu });
    return this.mtu;
  }

  async read(handle: number): Promise<Uint8Array> {
    const rsp = await this.request(handlePdu(ATT_OP.READ_REQ, handle), ATT_OP.READ_RSP);
    return rsp.subarray(1);
  }

  async write(handle: number, value: Uint8Array): Promise<void> {
    if (value.length > this.mtu - 3)
      throw new RangeError(`value must be at most ATT_MTU-3 = ${this.mtu - 3} bytes`);
    await this.request(handlePdu(ATT_OP.WRITE_REQ, handle, value), ATT_OP.WRITE_RSP);
  }

  /** Write Without Response: nothing comes back, not even an error. */
  writeCommand(handle: number, value: Uint8Array): void {
    if (value.length > this.mtu - 3)
      throw new RangeError(`value must be at most ATT_MTU-3 = ${this.mtu - 3} bytes`);
    this.link.sendL2cap(CID.ATT, handlePdu(ATT_OP.WRITE_CMD, handle, value));
  }

  /** Sends a raw ATT PDU (attack tests use it to send whatever they like). */
  sendRawAtt(pdu: Uint8Array): void {
    this.link.sendL2cap(CID.ATT, pdu);
  }

  private request(pdu: Uint8Array, rspOpcode: number): Promise<Uint8Array> {
    if (this.waiter) return Promise.reject(new Error('an ATT request is already outstanding'));
    if (!this.connection.connected) return Promise.reject(new Error('not connected'));
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject, opcode: pdu[0]! };
      this.link.sendL2cap(CID.ATT, pdu);
    }).then((rsp) => {
      const r = rsp as Uint8Array;
      const reqOpcode = pdu[0]!;
      // A toy's answer is input like any other: a malformed or unexpected PDU is an AttError with
      // Invalid PDU, never a TypeError from reading past its end.
      if (r[0] === ATT_OP.ERROR_RSP) {
        if (r.length !== 5) throw new AttError(ATT_ERR.INVALID_PDU, reqOpcode, 0);
        throw new AttError(r[4]!, r[1]!, readU16(r, 2));
      }
      if (r.length === 0 || r[0] !== rspOpcode) throw new AttError(ATT_ERR.INVALID_PDU, reqOpcode, 0);
      return r;
    });
  }

  private onAtt(pdu: Uint8Array): void {
    const op = pdu[0];
    if (op === ATT_OP.HANDLE_VALUE_NTF && pdu.length >= 3) {
      if (readU16(pdu, 1) === HANDLES.CLIP_OUT) this.onClipFragment(pdu.subarray(3));
      return;
    }
    const w = this.waiter;
    if (!w) return;
    this.waiter = undefined;
    w.resolve(pdu);
  }

  private onClipFragment(data: Uint8Array): void {
    let chunk = data;
    if (!this.clipOut) {
      if (chunk.length < 4) return;
      const total = new DataView(chunk.buffer, chunk.byteOffset, 4).getUint32(0, true);
      // The announced length comes from the toy: never allocate more than an envelope can be.
      if (total === 0 || total > LIMITS.maxEnvelopeBytes) return;
      this.clipOut = { total, buf: new Uint8Array(total), filled: 0 };
      chunk = chunk.subarray(4);
    }
    const c = this.clipOut;
    const n = Math.min(chunk.length, c.total - c.filled);
    c.buf.set(chunk.subarray(0, n), c.filled);
    c.filled += n;
    if (c.filled === c.total) {
      this.clipOut = undefined;
      const listener = this.clipListeners.shift();
      if (listener) listener(c.buf);
      else this.clipQueue.push(c.buf);
    }
  }

  /** Resolves with the next complete sealed clip notified on CLIP_OUT. */
  nextClip(): Promise<Uint8Array> {
    const queued = this.clipQueue.shift();
    if (queued) return Promise.resolve(queued);
    return new Promise((resolve) => this.clipListeners.push(resolve));
  }

  // --- the PlushLink service, as the parents' app uses it ---

  async enableClipNotifications(): Promise<void> {
    await this.write(HANDLES.CLIP_OUT_CCCD, Uint8Array.of(1, 0));
  }

  async startRecording(): Promise<void> {
    await this.write(HANDLES.CONTROL_POINT, Uint8Array.of(COMMAND.START_RECORDING));
  }

  /** Stops recording and downloads the sealed clip the toy notifies. */
  async stopRecordingAndDownload(): Promise<Uint8Array> {
    const clip = this.nextClip();
    await this.write(HANDLES.CONTROL_POINT, Uint8Array.of(COMMAND.STOP_RECORDING));
    return clip;
  }

  /** Uploads a sealed clip (BEGIN_CLIP_IN, Write Commands of ATT_MTU-3 bytes) and asks the toy to play it. */
  async sendClipAndPlay(envelope: Uint8Array): Promise<void> {
    const len = new Uint8Array(4);
    new DataView(len.buffer).setUint32(0, envelope.length, true);
    await this.write(HANDLES.CONTROL_POINT, Uint8Array.of(COMMAND.BEGIN_CLIP_IN, ...len));
    const per = this.mtu - 3;
    for (let o = 0; o < envelope.length; o += per)
      this.writeCommand(HANDLES.CLIP_IN, envelope.subarray(o, o + per));
    await this.write(HANDLES.CONTROL_POINT, Uint8Array.of(COMMAND.PLAY_CLIP));
  }

  async readStatus(): Promise<ToyBleStatus> {
    return decodeStatus(await this.read(HANDLES.STATUS));
  }

  disconnect(): void {
    this.connection.disconnect();
  }
}

/** Where the phone sends clips it relays (later: MQTT publish to the gateway). */
export type ClipUplink = (envelope: Uint8Array) => Promise<void> | void;

/**
 * The phone's relay: bytes in from the toy, the same bytes out to the uplink. It holds no key for
 * the envelope (it is sealed on the toy to the family's keys and signed by the toy), so it can
 * neither read nor undetectably change it.
 */
export class PhoneRelay {
  relayed = 0;

  constructor(private readonly uplink: ClipUplink) {}

  /** Records on the toy, downloads the sealed clip and hands it to the uplink unchanged. */
  async recordAndRelay(link: PhoneLink, record: () => Promise<void> = async () => {}): Promise<Uint8Array> {
    await link.startRecording();
    await record();
    const envelope = await link.stopRecordingAndDownload();
    await this.uplink(envelope);
    this.relayed++;
    return envelope;
  }
}
