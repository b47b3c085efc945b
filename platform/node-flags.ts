// The V8 flags every long-running PlushLink process starts with (bin/plushlink.js's shebang, forked gateways): a larger young generation.
/**
 * `--max-semi-space-size=64` (MiB; Node 20's default cap is 16): the gateway allocates ~20 kB per
 * clip in short-lived buffers and promises, so with the default cap the young generation fills every
 * few hundred milliseconds and each scavenge copies the thousands of in-flight clips' state. In
 * alternated `npm run bench:gateway -- --only gateway --rate 1000` runs (docs/LOADTEST.md), e2e p99
 * went from 28–44 ms to 7.4–9.5 ms (6 runs of 8) at 500 clips/s and from 47–63 ms to 23–46 ms at
 * 1,000/s, CPU per clip ~5 % lower, and a 10,000-toy reconnect storm ~10 % faster. It only raises
 * a cap: an idle process keeps the small young generation.
 *
 * A flag that sizes the heap must be given when the process starts (`v8.setFlagsFromString` later
 * does not resize it), so bin/plushlink.js passes it in its `#!/usr/bin/env -S node …` line and
 * `node bin/plushlink.js` users pass it themselves (docs/OPERATIONS.md); a test keeps the two lists
 * equal.
 */
export const NODE_FLAGS: readonly string[] = ['--max-semi-space-size=64'];

/**
 * The flags for a child process: NODE_FLAGS, or `PLK_NODE_FLAGS` (space-separated; empty for none)
 * so that a benchmark can compare with and without them.
 */
export function nodeFlags(env: NodeJS.ProcessEnv = process.env): string[] {
  const override = env.PLK_NODE_FLAGS;
  if (override === undefined) return [...NODE_FLAGS];
  return override.split(/\s+/).filter((f) => f.length > 0);
}
