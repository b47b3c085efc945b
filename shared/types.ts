// Branded ids and units: mixing an EndpointId with any string, or ms with seconds, is a type error.
declare const brand: unique symbol;
export type Brand<T, B extends string> = T & { readonly [brand]: B };

/** Base32 (RFC 4648, lowercase, no padding) text form of a 20-byte endpoint id [PLK-1.2]. */
export type EndpointId = Brand<string, 'EndpointId'>;
/** Milliseconds since the Unix epoch, or a duration in milliseconds. */
export type Millis = Brand<number, 'Millis'>;

/** [PLK-1.3] `vendor`: a firmware vendor's signing identity [PLK-13]; never registered as an endpoint. */
export type Role = 'toy' | 'parent' | 'gateway' | 'vendor';
export const ROLES: readonly Role[] = ['toy', 'parent', 'gateway', 'vendor'];

/** Source of random bytes; injected so seeded runs replay exactly. */
export type RandomSource = (length: number) => Uint8Array;
/** Wall clock in ms; injected so tests control time. */
export type Clock = () => number;
