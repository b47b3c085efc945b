// BLE pairing (Security Manager, SMP): LE Secure Connections with numeric comparison (Core Spec v5.x Vol 3 Part H §2.3.5.6, §3.5–3.6).
import type { RandomSource } from '../../shared/types.ts';
import { addressOctets, type BleAddress } from './air.ts';
import {
  f4,
  f5,
  f6,
  formatSixDigits,
  g2,
  generateP256KeyPair,
  type P256KeyPair,
  p256Dh,
} from './pairing-crypto.ts';

/** SMP command codes (Vol 3 Part H §3.3, Table 3.3). */
export const SMP = {
  PAIRING_REQUEST: 0x01,
  PAIRING_RESPONSE: 0x02,
  PAIRING_CONFIRM: 0x03,
  PAIRING_RANDOM: 0x04,
  PAIRING_FAILED: 0x05,
  PAIRING_PUBLIC_KEY: 0x0c,
  PAIRING_DHKEY_CHECK: 0x0d,
} as const;

/** IO capabilities (Vol 3 Part H §2.3.2, Table 2.3). */
export const IO_CAP = {
  DISPLAY_ONLY: 0x00,
  DISPLAY_YES_NO: 0x01,
  KEYBOARD_ONLY: 0x02,
  NO_INPUT_NO_OUTPUT: 0x03,
  KEYBOARD_DISPLAY: 0x04,
} as const;

/** AuthReq bits (Vol 3 Part H §3.5.1). */
export const AUTH_REQ = { BONDING: 0x01, MITM: 0x04, SC: 0x08, KEYPRESS: 0x10 } as const;

/** Pairing Failed reason codes (Vol 3 Part H §3.5.5, Table 3.7). */
export const PAIRING_FAILED = {
  PASSKEY_ENTRY_FAILED: 0x01,
  OOB_NOT_AVAILABLE: 0x02,
  AUTHENTICATION_REQUIREMENTS: 0x03,
  CONFIRM_VALUE_FAILED: 0x04,
  PAIRING_NOT_SUPPORTED: 0x05,
  ENCRYPTION_KEY_SIZE: 0x06,
  COMMAND_NOT_SUPPORTED: 0x07,
  UNSPECIFIED_REASON: 0x08,
  REPEATED_ATTEMPTS: 0x09,
  INVALID_PARAMETERS: 0x0a,
  DHKEY_CHECK_FAILED: 0x0b,
  NUMERIC_COMPARISON_FAILED: 0x0c,
} as const;

export type PairingFailedReason = (typeof PAIRING_FAILED)[keyof typeof PAIRING_FAILED];

/** The user interface that shows the six digits and returns the user's yes/no (injected; a test double in tests). */
export interface PairingUi {
  confirmNumericComparison(sixDigits: string): Promise<boolean> | boolean;
}

/** Pairing parameters as carried in Pairing Request / Response (Vol 3 Part H §3.5.1–3.5.2). */
export interface PairingFeatures {
  readonly ioCapability: number;
  readonly oobDataFlag: number;
  readonly authReq: number;
  readonly maxKeySize: number;
  readonly initiatorKeyDist: number;
  readonly responderKeyDist: number;
}

/** What both our endpoints offer: display + yes/no, bonding, MITM and Secure Connections required. */
export const NUMERIC_COMPARISON_FEATURES: PairingFeatures = Object.freeze({
  ioCapability: IO_CAP.DISPLAY_YES_NO,
  oobDataFlag: 0,
  authReq: AUTH_REQ.BONDING | AUTH_REQ.MITM | AUTH_REQ.SC,
  maxKeySize: 16,
  initiatorKeyDist: 0,
  responderKeyDist: 0,
});

export function encodeFeatures(code: number, f: PairingFeatures): Uint8Array {
  return Uint8Array.of(
    code,
    f.ioCapability,
    f.oobDataFlag,
    f.authReq,
    f.maxKeySize,
    f.initiatorKeyDist,
    f.responderKeyDist,
  );
}

