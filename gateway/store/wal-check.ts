// Reads a SQLite write-ahead log as SQLite's recovery does (header, salts, cumulative checksums) to tell a torn last transaction from damage that would silently drop committed ones.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

/*
 * The format (https://www.sqlite.org/fileformat2.html#the_write_ahead_log):
 * - a 32-byte header, big-endian: magic 0x377f0682 (checksums over little-endian words) or
 *   0x377f0683 (big-endian words), format version 3007000, page size, checkpoint sequence,
 *   salt-1, salt-2, checksum-1, checksum-2 (of the header's first 24 bytes);
 * - frames of a 24-byte header (page number, database size in pages after the commit for the last
 *   frame of a transaction — 0 otherwise —, the two salts, the two checksums) and one page.
 * A frame is valid when its salts equal the header's and its checksums equal the checksum computed
 * cumulatively over the header's first 24 bytes and, for every frame up to it, the frame header's
 * first 8 bytes and the page. Recovery uses the frames up to the last valid commit frame before
 * the first invalid frame and ignores everything after: a transaction committed after a damaged
 * frame is silently rolled back.
 *
 * What is normal, and what is damage:
 * - frames after the end that carry other salts: an older generation of the log (it restarts from
 *   the beginning with new salts after a complete checkpoint) — normal;
 * - a partial frame, or invalid / uncommitted frames of the current salts after the last commit,
 *   with no further committed transaction behind them: the last transaction torn by a crash
 *   before its commit was durable (never acknowledged: a write settles only after the WAL
 *   fsync that covers it) — normal, SQLite rolls it back;
 * - an invalid frame followed by intact frames of the same log (same salts, each checksum chaining
 *   from the stored checksum of the frame before it) that commit LATER transactions: those were
 *   durable and acknowledged, and SQLite would drop them without a word — damage.
 */

export const WAL_HEADER_BYTES = 32;
export const WAL_FRAME_HEADER_BYTES = 24;
const MAGIC_LE = 0x377f0682;
const MAGIC_BE = 0x377f0683;
const WAL_VERSION = 3007000;

export type WalVerdict = 'empty' | 'ok' | 'torn-tail' | 'damaged';

export interface WalAnalysis {
  readonly bytes: number;
  /** Header magic, version, page size and checksum are valid (otherwise SQLite ignores the whole log). */
  readonly headerValid: boolean;
  readonly pageSize: number;
  /** Whole frames in the file. */
  readonly frames: number;
  /** Frames SQLite recovers: up to and including the last valid commit frame. */
  readonly validFrames: number;
  /** Transactions SQLite recovers (valid commit frames). */
  readonly committedTransactions: number;
  /** 1-based index of the first frame that fails its salts or checksum (0: the header; undefined: none). */
  readonly firstBadFrame: number | undefined;
  /** Byte offset of that frame in the file. */
  readonly firstBadOffset: number | undefined;
  /** Committed transactions after the broken one that SQLite would silently drop. */
  readonly droppedTransactions: number;
  readonly verdict: WalVerdict;
}

type Sums = [number, number];

/** SQLite's WAL checksum over `len` bytes (a multiple of 8) of `v` from `off`, continuing from `s`. */
export function walChecksum(v: DataView, off: number, len: number, littleEndian: boolean, s: Sums): Sums {
  let s0 = s[0];
  let s1 = s[1];
  const end = off + len;
  for (let i = off; i < end; i += 8) {
    s0 = (s0 + v.getUint32(i, littleEndian) + s1) >>> 0;
    s1 = (s1 + v.getUint32(i + 4, littleEndian) + s0) >>> 0;
  }
  return [s0, s1];
}

const isPageSize = (n: number): boolean => n >= 512 && n <= 65536 && (n & (n - 1)) === 0;

interface Frame {
  readonly off: number;
  readonly pgno: number;
  readonly commit: boolean;
  readonly saltsMatch: boolean;
  readonly stored: Sums;
}

function frameAt(v: DataView, off: number, salts: Sums): Frame {
  return {
    off,
    pgno: v.getUint32(off),
    commit: v.getUint32(off + 4) !== 0,
    saltsMatch: v.getUint32(off + 8) === salts[0] && v.getUint32(off + 12) === salts[1],
    stored: [v.getUint32(off + 16), v.getUint32(off + 20)],
  };
}

