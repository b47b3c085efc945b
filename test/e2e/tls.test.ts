// Wi-Fi link over TLS: a toy pinning the gateway's certificate delivers a clip; pinned to another certificate it never connects.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EndpointEvents } from '../../device/endpoint.ts';
import { ParentApp } from '../../device/parent.ts';
import { Toy } from '../../device/toy.ts';
import { WifiConnector } from '../../device/transport/wifi.ts';
import { type EmbeddedGateway, startEmbeddedGateway } from '../../gateway/embedded.ts';
import { publicPart } from '../../shared/identity.ts';
import { registerRoster } from '../../sim/provision.ts';
import { generateRoster, rosterMembers } from '../../sim/roster.ts';
import { selfSignedCert } from '../helpers/tls.ts';

describe('Wi-Fi link over TLS with a pinned certificate', () => {
  let dir: string;
  let eg: EmbeddedGateway;
  let cert: Buffer;
  let otherCert: Buffer;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'plk-wifi-tls-'));
    const good = selfSignedCert(dir, 'gateway');
    const other = selfSignedCert(dir, 'impostor');
    cert = await readFile(good.cert);
    otherCert = await readFile(other.cert);
    eg = await startEmbeddedGateway({
      dataDir: join(dir, 'data'),
      tls: { cert, key: await readFile(good.key) },
    });
  });
  afterAll(async () => {
    await eg?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('delivers over mqtts:// when pinned, and never connects when pinned to another certificate', async () => {
    expect(eg.url).toMatch(/^mqtts:\/\//);
    const roster = generateRoster({ families: 1, toysPerFamily: 1, parentsPerFamily: 1, seed: 'tls' });
    await registerRoster(eg.store, eg.audit, roster);
    const [bear, mum] = rosterMembers(roster).map((m) => m.identity);
    const family = [bear!, mum!].map(publicPart);
    const pinned = new WifiConnector({ url: eg.url, ca: cert });
    const toy = new Toy({ identity: bear!, gateway: eg.identity, family, connector: pinned });
    const parent = new ParentApp({ identity: mum!, gateway: eg.identity, family, connector: pinned });
    const got = new Promise<EndpointEvents['received']>((resolve) => parent.on('received', resolve));
    await Promise.all([toy.start(), parent.start()]);
    const sent = await toy.record(1, { kind: 'synth', seed: 5 });
    expect(Buffer.from((await got).ogg).equals(Buffer.from(sent.ogg))).toBe(true);
    await Promise.all([toy.stop(), parent.stop()]);

    const fooled = new Toy({
      identity: bear!,
      gateway: eg.identity,
      family,
      connector: new WifiConnector({ url: eg.url, ca: otherCert, timeoutMs: 2000 }),
      backoff: { baseMs: 50, capMs: 100 },
    });
    const retry = new Promise<EndpointEvents['retry']>((resolve) => fooled.on('retry', resolve));
    await fooled.start();
    expect((await retry).error.message).toMatch(/certificate|self.signed|verify/i);
    expect(fooled.state).not.toBe('online');
    await fooled.stop();
    expect(() => new WifiConnector({ url: eg.url })).toThrow(/pin/);
  });
});
