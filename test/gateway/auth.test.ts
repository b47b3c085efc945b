// Gateway connect authentication: every refusal with its CONNACK code, audit entry and metric; impostors never kick the real toy [PLK-3].
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ConnectRefusedError,
  connectEndpoint,
  GatewayProofError,
} from '../../device/transport/mqtt-connect.ts';
import { decodePassword } from '../../gateway/auth.ts';
import { generateIdentity, publicPart } from '../../shared/identity.ts';
import { createConnectToken } from '../../shared/token.ts';
import { expectCodeAsync } from '../helpers/errors.ts';
import {
  closed,
  type Family,
  type Harness,
  inbox,
  makeClip,
  rawConnect,
  sleep,
  startHarness,
} from './helpers/harness.ts';

describe('gateway authentication', () => {
  let h: Harness;
  let fam: Family;
  beforeAll(async () => {
    h = await startHarness();
    fam = await h.family();
  });
  afterAll(async () => {
    await h.close();
  });

  const token = (identity = fam.toy, over: { gatewayId?: string; now?: number } = {}) =>
    Buffer.from(
      createConnectToken({
        identity,
        gatewayId: (over.gatewayId ?? h.gatewayIdentity.id) as typeof h.gatewayIdentity.id,
        now: over.now ?? h.clock.now,
      }).bytes,
    );

  async function refused(opts: Parameters<typeof rawConnect>[1], code: number, reason: string) {
    const before = h.audit.reasons('auth.refused').length;
    const r = await rawConnect(h.port(), opts);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.code).toBe(code);
    const reasons = h.audit.reasons('auth.refused');
    expect(reasons.length).toBe(before + 1);
    expect(reasons.at(-1)).toBe(reason);
    const metric = await h.metrics.authFailures.get();
    expect(metric.values.find((v) => v.labels.reason === reason)?.value).toBeGreaterThan(0);
  }

  it('accepts a valid token and proves the gateway', async () => {
    const conn = await h.connect(fam.toy);
    expect(conn.proof.endpointId).toBe(fam.toy.id);
    expect(conn.proof.gatewayId).toBe(h.gatewayIdentity.id);
    // The proof is stamped by the gateway's injected clock, not the wall clock.
    expect(conn.proof.timestamp).toBe(h.clock.now);
    await conn.close();
    // Every connect carries a fresh nonce: repeated connects of one endpoint all succeed, each with its own proof.
    const nonces = new Set<string>([Buffer.from(conn.proof.nonce).toString('hex')]);
    for (let i = 0; i < 5; i++) {
      const again = await h.connect(fam.toy);
      nonces.add(Buffer.from(again.proof.nonce).toString('hex'));
      await again.close();
    }
    expect(nonces.size).toBe(6);
  });

  it('refuses anonymous connections (4)', async () => {
    await refused({ clientId: fam.toy.id }, 4, 'anonymous');
  });

  it('refuses an unknown id (5)', async () => {
    const stranger = generateIdentity('toy');
    await refused(
      { clientId: stranger.id, username: stranger.id, password: token(stranger) },
      5,
      'unknown-id',
    );
  });

  it('refuses a revoked id (5)', async () => {
    const f = await h.family();
    await h.store.revokeEndpoint(f.dad.id, 1);
    await refused({ clientId: f.dad.id, username: f.dad.id, password: token(f.dad) }, 5, 'revoked');
  });

  it('refuses a client id different from the username (2)', async () => {
    await refused({ clientId: fam.mum.id, username: fam.toy.id, password: token() }, 2, 'client-id-mismatch');
  });

  it('refuses a username that is not an endpoint id (4)', async () => {
    await refused({ clientId: 'admin', username: 'admin', password: 'admin' }, 4, 'bad-username');
  });

  it('refuses a stale timestamp (4)', async () => {
    await refused(
      {
        clientId: fam.toy.id,
        username: fam.toy.id,
        password: token(fam.toy, { now: h.clock.now - 120_000 }),
      },
      4,
      'stale',
    );
  });

  it('refuses a reused nonce (4)', async () => {
    const pw = token(fam.mum);
    const first = await rawConnect(h.port(), { clientId: fam.mum.id, username: fam.mum.id, password: pw });
    expect(first.ok).toBe(true);
    if (first.ok) first.client.end(true);
    await refused({ clientId: fam.mum.id, username: fam.mum.id, password: pw }, 4, 'replay');
  });

  it('refuses a bad signature (4)', async () => {
    const pw = token(fam.dad);
    pw[pw.length - 1]! ^= 1;
    await refused({ clientId: fam.dad.id, username: fam.dad.id, password: pw }, 4, 'bad-signature');
  });

  it('refuses a token for another gateway (4)', async () => {
    const other = generateIdentity('gateway');
    await refused(
      { clientId: fam.dad.id, username: fam.dad.id, password: token(fam.dad, { gatewayId: other.id }) },
      4,
      'wrong-gateway',
    );
  });

  it('refuses a malformed token (4) and persistent sessions (5)', async () => {
    await refused(
      { clientId: fam.dad.id, username: fam.dad.id, password: Buffer.alloc(130, 7) },
      4,
      'malformed-token',
    );
    await refused(
      { clientId: fam.dad.id, username: fam.dad.id, password: token(fam.dad), clean: false },
      5,
      'persistent-session',
    );
  });

  it('refuses a will (5): the store is the only session state', async () => {
    await refused(
      {
        clientId: fam.dad.id,
        username: fam.dad.id,
        password: token(fam.dad),
        will: { topic: `plk/1/${fam.dad.id}/clip`, payload: Buffer.from('x'), qos: 0, retain: false },
      },
      5,
      'will',
    );
  });

  it('accepts the base64url text of the token as password', async () => {
    const pw = token(fam.dad).toString('base64url');
    expect(pw).toHaveLength(174);
    expect(decodePassword(Buffer.from(pw))).toHaveLength(130);
    const r = await rawConnect(h.port(), { clientId: fam.dad.id, username: fam.dad.id, password: pw });
    expect(r.ok).toBe(true);
    if (r.ok) r.client.end(true);
  });

  it('connectEndpoint reports the CONNACK code, and rejects a gateway it did not pin', async () => {
    const stranger = generateIdentity('toy');
    // An id the gateway does not know: not authorized (5).
    const unknown = await expectCodeAsync(
      connectEndpoint({ url: h.url(), identity: stranger, gateway: h.gatewayPublic }),
      'CONNECT_REFUSED',
      ConnectRefusedError,
    );
    expect(unknown.returnCode).toBe(5);
    // The endpoint pins another gateway: its token names that gateway, so this one refuses it (4).
    const impostorGw = publicPart(generateIdentity('gateway'));
    const err = await expectCodeAsync(
      connectEndpoint({ url: h.url(), identity: fam.dad, gateway: impostorGw }),
      'CONNECT_REFUSED',
      ConnectRefusedError,
    );
    expect(err.returnCode).toBe(4);
  });

  it('rejects a proof signed by another key (GatewayProofError)', async () => {
    // Pin the right gateway id but a different signing key: the proof cannot verify.
    const wrongKey = { ...h.gatewayPublic, signPublicKey: generateIdentity('gateway').signPublicKey };
    await expectCodeAsync(
      connectEndpoint({ url: h.url(), identity: fam.dad, gateway: wrongKey, timeoutMs: 2000 }),
      'PROOF_INVALID',
      GatewayProofError,
    );
  });

  it('an impostor with the toy id does not disconnect the real toy; a valid reconnect takes over', async () => {
    const f = await h.family();
    const toy = await h.connect(f.toy);
    const mum = await h.connect(f.mum);
    const mumBox = inbox(mum);
    for (const pw of [undefined, Buffer.alloc(130, 1), token(f.mum)]) {
      const r = await rawConnect(h.port(), {
        clientId: f.toy.id,
        username: f.toy.id,
        ...(pw ? { password: pw } : {}),
      });
      expect(r.ok).toBe(false);
    }
    await sleep(100);
    expect(toy.client.connected).toBe(true);
    await toy.publishClip(makeClip(f.toy, [f.mum]));
    await mumBox.wait(1);
    // The same endpoint reconnecting with a fresh valid token replaces the old connection.
    const again = await h.connect(f.toy);
    await closed(toy.client);
    expect(again.client.connected).toBe(true);
    await again.close();
    await mum.close();
  });
});
