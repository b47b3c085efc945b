// Minimal example: one toy sends one voice clip to one parent app through an embedded gateway; the clip is kept in ./out/ (npx tsx examples/one-clip.ts).
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { ParentApp } from '../device/parent.ts';
import { Toy } from '../device/toy.ts';
import { WifiConnector } from '../device/transport/wifi.ts';
import { startEmbeddedGateway } from '../gateway/embedded.ts';
import { publicPart } from '../shared/identity.ts';
import { registerRoster } from '../sim/provision.ts';
import { generateRoster, rosterMembers } from '../sim/roster.ts';
import { bundledSpeechFiles } from '../sim/speech-bank.ts';

const dataDir = await mkdtemp(join(tmpdir(), 'plushlink-one-clip-')); // the gateway's store: removed at the end
const outDir = join(process.cwd(), 'out'); // the clip the parent received: kept
await mkdir(outDir, { recursive: true });
const gw = await startEmbeddedGateway({ dataDir }); // SQLite store, audit log, 127.0.0.1:<free port>
const roster = generateRoster({ families: 1, toysPerFamily: 1, parentsPerFamily: 1, seed: 'one-clip' });
await registerRoster(gw.store, gw.audit, roster); // public keys + the family, nothing else
const [bear, mum] = rosterMembers(roster).map((m) => m.identity);
const common = {
  gateway: gw.identity,
  family: [bear!, mum!].map(publicPart),
  connector: new WifiConnector({ url: gw.url }),
};
const toy = new Toy({ ...common, identity: bear! });
const parent = new ParentApp({
  ...common,
  identity: mum!,
  playDir: outDir,
  name: 'mum',
  nameOf: () => 'bear',
});
const played = new Promise<{ file?: string }>((resolve) => parent.on('played', resolve));
const delivered = new Promise<{ ms: number }>((resolve) => toy.on('delivered', resolve));
await Promise.all([toy.start(), parent.start()]);
// "Hello mummy! I love you." (assets/speech) → Opus → Ogg → sealed for mum → QoS 1 to the gateway
await toy.record(3, { kind: 'wav', path: bundledSpeechFiles()[0]! });
const file = relative(process.cwd(), (await played).file ?? '');
console.log(
  `toy got the receipt after ${(await delivered).ms} ms; parent saved ${file} (kept: play it with opusdec or any Ogg Opus player)`,
);
await Promise.all([toy.stop(), parent.stop()]);
await gw.close();
await rm(dataDir, { recursive: true, force: true });
