// Builds the parent page into dist/web at install time: web/src bundled by esbuild for browsers (shared/crypto-node.ts swapped for its browser stand-in), the static files copied, and a manifest of sizes and SHA-256 that the gateway's web server checks.
import { createHash } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import { build, type Plugin } from 'esbuild';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const STATIC = ['index.html', 'app.css', 'icon.svg'];
/** What browsers must have anyway for the page (WebCrypto Ed25519/X25519, WebCodecs): no older syntax is worth emitting. */
const TARGET = ['chrome120', 'edge120', 'firefox130', 'safari17'];

export interface WebBuildFile {
  readonly path: string;
  readonly bytes: number;
  readonly gzipBytes: number;
  readonly sha256: string;
}

export interface WebBuildResult {
  readonly outDir: string;
  readonly files: readonly WebBuildFile[];
  readonly ms: number;
}

/**
 * The one module of shared/ that needs Node (shared/crypto-node.ts) is replaced by
 * web/src/platform-crypto.ts, which has the same exports; any other Node built-in is a build error.
 */
function browserPlatform(): Plugin {
  const nodePart = join(ROOT, 'shared', 'crypto-node.ts');
  const stand = join(ROOT, 'web', 'src', 'platform-crypto.ts');
  return {
    name: 'plushlink-browser-platform',
    setup(b) {
      b.onResolve({ filter: /crypto-node\.ts$/ }, (args) =>
        resolve(args.resolveDir, args.path) === nodePart ? { path: stand } : undefined,
      );
      b.onResolve({ filter: /^node:/ }, (args) => ({
        errors: [
          {
            text: `${args.path} (imported by ${relative(ROOT, args.importer)}): the parent page runs in a browser`,
          },
        ],
      }));
    },
  };
}

/** Builds the page into `outDir` (default dist/web), replacing what was there. */
export async function buildWeb(outDir = join(ROOT, 'dist', 'web')): Promise<WebBuildResult> {
  const t0 = performance.now();
  await rm(outDir, { recursive: true, force: true });
  await mkdir(outDir, { recursive: true });
  await build({
    entryPoints: [join(ROOT, 'web', 'src', 'main.ts')],
    outfile: join(outDir, 'app.js'),
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: TARGET,
    minify: true,
    charset: 'utf8',
    legalComments: 'eof',
    plugins: [browserPlatform()],
    logLevel: 'silent',
    write: true,
  });
  for (const name of STATIC)
    await writeFile(join(outDir, name), await readFile(join(ROOT, 'web', 'static', name)));
  const files: WebBuildFile[] = [];
  for (const path of ['app.js', ...STATIC]) {
    const body = await readFile(join(outDir, path));
    files.push({
      path,
      bytes: body.length,
      gzipBytes: gzipSync(body).length,
      sha256: createHash('sha256').update(body).digest('hex'),
    });
  }
  // Written last: a build interrupted before this point is "not built" to the web server.
  await writeFile(
    join(outDir, 'manifest.json'),
    `${JSON.stringify({ plushlink: 'web-build', v: 1, files: files.map(({ path, bytes, sha256 }) => ({ path, bytes, sha256 })) }, null, 2)}\n`,
  );
  return { outDir, files, ms: performance.now() - t0 };
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const out = process.argv[2] ? resolve(process.argv[2]) : undefined;
  buildWeb(out).then(
    (r) => {
      const kB = (n: number) => `${(n / 1024).toFixed(1)} kB`;
      const list = r.files.map((f) => `${f.path} ${kB(f.bytes)} (gzip ${kB(f.gzipBytes)})`).join(', ');
      process.stdout.write(
        `parent page built in ${relative(process.cwd(), r.outDir) || r.outDir}/ in ${Math.round(r.ms)} ms: ${list}\n`,
      );
    },
    (err: unknown) => {
      process.stderr.write(`build-web: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}