function decodeFeatures(pdu: Uint8Array): PairingFeatures | undefined {
  if (pdu.length !== 7) return undefined;
  return {
    ioCapability: pdu[1]!,
    oobDataFlag: pdu[2]!,
    authReq: pdu[3]!,
    maxKeySize: pdu[4]!,
    initiatorKeyDist: pdu[5]!,
    responderKeyDist: pdu[6]!,
  };
}

const hasDisplayYesNo = (io: number): boolean =>
  io === IO_CAP.DISPLAY_YES_NO || io === IO_CAP.KEYBOARD_DISPLAY;

/**
 * Association model for LE Secure Connections (Vol 3 Part H §2.3.5.1, Tables 2.6 and 2.8): OOB if a
 * side has OOB data, Just Works if neither side asks for MITM, else by IO capabilities.
 */
export function associationModel(
  init: PairingFeatures,
  resp: PairingFeatures,
): 'numeric-comparison' | 'just-works' | 'passkey' | 'oob' | 'legacy' {
  if (!(init.authReq & AUTH_REQ.SC) || !(resp.authReq & AUTH_REQ.SC)) return 'legacy';
  if (init.oobDataFlag || resp.oobDataFlag) return 'oob';
  if (!(init.authReq & AUTH_REQ.MITM) && !(resp.authReq & AUTH_REQ.MITM)) return 'just-works';
  const a = init.ioCapability;
  const b = resp.ioCapability;
  if (a === IO_CAP.NO_INPUT_NO_OUTPUT || b === IO_CAP.NO_INPUT_NO_OUTPUT) return 'just-works';
  if (hasDisplayYesNo(a) && hasDisplayYesNo(b)) return 'numeric-comparison';
  if (a === IO_CAP.DISPLAY_ONLY && b === IO_CAP.DISPLAY_ONLY) return 'just-works';
  if ((a === IO_CAP.DISPLAY_ONLY || a === IO_CAP.DISPLAY_YES_NO) && b === IO_CAP.DISPLAY_YES_NO) {
    return 'just-works';
  }
  return 'passkey';
}

const rev = (b: Uint8Array): Uint8Array => Uint8Array.from(b).reverse();
const eq = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && a.every((x, i) => x === b[i]);
const ioCapOctets = (f: PairingFeatures): Uint8Array =>
  Uint8Array.of(f.authReq, f.oobDataFlag, f.ioCapability);

/** Outcome of one pairing on one side. */
export type PairingOutcome =
  | { readonly ok: true; readonly ltk: Uint8Array; readonly authenticated: true; readonly sixDigits: string }
  | { readonly ok: false; readonly reason: PairingFailedReason; readonly sentByPeer: boolean };

export interface SmpSideOptions {
  readonly random: RandomSource;
  readonly ui: PairingUi;
  readonly localAddress: BleAddress;
  readonly peerAddress: BleAddress;
  /** Sends an SMP PDU on L2CAP channel 0x0006. */
  readonly send: (pdu: Uint8Array) => void;
  readonly features?: PairingFeatures;
  /** Fixed key pair (tests with the spec's debug keys); otherwise a fresh one per pairing. */
  readonly keyPair?: P256KeyPair;
}

type Stage = 'idle' | 'features' | 'public-key' | 'confirm' | 'random' | 'user' | 'dhkey-check' | 'done';

/** Shared state and helpers of both roles. */
abstract class SmpSide {
  protected stage: Stage = 'idle';
  protected readonly own: P256KeyPair;
  protected peerX: Uint8Array | undefined;
  protected peerY: Uint8Array | undefined;
  protected dhKey: Uint8Array | undefined;
  protected localFeatures: PairingFeatures;
  protected peerFeatures: PairingFeatures | undefined;
  protected localNonce: Uint8Array | undefined;
  protected peerNonce: Uint8Array | undefined;
  protected macKey: Uint8Array | undefined;
  protected ltk: Uint8Array | undefined;
  protected sixDigits = '';
  private settle: ((o: PairingOutcome) => void) | undefined;
  /** Resolves once pairing succeeded or failed. */
  readonly outcome: Promise<PairingOutcome>;

