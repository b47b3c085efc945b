// Throwaway PostgreSQL clusters and Redis servers for tests: Debian's binaries, loopback only, a temp dir each, started and stopped by PID.
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A free TCP port on 127.0.0.1 (bound once and released: another process could take it meanwhile, rarely). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** True while a process with this PID exists (signal 0 checks without sending anything). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Sends `signal` to exactly this PID (never a name or a group) and waits until it is gone. */
export async function stopPid(
  pid: number,
  signal: NodeJS.Signals = 'SIGTERM',
  waitMs = 20_000,
): Promise<void> {
  if (!alive(pid)) return;
  try {
    process.kill(pid, signal);
  } catch {
    return;
  }
  const until = Date.now() + waitMs;
  while (alive(pid) && Date.now() < until) await sleep(25);
  if (alive(pid)) {
    process.kill(pid, 'SIGKILL');
    while (alive(pid)) await sleep(25);
  }
}

/** Waits for a child we spawned to exit (reaped, so its PID is really gone). */
function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

// ---- PostgreSQL ------------------------------------------------------------------------------------

/** Debian installs each major version under /usr/lib/postgresql/N/bin; the newest one is used. */
export function postgresBinDir(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root)
    ? readdirSync(root)
        .filter((v) => existsSync(join(root, v, 'bin', 'postgres')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (versions.length === 0) {
    throw new Error(
      'PostgreSQL is not installed: apt-get install -y postgresql (.ci/run does it); the tests start a throwaway cluster of their own',
    );
  }
  return join(root, versions[0]!, 'bin');
}

/** initdb and postgres refuse to run as root: as root, the cluster belongs to Debian's `postgres` user. */
function clusterOwner(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
  return { uid, gid };
}

export interface PostgresEngine {
  /** postgres://postgres@127.0.0.1:PORT/postgres */
  readonly url: string;
  readonly port: number;
  readonly dir: string;
  /** The postmaster's PID (undefined while stopped). */
  pid(): number | undefined;
  /** A connection URL for database `name` (created with `createDatabase`). */
  urlFor(name: string): string;
  /** CREATE DATABASE name (a fresh, empty database). */
  createDatabase(name: string): Promise<string>;
  /** Fast shutdown (SIGINT to the postmaster): open connections are cut, committed data stays. */
  stop(): Promise<void>;
  /** Starts the same cluster again on the same port. */
  start(): Promise<void>;
  /** Stops it and removes its directory. */
  destroy(): Promise<void>;
  /** The server log (for failure messages). */
  log(): string;
}

export interface PostgresEngineOptions {
  /** Extra `-c name=value` server settings. */
  readonly settings?: Readonly<Record<string, string>>;
}

/**
 * initdb into a new temp dir (trust authentication on loopback only, the unix socket in the temp
 * dir), then the postmaster on a free port. Durability is PostgreSQL's default — fsync on,
 * synchronous_commit on — because the stores' promises are tested against it.
 */
export async function startPostgres(opts: PostgresEngineOptions = {}): Promise<PostgresEngine> {
  const bin = postgresBinDir();
  const owner = clusterOwner();
  const dir = mkdtempSync(join(tmpdir(), 'plk-pg-'));
  const data = join(dir, 'data');
  const sock = join(dir, 'sock');
  mkdirSync(sock);
  if (owner) {
    chownSync(dir, owner.uid, owner.gid);
    chownSync(sock, owner.uid, owner.gid);
  }
  const as = owner ? { uid: owner.uid, gid: owner.gid } : {};
  const init = spawnSync(
    join(bin, 'initdb'),
    ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync'],
    { ...as, encoding: 'utf8', cwd: dir },
  );
  if (init.status !== 0) throw new Error(`initdb failed: ${init.stdout}${init.stderr}`);
  const port = await freePort();
  const settings: Record<string, string> = {
    listen_addresses: '127.0.0.1',
    port: String(port),
    unix_socket_directories: sock,
    max_connections: '200',
    shared_buffers: '64MB',
    fsync: 'on',
    synchronous_commit: 'on',
    log_min_messages: 'warning',
    ...opts.settings,
  };
  let child: ChildProcess | undefined;
  let logText = '';
  const start = async (): Promise<void> => {
    const args = ['-D', data, ...Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`])];
    const c = spawn(join(bin, 'postgres'), args, { ...as, cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
    child = c;
    c.stderr?.on('data', (d: Buffer) => {
      logText = (logText + d.toString()).slice(-20_000);
    });
    const until = Date.now() + 30_000;
    for (;;) {
      if (c.exitCode !== null) throw new Error(`postgres exited with ${c.exitCode}: ${logText}`);
      const r = spawnSync(join(bin, 'pg_isready'), ['-h', '127.0.0.1', '-p', String(port), '-q'], as);
      if (r.status === 0) return;
      if (Date.now() > until) throw new Error(`postgres did not become ready: ${logText}`);
      await sleep(50);
    }
  };
  await start();
  const base = `postgres://postgres@127.0.0.1:${port}`;
  const engine: PostgresEngine = {
    url: `${base}/postgres`,
    port,
    dir,
    pid: () => (child && child.exitCode === null && child.signalCode === null ? child.pid : undefined),
    urlFor: (name) => `${base}/${name}`,
    async createDatabase(name) {
      if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) throw new RangeError(`bad database name ${name}`);
      const r = spawnSync(
        join(bin, 'psql'),
        ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-qAt', '-c', `CREATE DATABASE ${name}`],
        { ...as, encoding: 'utf8' },
      );
      if (r.status !== 0) throw new Error(`CREATE DATABASE ${name}: ${r.stderr}`);
      return `${base}/${name}`;
    },
    async stop() {
      const c = child;
      if (!c?.pid) return;
      await stopPid(c.pid, 'SIGINT');
      await exited(c);
      child = undefined;
    },
    async start() {
      if (engine.pid() !== undefined) return;
      await start();
    },
    async destroy() {
      await engine.stop();
      rmSync(dir, { recursive: true, force: true });
    },
    log: () => logText,
  };
  return engine;
}

/** psql is where initdb is (Debian ships both in the same bin directory). */
export function psqlPath(): string {
  return join(postgresBinDir(), 'psql');
}

// ---- Redis -----------------------------------------------------------------------------------------

export interface RedisEngine {
  /** redis://127.0.0.1:PORT */
  readonly url: string;
  readonly port: number;
  readonly dir: string;
  pid(): number | undefined;
  /** SIGTERM (Redis saves nothing when --save '' and AOF is off) and wait. */
  stop(): Promise<void>;
  /** SIGKILL: a crash. */
  kill(): Promise<void>;
  /** Starts a server on the same port and directory (with AOF, what was fsynced comes back). */
  start(): Promise<void>;
  destroy(): Promise<void>;
  log(): string;
}

export interface RedisEngineOptions {
  /** appendonly yes with appendfsync always: every acknowledged write survives a crash. Default false. */
  readonly aof?: boolean;
}

/** `redis-server --port <free> --bind 127.0.0.1 --save ''` (and AOF when asked) in a temp dir. */
export async function startRedis(opts: RedisEngineOptions = {}): Promise<RedisEngine> {
  if (!existsSync('/usr/bin/redis-server')) {
    throw new Error(
      'redis-server is not installed: apt-get install -y redis-server (.ci/run does it); the tests start their own',
    );
  }
  const dir = mkdtempSync(join(tmpdir(), 'plk-redis-'));
  const port = await freePort();
  let child: ChildProcess | undefined;
  let logText = '';
  const args = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--dir',
    dir,
    '--save',
    '',
    '--daemonize',
    'no',
    '--protected-mode',
    'yes',
    ...(opts.aof ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no']),
  ];
  const start = async (): Promise<void> => {
    const c = spawn('/usr/bin/redis-server', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    child = c;
    let ready = false;
    const onData = (d: Buffer) => {
      logText = (logText + d.toString()).slice(-20_000);
      if (/Ready to accept connections/.test(logText)) ready = true;
    };
    c.stdout?.on('data', onData);
    c.stderr?.on('data', onData);
    const until = Date.now() + 15_000;
    while (!ready) {
      if (c.exitCode !== null) throw new Error(`redis-server exited with ${c.exitCode}: ${logText}`);
      if (Date.now() > until) throw new Error(`redis-server did not become ready: ${logText}`);
      await sleep(20);
    }
    logText = '';
  };
  await start();
  const halt = async (signal: NodeJS.Signals): Promise<void> => {
    const c = child;
    if (!c?.pid) return;
    await stopPid(c.pid, signal);
    await exited(c);
    child = undefined;
  };
  const engine: RedisEngine = {
    url: `redis://127.0.0.1:${port}`,
    port,
    dir,
    pid: () => (child && child.exitCode === null && child.signalCode === null ? child.pid : undefined),
    stop: () => halt('SIGTERM'),
    kill: () => halt('SIGKILL'),
    async start() {
      if (engine.pid() !== undefined) return;
      await start();
    },
    async destroy() {
      await halt('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
    log: () => logText,
  };
  return engine;
}

/** Reads a file the engine wrote (e.g. the PostgreSQL log), empty when absent. */
export function readIfExists(path: string): string {
  return existsSync(path) ? readFileSync(path, 'utf8') : '';
}
