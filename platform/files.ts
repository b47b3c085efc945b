// Files on the local disk: atomic replacement (temp file, fsync, rename, directory fsync) and size-limited reads.
import { randomBytes } from 'node:crypto';
import { open, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** Writes `data` to `path` atomically: a sibling temp file (0600) is written, fsynced and renamed over it. */
export async function atomicWriteFile(path: string, data: string | Uint8Array): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const fh = await open(tmp, 'wx', 0o600);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } catch (err) {
    await fh.close();
    await rm(tmp, { force: true });
    throw err;
  }
  await fh.close();
  try {
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  // Make the rename itself durable (best effort: not every platform can fsync a directory).
  try {
    const dh = await open(dirname(path), 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
  } catch {
    /* directory fsync unsupported */
  }
}

/**
 * Reads a small text file after checking that it is a regular file of at most `limit` bytes, so
 * that a hostile path (a device, a FIFO, a huge file) is refused before anything is read.
 * `onTooLarge`/`onNotFile` build the error to throw (callers keep their own typed errors).
 */
export async function readLimitedText(
  path: string,
  limit: number,
  errors: { notFile: (path: string) => Error; tooLarge: (path: string, limit: number) => Error },
): Promise<string> {
  const st = await stat(path);
  if (!st.isFile()) throw errors.notFile(path);
  if (st.size > limit) throw errors.tooLarge(path, limit);
  return readFile(path, 'utf8');
}
