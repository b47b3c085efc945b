// Local display names for simulated endpoints ("bear-1", "mum-1"): kept only in the simulating process, never sent to the gateway.
import type { EndpointId } from '../shared/types.ts';

const TOY_NAMES = ['bear', 'bunny', 'fox', 'owl', 'puppy', 'kitty', 'duck', 'lion'] as const;
const PARENT_NAMES = ['mum', 'dad', 'grandma', 'grandpa', 'aunt', 'uncle', 'nan', 'pop'] as const;

/** Name of the k-th toy (0-based) of family f (0-based): "bear-1", "bunny-2", ... */
export function toyName(family: number, k: number): string {
  return `${TOY_NAMES[k % TOY_NAMES.length]}${k >= TOY_NAMES.length ? Math.floor(k / TOY_NAMES.length) + 1 : ''}-${family + 1}`;
}

/** Name of the k-th parent app (0-based) of family f (0-based): "mum-1", "dad-1", ... */
export function parentName(family: number, k: number): string {
  return `${PARENT_NAMES[k % PARENT_NAMES.length]}${k >= PARENT_NAMES.length ? Math.floor(k / PARENT_NAMES.length) + 1 : ''}-${family + 1}`;
}

/** Endpoint id → display name, for logs. Unknown ids show as a short id prefix. */
export class NameBook {
  private readonly names = new Map<EndpointId, string>();
  set(id: EndpointId, name: string): void {
    this.names.set(id, name);
  }
  name(id: EndpointId): string {
    return this.names.get(id) ?? `${id.slice(0, 8)}…`;
  }
  /** A file-name-safe form of the name (letters, digits, dash). */
  fileName(id: EndpointId): string {
    return this.name(id).replace(/[^A-Za-z0-9-]/g, '_');
  }
}
