// `npm run bench:codec`: Opus encode throughput (project path vs C libopus vs opusscript), pipeline cost, memory.
//
// Same PCM (test/fixtures/speech-16k.wav), same settings (16 kHz mono, 20 ms, VOIP, 24 kbit/s) at complexity
// 10, 5 and 0. Contenders run alternately, ROUNDS times each after a warm-up; medians are reported as
// × realtime on one core, from CPU time (process.cpuUsage / CLOCK_PROCESS_CPUTIME_ID) so that other jobs on
// a shared machine distort the figures less than wall time would (wall-time medians are kept in the JSON). The C reference is compiled at bench time against the system libopus; without
// libopus-dev (or a C compiler) that column is skipped with a message. Results: bench-results/codec.json.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { readWav } from '../../device/audio/wav.ts';
import { encodePcmToOgg } from '../../device/codec/clip.ts';
import { createEncoder } from '../../device/codec/opus.ts';
import { sealClip } from '../../shared/envelope.ts';
import { generateIdentity } from '../../shared/identity.ts';
import { seededRandom } from '../../shared/random.ts';

const ROUNDS = 7;
const COMPLEXITIES = [10, 5, 0] as const;
const RATE = 16000;
const FRAME = 320;
const BITRATE = 24000;

const root = new URL('../../', import.meta.url).pathname;
const outDir = join(root, 'bench-results');
const tmpDir = join(outDir, 'codec-tmp');
mkdirSync(tmpDir, { recursive: true });

const pcm = readWav(readFileSync(join(root, 'test/fixtures/speech-16k.wav'))).samples;
const frames = Math.floor(pcm.length / FRAME);
const audioSeconds = (frames * FRAME) / RATE;
const rawPath = join(tmpDir, 'speech-16k.raw');
writeFileSync(rawPath, Buffer.from(pcm.buffer, pcm.byteOffset, frames * FRAME * 2));

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

// ------------------------------------------------------------------------------------------ contenders

interface Timing {
  wall: number;
  cpu: number;
}
type Contender = { name: string; run: (complexity: number) => Timing };

function timed(fn: () => void): Timing {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  fn();
  const wall = (performance.now() - t0) / 1000;
  const c = process.cpuUsage(c0);
  return { wall, cpu: (c.user + c.system) / 1e6 };
}

/** The project's path: device/codec/opus.ts over @discordjs/opus (fresh encoder per run, as the C side). */
const project: Contender = {
  name: 'project (@discordjs/opus)',
  run: (complexity) =>
    timed(() => {
      const enc = createEncoder({ complexity, bitrate: BITRATE });
      for (let f = 0; f < frames; f++) enc.encode(pcm.subarray(f * FRAME, (f + 1) * FRAME));
      enc.destroy();
    }),
};

interface OpusScriptInstance {
  encode(buf: Buffer, frameSize: number): Buffer;
  setBitrate(b: number): void;
  encoderCTL(ctl: number, v: number): void;
  delete(): void;
}
type OpusScriptCtor = new (rate: number, channels: number, app: number) => OpusScriptInstance;

function loadOpusScript(): OpusScriptCtor | undefined {
  try {
    return createRequire(import.meta.url)('opusscript') as OpusScriptCtor;
  } catch {
    return undefined;
  }
}
const OpusScript = loadOpusScript();
const opusscript: Contender | undefined = OpusScript && {
  name: 'opusscript (wasm)',
  run: (complexity) =>
    timed(() => {
      const enc = new OpusScript(RATE, 1, 2048);
      enc.setBitrate(BITRATE);
      enc.encoderCTL(4010, complexity);
      for (let f = 0; f < frames; f++) {
        enc.encode(Buffer.from(pcm.buffer, pcm.byteOffset + f * FRAME * 2, FRAME * 2), FRAME);
      }
      enc.delete();
    }),
};

function buildNative(): string | undefined {
  const bin = join(tmpDir, 'opus_bench');
  const r = spawnSync('cc', ['-O2', '-o', bin, join(root, 'scripts/bench/opus_bench.c'), '-lopus'], {
    encoding: 'utf8',
  });
  if (r.error || r.status !== 0) {
    process.stderr.write(
      'bench:codec: cannot build scripts/bench/opus_bench.c against the system libopus ' +
        `(install a C compiler and libopus-dev); skipping the native column.\n${r.stderr ?? ''}`,
    );
    return undefined;
  }
  return bin;
}
const nativeBin = buildNative();
let nativeVersion = 'n/a';
const native: Contender | undefined = nativeBin
  ? {
      name: 'C libopus (system)',
      run(complexity) {
        const out = execFileSync(
          nativeBin,
          [rawPath, String(RATE), '20', String(BITRATE), String(complexity), '1'],
          {
            encoding: 'utf8',
          },
        );
        const r = JSON.parse(out) as { best_s: number; best_cpu_s: number; version: string };
        nativeVersion = r.version;
        return { wall: r.best_s, cpu: r.best_cpu_s };
      },
    }
  : undefined;

const contenders = [native, project, opusscript].filter((c): c is Contender => c !== undefined);

// ------------------------------------------------------------------------------------------ encode runs

