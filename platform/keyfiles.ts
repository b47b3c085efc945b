// Key directories on disk, shared by toys, parent apps, the gateway and the CLI: private key file (mode 0600) and public identity JSON [PLK-1.4].
import { chmod, mkdir, open, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { PlushlinkError } from '../shared/errors.ts';
import {
  identityToJson,
  type PrivateIdentity,
  type PublicIdentity,
  parseIdentityJson,
  parsePrivateKeyJson,
  privateKeyToJson,
} from '../shared/identity.ts';
import { LIMITS } from '../shared/limits.ts';
import { readLimitedText } from './files.ts';

export const PRIVATE_KEY_FILE = 'endpoint.key';
export const IDENTITY_FILE = 'identity.json';

/**
 * Writes DIR/endpoint.key (0600, created exclusively: an existing key is never overwritten)
 * and DIR/identity.json (0644). The directory is created with mode 0700.
 */
export async function writeKeyDir(
  dir: string,
  identity: PrivateIdentity,
): Promise<{ keyFile: string; identityFile: string }> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const keyFile = join(dir, PRIVATE_KEY_FILE);
  const identityFile = join(dir, IDENTITY_FILE);
  const fh = await open(keyFile, 'wx', 0o600);
  try {
    await fh.writeFile(privateKeyToJson(identity));
  } finally {
    await fh.close();
  }
  await chmod(keyFile, 0o600); // umask cannot widen it, but be explicit
  const ih = await open(identityFile, 'w', 0o644);
  try {
    await ih.writeFile(identityToJson(identity));
  } finally {
    await ih.close();
  }
  return { keyFile, identityFile };
}

function readLimited(path: string, limit: number): Promise<string> {
  return readLimitedText(path, limit, {
    notFile: (p) => new PlushlinkError('PLK_E_KEY_FILE', `${p} is not a file`),
    tooLarge: (p, n) => new PlushlinkError('PLK_E_LIMIT', `${p} is larger than ${n} bytes`),
  });
}

/** Reads DIR/endpoint.key (or a key file path); refuses a key readable by group or others. */
export async function readPrivateKey(dirOrFile: string): Promise<PrivateIdentity> {
  let path = dirOrFile;
  if ((await stat(dirOrFile)).isDirectory()) path = join(dirOrFile, PRIVATE_KEY_FILE);
  const st = await stat(path);
  if (process.platform !== 'win32' && (st.mode & 0o077) !== 0) {
    throw new PlushlinkError(
      'PLK_E_KEY_FILE',
      `${path} is accessible by other users (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it`,
    );
  }
  return parsePrivateKeyJson(await readLimited(path, LIMITS.keyFileBytes));
}

/** Reads a public identity JSON file, or DIR/identity.json when given a directory. */
export async function readIdentity(dirOrFile: string): Promise<PublicIdentity> {
  let path = dirOrFile;
  if ((await stat(dirOrFile)).isDirectory()) path = join(dirOrFile, IDENTITY_FILE);
  return parseIdentityJson(await readLimited(path, LIMITS.identityFileBytes));
}
