// BLE link model between a toy and a phone: public API.
export * from './air.ts';
export * from './att.ts';
export * from './cmac.ts';
export * from './gatt.ts';
export * from './link.ts';
export * from './phone.ts';
export * from './random.ts';
export * from './smp.ts';
export * from './smp-crypto.ts';
export * from './timing.ts';
export * from './toy.ts';
