// SessionTable: the gateway's authenticated connections by endpoint, one Client or a Set only during a takeover [PLK-12.7].
import type { Client } from 'aedes';
import { describe, expect, it } from 'vitest';
import { SessionTable } from '../../gateway/context.ts';
import type { EndpointId } from '../../shared/types.ts';

// The table only compares and stores clients: plain objects stand in for Aedes connections.
const client = (name: string): Client => ({ id: name }) as unknown as Client;
const toy = 'plkid1toy' as EndpointId;
const mum = 'plkid1mum' as EndpointId;

describe('SessionTable', () => {
  it('holds one connection per endpoint, two during a takeover, and forgets an endpoint with none', () => {
    const t = new SessionTable();
    const a = client('a');
    const b = client('b');
    const m = client('m');
    t.add(toy, a);
    t.add(toy, a); // the same connection twice is one
    t.add(mum, m);
    expect(t.clients(toy)).toEqual([a]);
    expect(t.size).toBe(2);
    t.add(toy, b); // a takeover: the new connection before the old one has gone
    expect(t.clients(toy)).toEqual([a, b]);
    t.delete(toy, a);
    expect(t.clients(toy)).toEqual([b]);
    t.delete(toy, a); // already gone: nothing changes
    expect(t.clients(toy)).toEqual([b]);
    t.delete(toy, b);
    expect(t.clients(toy)).toEqual([]);
    expect(t.size).toBe(1);
    t.delete(mum, client('stranger')); // not the registered connection: kept
    expect(t.clients(mum)).toEqual([m]);
  });

  it('a takeover that ends with the newer connection leaving keeps the older one, and a third connection joins the set', () => {
    const t = new SessionTable();
    const [a, b, c] = [client('a'), client('b'), client('c')];
    t.add(toy, a);
    t.add(toy, b);
    t.add(toy, c);
    expect(t.clients(toy)).toEqual([a, b, c]);
    t.delete(toy, c);
    t.delete(toy, b);
    expect(t.clients(toy)).toEqual([a]);
    const copy = t.clients(toy);
    copy.pop();
    expect(t.clients(toy)).toEqual([a]); // callers get a copy
  });
});
