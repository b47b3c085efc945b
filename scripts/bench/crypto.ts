// `npm run bench`: clip seal / open / verify throughput, Node crypto vs tweetnacl for Ed25519 + X25519, medians of alternating rounds.
//
// For 1 kB, 16 kB and 64 kB Ogg bodies (2 recipients): seal = pad + secretbox + 2 sealed boxes (X25519) + Ed25519 sign;
// open = decode + Ed25519 verify + sealed-box open (X25519) + secretbox open + unpad; verify = decode + Ed25519 verify
// (the gateway's path); ed25519-verify = the bare signature check over the same number of bytes. XSalsa20-Poly1305
// and BLAKE2b are the same code in both contenders: only Ed25519 and X25519 differ. Contenders alternate within
// every round (order flipped each round); figures are medians over the rounds, from process CPU time so other jobs
// on a shared machine distort them less (wall-clock medians are kept in the JSON). Results: bench-results/crypto.json.
// Options: --rounds N (default 7), --min-ms N per sample (default 150), --quick (3 rounds, 60 ms).
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { type CryptoSuite, nodeCryptoSuite, tweetnaclSuite } from '../../shared/crypto.ts';
import { decodeClip, openClip, sealClip, verifyClip } from '../../shared/envelope.ts';
import { generateIdentity } from '../../shared/identity.ts';
import { CONTEXT } from '../../shared/limits.ts';
import { seededRandom } from '../../shared/random.ts';
import { signedMessage } from '../../shared/signed.ts';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string' },
    'min-ms': { type: 'string' },
    quick: { type: 'boolean' },
  },
});
const ROUNDS = values.quick ? 3 : Number(values.rounds ?? 7);
const MIN_MS = values.quick ? 60 : Number(values['min-ms'] ?? 150);
if (!Number.isInteger(ROUNDS) || ROUNDS < 1 || !Number.isFinite(MIN_MS) || MIN_MS <= 0) {
  process.stderr.write('bench: --rounds must be a positive integer and --min-ms a positive number\n');
  process.exit(2);
}

const SIZES = [1024, 16 * 1024, 64 * 1024];
const OPS = ['seal', 'open', 'verify', 'ed25519-verify'] as const;
type Op = (typeof OPS)[number];
const SUITES: CryptoSuite[] = [nodeCryptoSuite(), tweetnaclSuite()];

const random = seededRandom('bench/crypto');
const toy = generateIdentity('toy', random);
const mom = generateIdentity('parent', random);
const dad = generateIdentity('parent', random);

interface Fixture {
  ogg: Uint8Array;
  envelope: Uint8Array;
  message: Uint8Array;
  signature: Uint8Array;
}

const fixtures = new Map<number, Fixture>();
for (const size of SIZES) {
  const ogg = random(size);
  const envelope = sealClip({
    sender: toy,
    recipients: [mom, dad],
    sequence: 1,
    createdAt: 0,
    durationMs: 1000,
    ogg,
  });
  const clip = decodeClip(envelope);
  fixtures.set(size, {
    ogg,
    envelope,
    message: signedMessage(CONTEXT.CLIP, clip.signed),
    signature: clip.signature,
  });
}

let sink = 0;
function operation(op: Op, size: number, crypto: CryptoSuite): () => void {
  const f = fixtures.get(size)!;
  let seq = 1;
  switch (op) {
    case 'seal':
      return () => {
        sink ^= sealClip({
          sender: toy,
          recipients: [mom, dad],
          sequence: seq++,
          createdAt: 0,
          durationMs: 1000,
          ogg: f.ogg,
          crypto,
        }).length;
      };
    case 'open':
      return () => {
        sink ^= openClip(f.envelope, { recipient: mom, sender: toy, crypto }).ogg.length;
      };
    case 'verify':
      return () => {
        verifyClip(decodeClip(f.envelope), toy.signPublicKey, crypto);
        sink ^= 1;
      };
    case 'ed25519-verify':
      return () => {
        if (!crypto.verify(toy.signPublicKey, f.message, f.signature))
          throw new Error('bench: signature did not verify');
        sink ^= 1;
      };
  }
}

interface Sample {
  ops: number;
  cpuMs: number;
  wallMs: number;
}