/** The chain's checksums after frame `f` seeded with `seed`, or undefined when `f` does not check out. */
function frameSums(v: DataView, f: Frame, pageSize: number, le: boolean, seed: Sums): Sums | undefined {
  if (!f.saltsMatch || f.pgno === 0) return undefined;
  let s = walChecksum(v, f.off, 8, le, seed);
  s = walChecksum(v, f.off + WAL_FRAME_HEADER_BYTES, pageSize, le, s);
  return s[0] === f.stored[0] && s[1] === f.stored[1] ? s : undefined;
}

/**
 * Commit frames in the unbroken run of intact frames from `start` on (0-based), each checked against
 * the stored checksum of the frame before it. The frame right after a damaged one may itself fail
 * (when the damage hit the stored checksum), so the run may begin one frame later.
 */
function laterCommits(
  v: DataView,
  frames: readonly Frame[],
  start: number,
  pageSize: number,
  le: boolean,
  seedBefore: (i: number) => Sums,
): number {
  for (const first of [start, start + 1]) {
    if (first >= frames.length) return 0;
    let commits = 0;
    let i = first;
    for (; i < frames.length; i++) {
      if (!frameSums(v, frames[i]!, pageSize, le, seedBefore(i))) break;
      if (frames[i]!.commit) commits++;
    }
    if (i > first) return commits;
  }
  return 0;
}

/**
 * Analyses the bytes of a WAL file (see the comment at the top of this file). `pageSizeHint` (the
 * database's page size) lets frames be found when the header's page size field itself is damaged.
 */
export function analyzeWal(bytes: Uint8Array, pageSizeHint?: number): WalAnalysis {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const base = {
    bytes: bytes.length,
    frames: 0,
    validFrames: 0,
    committedTransactions: 0,
    firstBadFrame: undefined,
    firstBadOffset: undefined,
    droppedTransactions: 0,
  };
  if (bytes.length < WAL_HEADER_BYTES) {
    // No complete header: SQLite treats the log as empty. A non-empty stub is a torn header write.
    return { ...base, headerValid: false, pageSize: 0, verdict: bytes.length === 0 ? 'empty' : 'torn-tail' };
  }
  const magic = v.getUint32(0);
  const headerPageSize = v.getUint32(8);
  const pageSize =
    !isPageSize(headerPageSize) && pageSizeHint !== undefined && isPageSize(pageSizeHint)
      ? pageSizeHint
      : headerPageSize;
  const salts: Sums = [v.getUint32(16), v.getUint32(20)];
  const headerSums: Sums = [v.getUint32(24), v.getUint32(28)];
  const sizeOk = isPageSize(pageSize);
  const frameBytes = WAL_FRAME_HEADER_BYTES + (sizeOk ? pageSize : 0);
  const nFrames = sizeOk ? Math.floor((bytes.length - WAL_HEADER_BYTES) / frameBytes) : 0;
  const partialFrame = sizeOk && (bytes.length - WAL_HEADER_BYTES) % frameBytes !== 0;
  const frames: Frame[] = [];
  for (let i = 0; i < nFrames; i++) frames.push(frameAt(v, WAL_HEADER_BYTES + i * frameBytes, salts));
  const seedBefore = (i: number): Sums => (i === 0 ? headerSums : frames[i - 1]!.stored);

  const magicOk = magic === MAGIC_LE || magic === MAGIC_BE;
  const le = magic === MAGIC_LE;
  const headerValid =
    magicOk &&
    v.getUint32(4) === WAL_VERSION &&
    pageSize === headerPageSize &&
    sizeOk &&
    (() => {
      const s = walChecksum(v, 0, 24, le, [0, 0]);
      return s[0] === headerSums[0] && s[1] === headerSums[1];
    })();

  if (!headerValid) {
    // SQLite ignores the whole log. That is normal when the header was being rewritten for a new
    // generation (salt-1 is the frames' salt-1 plus one: every older frame was checkpointed before
    // the log restarts). Otherwise intact frames (the salts they carry, each checksum chaining
    // from the one stored before it, in either word order — the magic may be what was hit) that
    // commit transactions are committed data SQLite would drop: damage.
    const f1 = frames[0];
    const restarting = f1 !== undefined && salts[0] === (v.getUint32(f1.off + 8) + 1) >>> 0;
    let dropped = 0;
    if (sizeOk && f1 && !restarting) {
      const frameSalts: Sums = [v.getUint32(f1.off + 8), v.getUint32(f1.off + 12)];
      const own = frames.map((f) => frameAt(v, f.off, frameSalts));
      dropped = Math.max(
        ...[true, false].map((o) =>
          laterCommits(v, own, 0, pageSize, o, (i) => (i === 0 ? headerSums : own[i - 1]!.stored)),
        ),
      );
    }
    return {
      ...base,
      headerValid: false,
      pageSize: sizeOk ? pageSize : 0,
      frames: nFrames,
      firstBadFrame: dropped > 0 ? 0 : undefined,
      firstBadOffset: dropped > 0 ? 0 : undefined,
      droppedTransactions: dropped,
      verdict: dropped > 0 ? 'damaged' : nFrames === 0 && !partialFrame ? 'empty' : 'torn-tail',
    };
  }

  let sums = headerSums;
  let validFrames = 0;
  let committed = 0;
  let firstBad: number | undefined;
  let validUncommitted = false;
  for (let i = 0; i < nFrames; i++) {
    const f = frames[i]!;
    const next = frameSums(v, f, pageSize, le, sums);
    if (!next) {
      firstBad = i;
      break;
    }
    sums = next;
    if (f.commit) {
      validFrames = i + 1;
      committed++;
      validUncommitted = false;
    } else validUncommitted = true;
  }

  let dropped = 0;
  let torn = partialFrame || validUncommitted;
  if (firstBad !== undefined) {
    const bad = frames[firstBad]!;
    // Same salts: the broken frame belongs to the transaction after the last good commit. Other
    // salts: normally an older generation of the log past the end of the current one — unless the
    // damage hit the salts, which the intact frames of the current log behind it then show.
    if (bad.saltsMatch) torn = true;
    // The broken transaction's own commit (a later commit frame, unless the broken frame is the
    // commit) is the torn transaction's; every commit after that one is a later, acknowledged one.
    const after = laterCommits(v, frames, firstBad + 1, pageSize, le, seedBefore);
    dropped = Math.max(0, after - (bad.commit ? 0 : 1));
  }
  return {
    ...base,
    headerValid: true,
    pageSize,
    frames: nFrames,
    validFrames,
    committedTransactions: committed,
    firstBadFrame: firstBad === undefined ? undefined : firstBad + 1,
    firstBadOffset: firstBad === undefined ? undefined : frames[firstBad]!.off,
    droppedTransactions: dropped,
    verdict: dropped > 0 ? 'damaged' : torn ? 'torn-tail' : nFrames === 0 ? 'empty' : 'ok',
  };
}

