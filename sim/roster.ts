// Who is in a simulated fleet: families of toys and parent apps with seeded keys and pseudonymous family ids (fleet, demo and load test alike).
import type { FamilyId } from '../gateway/interfaces.ts';
import { toBase32 } from '../shared/bytes.ts';
import { type CryptoSuite, defaultCrypto } from '../shared/crypto.ts';
import {
  identityFromSecrets,
  type PrivateIdentity,
  type PublicIdentity,
  publicPart,
} from '../shared/identity.ts';
import { KEY_BYTES } from '../shared/limits.ts';
import { seededRandom } from '../shared/random.ts';
import type { RandomSource } from '../shared/types.ts';
import { parentName, toyName } from './names.ts';

export type MemberRole = 'toy' | 'parent';

export interface RosterPlan {
  readonly families: number;
  readonly toysPerFamily: number;
  readonly parentsPerFamily: number;
  /**
   * Total number of toys when it is not families × toysPerFamily (a load test's `--toys 10`
   * with 4 per family): every family but the last is full, the last holds the remainder.
   */
  readonly toys?: number;
  /** Every key and family id derives from it: the same seed gives the same fleet. */
  readonly seed: string;
}

export interface RosterMember {
  readonly identity: PrivateIdentity;
  readonly role: MemberRole;
  /** 0-based family index. */
  readonly family: number;
  /** 0-based index within its role in the family. */
  readonly index: number;
  /** Local display name ("bear-1"): never leaves this process. */
  readonly name: string;
}

export interface RosterFamily {
  readonly index: number;
  readonly id: FamilyId;
  readonly toys: readonly RosterMember[];
  readonly parents: readonly RosterMember[];
}

export interface Roster {
  readonly plan: RosterPlan;
  readonly families: readonly RosterFamily[];
}

/** Most endpoints in one roster (keys are held in memory and in one key file). */
export const MAX_ROSTER_ENDPOINTS = 100_000;
/** Most toys, and most parents, in one family. */
export const MAX_PER_FAMILY = 16;

/** Toys in family `f` of the plan. */
export function toysInFamily(plan: RosterPlan, f: number): number {
  if (plan.toys === undefined) return plan.toysPerFamily;
  return Math.min(plan.toysPerFamily, plan.toys - f * plan.toysPerFamily);
}

/** The plan for `toys` toys in families of `toysPerFamily` (the last family holds the rest). */
export function planForToys(
  toys: number,
  toysPerFamily: number,
  parentsPerFamily: number,
  seed: string,
): RosterPlan {
  return validatePlan({
    families: Math.ceil(toys / toysPerFamily),
    toysPerFamily,
    parentsPerFamily,
    toys,
    seed,
  });
}

/** Throws a RangeError naming the field when the plan is out of bounds. */
export function validatePlan(plan: RosterPlan): RosterPlan {
  const int = (name: string, v: unknown, min: number, max: number): void => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
      throw new RangeError(`${name} must be an integer in [${min}, ${max}], got ${String(v)}`);
  };
  int('families', plan.families, 1, MAX_ROSTER_ENDPOINTS);
  int('toysPerFamily', plan.toysPerFamily, 1, MAX_PER_FAMILY);
  int('parentsPerFamily', plan.parentsPerFamily, 1, MAX_PER_FAMILY);
  if (plan.toys !== undefined) {
    int('toys', plan.toys, 1, MAX_ROSTER_ENDPOINTS);
    if (Math.ceil(plan.toys / plan.toysPerFamily) !== plan.families)
      throw new RangeError(
        `toys (${plan.toys}) do not fill ${plan.families} families of ${plan.toysPerFamily}`,
      );
  }
  const toys = plan.toys ?? plan.families * plan.toysPerFamily;
  if (toys + plan.families * plan.parentsPerFamily > MAX_ROSTER_ENDPOINTS) {
    throw new RangeError(`a fleet holds at most ${MAX_ROSTER_ENDPOINTS} endpoints`);
  }
  if (typeof plan.seed !== 'string' || plan.seed.length === 0 || plan.seed.length > 200) {
    throw new RangeError('seed must be a non-empty string of at most 200 characters');
  }
  return plan;
}

function familyIdFrom(random: RandomSource): FamilyId {
  return `f${toBase32(random(16))}` as FamilyId;
}

/** A member from its two 32-byte secrets (generated, or read back from a key file). */
export function rosterMember(
  role: MemberRole,
  family: number,
  index: number,
  signSeed: Uint8Array,
  boxSecret: Uint8Array,
  crypto: CryptoSuite = defaultCrypto(),
): RosterMember {
  return {
    identity: identityFromSecrets(role, signSeed, boxSecret, crypto),
    role,
    family,
    index,
    name: role === 'toy' ? toyName(family, index) : parentName(family, index),
  };
}

/**
 * Generates every key of the fleet from the seed (simulation only: seeded keys are as secret as
 * the seed). About 0.3 ms per endpoint (two JWK key imports in Node's crypto): 10,000 in ~3 s.
 */
export function generateRoster(plan: RosterPlan, crypto: CryptoSuite = defaultCrypto()): Roster {
  validatePlan(plan);
  const random = seededRandom(`plushlink/fleet/${plan.seed}`);
  const member = (role: MemberRole, family: number, index: number): RosterMember =>
    rosterMember(role, family, index, random(KEY_BYTES), random(KEY_BYTES), crypto);
  const families: RosterFamily[] = [];
  for (let f = 0; f < plan.families; f++) {
    const id = familyIdFrom(random);
    const toys = Array.from({ length: toysInFamily(plan, f) }, (_, k) => member('toy', f, k));
    const parents = Array.from({ length: plan.parentsPerFamily }, (_, k) => member('parent', f, k));
    families.push({ index: f, id, toys, parents });
  }
  return { plan, families };
}

/** Every member, family by family, toys before parents. */
export function rosterMembers(roster: Roster): RosterMember[] {
  return roster.families.flatMap((f) => [...f.toys, ...f.parents]);
}

/** Public identities of a family's members (what each member is provisioned with). */
export function familyPublics(family: RosterFamily): PublicIdentity[] {
  return [...family.toys, ...family.parents].map((m) => publicPart(m.identity));
}
