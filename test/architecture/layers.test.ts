// Layers point one way: shared (pure) ← platform ← device | gateway ← sim ← scripts; device and gateway never import each other; the browser page (web/) takes only shared/ and the pure codec files.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Which top-level folders each runtime folder may import from (besides itself). */
const ALLOWED: Readonly<Record<string, readonly string[]>> = {
  shared: [],
  platform: ['shared'],
  device: ['shared', 'platform'],
  gateway: ['shared', 'platform'],
  sim: ['shared', 'platform', 'device', 'gateway'],
  scripts: ['shared', 'platform', 'device', 'gateway', 'sim'],
  web: ['shared', 'device'],
};

/** What the browser page may take from device/: the Ogg Opus muxer and what it needs (no Node, no native code). */
const WEB_DEVICE_FILES = new Set([
  'device/codec/ogg.ts',
  'device/codec/opus-packet.ts',
  'device/codec/crc32.ts',
  'device/codec/errors.ts',
]);
/** Packages the page bundles (scripts/build-web.ts refuses any node: built-in as well). */
const WEB_PACKAGES = new Set(['mqtt', 'tweetnacl', '@noble/hashes/sha2.js', '@noble/hashes/blake2.js']);

/** Development tools run through tsx (never compiled or shipped) may also use test fixtures. */
const DEV_TOOLS = [
  'scripts/bench/',
  'scripts/gen-vectors.ts',
  'scripts/gen-firmware-vectors.ts',
  'scripts/gen-malformed-vectors.ts',
  'scripts/fuzz.ts',
];

/** shared/ is pure: only these packages, no sockets, files, threads or clock of its own. */
const SHARED_PACKAGES = new Set(['node:crypto', 'tweetnacl', '@noble/hashes/blake2.js']);
/** shared/ modules the page bundles: all but crypto-node.ts (swapped, see web/src/platform-crypto.ts) must not need Node. */
const SHARED_NODE_ONLY = new Set(['shared/crypto-node.ts']);

/**
 * Module-level bindings shared/ may hold: memo caches of values derived from constants, which no
 * input can change, and signed.ts's scratch buffer, overwritten before each synchronous use, so
 * that no call can see what an earlier one left there (test/protocol/signed.test.ts). Anything
 * else (a nonce cache, a counter) is protocol state and belongs in a seam of the gateway or the
 * device.
 */
const SHARED_MEMOS = new Set(['crypto.ts:defaultSuite', 'signed.ts:prefixes', 'signed.ts:scratch']);

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
    const rel = join(dir, e.name);
    if (e.isDirectory()) out.push(...sourceFiles(rel));
    else if (/\.(ts|mjs)$/.test(e.name)) out.push(rel);
  }
  return out;
}

/** Every module specifier a file imports: static imports and exports, and dynamic import(). */
function importsOf(text: string): string[] {
  const out: string[] = [];
  const re =
    /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)|(?:^|\n)\s*import\s+['"]([^'"]+)['"]/g;
  for (const m of text.matchAll(re)) out.push((m[1] ?? m[2] ?? m[3])!);
  return out;
}

function topFolder(file: string): string {
  return file.split(sep)[0]!;
}

describe('layers', () => {
  for (const [folder, allowed] of Object.entries(ALLOWED)) {
    it(`${folder}/ imports only ${allowed.length ? allowed.join(', ') : 'itself'}`, () => {
      const violations: string[] = [];
      const files = sourceFiles(folder);
      expect(files.length).toBeGreaterThan(0);
      for (const file of files) {
        for (const spec of importsOf(readFileSync(join(ROOT, file), 'utf8'))) {
          if (!spec.startsWith('.')) continue;
          const target = relative(ROOT, resolve(ROOT, dirname(file), spec));
          const top = topFolder(target);
          const devFixture = top === 'test' && DEV_TOOLS.some((d) => file.startsWith(d));
          if (top !== folder && !allowed.includes(top) && !devFixture) violations.push(`${file} → ${target}`);
        }
      }
      expect(violations).toEqual([]);
    });
  }

  it('device/ and gateway/ never import each other', () => {
    for (const [from, to] of [
      ['device', 'gateway'],
      ['gateway', 'device'],
    ] as const) {
      for (const file of sourceFiles(from)) {
        for (const spec of importsOf(readFileSync(join(ROOT, file), 'utf8'))) {
          if (spec.startsWith('.'))
            expect(topFolder(relative(ROOT, resolve(ROOT, dirname(file), spec)))).not.toBe(to);
        }
      }
    }
  });

  it('shared/ is pure: no sockets, files, threads or clock, and no state beyond constant memo caches', () => {
    const problems: string[] = [];
    for (const file of sourceFiles('shared')) {
      const text = readFileSync(join(ROOT, file), 'utf8');
      for (const spec of importsOf(text)) {
        if (!spec.startsWith('.') && !SHARED_PACKAGES.has(spec)) problems.push(`${file} imports ${spec}`);
      }
      if (
        !SHARED_NODE_ONLY.has(file) &&
        (importsOf(text).some((s) => s.startsWith('node:')) || /\bBuffer\.\w/.test(text))
      )
        problems.push(`${file} needs Node (node: import or Buffer) but the browser page bundles it`);
      if (/\b(Date\.now|performance\.now|setTimeout|setInterval|process\.hrtime)\b/.test(text))
        problems.push(`${file} reads a clock of its own`);
      for (const m of text.matchAll(
        /^(?:export\s+)?(?:let|var)\s+(\w+)|^(?:export\s+)?const\s+(\w+)\s*(?::[^=]+)?=\s*new\s+(?:Map|Set|WeakMap|Array)\b/gm,
      )) {
        const name = `${file.slice('shared/'.length)}:${m[1] ?? m[2]}`;
        if (!SHARED_MEMOS.has(name)) problems.push(`${file} holds module state ${m[1] ?? m[2]}`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('web/ (the browser page) imports from device/ only the pure codec files, and no Node built-in', () => {
    const problems: string[] = [];
    const reach = new Set<string>();
    const visit = (file: string): void => {
      if (reach.has(file)) return;
      reach.add(file);
      for (const spec of importsOf(readFileSync(join(ROOT, file), 'utf8'))) {
        if (!spec.startsWith('.')) {
          if (!WEB_PACKAGES.has(spec) && !file.startsWith('shared/'))
            problems.push(`${file} imports ${spec}`);
          continue;
        }
        const target = relative(ROOT, resolve(ROOT, dirname(file), spec));
        if (topFolder(target) === 'device' && !WEB_DEVICE_FILES.has(target))
          problems.push(`${file} → ${target}`);
        // shared/crypto-node.ts is the one module the page build swaps for web/src/platform-crypto.ts.
        if (target !== 'shared/crypto-node.ts' && /^(shared|device|web)\//.test(target)) visit(target);
      }
    };
    for (const f of sourceFiles('web')) visit(f);
    expect(reach.has('device/codec/ogg.ts')).toBe(true);
    expect(problems).toEqual([]);
  });

  it('the checker sees violations (it would fail on a bad import)', () => {
    expect(
      importsOf("import { x } from '../gateway/y.ts';\nconst m = await import('../device/z.ts');"),
    ).toEqual(['../gateway/y.ts', '../device/z.ts']);
  });
});
