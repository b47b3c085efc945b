// In-process "air": a discrete-event simulator carrying LL frames between a central and a peripheral, in virtual time.
import type { Clock } from '../../shared/types.ts';
import { SeededRandom } from './random.ts';
import { type LinkParams, LinkScheduler, linkParams } from './timing.ts';

/*
 * The radio is a test double by design. What is modelled: connections between a central (phone)
 * and a peripheral (toy); every frame an endpoint sends reaches the peer after the time the link
 * timing model computes (fragmentation, connection events, retransmissions drawn from a seeded
 * source) — the model computes time, it never sleeps; the link layer is reliable and ordered, as
 * in BLE (lost packets are retransmitted, so loss costs time, not data); anyone on the air can
 * sniff every frame and inject frames (an attacker within radio range). Not modelled: advertising
 * and scanning, channel hopping, supervision timeouts, LL procedures other than encryption start
 * (MTU, PHY, data length and connection parameters are set with Connection.update()).
 */

export type Role = 'central' | 'peripheral';

/** A device address (Vol 6 Part B §1.3): public or random, six octets written "aa:bb:cc:dd:ee:ff". */
export interface BleAddress {
  readonly type: 'public' | 'random';
  readonly value: string;
}

const ADDRESS_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

export function bleAddress(value: string, type: 'public' | 'random' = 'random'): BleAddress {
  if (typeof value !== 'string' || !ADDRESS_RE.test(value)) {
    throw new RangeError(`address must look like aa:bb:cc:dd:ee:ff, got ${String(value)}`);
  }
  return Object.freeze({ type, value });
}

/** 7-octet A1/A2 for f5/f6 (Vol 3 Part H §2.2.7): address type octet, then the address, MSB first. */
export function addressOctets(a: BleAddress): Uint8Array {
  const out = new Uint8Array(7);
  out[0] = a.type === 'public' ? 0 : 1;
  out.set(Buffer.from(a.value.replaceAll(':', ''), 'hex'), 1);
  return out;
}

export function sameAddress(a: BleAddress, b: BleAddress): boolean {
  return a.type === b.type && a.value === b.value;
}

/** LLID of the LL data channel PDU header (Vol 6 Part B §2.4): L2CAP data or LL control. */
export type Llid = 'data' | 'control';

/** One LL-level frame: a whole L2CAP PDU (llid data) or one LL control PDU. */
export interface AirFrame {
  readonly llid: Llid;
  /** True when the sender encrypted it (payload then ends with the 4-byte MIC). */
  readonly encrypted: boolean;
  readonly bytes: Uint8Array;
}

export type FrameHandler = (frame: AirFrame) => void | Promise<void>;

export interface SniffedFrame {
  readonly connection: number;
  readonly from: Role;
  readonly atUs: number;
  readonly frame: AirFrame;
}

/** Anything a central can connect to. */
export interface BlePeripheral {
  readonly address: BleAddress;
  /** Called when a central connects: the peripheral attaches its handler to the connection. */
  acceptConnection(conn: Connection): void;
}

interface Delivery {
  readonly atUs: number;
  readonly seq: number;
  readonly conn: Connection;
  readonly to: Role;
  readonly frame: AirFrame;
}

export interface AirOptions {
  /** Seed of the loss process. */
  readonly seed?: number;
}

export class Air {
  private now = 0;
  private seq = 0;
  private nextConnId = 1;
  private queue: Delivery[] = [];
  private pumping: Promise<void> | undefined;
  private readonly sniffers: ((f: SniffedFrame) => void)[] = [];
  readonly rng: SeededRandom;
  /** Errors thrown by frame handlers (a robust endpoint never throws; tests assert this stays empty). */
  readonly errors: unknown[] = [];

  constructor(opts: AirOptions = {}) {
    this.rng = new SeededRandom(opts.seed ?? 1);
  }

  /** Virtual time in µs since the air was created. */
  get nowUs(): number {
    return this.now;
  }

  /** Virtual wall clock in ms, for injected Clock parameters. */
  readonly clock: Clock = () => this.now / 1000;

  /** Opens a connection from a central at `centralAddress` to `peripheral` (the peripheral accepts). */
  connect(
    centralAddress: BleAddress,
    peripheral: BlePeripheral,
    params: Partial<LinkParams> = {},
  ): Connection {
    const conn = new Connection(
      this,
      this.nextConnId++,
      centralAddress,
      peripheral.address,
      linkParams(params),
    );
    peripheral.acceptConnection(conn);
    return conn;
  }

  /** Every frame sent on any connection is reported (ciphertext when the link is encrypted). */
  sniff(listener: (f: SniffedFrame) => void): void {
    this.sniffers.push(listener);
  }

  /** @internal */
  schedule(conn: Connection, to: Role, frame: AirFrame, atUs: number, from?: Role): void {
    if (from) for (const s of this.sniffers) s({ connection: conn.id, from, atUs: this.now, frame });
    // ordered insert by (time, seq): frames are mostly scheduled in time order, so search from the back
    const d: Delivery = { atUs, seq: this.seq++, conn, to, frame };
    let i = this.queue.length;
    while (i > 0 && this.queue[i - 1]!.atUs > atUs) i--;
    this.queue.splice(i, 0, d);
    this.kick();
  }

