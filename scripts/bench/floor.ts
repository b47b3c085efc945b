// The unavoidable work per clip, measured in CPU time on the core the gateway runs on: one envelope and one receipt verification, and a durable append amortised over a group commit. Run by bench/gateway.ts (pinned), or alone: npx tsx scripts/bench/floor.ts
import { closeSync, fdatasyncSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeClip, sealClip, verifyClip } from '../../shared/envelope.ts';
import { generateIdentity, publicPart } from '../../shared/identity.ts';
import { seededRandom } from '../../shared/random.ts';
import { createReceipt, verifyReceipt } from '../../shared/receipt.ts';

export interface FloorFigures {
  /** CPU µs of one Ed25519 verification of an envelope of `envelopeBytes` (the gateway's check). */
  envelopeVerifyUs: number;
  /** CPU µs of one receipt verification. */
  receiptVerifyUs: number;
  /** CPU µs per record of appending `envelopeBytes` durably when `groupSize` records share one fdatasync. */
  durableAppendUs: number;
  envelopeBytes: number;
  groupSize: number;
}

/** CPU time (user + system) of `fn` run `n` times, in µs per run; the median of `rounds` rounds. */
function cpuPerRun(n: number, fn: () => void, rounds = 5): number {
  const per: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const c0 = process.cpuUsage();
    for (let i = 0; i < n; i++) fn();
    const c = process.cpuUsage(c0);
    per.push((c.user + c.system) / n);
  }
  per.sort((a, b) => a - b);
  return Math.round(per[Math.floor(per.length / 2)]! * 10) / 10;
}

export function measureFloor(opts: { envelopeBytes: number; groupSize: number }): FloorFigures {
  const rnd = seededRandom('bench-floor');
  const toy = generateIdentity('toy', rnd);
  const mum = generateIdentity('parent', rnd);
  // An envelope of the bench's size: Padmé pads the Ogg body; aim just under the size.
  const ogg = rnd(Math.max(100, opts.envelopeBytes - 500));
  const envelope = sealClip({
    sender: toy,
    recipients: [publicPart(mum)],
    sequence: 1,
    createdAt: Date.now(),
    durationMs: 8000,
    ogg,
    random: rnd,
  });
  const decoded = decodeClip(envelope);
  const receipt = createReceipt({
    recipient: mum,
    sender: toy.id,
    clipId: decoded.header.clipId,
    receivedAt: Date.now(),
  });
  // Warm up (JIT, key import caches), then measure.
  for (let i = 0; i < 200; i++) {
    verifyClip(decoded, toy.signPublicKey);
    verifyReceipt(receipt, mum.signPublicKey);
  }
  const envelopeVerifyUs = cpuPerRun(500, () => verifyClip(decodeClip(envelope), toy.signPublicKey));
  const receiptVerifyUs = cpuPerRun(500, () => verifyReceipt(receipt, mum.signPublicKey));
  const dir = mkdtempSync(join(tmpdir(), 'plk-floor-'));
  const fd = openSync(join(dir, 'append.log'), 'a', 0o600);
  const g = Math.max(1, Math.round(opts.groupSize));
  let durableAppendUs: number;
  try {
    durableAppendUs =
      Math.round(
        (cpuPerRun(
          40,
          () => {
            for (let i = 0; i < g; i++) writeSync(fd, envelope);
            fdatasyncSync(fd);
          },
          3,
        ) /
          g) *
          10,
      ) / 10;
  } finally {
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  }
  return { envelopeVerifyUs, receiptVerifyUs, durableAppendUs, envelopeBytes: envelope.length, groupSize: g };
}

// As a child process: `floor.ts <envelopeBytes> <groupSize>` prints the figures as JSON.
if (process.argv[1]?.endsWith('floor.ts')) {
  const envelopeBytes = Number(process.argv[2] ?? 18_700);
  const groupSize = Number(process.argv[3] ?? 1);
  process.stdout.write(`${JSON.stringify(measureFloor({ envelopeBytes, groupSize }))}\n`);
}
