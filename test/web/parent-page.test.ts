// The parent page in Debian's Chromium against a real gateway: the browser's own key onboarded, a toy's clip verified, opened, played and receipted, a reply from the (fake) microphone decoded by the toy, hostile content shown as text, and the private key in no request and no gateway file.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parser as mqttParser } from 'mqtt-packet';
import { chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readWavAsMono } from '../../device/audio/wav.ts';
import { encodePcmToOgg } from '../../device/codec/clip.ts';
import type { EndpointEvents } from '../../device/endpoint.ts';
import { Toy } from '../../device/toy.ts';
import { WifiConnector } from '../../device/transport/wifi.ts';
import { addFamilyMember, createFamily, registerEndpoint } from '../../gateway/admin.ts';
import { type EmbeddedGateway, startEmbeddedGateway } from '../../gateway/embedded.ts';
import { startWebServer, type WebServer } from '../../gateway/web.ts';
import { fromBase64Url } from '../../shared/base64url.ts';
import { toHex } from '../../shared/bytes.ts';
import { generateIdentity, identityFromSecrets, publicPart } from '../../shared/identity.ts';
import { parseIdentityCode } from '../../shared/identity-code.ts';
import { decodeConnectToken } from '../../shared/token.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** Never a downloaded browser: the distribution's Chromium (`apt-get install chromium`, see .ci/run). */
const CHROMIUM = '/usr/bin/chromium';
/** "The park was so much fun today." (2.49 s): the toy's clip, and what the fake microphone says. */
const SPEECH = join(ROOT, 'assets', 'speech', 'park-fun.wav');
const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--autoplay-policy=no-user-gesture-required',
  '--use-fake-ui-for-media-stream',
  '--use-fake-device-for-media-stream',
  `--use-file-for-fake-audio-capture=${SPEECH}`,
];

/**
 * Test instrumentation (not a mock): the page's generateKey still runs, but the key is made
 * extractable once, its private bytes kept for the test, and re-imported with the page's own
 * `extractable` flag — so that the test can search every request and file for the private key.
 */
const CAPTURE_KEYS = `(() => {
  const subtle = crypto.subtle;
  const real = subtle.generateKey.bind(subtle);
  const seen = { requested: [], secrets: [] };
  Object.defineProperty(window, '__plkTest', { value: seen });
  subtle.generateKey = async (alg, extractable, usages) => {
    seen.requested.push({ name: alg.name ?? alg, extractable });
    const pair = await real(alg, true, usages);
    const pkcs8 = new Uint8Array(await subtle.exportKey('pkcs8', pair.privateKey));
    seen.secrets.push(Array.from(pkcs8.slice(-32)));
    const privateKey = await subtle.importKey('pkcs8', pkcs8, alg, extractable, pair.privateKey.usages);
    return { publicKey: pair.publicKey, privateKey };
  };
})();`;

function cli(args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['bin/plushlink.js', ...args], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

/** The next event of `kind` from the toy that matches. */
function next<K extends keyof EndpointEvents>(
  toy: Toy,
  kind: K,
  match: (e: EndpointEvents[K]) => boolean,
): Promise<EndpointEvents[K]> {
  return new Promise((resolve) => {
    const off = toy.on(kind, (e) => {
      if (!match(e)) return;
      off();
      resolve(e);
    });
  });
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await filesUnder(p)));
    else out.push(p);
  }
  return out;
}

/** Every form a 32-byte secret could take in a request or a file. */
function forms(secret: Uint8Array): Buffer[] {
  const b = Buffer.from(secret);
  return [
    b,
    Buffer.from(toHex(secret)),
    Buffer.from(toHex(secret).toUpperCase()),
    Buffer.from(b.toString('base64')),
    Buffer.from(b.toString('base64url')),
  ];
}

let dir: string;
let eg: EmbeddedGateway;
let web: WebServer;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'plk-web-'));
  eg = await startEmbeddedGateway({ dataDir: join(dir, 'data') });
  web = await startWebServer({ gateway: eg.gateway, identity: eg.identity, port: 0 });
});

