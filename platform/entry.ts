// Entry points of worker threads and child processes that run compiled or from source: `name.js` beside compiled code, `name.ts` through tsx beside TypeScript.
import { type ChildProcess, type ForkOptions, fork } from 'node:child_process';
import { Worker, type WorkerOptions } from 'node:worker_threads';

/** A module beside the caller, in the caller's own form. */
export interface ModuleEntry {
  readonly url: URL;
  /** `url` is TypeScript: the new thread or process must load it through tsx. */
  readonly viaTsx: boolean;
}

/**
 * `name` (relative to the caller, without extension) beside the module whose `import.meta.url` is
 * `base`: `name.js` when the caller is compiled (dist/), `name.ts` when it runs from source (tsx, Vitest).
 */
export function moduleEntry(base: string, name: string): ModuleEntry {
  const viaTsx = new URL(base).pathname.endsWith('.ts');
  return { url: new URL(`./${name}.${viaTsx ? 'ts' : 'js'}`, base), viaTsx };
}

/**
 * Starts `name` beside `base` in a worker thread. Compiled, the .js module runs directly; from source,
 * `boot` (a .mjs file beside `base` that registers tsx, then imports `workerData.entry`: Node 20 workers
 * cannot load .ts and ignore `--import tsx`) runs instead, with `entry` added to the object `workerData`.
 */
export function startWorker(base: string, name: string, boot: string, options: WorkerOptions = {}): Worker {
  const { url, viaTsx } = moduleEntry(base, name);
  if (!viaTsx) return new Worker(url, options);
  return new Worker(new URL(boot, base), {
    ...options,
    workerData: { ...options.workerData, entry: url.href },
  });
}

/**
 * Forks `name` beside `base` as a Node child process: the .js module when compiled, the .ts module with
 * `--import tsx` in front of `options.execArgv` (default: this process's) from source.
 */
export function forkModule(
  base: string,
  name: string,
  args: readonly string[] = [],
  options: ForkOptions = {},
): ChildProcess {
  const { url, viaTsx } = moduleEntry(base, name);
  const execArgv = options.execArgv ?? process.execArgv;
  return fork(url, args, { ...options, execArgv: viaTsx ? ['--import', 'tsx', ...execArgv] : execArgv });
}
