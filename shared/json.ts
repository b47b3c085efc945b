// Strict, bounded JSON reader for files PlushLink reads from disk (RFC 8259 and no more): size, depth, string and number limits, no duplicate or prototype keys, null-prototype objects.
import { type ErrorCode, PlushlinkError } from './errors.ts';

/** A parsed JSON value. Objects have a null prototype: no inherited `toString`, `valueOf`, `__proto__`. */
export type JsonValue = null | boolean | number | string | readonly JsonValue[] | JsonObject;
export interface JsonObject {
  readonly [key: string]: JsonValue | undefined;
}

export interface JsonReadOptions {
  /** What is being read, for messages ("identity file"). */
  readonly what: string;
  /** Most UTF-8 bytes of the whole text (checked before anything is parsed): PLK_E_LIMIT beyond. */
  readonly maxBytes: number;
  /** Most nested arrays/objects (the top-level value is depth 1). Default 16. */
  readonly maxDepth?: number;
  /** Most UTF-16 code units of any one string, key or value. Default: maxBytes. */
  readonly maxStringLength?: number;
  /** Code of the error for text that is not acceptable JSON. Default PLK_E_FIELD. */
  readonly code?: ErrorCode;
}

/**
 * Keys refused anywhere in a document: they mean nothing in any PlushLink file, and code that
 * copies parsed objects (spread, Object.assign, merges) could turn them into prototype pollution.
 */
function isForbiddenKey(key: string): boolean {
  return key === '__proto__' || key === 'constructor' || key === 'prototype';
}

/** Longest accepted number token (a double needs at most 17 significant digits plus sign and exponent). */
const MAX_NUMBER_CHARS = 64;

/** UTF-8 length of a JS string, counting a lone surrogate as the 3 bytes of U+FFFD (what a writer would emit). */
export function utf8ByteLength(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i++;
      } else n += 3;
    } else n += 3;
  }
  return n;
}

/**
 * Describes a value by its type for an error message without ever converting it to a string
 * (`String(obj)` runs a hostile file's `toString`/`valueOf` — or fails on `{"toString":0}`).
 * Finite numbers and booleans are shown, everything else only by kind: "got an object".
 */
export function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  switch (typeof value) {
    case 'number':
      return Number.isFinite(value) ? `${value}` : 'a non-finite number';
    case 'boolean':
      return value ? 'true' : 'false';
    case 'string':
      return value.length === 0 ? 'an empty string' : 'a string';
    case 'object':
      return 'an object';
    default:
      return `a ${typeof value}`;
  }
}

/** True for a parsed JSON object (not an array, not null). */
export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

class Reader {
  pos = 0;
  constructor(
    readonly text: string,
    readonly opts: Required<Omit<JsonReadOptions, 'what'>> & { what: string },
  ) {}

  fail(why: string, at = this.pos): never {
    throw new PlushlinkError(this.opts.code, `${this.opts.what} is not valid JSON: ${why} at offset ${at}`);
  }

