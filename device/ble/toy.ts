// The toy as a BLE peripheral: pairing window and rate limit, SMP responder, bonded keys, encrypted GATT service.
import type { Clock, RandomSource } from '../../shared/types.ts';
import type { BleAddress, BlePeripheral, Connection } from './air.ts';
import { sameAddress } from './air.ts';
import { type GattStats, type ToyBleHandlers, ToyGattServer } from './gatt.ts';
import { CID, LinkEnd, type LinkStats } from './link.ts';
import { PAIRING_FAILED, type PairingFailedReason, type PairingUi, SMP, SmpResponder } from './pairing.ts';

export interface PairingWindowPolicy {
  /** How long the pairing window stays open after the physical button is pressed. */
  readonly windowMs: number;
  /** Pairing attempts accepted per opened window (then the window closes). */
  readonly maxAttemptsPerWindow: number;
  /** Back-off after the first failure; doubles with each further failure (Vol 3 Part H §2.3.6). */
  readonly baseBackoffMs: number;
}

export const DEFAULT_PAIRING_POLICY: PairingWindowPolicy = Object.freeze({
  windowMs: 60_000,
  maxAttemptsPerWindow: 5,
  baseBackoffMs: 2_000,
});

export interface BleToyOptions {
  readonly address: BleAddress;
  readonly name?: string;
  readonly handlers: ToyBleHandlers;
  /** The toy's own display (LED digits or spoken digits) and paw button for numeric comparison. */
  readonly pairingUi: PairingUi;
  readonly random: RandomSource;
  /** Virtual clock in ms (usually `air.clock`). */
  readonly clock: Clock;
  readonly policy?: Partial<PairingWindowPolicy>;
}

interface Bond {
  readonly peer: BleAddress;
  readonly ltk: Uint8Array;
  readonly authenticated: boolean;
}

/** Toy-wide counters of refused actions (attack tests read them). */
export interface ToyBleStats {
  pairingsRefused: number;
  pairingsFailed: number;
  pairingsSucceeded: number;
  lastRefusal: PairingFailedReason | undefined;
  link: LinkStats;
  gatt: GattStats;
}

/** SMP timeout (Vol 3 Part H §3.4): a pairing idle this long no longer blocks others. */
const SMP_TIMEOUT_MS = 30_000;

export class BleToy implements BlePeripheral {
  readonly address: BleAddress;
  private readonly policy: PairingWindowPolicy;
  private windowUntil = -1;
  private attemptsInWindow = 0;
  private failures = 0;
  private blockedUntil = -1;
  /** The pairing in progress (one at a time, toy-wide), and since when. */
  private pairingOwner: SmpResponder | undefined;
  private pairingSince = 0;
  private readonly bonds: Bond[] = [];
  readonly stats: ToyBleStats = {
    pairingsRefused: 0,
    pairingsFailed: 0,
    pairingsSucceeded: 0,
    lastRefusal: undefined,
    link: { micFailures: 0, malformed: 0 },
    gatt: { refusedForSecurity: 0, droppedCommands: 0, handlerCalls: 0 },
  };

  constructor(private readonly opts: BleToyOptions) {
    this.address = opts.address;
    this.policy = { ...DEFAULT_PAIRING_POLICY, ...opts.policy };
  }

  /** The physical pairing button: opens the pairing window for `policy.windowMs`. */
  pressPairingButton(): void {
    this.windowUntil = this.opts.clock() + this.policy.windowMs;
    this.attemptsInWindow = 0;
  }

  get pairingWindowOpen(): boolean {
    return this.opts.clock() < this.windowUntil;
  }

  get bondedPeers(): readonly BleAddress[] {
    return this.bonds.map((b) => b.peer);
  }

  /** Forgets a bonded phone (e.g. a lost phone), so it can no longer encrypt with its key. */
  forget(peer: BleAddress): void {
    const i = this.bonds.findIndex((b) => sameAddress(b.peer, peer));
    if (i >= 0) this.bonds.splice(i, 1);
  }

  private bondFor(peer: BleAddress): Bond | undefined {
    return this.bonds.find((b) => sameAddress(b.peer, peer));
  }

  /** Pairing gate, checked on every Pairing Request before any key is exchanged. */
  private admit(s: SmpResponder): PairingFailedReason | undefined {
    const now = this.opts.clock();
    if (!this.pairingWindowOpen) return PAIRING_FAILED.PAIRING_NOT_SUPPORTED;
    if (now < this.blockedUntil) return PAIRING_FAILED.REPEATED_ATTEMPTS;
    if (this.pairingOwner && now - this.pairingSince < SMP_TIMEOUT_MS)
      return PAIRING_FAILED.UNSPECIFIED_REASON;
    if (this.attemptsInWindow >= this.policy.maxAttemptsPerWindow) {
      this.windowUntil = -1;
      return PAIRING_FAILED.REPEATED_ATTEMPTS;
    }
    this.attemptsInWindow++;
    this.pairingOwner = s;
    this.pairingSince = now;
    return undefined;
  }

  private recordFailure(): void {
    this.failures++;
    this.blockedUntil = this.opts.clock() + this.policy.baseBackoffMs * 2 ** Math.min(this.failures - 1, 16);
  }

  acceptConnection(conn: Connection): void {
    let smp: SmpResponder | undefined;
    const link: LinkEnd = new LinkEnd({
      connection: conn,
      role: 'peripheral',
      random: this.opts.random,
      stats: this.stats.link,
      keyFor: (peer) => this.bondFor(peer),
      onL2cap: async (cid, payload) => {
        if (cid === CID.ATT) return gatt.handle(payload);
        if (cid === CID.SMP) return onSmp(payload);
      },
    });
    const gatt = new ToyGattServer({
      name: this.opts.name ?? 'PlushLink toy',
      handlers: this.opts.handlers,
      security: () => link.security,
      peerBonded: () => this.bondFor(link.peerAddress) !== undefined,
      send: (pdu) => link.sendL2cap(CID.ATT, pdu),
      stats: this.stats.gatt,
    });
    conn.onDisconnect(() => {
      if (smp && !smp.finished && this.pairingOwner === smp) {
        this.pairingOwner = undefined;
        this.stats.pairingsFailed++;
        this.recordFailure();
      }
    });

    const onSmp = async (pdu: Uint8Array): Promise<void> => {
      if (smp && !smp.finished) return smp.handle(pdu);
      if (pdu[0] !== SMP.PAIRING_REQUEST) return; // stray PDU of a finished pairing: ignored
      let gateReason: PairingFailedReason | undefined;
      const s: SmpResponder = new SmpResponder(
        {
          random: this.opts.random,
          ui: this.opts.pairingUi,
          localAddress: this.address,
          peerAddress: conn.centralAddress,
          send: (p) => link.sendL2cap(CID.SMP, p),
        },
        () => {
          gateReason = this.admit(s);
          return gateReason;
        },
      );
      smp = s;
      void s.outcome.then((o) => {
        if (gateReason !== undefined) {
          this.stats.pairingsRefused++;
          this.stats.lastRefusal = gateReason;
          return;
        }
        if (this.pairingOwner === s) this.pairingOwner = undefined;
        if (o.ok) {
          this.stats.pairingsSucceeded++;
          this.forget(conn.centralAddress);
          this.bonds.push({ peer: conn.centralAddress, ltk: o.ltk, authenticated: o.authenticated });
          this.windowUntil = -1; // single use: the window closes once a phone has paired
          this.failures = 0;
        } else {
          this.stats.pairingsFailed++;
          this.stats.lastRefusal = o.reason;
          this.recordFailure();
        }
      });
      await s.handle(pdu);
    };
  }
}
