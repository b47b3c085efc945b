// The V8 flags every long-running PlushLink process starts with (bin/plushlink.js's shebang, forked gateways): a larger young generation, and single-threaded GC on one core.
/**
 * `--max-semi-space-size=32` (MiB; Node 20's cap is 16): the gateway allocates ~20 kB per clip in
 * short-lived buffers and promises, so with the default cap the young generation fills every few
 * hundred milliseconds and each scavenge copies the state of every clip in flight. In alternated
 * `npm run bench:gateway -- --only gateway --rate 1000` runs (400 toys, docs/LOADTEST.md), e2e p99
 * at 500 clips/s went from 28–44 ms to 7–8 ms with 32 or 64 MiB, at 1,000/s from 47–72 ms to
 * 21–30 ms, CPU per clip 5–8 % lower. Short, small runs (`--quick`: 100 toys, 4 s phases) did worse
 * at half rate (~30 ms against ~7 ms) while the young generation was still growing. The cost is
 * memory: once grown, the young generation (two semi-spaces) keeps up to 64 MiB committed. 32
 * rather than 64: the same latency in the same runs, for half of that memory.
 *
 * A flag that sizes the heap must be given when the process starts (`v8.setFlagsFromString` later
 * does not resize it), so bin/plushlink.js passes it in its `#!/usr/bin/env -S node …` line and
 * `node bin/plushlink.js` users pass it themselves (docs/OPERATIONS.md); a test keeps the two lists
 * equal.
 */
export const NODE_FLAGS: readonly string[] = ['--max-semi-space-size=32'];

/**
 * `--single-threaded-gc` for a process confined to one core (`taskset`; the benchmarks pin every
 * system under test so): V8's concurrent marker and parallel scavenge and compaction tasks then
 * have no core of their own, so they preempt the event loop or make it wait for them. In
 * alternated `bench:gateway -- --only gateway --rate 1000` runs at ~470 clips/s, the gateway's
 * event-loop delay p99 (median of the seconds) went from 28.5–31.8 ms to 18.3–18.5 ms and e2e p99
 * from 48–57 ms to 21–33 ms, CPU per clip unchanged within the noise. With two or more cores the
 * concurrent collector does its work beside the event loop, so it stays on there.
 * docs/OPERATIONS.md says how to start a pinned gateway with it.
 */
export const ONE_CORE_FLAGS: readonly string[] = ['--single-threaded-gc'];

/**
 * The flags for a child process: NODE_FLAGS (and ONE_CORE_FLAGS for one that will be pinned to one
 * core), or `PLK_NODE_FLAGS` (space-separated; empty for none) so that a benchmark can compare with
 * and without them.
 */
export function nodeFlags(env: NodeJS.ProcessEnv = process.env, opts: { oneCore?: boolean } = {}): string[] {
  const override = env.PLK_NODE_FLAGS;
  if (override === undefined) return [...NODE_FLAGS, ...(opts.oneCore ? ONE_CORE_FLAGS : [])];
  return override.split(/\s+/).filter((f) => f.length > 0);
}