  constructor(protected readonly opts: SmpSideOptions) {
    this.own = opts.keyPair ?? generateP256KeyPair(opts.random);
    this.localFeatures = opts.features ?? NUMERIC_COMPARISON_FEATURES;
    this.outcome = new Promise((resolve) => {
      this.settle = resolve;
    });
  }

  get finished(): boolean {
    return this.stage === 'done';
  }

  protected fail(reason: PairingFailedReason, sentByPeer = false): void {
    if (this.stage === 'done') return;
    this.stage = 'done';
    if (!sentByPeer) this.opts.send(Uint8Array.of(SMP.PAIRING_FAILED, reason));
    this.settle?.({ ok: false, reason, sentByPeer });
  }

  protected succeed(): void {
    this.stage = 'done';
    this.settle?.({ ok: true, ltk: this.ltk!, authenticated: true, sixDigits: this.sixDigits });
  }

  protected publicKeyPdu(): Uint8Array {
    const pdu = new Uint8Array(65);
    pdu[0] = SMP.PAIRING_PUBLIC_KEY;
    pdu.set(rev(this.own.x), 1);
    pdu.set(rev(this.own.y), 33);
    return pdu;
  }

  /** Takes the peer's public key; false if it is invalid (off the curve, or our own key reflected). */
  protected takePublicKey(pdu: Uint8Array): boolean {
    if (pdu.length !== 65) return false;
    const x = rev(pdu.subarray(1, 33));
    const y = rev(pdu.subarray(33, 65));
    if (eq(x, this.own.x)) return false; // reflected key (Vol 3 Part H §2.3.5.6.1 note)
    const dh = p256Dh(this.own, x, y);
    if (!dh) return false;
    this.peerX = x;
    this.peerY = y;
    this.dhKey = dh;
    return true;
  }

  /** Handles one SMP PDU from the peer. */
  async handle(pdu: Uint8Array): Promise<void> {
    if (this.stage === 'done') return;
    const code = pdu[0];
    if (code === SMP.PAIRING_FAILED) {
      this.fail((pdu[1] ?? PAIRING_FAILED.UNSPECIFIED_REASON) as PairingFailedReason, true);
      return;
    }
    await this.step(code ?? -1, pdu);
  }

  protected abstract step(code: number, pdu: Uint8Array): Promise<void>;

  /** Asks the local user to compare the six digits. */
  protected async userConfirms(): Promise<boolean> {
    try {
      return (await this.opts.ui.confirmNumericComparison(this.sixDigits)) === true;
    } catch {
      return false;
    }
  }
}

/**
 * Initiator (the phone, central "A"): Pairing Request, Public Key, checks Cb, shows Va, sends Ea,
 * checks Eb (Vol 3 Part H §2.3.5.6.2–2.3.5.6.5, Figures 2.3–2.5).
 */
export class SmpInitiator extends SmpSide {
  private cb: Uint8Array | undefined;

  /** Sends the Pairing Request. */
  start(): void {
    if (this.stage !== 'idle') throw new Error('pairing already started');
    this.stage = 'features';
    this.opts.send(encodeFeatures(SMP.PAIRING_REQUEST, this.localFeatures));
  }

