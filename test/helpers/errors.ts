// Test helpers: assert that a call fails (sync or async) with a typed error class carrying the given stable `code`, or with a one-line CLI usage error.
import { expect } from 'vitest';
import { CliError } from '../../scripts/cli-util.ts';
import { type ErrorCode, PlushlinkError } from '../../shared/errors.ts';

/** An error class whose instances carry a stable `code`: PlushlinkError, StoreError, OutboxError, CodecError, AdminError, AttError, ... */
export type CodedErrorClass = abstract new (...args: never[]) => Error & { readonly code: unknown };

function expectCoded<K extends CodedErrorClass>(
  caught: unknown,
  threw: boolean,
  code: unknown,
  errorClass: K,
): InstanceType<K> {
  expect(threw, `expected a ${errorClass.name} with code ${String(code)}, but nothing was thrown`).toBe(true);
  expect(caught).toBeInstanceOf(errorClass);
  expect((caught as InstanceType<K>).code).toBe(code);
  return caught as InstanceType<K>;
}

/** `fn()` throws synchronously a PlushlinkError (or an `errorClass`) whose `code` is `code`; returns the error. */
export function expectCode(fn: () => unknown, code: ErrorCode): PlushlinkError;
export function expectCode<K extends CodedErrorClass>(
  fn: () => unknown,
  code: InstanceType<K>['code'],
  errorClass: K,
): InstanceType<K>;
export function expectCode(
  fn: () => unknown,
  code: unknown,
  errorClass: CodedErrorClass = PlushlinkError,
): Error {
  let caught: unknown;
  let threw = false;
  let result: unknown;
  try {
    result = fn();
  } catch (err) {
    caught = err;
    threw = true;
  }
  expect(result instanceof Promise, 'fn returned a promise: use expectCodeAsync').toBe(false);
  return expectCoded(caught, threw, code, errorClass);
}

/**
 * The promise (or what `fn()` returns or throws) rejects with a PlushlinkError (or an `errorClass`)
 * whose `code` is `code`; resolves with the error so a test can look further (cause, details).
 */
export function expectCodeAsync(
  subject: Promise<unknown> | (() => unknown),
  code: ErrorCode,
): Promise<PlushlinkError>;
export function expectCodeAsync<K extends CodedErrorClass>(
  subject: Promise<unknown> | (() => unknown),
  code: InstanceType<K>['code'],
  errorClass: K,
): Promise<InstanceType<K>>;
export async function expectCodeAsync(
  subject: Promise<unknown> | (() => unknown),
  code: unknown,
  errorClass: CodedErrorClass = PlushlinkError,
): Promise<Error> {
  let caught: unknown;
  let threw = false;
  try {
    await (typeof subject === 'function' ? subject() : subject);
  } catch (err) {
    caught = err;
    threw = true;
  }
  return expectCoded(caught, threw, code, errorClass);
}

/** `fn()` throws a CLI usage error: a CliError with exit status 2 and a one-line message; returns it. */
export function expectUsageError(fn: () => unknown): CliError {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(CliError);
  const e = err as CliError;
  expect(e.exitCode).toBe(2);
  expect(e.message).not.toContain('\n');
  return e;
}
