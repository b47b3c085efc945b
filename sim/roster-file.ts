// The fleet key files: every member's private keys in one 0600 file (fleet.keys) and the public roster beside it (fleet.json).
import { chmod, mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { FamilyId } from '../gateway/interfaces.ts';
import { atomicWriteFile, readLimitedText } from '../platform/files.ts';
import { fromHex, toHex } from '../shared/bytes.ts';
import { PlushlinkError } from '../shared/errors.ts';
import { identityToJson } from '../shared/identity.ts';
import { describeValue, isJsonObject, parseJson } from '../shared/json.ts';
import { KEY_BYTES } from '../shared/limits.ts';
import {
  type MemberRole,
  type Roster,
  type RosterFamily,
  type RosterMember,
  type RosterPlan,
  rosterMember,
  toysInFamily,
  validatePlan,
} from './roster.ts';

/**
 * FLEETDIR/fleet.keys: every endpoint's private key in ONE file (mode 0600, replaced atomically)
 * rather than 10,000 key directories; FLEETDIR/fleet.json: the public roster (ids, roles, public
 * keys, pseudonymous family ids). Neither holds names or the seed: display names are re-derived
 * from the indexes by the process that shows them.
 */
export const ROSTER_KEYS_FILE = 'fleet.keys';
export const ROSTER_PUBLIC_FILE = 'fleet.json';
/** 100,000 endpoints × ~140 bytes of hex secrets, with room to spare. */
const MAX_KEYS_FILE_BYTES = 64 * 1024 * 1024;

interface RosterKeysJson {
  plushlink: 'fleet-keys';
  v: 1;
  plan: { families: number; toysPerFamily: number; parentsPerFamily: number; toys?: number };
  families: { id: string; toys: [string, string][]; parents: [string, string][] }[];
}

/** Writes FLEETDIR/fleet.keys (0600) and FLEETDIR/fleet.json (0644); the directory is created 0700. */
export async function writeRosterFiles(
  dir: string,
  roster: Roster,
): Promise<{ keysFile: string; publicFile: string }> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const keysFile = join(dir, ROSTER_KEYS_FILE);
  const publicFile = join(dir, ROSTER_PUBLIC_FILE);
  const { families, toysPerFamily, parentsPerFamily, toys } = roster.plan;
  const secrets = (m: RosterMember): [string, string] => [
    toHex(m.identity.signSeed),
    toHex(m.identity.boxSecret),
  ];
  const keys: RosterKeysJson = {
    plushlink: 'fleet-keys',
    v: 1,
    plan: { families, toysPerFamily, parentsPerFamily, ...(toys !== undefined ? { toys } : {}) },
    families: roster.families.map((f) => ({
      id: f.id,
      toys: f.toys.map(secrets),
      parents: f.parents.map(secrets),
    })),
  };
  await atomicWriteFile(keysFile, JSON.stringify(keys)); // 0600 temp file renamed into place
  await chmod(keysFile, 0o600);
  const pub = (m: RosterMember) => JSON.parse(identityToJson(m.identity)) as unknown;
  const publicRoster = {
    plushlink: 'fleet',
    v: 1,
    plan: keys.plan,
    families: roster.families.map((f) => ({ id: f.id, toys: f.toys.map(pub), parents: f.parents.map(pub) })),
  };
  await atomicWriteFile(publicFile, JSON.stringify(publicRoster));
  await chmod(publicFile, 0o644);
  return { keysFile, publicFile };
}

const bad = (file: string, what: string): PlushlinkError =>
  new PlushlinkError('PLK_E_KEY_FILE', `${file}: ${what}`);

const isRecord = isJsonObject;

