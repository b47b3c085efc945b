// Hostile JSON for every JSON parser (identity, private key, key directories, fleet keys, outbox, audit anchor, the strict reader): wrong types, toString/valueOf, prototype keys, limits — only typed errors, and the CLI answers in one line.
import { execFile, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Outbox, OutboxError } from '../../device/outbox.ts';
import { readAnchorFile } from '../../gateway/audit.ts';
import {
  IDENTITY_FILE,
  PRIVATE_KEY_FILE,
  readIdentity,
  readPrivateKey,
  writeKeyDir,
} from '../../platform/keyfiles.ts';
import { toHex } from '../../shared/bytes.ts';
import { decodeClip, sealClip } from '../../shared/envelope.ts';
import { type ErrorCode, PlushlinkError } from '../../shared/errors.ts';
import {
  generateIdentity,
  identityToJson,
  parseIdentityJson,
  parsePrivateKeyJson,
  privateKeyToJson,
} from '../../shared/identity.ts';
import { describeValue, isJsonObject, parseJson } from '../../shared/json.ts';
import { seededRandom } from '../../shared/random.ts';
import { generateRoster } from '../../sim/roster.ts';
import { readRosterFiles, writeRosterFiles } from '../../sim/roster-file.ts';
import { type CodedErrorClass, expectCodeAsync } from '../helpers/errors.ts';
import { fakeOggOpus } from './fake-ogg.ts';

const rnd = seededRandom('hostile-json');
const toy = generateIdentity('toy', rnd);
const mom = generateIdentity('parent', rnd);

/** Values of the wrong type (or of the right type and wrong content), as JSON text. */
const WRONG_VALUES: readonly string[] = [
  '{}',
  '{"toString":0}',
  '{"valueOf":0}',
  '{"toString":0,"valueOf":0}',
  '{"toString":{"toString":0},"valueOf":{"valueOf":0}}',
  '{"length":64,"0":"a"}',
  '[]',
  '["a","b"]',
  '[{"toString":0}]',
  '0',
  '2',
  '-1',
  '0.5',
  '1e308',
  '-1e308',
  '123456789012345678901234567890',
  'null',
  'true',
  'false',
  '""',
  '"x"',
  '"\\u0000"',
  '"\\ud800"',
  `"${'a'.repeat(1500)}"`,
];

/**
 * Documents that are never acceptable whatever the fields say, as edits of a valid document's
 * text: structure, prototype keys, duplicates, limits of the strict reader.
 */
