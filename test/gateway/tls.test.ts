// Gateway over TLS: an endpoint pinning the gateway's self-signed certificate connects and verifies the proof; an unpinned one is refused [PLK-3.6].
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConnectError, connectEndpoint } from '../../device/transport/mqtt-connect.ts';
import { expectCodeAsync } from '../helpers/errors.ts';
import { selfSignedCert } from '../helpers/tls.ts';
import { type Harness, startHarness } from './helpers/harness.ts';

describe('gateway over TLS', () => {
  let h: Harness;
  let dir: string;
  let cert: Buffer;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'plk-tls-'));
    const { cert: certFile, key: keyFile } = selfSignedCert(dir, 'gateway');
    cert = await readFile(certFile);
    h = await startHarness({ tls: { cert, key: await readFile(keyFile) } });
  });
  afterAll(async () => {
    await h?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('connects with the pinned certificate and refuses without it', async () => {
    const f = await h.family();
    const url = `mqtts://127.0.0.1:${h.port()}`;
    const conn = await connectEndpoint({
      url,
      identity: f.toy,
      gateway: h.gatewayPublic,
      ca: cert,
      clock: () => h.clock.now,
    });
    expect(conn.proof.endpointId).toBe(f.toy.id);
    await conn.close();
    const auditBefore = h.audit.events.length;
    const refused = await expectCodeAsync(
      connectEndpoint({
        url,
        identity: f.mum,
        gateway: h.gatewayPublic,
        clock: () => h.clock.now,
        timeoutMs: 2000,
      }),
      'TRANSPORT',
      ConnectError,
    );
    // The TLS handshake fails on the endpoint's side: the unpinned self-signed certificate is not trusted.
    expect(refused.cause).toMatchObject({ code: 'DEPTH_ZERO_SELF_SIGNED_CERT' });
    // No CONNECT reached the gateway, so it refused nothing.
    expect(h.audit.events.length).toBe(auditBefore);
  });
});