  protected async step(code: number, pdu: Uint8Array): Promise<void> {
    const { localAddress: a, peerAddress: b } = this.opts;
    switch (this.stage) {
      case 'features': {
        const resp = code === SMP.PAIRING_RESPONSE ? decodeFeatures(pdu) : undefined;
        if (!resp) return this.fail(PAIRING_FAILED.UNSPECIFIED_REASON);
        this.peerFeatures = resp;
        if (associationModel(this.localFeatures, resp) !== 'numeric-comparison') {
          return this.fail(PAIRING_FAILED.AUTHENTICATION_REQUIREMENTS);
        }
        if (resp.maxKeySize < 16) return this.fail(PAIRING_FAILED.ENCRYPTION_KEY_SIZE);
        this.stage = 'public-key';
        this.opts.send(this.publicKeyPdu());
        return;
      }
      case 'public-key': {
        if (code !== SMP.PAIRING_PUBLIC_KEY || !this.takePublicKey(pdu)) {
          return this.fail(PAIRING_FAILED.INVALID_PARAMETERS);
        }
        this.stage = 'confirm';
        return;
      }
      case 'confirm': {
        if (code !== SMP.PAIRING_CONFIRM || pdu.length !== 17)
          return this.fail(PAIRING_FAILED.UNSPECIFIED_REASON);
        this.cb = rev(pdu.subarray(1));
        this.localNonce = this.opts.random(16); // Na
        this.stage = 'random';
        this.opts.send(Uint8Array.of(SMP.PAIRING_RANDOM, ...rev(this.localNonce)));
        return;
      }
      case 'random': {
        if (code !== SMP.PAIRING_RANDOM || pdu.length !== 17)
          return this.fail(PAIRING_FAILED.UNSPECIFIED_REASON);
        const nb = rev(pdu.subarray(1));
        this.peerNonce = nb;
        const pkax = this.own.x;
        const pkbx = this.peerX!;
        // Cb = f4(PKbx, PKax, Nb, 0) (§2.3.5.6.2)
        if (!eq(f4(pkbx, pkax, nb, 0), this.cb!)) return this.fail(PAIRING_FAILED.CONFIRM_VALUE_FAILED);
        const na = this.localNonce!;
        this.sixDigits = formatSixDigits(g2(pkax, pkbx, na, nb)); // Va
        // The user decides while PDUs keep flowing (a Pairing Failed from the peer must get through).
        this.stage = 'user';
        void this.userConfirms().then((confirmed) => {
          if (this.stage !== 'user') return; // failed meanwhile
          if (!confirmed) return this.fail(PAIRING_FAILED.NUMERIC_COMPARISON_FAILED);
          const keys = f5(this.dhKey!, na, nb, addressOctets(a), addressOctets(b));
          this.macKey = keys.macKey;
          this.ltk = keys.ltk;
          // Ea = f6(MacKey, Na, Nb, rb, IOcapA, A, B), rb = 0 for numeric comparison (§2.3.5.6.5)
          const io = ioCapOctets(this.localFeatures);
          const ea = f6(keys.macKey, na, nb, new Uint8Array(16), io, addressOctets(a), addressOctets(b));
          this.stage = 'dhkey-check';
          this.opts.send(Uint8Array.of(SMP.PAIRING_DHKEY_CHECK, ...rev(ea)));
        });
        return;
      }
      case 'dhkey-check': {
        if (code !== SMP.PAIRING_DHKEY_CHECK || pdu.length !== 17)
          return this.fail(PAIRING_FAILED.UNSPECIFIED_REASON);
        const eb = f6(
          this.macKey!,
          this.peerNonce!,
          this.localNonce!,
          new Uint8Array(16),
          ioCapOctets(this.peerFeatures!),
          addressOctets(b),
          addressOctets(a),
        );
        if (!eq(rev(pdu.subarray(1)), eb)) return this.fail(PAIRING_FAILED.DHKEY_CHECK_FAILED);
        return this.succeed();
      }
      default:
        return this.fail(PAIRING_FAILED.UNSPECIFIED_REASON);
    }
  }
}

/** The responder's pairing policy, checked on the Pairing Request before anything else. */
export type PairingPolicy = (request: PairingFeatures) => PairingFailedReason | undefined;

/**
 * Responder (the toy, peripheral "B"): answers the Pairing Request (after `policy`), sends its public
 * key and Cb, reveals Nb, shows Vb, checks Ea and answers Eb.
 */
export class SmpResponder extends SmpSide {
  private ea: Uint8Array | undefined;

  constructor(
    opts: SmpSideOptions,
    private readonly policy: PairingPolicy = () => undefined,
  ) {
    super(opts);
  }

