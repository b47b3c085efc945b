// Crypto seam: Ed25519 and X25519 behind one interface (Node's built-in crypto or tweetnacl), plus the NaCl constructions [PLK-2.3].
import type { CryptoSuite } from './crypto-nacl.ts';
import { platformCryptoSuite } from './crypto-node.ts';

/*
 * The portable part lives in crypto-nacl.ts, the Node part in crypto-node.ts (which a browser
 * bundle replaces, see web/); every existing import of this module keeps working.
 */
export {
  boxBeforeNm,
  type CryptoSuite,
  isAllZero,
  SEALED_OVERHEAD,
  sealedBoxOpen,
  sealedBoxSeal,
  secretboxOpen,
  secretboxSeal,
  tweetnaclSuite,
} from './crypto-nacl.ts';
export { nodeCryptoSuite, sha256 } from './crypto-node.ts';

let defaultSuite: CryptoSuite | undefined;
/** The process-wide default suite (Node's crypto; tweetnacl in a browser bundle). */
export function defaultCrypto(): CryptoSuite {
  defaultSuite ??= platformCryptoSuite();
  return defaultSuite;
}