function sample(fn: () => void): Sample {
  let ops = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let wall = 0;
  do {
    fn();
    ops++;
    wall = performance.now() - t0;
  } while (wall < MIN_MS || ops < 3);
  const cpu = process.cpuUsage(cpu0);
  return { ops, cpuMs: (cpu.user + cpu.system) / 1000, wallMs: wall };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

// Warm-up: every operation once per contender, then a short untimed run.
for (const op of OPS) for (const size of SIZES) for (const s of SUITES) operation(op, size, s)();

interface Row {
  op: Op;
  bytes: number;
  suite: string;
  cpuOpsPerSec: number[];
  wallOpsPerSec: number[];
}
const rows: Row[] = [];
for (const op of OPS) {
  for (const size of SIZES) {
    for (const s of SUITES)
      rows.push({ op, bytes: size, suite: s.name, cpuOpsPerSec: [], wallOpsPerSec: [] });
  }
}
const rowOf = (op: Op, size: number, suite: string): Row =>
  rows.find((r) => r.op === op && r.bytes === size && r.suite === suite)!;

const started = Date.now();
for (let round = 0; round < ROUNDS; round++) {
  const order = round % 2 === 0 ? SUITES : [...SUITES].reverse();
  for (const op of OPS) {
    for (const size of SIZES) {
      for (const s of order) {
        const r = sample(operation(op, size, s));
        const row = rowOf(op, size, s.name);
        row.cpuOpsPerSec.push((r.ops * 1000) / Math.max(r.cpuMs, 0.001));
        row.wallOpsPerSec.push((r.ops * 1000) / r.wallMs);
      }
    }
  }
  process.stderr.write(`bench: round ${round + 1}/${ROUNDS} done\n`);
}

const fmt = (n: number): string => (n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(1));
const label = (bytes: number): string => `${bytes / 1024} kB`;
const table: { op: Op; size: string; node: number; tweetnacl: number; ratio: number; nodeMBps: number }[] =
  [];
for (const op of OPS) {
  for (const size of SIZES) {
    const n = median(rowOf(op, size, 'node').cpuOpsPerSec);
    const t = median(rowOf(op, size, 'tweetnacl').cpuOpsPerSec);
    table.push({ op, size: label(size), node: n, tweetnacl: t, ratio: n / t, nodeMBps: (n * size) / 1e6 });
  }
}

const header = ['operation', 'body', 'node ops/s', 'tweetnacl ops/s', 'node/tweetnacl', 'node MB/s'];
const lines = table.map((r) => [
  r.op,
  r.size,
  fmt(r.node),
  fmt(r.tweetnacl),
  `${r.ratio.toFixed(1)}×`,
  r.nodeMBps.toFixed(1),
]);
const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
const pad = (cells: string[]): string =>
  `| ${cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
const out = [
  pad(header),
  `|${widths.map((w, i) => (i < 2 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`,
  ...lines.map(pad),
];
process.stdout.write(
  `PlushLink crypto benchmark: ${ROUNDS} rounds × ${MIN_MS} ms per sample, medians of CPU-time ops/s, 2 recipients\n`,
);
process.stdout.write(`${out.join('\n')}\n`);

const root = new URL('../../', import.meta.url).pathname;
const outDir = join(root, 'bench-results');
mkdirSync(outDir, { recursive: true });
const file = join(outDir, 'crypto.json');
writeFileSync(
  file,
  `${JSON.stringify(
    {
      benchmark: 'crypto',
      date: new Date(started).toISOString(),
      durationMs: Date.now() - started,
      node: process.version,
      cpu: cpus()[0]?.model ?? 'unknown',
      cores: cpus().length,
      rounds: ROUNDS,
      minMsPerSample: MIN_MS,
      recipients: 2,
      note: 'ops/s medians from process CPU time; wall-clock medians alongside. Only Ed25519 and X25519 differ between contenders.',
      results: rows.map((r) => ({
        op: r.op,
        bytes: r.bytes,
        suite: r.suite,
        cpuOpsPerSecMedian: median(r.cpuOpsPerSec),
        wallOpsPerSecMedian: median(r.wallOpsPerSec),
        cpuOpsPerSec: r.cpuOpsPerSec,
        wallOpsPerSec: r.wallOpsPerSec,
      })),
      summary: table,
      sink,
    },
    null,
    2,
  )}\n`,
);
process.stdout.write(`results: ${file}\n`);