  protected async step(code: number, pdu: Uint8Array): Promise<void> {
    const { localAddress: b, peerAddress: a } = this.opts;
    switch (this.stage) {
      case 'idle': {
        const req = code === SMP.PAIRING_REQUEST ? decodeFeatures(pdu) : undefined;
        if (!req) return this.fail(PAIRING_FAILED.COMMAND_NOT_SUPPORTED);
        const refused = this.policy(req);
        if (refused !== undefined) return this.fail(refused);
        if (associationModel(req, this.localFeatures) !== 'numeric-comparison') {
          return this.fail(PAIRING_FAILED.AUTHENTICATION_REQUIREMENTS);
        }
        if (req.maxKeySize < 16) return this.fail(PAIRING_FAILED.ENCRYPTION_KEY_SIZE);
        this.peerFeatures = req;
        this.stage = 'public-key';
        this.opts.send(encodeFeatures(SMP.PAIRING_RESPONSE, this.localFeatures));
        return;
      }
      case 'public-key': {
        if (code !== SMP.PAIRING_PUBLIC_KEY || !this.takePublicKey(pdu)) {
          return this.fail(PAIRING_FAILED.INVALID_PARAMETERS);
        }
        this.opts.send(this.publicKeyPdu());
        // Cb = f4(PKbx, PKax, Nb, 0)
        this.localNonce = this.opts.random(16); // Nb
        const cb = f4(this.own.x, this.peerX!, this.localNonce, 0);
        this.stage = 'random';
        this.opts.send(Uint8Array.of(SMP.PAIRING_CONFIRM, ...rev(cb)));
        return;
      }
      case 'random': {
        if (code !== SMP.PAIRING_RANDOM || pdu.length !== 17)
          return this.fail(PAIRING_FAILED.UNSPECIFIED_REASON);
        const na = rev(pdu.subarray(1));
        const nb = this.localNonce!;
        this.peerNonce = na;
        this.opts.send(Uint8Array.of(SMP.PAIRING_RANDOM, ...rev(nb)));
        this.sixDigits = formatSixDigits(g2(this.peerX!, this.own.x, na, nb)); // Vb = g2(PKax, PKbx, Na, Nb)
        const keys = f5(this.dhKey!, na, nb, addressOctets(a), addressOctets(b));
        this.macKey = keys.macKey;
        this.ltk = keys.ltk;
        this.stage = 'dhkey-check';
        void this.userConfirms().then((confirmed) => {
          if (this.stage !== 'dhkey-check') return; // failed meanwhile
          if (!confirmed) return this.fail(PAIRING_FAILED.NUMERIC_COMPARISON_FAILED);
          this.userConfirmed = true;
          if (this.ea) this.checkEa();
        });
        return;
      }
      case 'dhkey-check': {
        if (code !== SMP.PAIRING_DHKEY_CHECK || pdu.length !== 17)
          return this.fail(PAIRING_FAILED.UNSPECIFIED_REASON);
        this.ea = rev(pdu.subarray(1));
        if (this.userConfirmed) return this.checkEa();
        return;
      }
      default:
        return this.fail(PAIRING_FAILED.UNSPECIFIED_REASON);
    }
  }

  private userConfirmed = false;

  /** Checks Ea, and only after the local user confirmed answers with Eb (§2.3.5.6.5). */
  private checkEa(): void {
    const { localAddress: b, peerAddress: a } = this.opts;
    const zero = new Uint8Array(16);
    const expected = f6(
      this.macKey!,
      this.peerNonce!,
      this.localNonce!,
      zero,
      ioCapOctets(this.peerFeatures!),
      addressOctets(a),
      addressOctets(b),
    );
    if (!eq(expected, this.ea!)) {
      this.fail(PAIRING_FAILED.DHKEY_CHECK_FAILED);
      return;
    }
    const eb = f6(
      this.macKey!,
      this.localNonce!,
      this.peerNonce!,
      zero,
      ioCapOctets(this.localFeatures),
      addressOctets(b),
      addressOctets(a),
    );
    this.opts.send(Uint8Array.of(SMP.PAIRING_DHKEY_CHECK, ...rev(eb)));
    this.succeed();
  }
}