afterAll(async () => {
  await web?.close();
  await eg?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('the parent page in Chromium', () => {
  it('onboards its own key, plays a toy’s clip, sends a reply the toy decodes, receipts both ways, refuses hostile content safely, and never sends its private key', {
    timeout: 90_000,
  }, async () => {
    if (!existsSync(CHROMIUM))
      throw new Error(
        `${CHROMIUM} is missing: install Debian's Chromium (apt-get install -y --no-install-recommends chromium; .ci/run does it)`,
      );
    const t0 = performance.now();
    const family = await createFamily(eg.store, eg.audit);
    const bear = generateIdentity('toy');
    await registerEndpoint(eg.store, eg.audit, publicPart(bear));
    await addFamilyMember(eg.store, eg.audit, family, bear.id);
    const toy = new Toy({
      identity: bear,
      gateway: eg.identity,
      family: [],
      connector: new WifiConnector({ url: eg.url }),
    });
    await toy.start();

    const profile = await mkdtemp(join(tmpdir(), 'plk-chromium-profile-'));
    const shots = await mkdtemp(join(tmpdir(), 'plk-web-screenshot-'));
    const ctx = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: FLAGS,
      viewport: { width: 880, height: 1000 },
    });
    try {
      const origin = web.url.replace(/\/$/, '');
      const outside: string[] = [];
      const requests: { method: string; url: string; headers: string; body: Buffer }[] = [];
      await ctx.route('**/*', (route) => {
        const url = route.request().url();
        if (url.startsWith(`${origin}/`)) return route.continue();
        outside.push(url);
        return route.abort();
      });
      const page = await ctx.newPage();
      const problems: string[] = [];
      page.on('pageerror', (e) => problems.push(e.message));
      page.on('console', (m) => {
        if (m.type() === 'error') problems.push(m.text());
      });
      page.on('request', (r) => {
        requests.push({
          method: r.method(),
          url: r.url(),
          headers: JSON.stringify(r.headers()),
          body: r.postDataBuffer() ?? Buffer.alloc(0),
        });
      });
      const sent: Buffer[] = [];
      page.on('websocket', (ws) => {
        expect(ws.url()).toBe(`${origin.replace(/^http/, 'ws')}/mqtt`);
        ws.on('framesent', (f) =>
          sent.push(typeof f.payload === 'string' ? Buffer.from(f.payload) : f.payload),
        );
      });
      await page.addInitScript(CAPTURE_KEYS);
      await page.goto(`${origin}/#family=${family}`);

      // 1. Onboarding: the page shows its identity code; the operator registers it with the CLI.
      const command = page.locator('#setup-command');
      await command.filter({ hasText: 'plkid1.' }).waitFor();
      const text = (await command.textContent()) ?? '';
      expect(text).toContain(`--family ${family}`);
      const code = /plkid1\.[A-Za-z0-9_-]+/.exec(text)![0];
      const parent = parseIdentityCode(code, 'parent');
      expect(await page.locator('#setup-id').textContent()).toBe(parent.id);
      await expect
        .poll(() => page.locator('#status').textContent(), { timeout: 10_000 })
        .toBe('Not registered yet');
      const rosterWithPage = next(toy, 'roster', (e) => e.members.includes(parent.id));
      const reg = await cli([
        'provision',
        'parent',
        '--public',
        code,
        '--family',
        family,
        '--data',
        eg.dataDir,
      ]);
      expect(reg.stderr).toBe(`added ${parent.id} to ${family}\n`);
      expect(reg.stdout).toBe(`${parent.id}\n`);
      await page.locator('#retry').click();
      await expect
        .poll(() => page.locator('#status').textContent(), { timeout: 15_000 })
        .toBe('Online · verified');
      await page.locator('#members li', { hasText: 'Toy 1' }).waitFor();
      await rosterWithPage; // the gateway told the toy about its new parent [PLK-4.6]

      // 2. A clip from the toy: listed by roster name, opened in the page, receipted, played.
      const receipted = next(toy, 'delivered', (e) => e.recipient === parent.id);
      const clip = await toy.record(3, { kind: 'wav', path: SPEECH });
      expect(Math.abs(clip.durationMs - 2490)).toBeLessThan(20);
      const item = page.locator(`li.clip[data-key="${bear.id}:${clip.clipId}"]`);
      await item.locator('audio').waitFor();
      expect(await item.locator('.clip-name').textContent()).toBe('Toy 1');
      expect(await item.locator('.clip-duration').textContent()).toBe(
        `${(clip.durationMs / 1000).toFixed(1)} s`,
      );
      expect((await receipted).clipId).toBe(clip.clipId);
      const audio = `document.querySelector('li.clip[data-key="${bear.id}:${clip.clipId}"] audio')`;
      await page.evaluate(`${audio}.play()`);
      await expect
        .poll(() => page.evaluate(`${audio}.currentTime`) as Promise<number>, { timeout: 10_000 })
        .toBeGreaterThan(0.5);
      const duration = (await page.evaluate(`${audio}.duration`)) as number;
      expect(Math.abs(duration - clip.durationMs / 1000)).toBeLessThan(0.03);

      // 3. A reply from the microphone: Opus by WebCodecs, Ogg by device/codec/ogg.ts, sealed to the toy.
      const played = next(toy, 'played', (e) => e.sender === parent.id);
      await expect.poll(() => page.locator('#record').isEnabled()).toBe(true);
      await page.locator('#record').click();
      await expect.poll(() => page.locator('#timer').textContent(), { timeout: 10_000 }).toBe('0:02');
      await page.locator('#record').click();
      const reply = await played;
      const row = page.locator('#replies li').first();
      await expect.poll(() => row.getAttribute('data-status'), { timeout: 10_000 }).toBe('delivered');
      const sentSeconds = Number(/· ([\d.]+) s ·/.exec((await row.textContent()) ?? '')![1]);
      expect(reply.durationMs).toBeGreaterThan(2000);
      expect(reply.durationMs).toBeLessThan(4000);
      expect(Math.abs(reply.durationMs / 1000 - sentSeconds)).toBeLessThanOrEqual(0.06);

      // 4. Hostile content: a nickname and a stream title with markup stay text; a damaged recording is refused.
      await page.locator('#members .rename button').click();
      const evil = '<img src=x onerror=__pwned=1>Bear';
      await page.locator('#members .rename input').fill(evil);
      await page.locator('#members .rename button').click();
      await expect.poll(() => item.locator('.clip-name').textContent()).toBe(evil);
      const pcm = readWavAsMono(new Uint8Array(await readFile(SPEECH)), 16000);
      const titled = encodePcmToOgg(pcm, {
        serial: 7,
        comments: ['TITLE=<b>Bed</b>time <script>window.__pwned=2</script>'],
      });
      const second = await toy.record(3, {
        kind: 'encoded',
        ogg: titled.ogg,
        durationMs: titled.durationMs,
        packets: titled.packets,
      });
      const titledItem = page.locator(`li.clip[data-key="${bear.id}:${second.clipId}"]`);
      await titledItem.locator('audio').waitFor();
      expect(await titledItem.locator('.clip-title').textContent()).toBe(
        '“<b>Bed</b>time <script>window.__pwned=2</script>”',
      );
      const unopenable = next(toy, 'undeliverable', () => true);
      const junk = new Uint8Array(3000).fill(0x4f);
      const broken = await toy.record(1, { kind: 'encoded', ogg: junk, durationMs: 1000, packets: 50 });
      const brokenItem = page.locator(`li.clip[data-key="${bear.id}:${broken.clipId}"]`);
      await brokenItem.locator('.clip-error').waitFor();
      expect(await brokenItem.locator('.clip-error').textContent()).toMatch(
        /^A message arrived but cannot be played: the recording inside is damaged \(OGG_\w+\)\.$/,
      );
      expect((await unopenable).clipId).toBe(broken.clipId); // [PLK-6.3] signed "cannot open" to the sender
      // Addressed to the page but sealed to another X25519 key: signed and accepted by the gateway, unopenable here.
      const misaddressed = next(toy, 'undeliverable', () => true);
      const wrongKey = { ...parent, boxPublicKey: generateIdentity('parent').boxPublicKey };
      const sealedWrong = await toy.record(3, { kind: 'wav', path: SPEECH }, [wrongKey]);
      const wrongItem = page.locator(`li.clip[data-key="${bear.id}:${sealedWrong.clipId}"]`);
      await wrongItem.locator('.clip-error').waitFor();
      expect(await wrongItem.locator('.clip-error').textContent()).toBe(
        'A message arrived but cannot be played: it cannot be decrypted with this browser’s key.',
      );
      expect((await misaddressed).clipId).toBe(sealedWrong.clipId);
      expect(await page.evaluate('typeof window.__pwned')).toBe('undefined');
      expect(
        await page.evaluate(
          'document.querySelectorAll("#clips img[src=x], #clips b, #clips script, #members img").length',
        ),
      ).toBe(0);
      await page.locator('#members .rename button').click();
      await page.locator('#members .rename input').fill('Bear');
      await page.locator('#members .rename button').click();
      await expect.poll(() => item.locator('.clip-name').textContent()).toBe('Bear');

      // 5. The private key: asked for non-extractable, never in a request, a frame or a gateway file.
      const seen = (await page.evaluate('window.__plkTest')) as {
        requested: { name: string; extractable: boolean }[];
        secrets: number[][];
      };
      expect(seen.requested).toEqual([
        { name: 'Ed25519', extractable: false },
        { name: 'X25519', extractable: false },
      ]);
      const [seed, boxSecret] = seen.secrets.map((s) => Uint8Array.from(s));
      expect(identityFromSecrets('parent', seed!, boxSecret!).id).toBe(parent.id); // they are the page's keys
      const exportable = await page.evaluate(`new Promise((resolve) => {
        const req = indexedDB.open('plushlink');
        req.onsuccess = () => req.result.transaction('kv').objectStore('kv').get('keys').onsuccess = (e) => {
          const k = e.target.result;
          Promise.allSettled([crypto.subtle.exportKey('pkcs8', k.signPrivate), crypto.subtle.exportKey('pkcs8', k.boxPrivate)])
            .then((r) => resolve([k.signPrivate.extractable, k.boxPrivate.extractable, ...r.map((x) => x.status)]));
        };
      })`);
      expect(exportable).toEqual([false, false, 'rejected', 'rejected']);
      const needles = [...forms(seed!), ...forms(boxSecret!)];
      expect(requests.length).toBeGreaterThan(3);
      for (const r of requests) {
        expect(r.method).toBe('GET');
        expect(r.body.length).toBe(0);
        for (const n of needles) expect(Buffer.from(r.url + r.headers).includes(n)).toBe(false);
      }
      const stream = Buffer.concat(sent);
      for (const n of needles) expect(stream.includes(n)).toBe(false);
      const files = await filesUnder(eg.dataDir);
      expect(files.some((f) => f.endsWith('gateway.db'))).toBe(true);
      for (const f of files) {
        const bytes = await readFile(f);
        for (const n of needles) expect(bytes.includes(n), f).toBe(false);
      }
      // Every byte the page sent is MQTT: its token, its inbox subscription, its receipts and its reply.
      const packets: { cmd: string; topic?: string; password?: Buffer; username?: string }[] = [];
      const p = mqttParser({ protocolVersion: 4 });
      p.on('packet', (pk) => packets.push(pk as (typeof packets)[number]));
      p.on('error', (err) => problems.push(`page sent a malformed MQTT packet: ${err.message}`));
      p.parse(stream);
      expect(new Set(packets.map((pk) => pk.cmd))).toEqual(
        new Set(
          ['connect', 'subscribe', 'publish', 'puback', 'pingreq', 'disconnect'].filter((c) =>
            packets.some((pk) => pk.cmd === c),
          ),
        ),
      );
      for (const pk of packets.filter((x) => x.cmd === 'connect')) {
        expect(pk.username).toBe(parent.id);
        expect(decodeConnectToken(fromBase64Url(pk.password!.toString())).endpointId).toBe(parent.id);
      }
      expect(new Set(packets.filter((x) => x.cmd === 'publish').map((x) => x.topic))).toEqual(
        new Set([`plk/1/${parent.id}/rcpt`, `plk/1/${parent.id}/clip`]),
      );

      expect(outside).toEqual([]);
      expect(problems).toEqual([]);
      await page.evaluate('window.scrollTo(0, 0)');
      const png = join(shots, 'parent-page.png');
      await page.screenshot({ path: png, fullPage: true });
      expect((await readFile(png)).subarray(1, 4).toString()).toBe('PNG');
      console.log(`parent page screenshot: ${png} (test ${Math.round(performance.now() - t0)} ms)`);
    } finally {
      await ctx.close();
      await toy.stop();
      await rm(profile, { recursive: true, force: true });
    }
  });
});