function readWhole(path: string): Uint8Array | undefined {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const size = fstatSync(fd).size;
    const buf = Buffer.allocUnsafe(size);
    let n = 0;
    while (n < size) {
      const r = readSync(fd, buf, n, size - n, n);
      if (r === 0) break;
      n += r;
    }
    return buf.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}

/** The page size in a SQLite database file's header (offset 16, big-endian; 1 means 65536). */
export function databasePageSize(dbPath: string): number | undefined {
  let fd: number;
  try {
    fd = openSync(dbPath, 'r');
  } catch {
    return undefined;
  }
  try {
    const b = Buffer.alloc(18);
    if (readSync(fd, b, 0, 18, 0) < 18) return undefined;
    const n = b.readUInt16BE(16);
    return n === 1 ? 65536 : n;
  } finally {
    closeSync(fd);
  }
}

/**
 * Analyses the WAL file at `path` (undefined when there is none); `pageSizeHint` as for
 * `analyzeWal`. A log another process is appending to can be read mid-write; damage is therefore
 * only reported when a second read confirms the same broken frame (a live writer has finished
 * that frame by then).
 */
export function checkWalFile(
  path: string,
  pageSizeHint?: number,
): (WalAnalysis & { readonly path: string }) | undefined {
  const first = readWhole(path);
  if (first === undefined) return undefined;
  let a = analyzeWal(first, pageSizeHint);
  if (a.verdict === 'damaged') {
    const again = readWhole(path);
    if (again === undefined) return undefined;
    const b = analyzeWal(again, pageSizeHint);
    if (b.verdict !== 'damaged' || b.firstBadOffset !== a.firstBadOffset) a = b;
  }
  return { path, ...a };
}
