// Browser stand-in for shared/crypto-node.ts, swapped in by the page build (scripts/build-web.ts): tweetnacl is the platform suite, SHA-256 comes from @noble/hashes.
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';
import { type CryptoSuite, tweetnaclSuite } from '../../shared/crypto-nacl.ts';
import type * as NodePart from '../../shared/crypto-node.ts';
import { WebError } from './errors.ts';

/** Not in a browser: the page signs with WebCrypto keys (keys.ts) and verifies with tweetnacl. */
export function nodeCryptoSuite(): CryptoSuite {
  throw new WebError('WEB_UNSUPPORTED', "Node's crypto is not available in a browser");
}

/** What `defaultCrypto()` returns in the page: tweetnacl (signatures byte-identical, RFC 8032). */
export function platformCryptoSuite(): CryptoSuite {
  return tweetnaclSuite();
}

/** SHA-256 (FIPS 180-4), synchronous, as shared/ needs it (endpoint ids [PLK-1.2]). */
export function sha256(data: Uint8Array): Uint8Array {
  return nobleSha256(data);
}

// The substitute must offer exactly what it replaces (checked by the type checker, dropped by the bundler).
({ nodeCryptoSuite, platformCryptoSuite, sha256 }) satisfies typeof NodePart;
