// Public surface of the PlushLink gateway: the broker core, its seams, metrics and socket guard.
export * from './auth.ts';
export * from './forward.ts';
export * from './gateway.ts';
export * from './ingest.ts';
export type * from './interfaces.ts';
export * from './metrics.ts';
export * from './packet-limit.ts';
