// LL encryption model (AES-CCM, 4-byte MIC, packet counters) and one end of a link: L2CAP channels over the air.
import { createCipheriv, createDecipheriv } from 'node:crypto';
import type { RandomSource } from '../../shared/types.ts';
import { type AirFrame, type BleAddress, type Connection, DISCONNECT_REASON, type Role } from './air.ts';
import { aes128 } from './cmac.ts';

/*
 * Modelled after Core Spec v5.x Vol 6 Part B §5.1.3 (encryption start) and Vol 6 Part E (AES-CCM):
 * - session key SK = e(LTK, SKD), SKD = SKDm || SKDs (SKDs the most significant half), IV = IVm || IVs,
 *   SKDm/IVm from the central's LL_ENC_REQ, SKDs/IVs from the peripheral's LL_ENC_RSP;
 * - AES-128-CCM with a 4-byte MIC; 13-byte nonce = 39-bit packet counter + direction bit (1 for
 *   central→peripheral), least significant octet first, then the 8-byte IV;
 * - counters are implicit (never sent): a replayed or injected packet is authenticated under the
 *   receiver's next counter and fails the MIC; on a MIC failure the link is terminated with
 *   reason 0x3D (Vol 6 Part B §5.1.3), so nothing past it is processed.
 * Simplifications: one MIC per L2CAP PDU rather than per LL fragment (the timing model still counts a
 * MIC per LL packet); the AAD is the LLID octet only; no pause/restart of encryption.
 */

const CCM_TAG = 4;
const L2CAP_HEADER = 4;
export const CID = { ATT: 0x0004, SMP: 0x0006 } as const;

/** LL control opcodes used here (Vol 6 Part B §2.4.2). */
export const LL = {
  TERMINATE_IND: 0x02,
  ENC_REQ: 0x03,
  ENC_RSP: 0x04,
  START_ENC_REQ: 0x05,
  START_ENC_RSP: 0x06,
  REJECT_EXT_IND: 0x11,
} as const;

/** HCI error code carried in LL_REJECT_EXT_IND when the peripheral has no key (Vol 1 Part F). */
export const PIN_OR_KEY_MISSING = 0x06;

function reverse(b: Uint8Array): Uint8Array {
  return Uint8Array.from(b).reverse();
}

/** SK = e(LTK, SKDs || SKDm); all inputs in LL order (least significant octet first), as carried in LL PDUs. */
export function sessionKey(ltk: Uint8Array, skdm: Uint8Array, skds: Uint8Array): Uint8Array {
  if (ltk.length !== 16 || skdm.length !== 8 || skds.length !== 8)
    throw new RangeError('LTK 16, SKDm/SKDs 8 bytes');
  const skdMsbFirst = new Uint8Array(16);
  skdMsbFirst.set(reverse(skds), 0);
  skdMsbFirst.set(reverse(skdm), 8);
  return aes128(ltk, skdMsbFirst);
}

/** AES-CCM state of one end: separate transmit and receive counters. */
export class LinkCipher {
  private txCounter = 0;
  private rxCounter = 0;

  constructor(
    private readonly sk: Uint8Array,
    private readonly iv: Uint8Array,
    private readonly role: Role,
  ) {
    if (sk.length !== 16) throw new RangeError('session key must be 16 bytes');
    if (iv.length !== 8) throw new RangeError('IV must be 8 bytes');
  }

  private nonce(counter: number, centralToPeripheral: boolean): Buffer {
    const n = Buffer.alloc(13);
    // 39-bit counter, LSO first; the direction bit is the MSB of the fifth octet
    let c = counter;
    for (let i = 0; i < 5; i++) {
      n[i] = c % 256;
      c = Math.floor(c / 256);
    }
    n[4] = (n[4]! & 0x7f) | (centralToPeripheral ? 0x80 : 0);
    n.set(this.iv, 5);
    return n;
  }

  seal(aad: number, plaintext: Uint8Array): Uint8Array {
    const nonce = this.nonce(this.txCounter++, this.role === 'central');
    const c = createCipheriv('aes-128-ccm', this.sk, nonce, { authTagLength: CCM_TAG });
    c.setAAD(Buffer.of(aad), { plaintextLength: plaintext.length });
    const body = Buffer.concat([c.update(plaintext), c.final()]);
    return new Uint8Array(Buffer.concat([body, c.getAuthTag()]));
  }

