// Gateway over TLS: an endpoint pinning the gateway's self-signed certificate connects and verifies the proof; an unpinned one is refused [PLK-3.6].
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectEndpoint } from '../../device/transport/mqtt-connect.ts';
import { type Harness, startHarness } from './helpers/harness.ts';

const hasOpenssl = ['/usr/bin/openssl', '/usr/local/bin/openssl'].some((p) => existsSync(p));

describe.skipIf(!hasOpenssl)('gateway over TLS', () => {
  let h: Harness;
  let dir: string;
  let cert: Buffer;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'plk-tls-'));
    const certFile = join(dir, 'cert.pem');
    const keyFile = join(dir, 'key.pem');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        keyFile,
        '-out',
        certFile,
        '-subj',
        '/CN=localhost',
        '-days',
        '1',
        '-addext',
        'subjectAltName=DNS:localhost,IP:127.0.0.1',
      ],
      { stdio: 'ignore' },
    );
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
    await expect(
      connectEndpoint({
        url,
        identity: f.mum,
        gateway: h.gatewayPublic,
        clock: () => h.clock.now,
        timeoutMs: 2000,
      }),
    ).rejects.toThrow();
  });
});
