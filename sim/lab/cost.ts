// The lab's toy-MCU cost model: Opus encode/decode and crypto time from documented calibration constants, and energy/battery arithmetic (docs/LAB.md §3.4–3.6).
import type { LabConstants } from './constants.ts';
import type { CryptoWork } from './protocol.ts';

/** Energy in mJ of `ma` milliamperes for `ms` milliseconds at `volts`: mA × ms = µC, × V = µJ. */
export function energyMj(ma: number, ms: number, volts: number): number {
  return (ma * ms * volts) / 1000;
}

/** Days a battery of `mah` lasts at `dailyMj` per day (rated capacity × usable share × supply voltage). */
export function batteryDays(mah: number, dailyMj: number, c: LabConstants): number {
  const capacityMj = mah * 3.6 * c.supplyVolts * c.battery.usableFraction * 1000;
  return dailyMj > 0 ? capacityMj / dailyMj : Number.POSITIVE_INFINITY;
}

/** Average current in mA that spends `dailyMj` over a day. */
export function averageCurrentMa(dailyMj: number, c: LabConstants): number {
  return (dailyMj * 1000) / (86_400_000 * c.supplyVolts);
}

/** MCU milliseconds for a number of host-CPU milliseconds of the same libopus work. */
export function hostToMcuMs(hostMs: number, c: LabConstants): number {
  return (hostMs * c.codecCost.hostClockMhz * c.mcu.cyclesPerHostCycle) / c.mcu.clockMhz;
}

/** MCU milliseconds to encode `audioMs` of audio at `complexity` (calibration table, or a measured host figure). */
export function encodeMcuMs(
  audioMs: number,
  complexity: number,
  c: LabConstants,
  measuredHostMsPerSecond?: number,
): number {
  const perSecond = measuredHostMsPerSecond ?? c.codecCost.encodeHostMsPerSecond[complexity];
  if (perSecond === undefined) throw new RangeError(`complexity must be 0..10, got ${complexity}`);
  return hostToMcuMs((perSecond * audioMs) / 1000, c);
}

export function decodeMcuMs(audioMs: number, c: LabConstants): number {
  return hostToMcuMs((c.codecCost.decodeHostMsPerSecond * audioMs) / 1000, c);
}

const cyclesToMs = (cycles: number, c: LabConstants): number => cycles / (c.mcu.clockMhz * 1000);

/** Making a message: per recipient an ephemeral key pair and a shared secret, the secretbox, the signature (SHA-512 twice over the signed bytes). */
export function sealMcuMs(w: CryptoWork, c: LabConstants): number {
  const k = c.crypto;
  return cyclesToMs(
    w.sealedKeys * 2 * k.x25519Cycles +
      w.secretboxBytes * k.secretboxCyclesPerByte +
      w.signatures * k.ed25519SignCycles +
      2 * w.signedBytes * k.sha512CyclesPerByte,
    c,
  );
}

/** Opening it as one recipient: verify (SHA-512 once), unseal our key (one shared secret), open the secretbox. */
export function openMcuMs(w: CryptoWork, c: LabConstants): number {
  const k = c.crypto;
  return cyclesToMs(
    (w.sealedKeys > 0 ? k.x25519Cycles : 0) +
      w.secretboxBytes * k.secretboxCyclesPerByte +
      w.signatures * k.ed25519VerifyCycles +
      w.signedBytes * k.sha512CyclesPerByte,
    c,
  );
}

/** Signing `bytes` (a receipt, a connect token). */
export function signMcuMs(bytes: number, c: LabConstants): number {
  return cyclesToMs(c.crypto.ed25519SignCycles + 2 * bytes * c.crypto.sha512CyclesPerByte, c);
}

/** Verifying a signature over `bytes` (the gateway's proof and roster). */
export function verifyMcuMs(bytes: number, c: LabConstants): number {
  return cyclesToMs(c.crypto.ed25519VerifyCycles + bytes * c.crypto.sha512CyclesPerByte, c);
}