  /** Returns the plaintext, or undefined on a MIC failure (the counter does not advance then). */
  open(aad: number, sealed: Uint8Array): Uint8Array | undefined {
    if (sealed.length < CCM_TAG) return undefined;
    const nonce = this.nonce(this.rxCounter, this.role !== 'central');
    try {
      const d = createDecipheriv('aes-128-ccm', this.sk, nonce, { authTagLength: CCM_TAG });
      d.setAuthTag(sealed.subarray(sealed.length - CCM_TAG));
      d.setAAD(Buffer.of(aad), { plaintextLength: sealed.length - CCM_TAG });
      const out = d.update(sealed.subarray(0, sealed.length - CCM_TAG));
      d.final();
      this.rxCounter++;
      return new Uint8Array(out);
    } catch {
      return undefined;
    }
  }
}

const AAD = { data: 0x02, control: 0x03 } as const; // LLID values (Vol 6 Part B §2.4)

/** Security state of one end of a link, as GATT sees it. */
export interface LinkSecurity {
  readonly encrypted: boolean;
  /** Encrypted with a key from an authenticated (MITM-protected) pairing. */
  readonly authenticated: boolean;
}

export interface LinkEndOptions {
  readonly connection: Connection;
  readonly role: Role;
  readonly random: RandomSource;
  /** L2CAP payload for a fixed channel (ATT 0x0004, SMP 0x0006). */
  readonly onL2cap: (cid: number, payload: Uint8Array) => void | Promise<void>;
  /** Peripheral only: the bonded key for a central address, if any. */
  readonly keyFor?: (peer: BleAddress) => { ltk: Uint8Array; authenticated: boolean } | undefined;
  readonly onEncryptionChange?: (security: LinkSecurity) => void;
  /** Counters to add to (shared across connections by the toy). */
  readonly stats?: LinkStats;
}

/** Counters an end keeps about what it refused. */
export interface LinkStats {
  micFailures: number;
  malformed: number;
}

/** One end of a connection: L2CAP fixed channels, encryption start, MIC checks. */
export class LinkEnd {
  private txCipher: LinkCipher | undefined;
  private rxCipher: LinkCipher | undefined;
  private nextCipher: LinkCipher | undefined;
  private pending: { skdm: Uint8Array; ivm: Uint8Array; ltk: Uint8Array; authenticated: boolean } | undefined;
  private encryptWaiter: { resolve: () => void; reject: (e: Error) => void } | undefined;
  private sec: LinkSecurity = { encrypted: false, authenticated: false };
  readonly stats: LinkStats;

  constructor(private readonly opts: LinkEndOptions) {
    this.stats = opts.stats ?? { micFailures: 0, malformed: 0 };
    opts.connection.attach(opts.role, (f) => this.receive(f));
    opts.connection.onDisconnect((reason) => {
      this.encryptWaiter?.reject(new Error(`link terminated (reason 0x${reason.toString(16)})`));
      this.encryptWaiter = undefined;
    });
  }

  get security(): LinkSecurity {
    return this.sec;
  }

  get connection(): Connection {
    return this.opts.connection;
  }

  get peerAddress(): BleAddress {
    const c = this.opts.connection;
    return this.opts.role === 'central' ? c.peripheralAddress : c.centralAddress;
  }

  /** Sends an L2CAP PDU on a fixed channel (encrypted if the link is). */
  sendL2cap(cid: number, payload: Uint8Array): void {
    const pdu = new Uint8Array(L2CAP_HEADER + payload.length);
    pdu[0] = payload.length & 0xff;
    pdu[1] = payload.length >>> 8;
    pdu[2] = cid & 0xff;
    pdu[3] = cid >>> 8;
    pdu.set(payload, L2CAP_HEADER);
    this.sendFrame('data', pdu);
  }

  private sendFrame(llid: 'data' | 'control', plain: Uint8Array): void {
    const bytes = this.txCipher ? this.txCipher.seal(AAD[llid], plain) : plain;
    this.opts.connection.send(this.opts.role, { llid, encrypted: this.txCipher !== undefined, bytes });
  }

  /** Central: starts encryption with a key from pairing or bonding (LL_ENC_REQ). Resolves once encrypted. */
  startEncryption(ltk: Uint8Array, authenticated: boolean): Promise<void> {
    if (this.opts.role !== 'central') throw new Error('only the central starts encryption');
    const skdm = this.opts.random(8);
    const ivm = this.opts.random(4);
    this.pending = { skdm, ivm, ltk, authenticated };
    const pdu = new Uint8Array(23);
    pdu[0] = LL.ENC_REQ; // Rand (8) and EDIV (2) stay zero for LE Secure Connections keys
    pdu.set(skdm, 11);
    pdu.set(ivm, 19);
    return new Promise<void>((resolve, reject) => {
      this.encryptWaiter = { resolve, reject };
      this.sendFrame('control', pdu);
    });
  }