  private kick(): void {
    if (!this.pumping) this.pumping = this.pump();
  }

  private async pump(): Promise<void> {
    await tick();
    for (;;) {
      if (this.queue.length === 0) {
        await tick();
        if (this.queue.length === 0) break;
      }
      const d = this.queue.shift()!;
      if (d.atUs > this.now) this.now = d.atUs;
      d.conn.deliver(d.to, d.frame);
      await tick();
    }
    this.pumping = undefined;
  }

  /** Resolves when no frame is in flight and every handler has run as far as it can. */
  async settle(): Promise<void> {
    while (this.pumping) await this.pumping;
    await tick();
    if (this.pumping) return this.settle();
  }

  /** Lets virtual time pass (after delivering what is in flight), e.g. for a pairing window to expire. */
  async advance(ms: number): Promise<void> {
    if (!(ms >= 0)) throw new RangeError('ms must be >= 0');
    await this.settle();
    this.now += ms * 1000;
  }
}

function tick(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export const DISCONNECT_REASON = {
  REMOTE_USER_TERMINATED: 0x13,
  LOCAL_HOST_TERMINATED: 0x16,
  MIC_FAILURE: 0x3d,
} as const;

/** One LE connection: two ends, a timing schedule per direction, a serial inbox per end. */
export class Connection {
  private readonly handlers: Partial<Record<Role, FrameHandler>> = {};
  private readonly disconnectListeners: ((reason: number) => void)[] = [];
  private readonly inbox: Record<Role, Promise<void>> = {
    central: Promise.resolve(),
    peripheral: Promise.resolve(),
  };
  private schedulers: Record<Role, LinkScheduler>;
  private open = true;
  private reason: number | undefined;

  constructor(
    private readonly air: Air,
    readonly id: number,
    readonly centralAddress: BleAddress,
    readonly peripheralAddress: BleAddress,
    private currentParams: LinkParams,
  ) {
    this.schedulers = this.makeSchedulers();
  }

  private makeSchedulers(): Record<Role, LinkScheduler> {
    return {
      central: new LinkScheduler(this.currentParams, this.air.rng),
      peripheral: new LinkScheduler(this.currentParams, this.air.rng),
    };
  }

  get params(): LinkParams {
    return this.currentParams;
  }

  get connected(): boolean {
    return this.open;
  }

  get disconnectReason(): number | undefined {
    return this.reason;
  }

  /** Applies negotiated link parameters (stands in for the LL connection update / PHY / DLE procedures). */
  update(params: Partial<LinkParams>): void {
    this.currentParams = linkParams({ ...this.currentParams, ...params });
    this.schedulers = this.makeSchedulers();
  }

  attach(role: Role, handler: FrameHandler): void {
    this.handlers[role] = handler;
  }

  onDisconnect(listener: (reason: number) => void): void {
    this.disconnectListeners.push(listener);
  }

  /** Sends a frame from `from` to the other end; it arrives after its modelled air time. */
  send(from: Role, frame: AirFrame): void {
    if (!this.open) return;
    const to: Role = from === 'central' ? 'peripheral' : 'central';
    const payloads = llPayloadSizes(frame, this.currentParams.llDataLength);
    const atUs = this.schedulers[from].send(this.air.nowUs, payloads, frame.encrypted);
    this.air.schedule(this, to, frame, atUs, from);
  }

  /** An attacker in radio range injects a frame that `to` receives as if its peer had sent it. */
  inject(to: Role, frame: AirFrame): void {
    if (!this.open) return;
    this.air.schedule(this, to, frame, this.air.nowUs + 1);
  }

  /** Ends the connection (LL_TERMINATE_IND); both ends are told the reason. */
  disconnect(reason: number = DISCONNECT_REASON.REMOTE_USER_TERMINATED): void {
    if (!this.open) return;
    this.open = false;
    this.reason = reason;
    for (const l of this.disconnectListeners) l(reason);
  }

  /** @internal called by the air in virtual-time order; each end processes its frames one at a time. */
  deliver(to: Role, frame: AirFrame): void {
    if (!this.open) return;
    const handler = this.handlers[to];
    if (!handler) return;
    this.inbox[to] = this.inbox[to].then(async () => {
      if (!this.open) return;
      try {
        await handler(frame);
      } catch (err) {
        this.air.errors.push(err);
      }
    });
  }
}

/** LL payload sizes of a frame: plaintext split at the LL data length (the MIC is added per packet). */
function llPayloadSizes(frame: AirFrame, dataLength: number): number[] {
  let left = frame.bytes.length - (frame.encrypted ? 4 : 0);
  if (frame.llid === 'control') return [Math.min(Math.max(left, 1), 251)];
  const out: number[] = [];
  while (left > 0) {
    const n = Math.min(left, dataLength);
    out.push(n);
    left -= n;
  }
  return out.length > 0 ? out : [0];
}
