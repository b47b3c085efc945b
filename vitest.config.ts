// Vitest configuration: `unit` runs with npm packages only, `interop` needs Debian reference tools.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // Runs once for whichever projects run (the root project's global setup always does): builds dist/.
    globalSetup: ['test/global-setup.ts'],
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/**/*.test.ts'],
          // Fixed fast-check seeds in `npm test` (PLK_FC_SEED / PLK_FC_RUNS override; `npm run fuzz` is the random run).
          setupFiles: ['test/helpers/fc-setup.ts'],
          exclude: ['test/interop/**', 'test/cluster/**', 'node_modules/**'],
          testTimeout: 30_000,
          hookTimeout: 30_000,
        },
      },
      {
        test: {
          // Several gateway nodes on real PostgreSQL and Redis, started by the tests (`npm run test:cluster`).
          name: 'cluster',
          include: ['test/cluster/**/*.test.ts'],
          testTimeout: 120_000,
          hookTimeout: 60_000,
          // One file at a time: the nodes, engines and load of one file take the machine's two cores.
          fileParallelism: false,
        },
      },
      {
        test: {
          name: 'interop',
          include: ['test/interop/**/*.test.ts'],
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
    ],
  },
});