function secretsOf(file: string, v: unknown, where: string): [Uint8Array, Uint8Array] {
  if (!Array.isArray(v) || v.length !== 2 || typeof v[0] !== 'string' || typeof v[1] !== 'string')
    throw bad(file, `${where} must be a pair of hex strings, got ${describeValue(v)}`);
  try {
    return [fromHex(v[0], `${where} signSeed`, KEY_BYTES), fromHex(v[1], `${where} boxSecret`, KEY_BYTES)];
  } catch (err) {
    // PLK_E_FIELD from fromHex: one code for everything wrong inside the file.
    throw new PlushlinkError('PLK_E_KEY_FILE', `${file}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Reads FLEETDIR/fleet.keys back, refusing a file readable by others; undefined when absent.
 * Every field is checked (types, counts, hex lengths) before any key is derived: a damaged or
 * hostile file ends in one typed PLK_E_KEY_FILE error, never in a crash.
 */
export async function readRosterFiles(dir: string): Promise<Roster | undefined> {
  const file = join(dir, ROSTER_KEYS_FILE);
  let mode: number;
  try {
    mode = (await stat(file)).mode;
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ENOENT') return undefined;
    throw err;
  }
  if ((mode & 0o077) !== 0)
    throw new PlushlinkError(
      'PLK_E_KEY_FILE',
      `${file} is accessible by other users (mode ${(mode & 0o777).toString(8)}); chmod 600 it`,
    );
  const text = await readLimitedText(file, MAX_KEYS_FILE_BYTES, {
    notFile: (p) => bad(p, 'not a file'),
    tooLarge: (p, n) => new PlushlinkError('PLK_E_LIMIT', `${p} is larger than ${n} bytes`),
  });
  // Strict and bounded (shared/json.ts): depth, duplicate and prototype keys, null-prototype objects.
  const raw = parseJson(text, {
    what: file,
    maxBytes: MAX_KEYS_FILE_BYTES,
    maxDepth: 5,
    code: 'PLK_E_KEY_FILE',
  });
  if (!isRecord(raw) || raw.plushlink !== 'fleet-keys') throw bad(file, 'not a PlushLink fleet key file');
  if (raw.v !== 1)
    throw new PlushlinkError(
      'PLK_E_VERSION',
      `${file}: fleet key file v must be 1, got ${describeValue(raw.v)}`,
    );
  const p = raw.plan;
  if (!isRecord(p)) throw bad(file, 'plan is missing');
  const num = (v: unknown): number => (typeof v === 'number' ? v : Number.NaN);
  let plan: RosterPlan;
  try {
    plan = validatePlan({
      families: num(p.families),
      toysPerFamily: num(p.toysPerFamily),
      parentsPerFamily: num(p.parentsPerFamily),
      ...(p.toys !== undefined ? { toys: num(p.toys) } : {}),
      seed: 'from-file', // the seed itself is never stored
    });
  } catch (err) {
    throw bad(file, err instanceof Error ? err.message : 'bad plan');
  }
  if (!Array.isArray(raw.families) || raw.families.length !== plan.families)
    throw bad(file, `expected ${plan.families} families`);
  const familyIds = new Set<string>();
  const endpointIds = new Set<string>();
  const families: RosterFamily[] = raw.families.map((f: unknown, i: number) => {
    if (!isRecord(f) || typeof f.id !== 'string' || !/^f[a-z2-7]{26}$/.test(f.id))
      throw bad(file, `family ${i} has no valid id`);
    if (familyIds.has(f.id)) throw bad(file, `family ${i} repeats the id of an earlier family`);
    familyIds.add(f.id);
    const list = (role: MemberRole, v: unknown, count: number): RosterMember[] => {
      if (!Array.isArray(v) || v.length !== count)
        throw bad(file, `family ${i} must list ${count} ${role}s, got ${describeValue(v)}`);
      return v.map((pair: unknown, k: number) => {
        const [sign, box] = secretsOf(file, pair, `family ${i} ${role} ${k}`);
        const member = rosterMember(role, i, k, sign, box);
        if (endpointIds.has(member.identity.id))
          throw bad(file, `family ${i} ${role} ${k} repeats the keys of an earlier member`);
        endpointIds.add(member.identity.id);
        return member;
      });
    };
    return {
      index: i,
      id: f.id as FamilyId,
      toys: list('toy', f.toys, toysInFamily(plan, i)),
      parents: list('parent', f.parents, plan.parentsPerFamily),
    };
  });
  return { plan, families };
}
