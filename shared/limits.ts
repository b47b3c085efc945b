// Protocol constants and hard limits shared by every encoder and decoder [PLK-9].
export const PROTOCOL_VERSION = 1; // [PLK-11.1]

/** Message type bytes: the first byte of every wire object [PLK-2.2]. */
export const MSG = {
  CLIP: 0x01,
  RECEIPT: 0x02,
  PROOF: 0x03,
  /** Gateway-signed family roster, on an inbox [PLK-4.6]. */
  ROSTER: 0x04,
  /** A recipient's signed "cannot open this clip" receipt [PLK-6.3]. */
  UNOPENABLE: 0x05,
  /** Vendor-signed firmware manifest and image [PLK-13]. */
  FIRMWARE: 0x06,
  TOKEN: 0x10,
} as const;

export const ID_BYTES = 20; // [PLK-1.2]
export const ID_CHARS = 32; // base32 of 20 bytes
export const KEY_BYTES = 32;
export const SIGNATURE_BYTES = 64;
export const NONCE_BYTES = 16; // connect token nonce [PLK-3.1]
export const CLIP_ID_BYTES = 16; // [PLK-5.1]
export const SECRETBOX_NONCE_BYTES = 24;
export const SECRETBOX_MAC_BYTES = 16;
export const SEALED_KEY_BYTES = 80; // crypto_box_seal of a 32-byte key: 32 + 16 + 32 [PLK-5.3]

/** [PLK-9.1] Hard limits enforced by every decoder. */
export const LIMITS = {
  maxRecipients: 16,
  maxClipPlaintextBytes: 1024 * 1024, // Ogg Opus bytes before padding
  maxPaddedBytes: 1024 * 1024 + 128 * 1024, // Padmé never grows more than 12 % above the minimum
  maxEnvelopeBytes: 1_310_720, // 1.25 MiB: the largest envelope any gateway accepts
  maxDurationMs: 300_000,
  maxSequence: Number.MAX_SAFE_INTEGER,
  maxTimestampMs: 8_640_000_000_000, // ECMAScript Date range
  minPaddedBytes: 1024,
  keyFileBytes: 4096,
  identityFileBytes: 4096,
  /** [PLK-13.2] Firmware image bytes: manifest ‖ image stays below maxEnvelopeBytes. */
  maxFirmwareImageBytes: 1024 * 1024,
  /** [PLK-13.1] Characters of a firmware model name. */
  maxFirmwareModelChars: 32,
} as const;

export const TOKEN_BYTES = 1 + 1 + ID_BYTES + ID_BYTES + 8 + NONCE_BYTES + SIGNATURE_BYTES; // 130 [PLK-3.1]
export const PROOF_BYTES = 1 + 1 + ID_BYTES + ID_BYTES + NONCE_BYTES + 8 + SIGNATURE_BYTES; // 130 [PLK-3.2]
export const RECEIPT_BYTES = 1 + 1 + ID_BYTES + ID_BYTES + CLIP_ID_BYTES + 8 + SIGNATURE_BYTES; // 130 [PLK-6.1]

/** Signature context strings, prepended to the signed bytes (domain separation) [PLK-2.3]. */
export const CONTEXT = {
  TOKEN: 'plushlink/v1/connect-token',
  PROOF: 'plushlink/v1/gateway-proof',
  CLIP: 'plushlink/v1/clip',
  RECEIPT: 'plushlink/v1/receipt',
  UNOPENABLE: 'plushlink/v1/receipt-unopenable',
  ROSTER: 'plushlink/v1/roster',
  FIRMWARE: 'plushlink/v1/firmware-manifest',
  ID: 'plushlink/v1/endpoint-id',
} as const;
