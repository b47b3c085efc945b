// Test doubles for the BLE model: a human comparing two screens, scripted UIs, a recording toy firmware.
import { Air, bleAddress } from '../../device/ble/air.ts';
import type { ToyBleHandlers, ToyBleStatus } from '../../device/ble/gatt.ts';
import type { PairingUi } from '../../device/ble/pairing.ts';
import { BlePhone } from '../../device/ble/phone.ts';
import { SeededRandom } from '../../device/ble/random.ts';
import { BleToy, type PairingWindowPolicy } from '../../device/ble/toy.ts';

/** One person looking at the phone and at the toy: says yes on both only if the six digits match. */
export class HumanComparator {
  readonly shown: { phone?: string; toy?: string } = {};
  private waiting: ((ok: boolean) => void)[] = [];

  private ui(side: 'phone' | 'toy'): PairingUi {
    return {
      confirmNumericComparison: (digits) =>
        new Promise<boolean>((resolve) => {
          this.shown[side] = digits;
          this.waiting.push(resolve);
          if (this.shown.phone !== undefined && this.shown.toy !== undefined) {
            const same = this.shown.phone === this.shown.toy;
            for (const w of this.waiting) w(same);
            this.waiting = [];
          }
        }),
    };
  }

  readonly phone = this.ui('phone');
  readonly toy = this.ui('toy');
}

/** A UI that answers the same every time and remembers what it was shown. */
export function scriptedUi(answer: boolean): PairingUi & { shown: string[] } {
  const shown: string[] = [];
  return {
    shown,
    confirmNumericComparison: (d) => {
      shown.push(d);
      return answer;
    },
  };
}

/** Toy firmware double: records every call. */
export class FakeFirmware implements ToyBleHandlers {
  calls: string[] = [];
  played: Uint8Array[] = [];
  constructor(public clip: Uint8Array = new Uint8Array(0)) {}
  startRecording(): void {
    this.calls.push('startRecording');
  }
  stopRecording(): Uint8Array {
    this.calls.push('stopRecording');
    return this.clip;
  }
  playClip(envelope: Uint8Array): void {
    this.calls.push('playClip');
    this.played.push(Uint8Array.from(envelope));
  }
  getStatus(): ToyBleStatus {
    this.calls.push('getStatus');
    return { recording: false, batteryPercent: 87, clipsWaiting: 2 };
  }
}

export interface World {
  air: Air;
  toy: BleToy;
  firmware: FakeFirmware;
  human: HumanComparator;
  phone: BlePhone;
  rng: SeededRandom;
}

export function world(
  seed = 1,
  opts: { clip?: Uint8Array; policy?: Partial<PairingWindowPolicy>; toyUi?: PairingUi } = {},
): World {
  const air = new Air({ seed });
  const rng = new SeededRandom(seed * 7919 + 1);
  const human = new HumanComparator();
  const firmware = new FakeFirmware(opts.clip);
  const toy = new BleToy({
    address: bleAddress('c0:ff:ee:00:00:01'),
    handlers: firmware,
    pairingUi: opts.toyUi ?? human.toy,
    random: rng.source,
    clock: air.clock,
    ...(opts.policy ? { policy: opts.policy } : {}),
  });
  const phone = new BlePhone({
    address: bleAddress('4a:11:ce:00:00:02'),
    air,
    random: rng.source,
    pairingUi: human.phone,
  });
  return { air, toy, firmware, human, phone, rng };
}

export function bytes(n: number, seed = 3): Uint8Array {
  return new SeededRandom(seed).bytes(n);
}