interface Row {
  complexity: number;
  contender: string;
  medianCpuSeconds: number;
  medianWallSeconds: number;
  xRealtime: number;
  vsNative: number | null;
}
const rows: Row[] = [];
for (const complexity of COMPLEXITIES) {
  const times = new Map<string, Timing[]>(contenders.map((c) => [c.name, []]));
  for (const c of contenders) c.run(complexity); // warm-up (JIT, page cache, wasm compile)
  for (let r = 0; r < ROUNDS; r++) {
    // Alternate the order every round so drift on a shared machine hits everyone alike.
    const order = r % 2 ? [...contenders].reverse() : contenders;
    for (const c of order) times.get(c.name)!.push(c.run(complexity));
  }
  const cpuMedian = (name: string): number => median(times.get(name)!.map((t) => t.cpu));
  const nativeMedian = native ? cpuMedian(native.name) : undefined;
  for (const c of contenders) {
    const m = cpuMedian(c.name);
    rows.push({
      complexity,
      contender: c.name,
      medianCpuSeconds: m,
      medianWallSeconds: median(times.get(c.name)!.map((t) => t.wall)),
      xRealtime: audioSeconds / m,
      vsNative: nativeMedian ? nativeMedian / m : null,
    });
  }
}

// ------------------------------------------------------------------------------------------ pipeline

/** One 10 s clip: encode alone vs encode + Ogg + pad + seal (3 recipients) + sign. */
function pipeline(): {
  encodeOnlyMs: number;
  pipelineMs: number;
  ratio: number;
  envelopeBytes: number;
  oggBytes: number;
} {
  const clipPcm = new Int16Array(RATE * 10);
  clipPcm.set(pcm.subarray(0, Math.min(pcm.length, clipPcm.length)));
  const rnd = seededRandom('bench:codec');
  const toy = generateIdentity('toy', rnd);
  const parents = [
    generateIdentity('parent', rnd),
    generateIdentity('parent', rnd),
    generateIdentity('parent', rnd),
  ];
  const encodeOnly = (): void => {
    const enc = createEncoder();
    const lookahead = (enc.preSkip48k * RATE) / 48000;
    const n = Math.ceil((clipPcm.length + lookahead) / FRAME);
    const frame = new Int16Array(FRAME);
    for (let f = 0; f < n; f++) {
      frame.fill(0);
      frame.set(clipPcm.subarray(f * FRAME, Math.min(clipPcm.length, (f + 1) * FRAME)));
      enc.encode(frame);
    }
    enc.destroy();
  };
  let envelopeBytes = 0;
  let oggBytes = 0;
  let seq = 0;
  const full = (): void => {
    const clip = encodePcmToOgg(clipPcm, { serial: seq });
    const env = sealClip({
      sender: toy,
      recipients: parents,
      sequence: seq++,
      createdAt: 1_700_000_000_000,
      durationMs: Math.round(clip.durationMs),
      ogg: clip.ogg, // default system random, as on a toy
    });
    envelopeBytes = env.length;
    oggBytes = clip.ogg.length;
  };
  const a: number[] = [];
  const b: number[] = [];
  encodeOnly();
  full();
  for (let r = 0; r < ROUNDS; r++) {
    for (const [fn, into] of (r % 2
      ? [
          [full, b],
          [encodeOnly, a],
        ]
      : [
          [encodeOnly, a],
          [full, b],
        ]) as [() => void, number[]][]) {
      into.push(timed(fn).cpu * 1000);
    }
  }
  const encodeOnlyMs = median(a);
  const pipelineMs = median(b);
  return { encodeOnlyMs, pipelineMs, ratio: encodeOnlyMs / pipelineMs, envelopeBytes, oggBytes };
}
const pipe = pipeline();

// ------------------------------------------------------------------------------------------ memory

function memory(): { rssBytesPerEncoder: number } | { error: string } {
  const r = spawnSync(
    process.execPath,
    ['--expose-gc', '--import', 'tsx', join(root, 'scripts/bench/encoder-memory.ts'), 'perEncoder', '1000'],
    { encoding: 'utf8', cwd: root },
  );
  if (r.status !== 0) return { error: (r.stderr || 'failed').split('\n')[0] ?? 'failed' };
  return JSON.parse(r.stdout) as { rssBytesPerEncoder: number };
}
const mem = memory();

// ------------------------------------------------------------------------------------------ report

const pad = (s: string, n: number): string => s.padEnd(n);
const lines = [
  `Opus encode, ${audioSeconds.toFixed(2)} s of speech, 16 kHz mono 20 ms VOIP ${BITRATE / 1000} kbit/s, median CPU time of ${ROUNDS}`,
  `${pad('cx', 4)}${pad('contender', 28)}${pad('× realtime/core', 17)}${pad('vs native', 10)}`,
  ...rows.map(
    (r) =>
      `${pad(String(r.complexity), 4)}${pad(r.contender, 28)}${pad(r.xRealtime.toFixed(0), 17)}${r.vsNative === null ? 'n/a' : r.vsNative.toFixed(2)}`,
  ),
  '',
  `pipeline, 10 s clip (CPU ms): encode alone ${pipe.encodeOnlyMs.toFixed(1)} ms, encode+Ogg+pad+seal(3)+sign ` +
    `${pipe.pipelineMs.toFixed(1)} ms → ${pipe.ratio.toFixed(3)}× (target ≥ 0.9); Ogg ${pipe.oggBytes} B, envelope ${pipe.envelopeBytes} B`,
  'rssBytesPerEncoder' in mem
    ? `memory: ${(mem.rssBytesPerEncoder / 1024).toFixed(1)} KiB RSS per live encoder (1000 encoders)`
    : `memory: ${mem.error}`,
];
process.stdout.write(`${lines.join('\n')}\n`);
const result = {
  date: new Date().toISOString(),
  node: process.version,
  nativeLibopus: nativeVersion,
  audioSeconds,
  settings: { sampleRate: RATE, channels: 1, frameMs: 20, application: 'voip', bitrate: BITRATE },
  rounds: ROUNDS,
  encode: rows,
  pipeline: pipe,
  memory: mem,
};
writeFileSync(join(outDir, 'codec.json'), `${JSON.stringify(result, null, 2)}\n`);
process.stdout.write(`written ${join(outDir, 'codec.json')}\n`);
