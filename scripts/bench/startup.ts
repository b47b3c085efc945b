// `npm run bench:startup`: wall time to start the `plushlink` CLI (compiled dist/ via bin/plushlink.js) against a bare `node -e 0`, medians of alternating runs.
//
// Commands: `node -e 0` (the reference), `node bin/plushlink.js --version`, `node bin/plushlink.js keys show DIR` (a
// key directory made once with `keys new --role toy` in a temporary directory), each run to completion; after a
// warm-up, one run of each per round, the order reversed every round. Target: every plushlink command within 3× of
// `node -e 0`. `npx plushlink --version` (npm's own start-up on top) is measured a few times for information only.
// Needs a build (`npm install` or `npm run build`). Results: bench-results/startup.json.
// Options: --runs N (default 15), --npx-runs N (default 3, 0 to skip), --quick (5 runs, 1 npx run).
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    runs: { type: 'string' },
    'npx-runs': { type: 'string' },
    quick: { type: 'boolean' },
  },
});
const RUNS = values.quick ? 5 : Number(values.runs ?? 15);
const NPX_RUNS = values.quick ? 1 : Number(values['npx-runs'] ?? 3);
const WARMUP = 2;
const TARGET = 3;
if (!Number.isInteger(RUNS) || RUNS < 1 || !Number.isInteger(NPX_RUNS) || NPX_RUNS < 0) {
  process.stderr.write('bench: --runs must be a positive integer and --npx-runs a non-negative integer\n');
  process.exit(2);
}

const root = new URL('../../', import.meta.url).pathname;
const bin = join(root, 'bin', 'plushlink.js');
const npx = process.platform === 'win32' ? 'npx.cmd' : 'npx';

/** Runs `cmd args` to completion in the repo root and returns its wall time in ms; exits the bench if it fails. */
function timeRun(cmd: string, args: readonly string[]): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { cwd: root, encoding: 'utf8', shell: cmd === npx && npx.endsWith('.cmd') });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) {
    process.stderr.write(
      `bench: \`${[cmd, ...args].join(' ')}\` failed (${r.status ?? r.signal}): ${r.stderr}`,
    );
    process.exit(1);
  }
  return ms;
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

const started = Date.now();
const tmp = mkdtempSync(join(tmpdir(), 'plushlink-startup-'));
const keyDir = join(tmp, 'toy');
timeRun(process.execPath, [bin, 'keys', 'new', '--role', 'toy', '--out', keyDir]);

interface Contender {
  readonly name: string;
  readonly cmd: string;
  readonly args: readonly string[];
  readonly ms: number[];
}
const contenders: Contender[] = [
  { name: 'node -e 0', cmd: process.execPath, args: ['-e', '0'], ms: [] },
  { name: 'plushlink --version', cmd: process.execPath, args: [bin, '--version'], ms: [] },
  { name: 'plushlink keys show DIR', cmd: process.execPath, args: [bin, 'keys', 'show', keyDir], ms: [] },
];
for (let i = 0; i < WARMUP; i++) for (const c of contenders) timeRun(c.cmd, c.args);
for (let round = 0; round < RUNS; round++) {
  const order = round % 2 ? [...contenders].reverse() : contenders;
  for (const c of order) c.ms.push(timeRun(c.cmd, c.args));
}
const npxMs: number[] = [];
if (NPX_RUNS > 0) {
  timeRun(npx, ['plushlink', '--version']); // warm-up: npm's own caches
  for (let i = 0; i < NPX_RUNS; i++) npxMs.push(timeRun(npx, ['plushlink', '--version']));
}
rmSync(tmp, { recursive: true, force: true });

const reference = median(contenders[0]!.ms);
const rows = contenders.map((c, i) => {
  const med = median(c.ms);
  const ratio = med / reference;
  return {
    command: c.name,
    medianMs: med,
    minMs: Math.min(...c.ms),
    ratio,
    target: i === 0 ? null : ratio <= TARGET ? ('met' as const) : ('missed' as const),
    ms: c.ms,
  };
});
const npxRow =
  npxMs.length > 0
    ? { command: 'npx plushlink --version', medianMs: median(npxMs), minMs: Math.min(...npxMs), ms: npxMs }
    : null;

const header = ['command', 'median ms', 'min ms', `× node -e 0`, `target ≤ ${TARGET}×`];
const lines = [
  ...rows.map((r) => [
    r.command,
    r.medianMs.toFixed(0),
    r.minMs.toFixed(0),
    r.ratio.toFixed(2),
    r.target ?? 'reference',
  ]),
  ...(npxRow
    ? [
        [
          npxRow.command,
          npxRow.medianMs.toFixed(0),
          npxRow.minMs.toFixed(0),
          (npxRow.medianMs / reference).toFixed(2),
          'information',
        ],
      ]
    : []),
];
const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
const pad = (cells: string[]): string =>
  `| ${cells.map((c, i) => (i === 0 || i === 4 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
const out = [
  pad(header),
  `|${widths.map((w, i) => (i === 0 || i === 4 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`,
  ...lines.map(pad),
];
process.stdout.write(
  `PlushLink startup benchmark: medians of ${RUNS} alternating runs after ${WARMUP} warm-ups, wall time` +
    `${npxRow ? `; npx: ${npxMs.length} run(s) after 1 warm-up` : ''}\n`,
);
process.stdout.write(`${out.join('\n')}\n`);
const missed = rows.filter((r) => r.target === 'missed');
process.stdout.write(
  missed.length === 0
    ? `target met: every plushlink command within ${TARGET}× of node -e 0\n`
    : `target missed: ${missed.map((r) => r.command).join(', ')} above ${TARGET}× of node -e 0\n`,
);

const outDir = join(root, 'bench-results');
mkdirSync(outDir, { recursive: true });
const file = join(outDir, 'startup.json');
writeFileSync(
  file,
  `${JSON.stringify(
    {
      benchmark: 'startup',
      date: new Date(started).toISOString(),
      durationMs: Date.now() - started,
      node: process.version,
      cpu: cpus()[0]?.model ?? 'unknown',
      cores: cpus().length,
      runs: RUNS,
      warmup: WARMUP,
      targetRatio: TARGET,
      note: 'wall-clock ms of whole processes, medians of alternating runs; npx is information only (npm start-up on top).',
      referenceMs: reference,
      results: rows,
      npx: npxRow,
    },
    null,
    2,
  )}\n`,
);
process.stdout.write(`results: ${file}\n`);