  skipWhitespace(): void {
    const t = this.text;
    let p = this.pos;
    for (;;) {
      const c = t.charCodeAt(p);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) p++;
      else break;
    }
    this.pos = p;
  }

  value(depth: number): JsonValue {
    this.skipWhitespace();
    const c = this.text.charCodeAt(this.pos);
    switch (c) {
      case 0x7b /* { */:
        return this.object(depth + 1);
      case 0x5b /* [ */:
        return this.array(depth + 1);
      case 0x22 /* " */:
        return this.string();
      case 0x74 /* t */:
        return this.literal('true', true);
      case 0x66 /* f */:
        return this.literal('false', false);
      case 0x6e /* n */:
        return this.literal('null', null);
      default:
        if (c === 0x2d || (c >= 0x30 && c <= 0x39)) return this.number();
        return this.fail(Number.isNaN(c) ? 'unexpected end of input' : 'unexpected character');
    }
  }

  literal<T extends JsonValue>(word: string, value: T): T {
    if (!this.text.startsWith(word, this.pos)) this.fail('unexpected character');
    this.pos += word.length;
    return value;
  }

  number(): number {
    const t = this.text;
    const start = this.pos;
    let p = start;
    const digits = (): number => {
      const from = p;
      while (p < t.length && t.charCodeAt(p) >= 0x30 && t.charCodeAt(p) <= 0x39) p++;
      return p - from;
    };
    if (t.charCodeAt(p) === 0x2d) p++;
    if (t.charCodeAt(p) === 0x30) p++;
    else if (digits() === 0) this.fail('bad number', start);
    if (t.charCodeAt(p) === 0x2e) {
      p++;
      if (digits() === 0) this.fail('bad number', start);
    }
    if (t.charCodeAt(p) === 0x65 || t.charCodeAt(p) === 0x45) {
      p++;
      if (t.charCodeAt(p) === 0x2b || t.charCodeAt(p) === 0x2d) p++;
      if (digits() === 0) this.fail('bad number', start);
    }
    if (p - start > MAX_NUMBER_CHARS) this.fail(`number longer than ${MAX_NUMBER_CHARS} characters`, start);
    const n = Number(t.slice(start, p));
    if (!Number.isFinite(n)) this.fail('number out of range', start);
    this.pos = p;
    return n;
  }

  string(): string {
    const t = this.text;
    const start = this.pos;
    let p = start + 1;
    let out = '';
    let runStart = p;
    for (;;) {
      if (p >= t.length) this.fail('unterminated string', start);
      const c = t.charCodeAt(p);
      if (c === 0x22) break;
      if (c < 0x20) this.fail('control character in string', p);
      if (c === 0x5c) {
        out += t.slice(runStart, p);
        const e = t.charCodeAt(p + 1);
        p += 2;
        switch (e) {
          case 0x22:
            out += '"';
            break;
          case 0x5c:
            out += '\\';
            break;
          case 0x2f:
            out += '/';
            break;
          case 0x62:
            out += '\b';
            break;
          case 0x66:
            out += '\f';
            break;
          case 0x6e:
            out += '\n';
            break;
          case 0x72:
            out += '\r';
            break;
          case 0x74:
            out += '\t';
            break;
          case 0x75: {
            const hex = t.slice(p, p + 4);
            if (!/^[0-9a-fA-F]{4}$/.test(hex)) this.fail('bad \\u escape', p - 2);
            out += String.fromCharCode(Number.parseInt(hex, 16));
            p += 4;
            break;
          }
          default:
            this.fail('bad escape', p - 2);
        }
        runStart = p;
      } else p++;
      if (out.length + (p - runStart) > this.opts.maxStringLength) {
        this.fail(`string longer than ${this.opts.maxStringLength} characters`, start);
      }
    }
    out += t.slice(runStart, p);
    this.pos = p + 1;
    return out;
  }

  checkDepth(depth: number): void {
    if (depth > this.opts.maxDepth) this.fail(`nested deeper than ${this.opts.maxDepth}`);
  }

  array(depth: number): JsonValue[] {
    this.checkDepth(depth);
    this.pos++; // [
    const out: JsonValue[] = [];
    this.skipWhitespace();
    if (this.text.charCodeAt(this.pos) === 0x5d) {
      this.pos++;
      return out;
    }
    for (;;) {
      out.push(this.value(depth));
      this.skipWhitespace();
      const c = this.text.charCodeAt(this.pos);
      this.pos++;
      if (c === 0x5d) return out;
      if (c !== 0x2c)
        this.fail(Number.isNaN(c) ? 'unexpected end of input' : 'expected , or ]', this.pos - 1);
    }
  }

  object(depth: number): JsonObject {
    this.checkDepth(depth);
    this.pos++; // {
    const out: Record<string, JsonValue> = Object.create(null) as Record<string, JsonValue>;
    this.skipWhitespace();
    if (this.text.charCodeAt(this.pos) === 0x7d) {
      this.pos++;
      return out;
    }
    for (;;) {
      this.skipWhitespace();
      const keyAt = this.pos;
      if (this.text.charCodeAt(keyAt) !== 0x22) this.fail('expected a string key');
      const key = this.string();
      if (isForbiddenKey(key)) this.fail(`forbidden key "${key}"`, keyAt);
      if (Object.hasOwn(out, key)) this.fail(`duplicate key ${JSON.stringify(key.slice(0, 40))}`, keyAt);
      this.skipWhitespace();
      if (this.text.charCodeAt(this.pos) !== 0x3a) this.fail('expected :');
      this.pos++;
      out[key] = this.value(depth);
      this.skipWhitespace();
      const c = this.text.charCodeAt(this.pos);
      this.pos++;
      if (c === 0x7d) return out;
      if (c !== 0x2c)
        this.fail(Number.isNaN(c) ? 'unexpected end of input' : 'expected , or }', this.pos - 1);
    }
  }
}

/**
 * Parses `text` as one JSON value within `opts` limits. Stricter than JSON.parse where a file
 * could mean two things or attack its reader: a byte-order mark, duplicate keys, the keys
 * `__proto__`/`constructor`/`prototype`, numbers that overflow to Infinity, nesting deeper than
 * `maxDepth` (JSON.parse has no depth limit). Throws only PlushlinkError: PLK_E_TYPE when `text`
 * is not a string, PLK_E_LIMIT when it is larger than `maxBytes`, `opts.code` for anything else.
 */
export function parseJson(text: string, opts: JsonReadOptions): JsonValue {
  const { what } = opts;
  if (typeof text !== 'string') throw new PlushlinkError('PLK_E_TYPE', `${what} must be text`);
  // Every UTF-16 code unit is at least one UTF-8 byte: the cheap check first.
  if (
    text.length > opts.maxBytes ||
    (text.length * 3 > opts.maxBytes && utf8ByteLength(text) > opts.maxBytes)
  )
    throw new PlushlinkError('PLK_E_LIMIT', `${what} is larger than ${opts.maxBytes} bytes`);
  const code = opts.code ?? 'PLK_E_FIELD';
  if (text.charCodeAt(0) === 0xfeff)
    throw new PlushlinkError(code, `${what} is not valid JSON: it starts with a byte-order mark`);
  const r = new Reader(text, {
    what,
    code,
    maxBytes: opts.maxBytes,
    maxDepth: opts.maxDepth ?? 16,
    maxStringLength: opts.maxStringLength ?? opts.maxBytes,
  });
  const value = r.value(0);
  r.skipWhitespace();
  if (r.pos !== text.length) r.fail('unexpected data after the value');
  return value;
}