  private terminate(reason: number): void {
    const c = this.opts.connection;
    if (c.connected) {
      this.sendFrame('control', Uint8Array.of(LL.TERMINATE_IND, reason));
      c.disconnect(reason);
    }
  }

  private async receive(frame: AirFrame): Promise<void> {
    let plain = frame.bytes;
    if (this.rxCipher) {
      const opened = this.rxCipher.open(AAD[frame.llid], frame.bytes);
      if (!opened) {
        this.stats.micFailures++;
        this.terminate(DISCONNECT_REASON.MIC_FAILURE);
        return;
      }
      plain = opened;
    }
    if (frame.llid === 'control') return this.control(plain);
    if (plain.length < L2CAP_HEADER) {
      this.stats.malformed++;
      return;
    }
    const len = plain[0]! | (plain[1]! << 8);
    const cid = plain[2]! | (plain[3]! << 8);
    if (len !== plain.length - L2CAP_HEADER) {
      this.stats.malformed++;
      return;
    }
    await this.opts.onL2cap(cid, plain.subarray(L2CAP_HEADER));
  }

  private control(pdu: Uint8Array): void {
    const op = pdu[0];
    const central = this.opts.role === 'central';
    if (op === LL.TERMINATE_IND) {
      this.opts.connection.disconnect(pdu[1] ?? DISCONNECT_REASON.REMOTE_USER_TERMINATED);
      return;
    }
    if (!central && op === LL.ENC_REQ && pdu.length === 23) {
      const key = this.opts.keyFor?.(this.peerAddress);
      if (!key) {
        this.sendFrame('control', Uint8Array.of(LL.REJECT_EXT_IND, LL.ENC_REQ, PIN_OR_KEY_MISSING));
        return;
      }
      const skdm = pdu.subarray(11, 19);
      const ivm = pdu.subarray(19, 23);
      const skds = this.opts.random(8);
      const ivs = this.opts.random(4);
      const cipher = new LinkCipher(
        sessionKey(key.ltk, skdm, skds),
        new Uint8Array([...ivm, ...ivs]),
        'peripheral',
      );
      const rsp = new Uint8Array(13);
      rsp[0] = LL.ENC_RSP;
      rsp.set(skds, 1);
      rsp.set(ivs, 9);
      this.sendFrame('control', rsp);
      this.sendFrame('control', Uint8Array.of(LL.START_ENC_REQ)); // still unencrypted
      // from now on the peripheral receives encrypted; it transmits encrypted after LL_START_ENC_RSP
      this.rxCipher = cipher;
      this.nextCipher = cipher;
      this.pending = { skdm, ivm, ltk: key.ltk, authenticated: key.authenticated };
      return;
    }
    if (central && op === LL.ENC_RSP && pdu.length === 13 && this.pending) {
      const skds = pdu.subarray(1, 9);
      const ivs = pdu.subarray(9, 13);
      const iv = new Uint8Array([...this.pending.ivm, ...ivs]);
      this.nextCipher = new LinkCipher(sessionKey(this.pending.ltk, this.pending.skdm, skds), iv, 'central');
      return;
    }
    if (central && op === LL.START_ENC_REQ && this.nextCipher) {
      this.txCipher = this.nextCipher;
      this.rxCipher = this.txCipher;
      this.nextCipher = undefined;
      this.sendFrame('control', Uint8Array.of(LL.START_ENC_RSP));
      return;
    }
    if (op === LL.START_ENC_RSP && this.pending) {
      const authenticated = this.pending.authenticated;
      this.pending = undefined;
      if (!central) {
        this.txCipher = this.nextCipher;
        this.nextCipher = undefined;
        this.sendFrame('control', Uint8Array.of(LL.START_ENC_RSP));
      }
      this.sec = { encrypted: true, authenticated };
      this.opts.onEncryptionChange?.(this.sec);
      if (central) {
        this.encryptWaiter?.resolve();
        this.encryptWaiter = undefined;
      }
      return;
    }
    if (central && op === LL.REJECT_EXT_IND) {
      this.pending = undefined;
      this.encryptWaiter?.reject(new Error(`encryption rejected (error 0x${(pdu[2] ?? 0).toString(16)})`));
      this.encryptWaiter = undefined;
      return;
    }
    this.stats.malformed++;
  }
}
