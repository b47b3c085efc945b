// Type declaration for aedes-persistence-redis, which ships none: the factory gateway/cluster/node.ts calls.
declare module 'aedes-persistence-redis' {
  import type { Redis } from 'ioredis';

  interface AedesPersistenceRedisOptions {
    /** An ioredis connection to use (else one is made from the other options). */
    readonly conn?: Redis;
    /** Most queued packets sent to a reconnecting persistent session; default 1000. */
    readonly maxSessionDelivery?: number;
  }

  /** Aedes' persistence on Redis: sessions, subscriptions, offline queues, wills, retained messages. */
  function aedesPersistenceRedis(opts?: AedesPersistenceRedisOptions): object;
  export = aedesPersistenceRedis;
}
