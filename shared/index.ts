// Public surface of the PlushLink wire protocol package (pure: no sockets, files or clock).
export * from './bytes.ts';
export * from './crypto.ts';
export * from './envelope.ts';
export * from './errors.ts';
export * from './identity.ts';
export * from './limits.ts';
export * from './padding.ts';
export * from './random.ts';
export * from './receipt.ts';
export * from './token.ts';
export * from './topics.ts';
export type * from './types.ts';
