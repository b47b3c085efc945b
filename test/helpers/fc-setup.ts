// Vitest setup file (unit project): before each test, fast-check's global parameters get that test's fixed seed and the replay reporter, so even an fc.assert without fcParams() is deterministic.
import fc from 'fast-check';
import { beforeEach } from 'vitest';
import { fcParams } from './fc.ts';

beforeEach(() => {
  fc.configureGlobal(fcParams());
});
