// `plushlink lab run|compare|sweep`: the protocol lab — what a codec or protocol change costs in bytes, airtime, latency, energy, battery and quality (docs/LAB.md).
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { isCodedError } from '../../shared/errors.ts';
import { action, CliError, checkOutDir, printJson } from '../cli-util.ts';

interface OutOpts {
  json?: boolean;
  out?: string;
}

/** Lab errors are already one line starting with "lab: "; a bad configuration is a usage error (exit 2). */
function asCliError(err: unknown): unknown {
  if (isCodedError(err, 'LAB_CONFIG')) return new CliError(err.message, 2, { cause: err });
  if (isCodedError(err, 'LAB_SPEECH') || isCodedError(err, 'LAB_PROTOCOL'))
    return new CliError(err.message, 1, { cause: err });
  return err;
}

async function guarded(fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    throw asCliError(err);
  }
}

/** A file name from a configuration name: letters, digits, dot, dash and underscore only. */
export function fileSlug(name: string): string {
  const s = name.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^[-.]+|-+$/g, '');
  return s.length > 0 ? s.slice(0, 64) : 'lab';
}

/** Progress on a terminal only (tests and pipes see nothing on stderr). */
function progress(label: (run: number) => string): {
  onProgress?: (run: number, done: number, total: number) => void;
  done: () => void;
} {
  if (!process.stderr.isTTY) return { done: () => undefined };
  let shown = false;
  return {
    onProgress(run, done, total) {
      shown = true;
      process.stderr.write(`\r${label(run)}: ${done}/${total} clips   `);
    },
    done: () => {
      if (shown) process.stderr.write('\r\x1b[K');
    },
  };
}

async function writeOut(dir: string, files: Record<string, string>): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
  process.stderr.write(
    `lab: wrote ${Object.keys(files)
      .map((f) => join(dir, f))
      .join(', ')}\n`,
  );
}

async function run(config: string, opts: OutOpts): Promise<void> {
  if (opts.out) await checkOutDir(opts.out, '--out');
  const [{ loadConfigFile }, { runLab }, { formatRun }, { htmlPage }, { summarize }] = await Promise.all([
    import('../../sim/lab/config.ts'),
    import('../../sim/lab/simulate.ts'),
    import('../../sim/lab/report-text.ts'),
    import('../../sim/lab/report-html.ts'),
    import('../../sim/lab/summary.ts'),
  ]);
  await guarded(async () => {
    const { config: cfg } = await loadConfigFile(config);
    const p = progress(() => `lab run ${cfg.name}`);
    let report: Awaited<ReturnType<typeof runLab>>;
    try {
      report = await runLab(cfg, p.onProgress ? { onProgress: (d, t) => p.onProgress!(0, d, t) } : {});
    } finally {
      p.done();
    }
    if (opts.json) printJson(report);
    else process.stdout.write(formatRun(report));
    if (opts.out) {
      const slug = fileSlug(report.name);
      const summaries = summarize([{ source: config, report }]);
      await writeOut(opts.out, {
        [`${slug}.json`]: `${JSON.stringify(report, null, 2)}\n`,
        [`${slug}.html`]: htmlPage({
          title: `Protocol lab: ${report.name}`,
          headers: [report.name],
          summaries,
          notes: report.notes,
        }),
      });
    }
  });
}

async function compare(configs: string[], opts: OutOpts): Promise<void> {
  if (opts.out) await checkOutDir(opts.out, '--out');
  const [{ compareFiles }, { formatComparison }, { htmlPage }] = await Promise.all([
    import('../../sim/lab/compare.ts'),
    import('../../sim/lab/report-text.ts'),
    import('../../sim/lab/report-html.ts'),
  ]);
  await guarded(async () => {
    const p = progress((i) => `lab compare ${configs[i] ?? ''}`);
    let c: Awaited<ReturnType<typeof compareFiles>>;
    try {
      c = await compareFiles(configs, p.onProgress ? { onProgress: p.onProgress } : {});
    } finally {
      p.done();
    }
    const title = `Protocol lab: ${c.headers.join(' vs ')}`;
    if (opts.json) printJson(c);
    else process.stdout.write(formatComparison(c.runs, c.headers, title));
    if (opts.out) {
      await writeOut(opts.out, {
        'compare.json': `${JSON.stringify(c, null, 2)}\n`,
        'compare.html': htmlPage({ title, headers: c.headers, summaries: c.runs }),
      });
    }
  });
}

async function sweep(config: string, opts: OutOpts & { set: string }): Promise<void> {
  if (opts.out) await checkOutDir(opts.out, '--out');
  const [{ sweepFile }, { formatComparison }, { htmlPage }] = await Promise.all([
    import('../../sim/lab/compare.ts'),
    import('../../sim/lab/report-text.ts'),
    import('../../sim/lab/report-html.ts'),
  ]);
  await guarded(async () => {
    const p = progress((i) => `lab sweep ${opts.set} (run ${i + 1})`);
    let c: Awaited<ReturnType<typeof sweepFile>>;
    try {
      c = await sweepFile(config, opts.set, p.onProgress ? { onProgress: p.onProgress } : {});
    } finally {
      p.done();
    }
    const key = c.sweep?.key ?? '';
    const title = `Protocol lab sweep: ${key} over ${config}`;
    if (opts.json) printJson(c);
    else process.stdout.write(formatComparison(c.runs, c.headers, title));
    if (opts.out) {
      await writeOut(opts.out, {
        'sweep.json': `${JSON.stringify(c, null, 2)}\n`,
        'sweep.html': htmlPage({
          title,
          headers: c.headers,
          summaries: c.runs,
          sweep: { key, values: c.headers.map((h) => h.slice(key.length + 1)) },
        }),
      });
    }
  });
}

export function registerLabCommands(program: Command): void {
  const lab = program
    .command('lab')
    .description(
      'protocol lab: simulate a toy day under a configuration (bytes, airtime, latency, energy, battery, quality)',
    );
  lab
    .command('run')
    .description(
      'one simulated day under CONFIG: per-clip breakdown and day totals (same config and seed → same JSON)',
    )
    .argument('<config>', 'lab configuration (JSON, docs/LAB.md)')
    .option('--json', 'print the full report as JSON')
    .option('--out <dir>', 'also write DIR/NAME.json and DIR/NAME.html')
    .action(action(async (config: string, opts: OutOpts) => run(config, opts)));
  lab
    .command('compare')
    .description('run each configuration and show the figures side by side, with deltas against the first')
    .argument('<configs...>', 'two or more lab configurations')
    .option('--json', 'print the comparison as JSON')
    .option('--out <dir>', 'also write DIR/compare.json and DIR/compare.html (self-contained, inline SVG)')
    .action(action(async (configs: string[], opts: OutOpts) => compare(configs, opts)));
  lab
    .command('sweep')
    .description('run CONFIG once per value of one key and chart every figure against it')
    .argument('<config>', 'base lab configuration')
    .requiredOption(
      '--set <key=values>',
      'the key and its comma-separated values, e.g. codec.bitrateKbps=8,12,16,24,32',
    )
    .option('--json', 'print the sweep as JSON')
    .option('--out <dir>', 'also write DIR/sweep.json and DIR/sweep.html (self-contained, inline SVG)')
    .action(action(async (config: string, opts: OutOpts & { set: string }) => sweep(config, opts)));
}
