// Test helper: asserts that a call fails with a typed PlushlinkError carrying the given catalog code.
import { expect } from 'vitest';
import { type ErrorCode, PlushlinkError } from '../../shared/errors.ts';

export function expectCode(fn: () => unknown, code: ErrorCode): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(PlushlinkError);
  expect((caught as PlushlinkError).code).toBe(code);
}