const STRUCTURAL: readonly [string, (valid: string) => string][] = [
  ['a BOM before a valid document', (v) => `\ufeff${v}`],
  ['a duplicate key', (v) => v.replace('{', '{"plushlink":"x",')],
  ['the same key twice with the same value', (v) => v.replace(/^\{("plushlink":"[^"]*",)/, '{$1$1')],
  ['a __proto__ key', (v) => v.replace('{', '{"__proto__":{"v":1,"plushlink":"x"},')],
  ['a __proto__ key with a primitive', (v) => v.replace('{', '{"__proto__":null,')],
  ['a constructor key', (v) => v.replace('{', '{"constructor":{"prototype":{"v":1}},')],
  ['a prototype key', (v) => v.replace('{', '{"prototype":0,')],
  ['a nested __proto__ key', (v) => v.replace('{', '{"extra":[{"__proto__":{"polluted":true}}],')],
  ['a number that overflows to Infinity', (v) => v.replace('{', '{"extra":1e400,')],
  ['a negative number that overflows', (v) => v.replace('{', '{"extra":-1e400,')],
  ['a 100-digit number', (v) => v.replace('{', `{"extra":${'9'.repeat(100)},`)],
  ['nesting 40 deep', (v) => v.replace('{', `{"extra":${'['.repeat(40)}${']'.repeat(40)},`)],
  ['nesting 40 objects deep', (v) => v.replace('{', `{"extra":${'{"a":'.repeat(40)}1${'}'.repeat(40)},`)],
  ['a trailing comma', (v) => v.replace(/\}\s*$/, ',}')],
  ['trailing data', (v) => `${v} {}`],
  ['two documents', (v) => `${v}${v}`],
  ['a truncated document', (v) => v.slice(0, Math.floor(v.length / 2))],
  ['an empty text', () => ''],
  ['only whitespace', () => ' \n\t '],
  ['a raw control character in a string', (v) => v.replace('{', '{"extra":"a\u0001b",')],
  ['a bad escape', (v) => v.replace('{', '{"extra":"\\x41",')],
  ['a bad \\u escape', (v) => v.replace('{', '{"extra":"\\u12g4",')],
  ['single quotes', (v) => v.replaceAll('"', "'")],
  ['a comment', (v) => `/* hi */${v}`],
  ['NaN', (v) => v.replace('{', '{"extra":NaN,')],
  ['a leading zero', (v) => v.replace('{', '{"extra":01,')],
  ['not an object: array', () => '[]'],
  ['not an object: number', () => '1'],
  ['not an object: null', () => 'null'],
  ['not an object: true', () => 'true'],
  ['not an object: string', () => '"identity"'],
  ['an object of methods', () => '{"toString":0,"valueOf":0,"hasOwnProperty":0}'],
];

interface Field {
  readonly path: readonly (string | number)[];
  /** Code for a non-string (or, for `badString` absent, any) wrong value. */
  readonly code: string;
  /** Code when the wrong value is a string (hex and id fields check strings further). */
  readonly badString?: string;
  /** Wrong values that happen to be valid for this field. */
  readonly skip?: readonly string[];
}

interface Target {
  readonly name: string;
  /** A valid document (the matrix edits it). */
  readonly valid: () => Record<string, unknown>;
  /** Parses a text: resolves when accepted, throws/rejects the parser's typed error otherwise. */
  readonly parse: (text: string) => unknown;
  readonly errorClass: CodedErrorClass;
  /** Code for a structurally unacceptable document. */
  readonly docCode: string;
  /** Code for a document larger than the parser's size limit. */
  readonly sizeCode: string;
  /** A text over the size limit (or undefined when the target makes its own oversized file). */
  readonly oversize?: () => Promise<unknown>;
  readonly fields: readonly Field[];
}

let dir = '';
let fileNo = 0;
const tmpFile = (name: string): string => join(dir, `${fileNo++}-${name}`);

/** A sealed envelope and the outbox item describing it. */
const envelope = sealClip({
  sender: toy,
  recipients: [mom],
  sequence: 3,
  createdAt: 1_767_225_600_000,
  durationMs: 1000,
  ogg: new Uint8Array(500).fill(7),
  random: rnd,
});
const envelopeHeader = decodeClip(envelope).header;

const anchorHash = 'ab'.repeat(32);

const roster = generateRoster({ families: 1, toysPerFamily: 1, parentsPerFamily: 1, seed: 'hostile' });
let rosterKeys: Record<string, unknown> = {};

const TARGETS: readonly Target[] = [
  {
    name: 'parseIdentityJson',
    valid: () => JSON.parse(identityToJson(toy)) as Record<string, unknown>,
    parse: (text) => parseIdentityJson(text),
    errorClass: PlushlinkError,
    docCode: 'PLK_E_KEY_FILE',
    sizeCode: 'PLK_E_LIMIT',
    fields: [
      { path: ['plushlink'], code: 'PLK_E_KEY_FILE' },
      { path: ['v'], code: 'PLK_E_VERSION' },
      { path: ['role'], code: 'PLK_E_KEY_FILE' },
      { path: ['signPublicKey'], code: 'PLK_E_KEY_FILE', badString: 'PLK_E_FIELD' },
      { path: ['boxPublicKey'], code: 'PLK_E_KEY_FILE', badString: 'PLK_E_FIELD' },
      { path: ['id'], code: 'PLK_E_FIELD' },
    ],
  },
  {
    name: 'parsePrivateKeyJson',
    valid: () => JSON.parse(privateKeyToJson(toy)) as Record<string, unknown>,
    parse: (text) => parsePrivateKeyJson(text),
    errorClass: PlushlinkError,
    docCode: 'PLK_E_KEY_FILE',
    sizeCode: 'PLK_E_LIMIT',
    fields: [
      { path: ['plushlink'], code: 'PLK_E_KEY_FILE' },
      { path: ['v'], code: 'PLK_E_VERSION' },
      { path: ['role'], code: 'PLK_E_KEY_FILE' },
      { path: ['signSeed'], code: 'PLK_E_KEY_FILE', badString: 'PLK_E_FIELD' },
      { path: ['boxSecret'], code: 'PLK_E_KEY_FILE', badString: 'PLK_E_FIELD' },
      { path: ['id'], code: 'PLK_E_FIELD' },
    ],
  },
  {
    name: 'readIdentity (platform/keyfiles.ts, a file)',
    valid: () => JSON.parse(identityToJson(mom)) as Record<string, unknown>,
    parse: async (text) => {
      const path = tmpFile(IDENTITY_FILE);
      writeFileSync(path, text);
      return readIdentity(path);
    },
    errorClass: PlushlinkError,
    docCode: 'PLK_E_KEY_FILE',
    sizeCode: 'PLK_E_LIMIT',
    fields: [
      { path: ['v'], code: 'PLK_E_VERSION' },
      { path: ['role'], code: 'PLK_E_KEY_FILE' },
      { path: ['signPublicKey'], code: 'PLK_E_KEY_FILE', badString: 'PLK_E_FIELD' },
    ],
  },
  {
    name: 'readPrivateKey (platform/keyfiles.ts, a 0600 file)',
    valid: () => JSON.parse(privateKeyToJson(mom)) as Record<string, unknown>,
    parse: async (text) => {
      const d = tmpFile('keys');
      mkdirSync(d, { mode: 0o700 });
      writeFileSync(join(d, PRIVATE_KEY_FILE), text, { mode: 0o600 });
      return readPrivateKey(d);
    },
    errorClass: PlushlinkError,
    docCode: 'PLK_E_KEY_FILE',
    sizeCode: 'PLK_E_LIMIT',
    fields: [
      { path: ['v'], code: 'PLK_E_VERSION' },
      { path: ['role'], code: 'PLK_E_KEY_FILE' },
      { path: ['boxSecret'], code: 'PLK_E_KEY_FILE', badString: 'PLK_E_FIELD' },
      { path: ['id'], code: 'PLK_E_FIELD' },
    ],
  },
  {
    name: 'readRosterFiles (sim/roster-file.ts, fleet.keys)',
    valid: () => structuredClone(rosterKeys),
    parse: async (text) => {
      const d = tmpFile('fleet');
      mkdirSync(d, { mode: 0o700 });
      writeFileSync(join(d, 'fleet.keys'), text, { mode: 0o600 });
      return readRosterFiles(d);
    },
    errorClass: PlushlinkError,
    docCode: 'PLK_E_KEY_FILE',
    sizeCode: 'PLK_E_LIMIT',
    oversize: async () => {
      const d = tmpFile('fleet-huge');
      mkdirSync(d, { mode: 0o700 });
      writeFileSync(join(d, 'fleet.keys'), '', { mode: 0o600 });
      truncateSync(join(d, 'fleet.keys'), 64 * 1024 * 1024 + 1); // sparse: nothing is written
      return readRosterFiles(d);
    },
    fields: [
      { path: ['plushlink'], code: 'PLK_E_KEY_FILE' },
      { path: ['v'], code: 'PLK_E_VERSION' },
      { path: ['plan'], code: 'PLK_E_KEY_FILE' },
      { path: ['plan', 'families'], code: 'PLK_E_KEY_FILE' },
      { path: ['plan', 'toysPerFamily'], code: 'PLK_E_KEY_FILE' },
      { path: ['plan', 'parentsPerFamily'], code: 'PLK_E_KEY_FILE' },
      { path: ['families'], code: 'PLK_E_KEY_FILE' },
      { path: ['families', 0], code: 'PLK_E_KEY_FILE' },
      { path: ['families', 0, 'id'], code: 'PLK_E_KEY_FILE' },
      { path: ['families', 0, 'toys'], code: 'PLK_E_KEY_FILE' },
      { path: ['families', 0, 'parents', 0], code: 'PLK_E_KEY_FILE' },
      { path: ['families', 0, 'toys', 0, 0], code: 'PLK_E_KEY_FILE' },
      { path: ['families', 0, 'parents', 0, 1], code: 'PLK_E_KEY_FILE' },
    ],
  },
  {
    name: 'Outbox.open (device/outbox.ts, the outbox file)',
    valid: () => ({
      plushlink: 'plushlink-outbox',
      v: 1,
      lastSequence: 3,
      items: [
        {
          clipId: toHex(envelopeHeader.clipId),
          sequence: 3,
          createdAt: envelopeHeader.createdAt,
          durationMs: 1000,
          recipients: [mom.id],
          envelope: Buffer.from(envelope).toString('base64'),
        },
      ],
    }),
    parse: async (text) => {
      const path = tmpFile('outbox.json');
      writeFileSync(path, text, { mode: 0o600 });
      return Outbox.open({ path });
    },
    errorClass: OutboxError,
    docCode: 'OUTBOX_CORRUPT',
    sizeCode: 'OUTBOX_CORRUPT',
    oversize: async () => {
      const path = tmpFile('outbox-huge.json');
      writeFileSync(path, '', { mode: 0o600 });
      truncateSync(path, 64 * 1024 * 1024 + 1);
      return Outbox.open({ path });
    },
    fields: [
      { path: ['plushlink'], code: 'OUTBOX_CORRUPT' },
      { path: ['v'], code: 'OUTBOX_CORRUPT' },
      { path: ['lastSequence'], code: 'OUTBOX_CORRUPT' },
      { path: ['items'], code: 'OUTBOX_CORRUPT', skip: ['[]'] },
      { path: ['items', 0], code: 'OUTBOX_CORRUPT' },
      { path: ['items', 0, 'envelope'], code: 'OUTBOX_CORRUPT' },
      { path: ['items', 0, 'clipId'], code: 'OUTBOX_CORRUPT' },
      { path: ['items', 0, 'sequence'], code: 'OUTBOX_CORRUPT' },
      { path: ['items', 0, 'createdAt'], code: 'OUTBOX_CORRUPT' },
      { path: ['items', 0, 'recipients'], code: 'OUTBOX_CORRUPT', skip: ['[]'] },
      { path: ['items', 0, 'recipients', 0], code: 'OUTBOX_CORRUPT' },
    ],
  },
  {
    name: 'parseJson (shared/json.ts)',
    valid: () => ({ plushlink: 'x', v: 1, list: [1, 'a', null, true, { k: 'v' }] }),
    parse: (text) => {
      const v = parseJson(text, { what: 'test file', maxBytes: 4096, maxDepth: 8 });
      // The reader accepts any value; only the structural cases are refused.
      if (!isJsonObject(v) || v.plushlink !== 'x')
        throw new PlushlinkError('PLK_E_FIELD', `got ${describeValue(v)}`);
      return v;
    },
    errorClass: PlushlinkError,
    docCode: 'PLK_E_FIELD',
    sizeCode: 'PLK_E_LIMIT',
    fields: [],
  },
];

/** `valid` with the value at `path` replaced by the raw JSON text `value` (which need not be JSON.stringify-able). */
function withValue(
  valid: Record<string, unknown>,
  path: readonly (string | number)[],
  value: string,
): string {
  const MARK = '\u0000hostile\u0000';
  const doc = structuredClone(valid);
  let at: Record<string | number, unknown> = doc;
  for (const key of path.slice(0, -1)) at = at[key] as Record<string | number, unknown>;
  at[path.at(-1)!] = MARK;
  return JSON.stringify(doc).replace(JSON.stringify(MARK), () => value);
}

async function expectTyped(target: Target, text: string, code: string, label: string): Promise<Error> {
  try {
    await target.parse(text);
  } catch (err) {
    expect(err, `${target.name}: ${label}: ${String(err)}`).toBeInstanceOf(target.errorClass);
    expect((err as { code?: unknown }).code, `${target.name}: ${label}: ${(err as Error).message}`).toBe(
      code,
    );
    expect((err as Error).message).not.toMatch(/\n/);
    return err as Error;
  }
  throw new Error(`${target.name}: ${label}: accepted`);
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'plk-hostile-json-'));
  const d = join(dir, 'roster');
  await writeRosterFiles(d, roster);
  rosterKeys = JSON.parse(readFileSync(join(d, 'fleet.keys'), 'utf8')) as Record<string, unknown>;
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('hostile JSON: every parser ends in its typed error', () => {
  for (const target of TARGETS) {
    describe(target.name, () => {
      it('accepts its valid document (the matrix below edits it)', async () => {
        await target.parse(JSON.stringify(target.valid()));
        await target.parse(JSON.stringify(target.valid(), null, 2));
      });

      if (target.fields.length > 0) {
        it('wrong types and values in every field: the field code, never a TypeError', async () => {
          for (const field of target.fields) {
            for (const value of WRONG_VALUES) {
              if (field.skip?.includes(value)) continue;
              const isString = value.startsWith('"');
              const code = isString && field.badString ? field.badString : field.code;
              await expectTyped(
                target,
                withValue(target.valid(), field.path, value),
                code,
                `${field.path.join('.')} = ${value.slice(0, 40)}`,
              );
            }
          }
        });
      }

      it('structural attacks: BOM, duplicates, __proto__/constructor, huge numbers, deep nesting, bad syntax', async () => {
        const valid = JSON.stringify(target.valid());
        for (const [label, edit] of STRUCTURAL) {
          await expectTyped(target, edit(valid), target.docCode, label);
        }
      });

      it('a __proto__ key cannot supply a missing field, and parsing pollutes no prototype', async () => {
        const doc = target.valid();
        const { v, ...rest } = doc;
        const text = JSON.stringify(rest).replace('{', `{"__proto__":{"v":${JSON.stringify(v)}},`);
        await expectTyped(target, text, target.docCode, '__proto__ supplying v');
        expect(({} as Record<string, unknown>).polluted).toBeUndefined();
        expect(({} as Record<string, unknown>).v).toBeUndefined();
      });

      it('size limits before parsing: very long strings and multi-byte text', async () => {
        if (target.oversize) {
          await expectCodeAsync(target.oversize(), target.sizeCode as ErrorCode, target.errorClass);
        } else {
          await expectTyped(
            target,
            withValue(target.valid(), ['plushlink'], `"${'a'.repeat(5000)}"`),
            target.sizeCode,
            '5000-character string',
          );
          // 2100 characters but 4200 UTF-8 bytes: the limit is in bytes.
          await expectTyped(
            target,
            withValue(target.valid(), ['plushlink'], `"${'é'.repeat(2100)}"`),
            target.sizeCode,
            'multi-byte string over the byte limit',
          );
          await expectTyped(target, '['.repeat(100_000), target.sizeCode, '100 000 open brackets');
        }
      });
    });
  }
});

describe('messages describe wrong values by type, never by converting them', () => {
  it('v = {"toString":0} is "v must be 1, got an object"', () => {
    const text = withValue(
      JSON.parse(identityToJson(toy)) as Record<string, unknown>,
      ['v'],
      '{"toString":0}',
    );
    expect(() => parseIdentityJson(text)).toThrow(/v must be 1, got an object/);
    const key = withValue(JSON.parse(privateKeyToJson(toy)) as Record<string, unknown>, ['v'], '[1]');
    expect(() => parsePrivateKeyJson(key)).toThrow(/v must be 1, got an array/);
    const role = withValue(
      JSON.parse(identityToJson(toy)) as Record<string, unknown>,
      ['role'],
      '{"valueOf":0}',
    );
    expect(() => parseIdentityJson(role)).toThrow(/role must be one of [a-z, ]+, got an object/);
  });

  it('describeValue never calls a method of the value', () => {
    const trap = {
      toString() {
        throw new Error('called toString');
      },
      valueOf() {
        throw new Error('called valueOf');
      },
      [Symbol.toPrimitive]() {
        throw new Error('called toPrimitive');
      },
    };
    expect(describeValue(trap)).toBe('an object');
    expect(describeValue(Object.create(null))).toBe('an object');
    expect(describeValue([trap])).toBe('an array');
    expect(describeValue(2)).toBe('2');
    expect(describeValue(Number.POSITIVE_INFINITY)).toBe('a non-finite number');
    expect(describeValue('<script>')).toBe('a string');
    expect(describeValue(undefined)).toBe('nothing');
  });

  it('non-string input to the text parsers is PLK_E_TYPE', () => {
    for (const v of [42, null, undefined, {}, { toString: 0 }, Buffer.from('{}'), ['{}']]) {
      for (const parse of [parseIdentityJson, parsePrivateKeyJson]) {
        try {
          parse(v as unknown as string);
          throw new Error('accepted');
        } catch (err) {
          expect(err).toBeInstanceOf(PlushlinkError);
          expect((err as PlushlinkError).code).toBe('PLK_E_TYPE');
        }
      }
    }
  });

  it('parsed objects have no prototype: inherited names are not fields', () => {
    const v = parseJson('{"a":{"b":1}}', { what: 'x', maxBytes: 100 });
    expect(Object.getPrototypeOf(v)).toBeNull();
    expect((v as Record<string, unknown>).toString).toBeUndefined();
    expect((v as Record<string, unknown>).hasOwnProperty).toBeUndefined();
  });
});

describe('readAnchorFile (gateway/audit.ts): undefined for anything but a well-formed anchor, never a throw', () => {
  const valid = {
    plushlink: 'audit-anchor',
    v: 1,
    seq: 7,
    at: 1_767_225_600_000,
    hash: anchorHash,
    signature: null,
  };
  const read = (text: string): unknown => {
    const path = tmpFile('audit.anchor');
    writeFileSync(path, text, { mode: 0o600 });
    return readAnchorFile(path);
  };

  it('reads a valid anchor', () => {
    expect(read(JSON.stringify(valid))).toEqual({
      seq: 7,
      at: 1_767_225_600_000,
      hash: anchorHash,
      signature: null,
    });
  });

  it('every field with every wrong value, every structural attack, size limits, a FIFO and a directory', () => {
    // Values that are valid for a field (seq is a safe integer >= 0, at any safe integer, signature may be null).
    const validFor: Record<string, readonly string[]> = {
      seq: ['0', '2'],
      at: ['0', '2', '-1'],
      signature: ['null'],
    };
    for (const key of ['plushlink', 'v', 'seq', 'at', 'hash', 'signature']) {
      for (const value of WRONG_VALUES) {
        if (validFor[key]?.includes(value)) continue;
        expect(read(withValue(valid, [key], value)), `${key} = ${value.slice(0, 30)}`).toBeUndefined();
      }
    }
    for (const [label, edit] of STRUCTURAL) expect(read(edit(JSON.stringify(valid))), label).toBeUndefined();
    expect(read(withValue(valid, ['seq'], '9007199254740993'))).toBeUndefined();
    expect(read(withValue(valid, ['plushlink'], `"${'a'.repeat(5000)}"`))).toBeUndefined();
    const huge = tmpFile('huge.anchor');
    writeFileSync(huge, '');
    truncateSync(huge, 1 << 30); // sparse 1 GiB: refused by its size, never read
    expect(readAnchorFile(huge)).toBeUndefined();
    expect(readAnchorFile(dir)).toBeUndefined();
    const fifo = tmpFile('fifo.anchor');
    if (spawnSync('mkfifo', [fifo]).status === 0) expect(readAnchorFile(fifo)).toBeUndefined(); // never blocks
  });
});

describe('non-files where a JSON file is expected are refused, never read (a FIFO would block forever)', () => {
  it('outbox path that is a FIFO or a directory: OUTBOX_CORRUPT', async () => {
    const d = tmpFile('outbox-dir');
    mkdirSync(d);
    await expectCodeAsync(Outbox.open({ path: d }), 'OUTBOX_CORRUPT', OutboxError);
    const fifo = tmpFile('outbox.fifo');
    if (spawnSync('mkfifo', [fifo]).status === 0)
      await expectCodeAsync(Outbox.open({ path: fifo }), 'OUTBOX_CORRUPT', OutboxError);
  });

  it('identity path that is a FIFO: PLK_E_KEY_FILE', async () => {
    const fifo = tmpFile('identity.fifo');
    if (spawnSync('mkfifo', [fifo]).status === 0) await expectCodeAsync(readIdentity(fifo), 'PLK_E_KEY_FILE');
  });
});

describe('the CLI with an evil identity file (issue 10 item 8)', () => {
  const BIN = fileURLToPath(new URL('../../bin/plushlink.js', import.meta.url));

  function plushlink(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      execFile(process.execPath, [BIN, ...args], { cwd: dir, timeout: 60_000 }, (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      });
    });
  }

  function expectOneLine(r: { code: number; stderr: string }, pattern: RegExp): void {
    expect(r.code, r.stderr).not.toBe(0);
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(/^plushlink: /);
    expect(lines[0]).toMatch(pattern);
    expect(r.stderr).not.toMatch(/^\s+at /m);
    expect(r.stderr).not.toMatch(/TypeError|RangeError|SyntaxError|Cannot convert|node:internal/);
  }

  it('clip seal --to evil.json ({"v":{"toString":0}}) prints one line and exits non-zero', async () => {
    const keyDir = join(dir, 'cli-toy');
    await writeKeyDir(keyDir, toy);
    writeFileSync(join(dir, 'evil.json'), '{"plushlink":"identity","v":{"toString":0}}');
    writeFileSync(
      join(dir, 'evil-proto.json'),
      '{"plushlink":"identity","__proto__":{"v":1},"v":{"valueOf":0}}',
    );
    writeFileSync(join(dir, 'clip.opus'), fakeOggOpus({ durationMs: 500 }));
    const [seal, sealProto, show, open] = await Promise.all([
      plushlink(
        'clip',
        'seal',
        '--key',
        'cli-toy',
        '--to',
        'evil.json',
        '--in',
        'clip.opus',
        '--out',
        'x.env',
      ),
      plushlink(
        'clip',
        'seal',
        '--key',
        'cli-toy',
        '--to',
        'evil-proto.json',
        '--in',
        'clip.opus',
        '--out',
        'y.env',
      ),
      plushlink('keys', 'show', 'evil.json'),
      plushlink(
        'clip',
        'open',
        '--key',
        'cli-toy',
        '--from',
        'evil.json',
        '--in',
        'clip.opus',
        '--out',
        'z.opus',
      ),
    ]);
    expectOneLine(seal, /PLK_E_VERSION: .*v must be 1, got an object/);
    expectOneLine(sealProto, /PLK_E_KEY_FILE: .*forbidden key "__proto__"/);
    expectOneLine(show, /PLK_E_VERSION/);
    expectOneLine(open, /PLK_E_VERSION/);
  }, 120_000);
});
