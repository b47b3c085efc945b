// Protocol v2 (experimental) for the lab: one clip = a chain of independently sealed and signed chunks, streamed while the toy records [PLK-14], from the real shared/ code.

import { splitOggIntoChunks } from '../../device/codec/ogg-chunks.ts';
import {
  CHUNK_CONTEXT,
  CHUNK_LIMITS,
  chunkDeliveryId,
  chunkParts,
  decodeChunk,
  openChunkedClip,
  sealChunkedClip,
} from '../../shared/chunked.ts';
import { PlushlinkError } from '../../shared/errors.ts';
import { createReceipt } from '../../shared/receipt.ts';
import { configError, LabError } from './errors.ts';
import { type ProtocolModule, registerProtocol, type SealedClip, type WireMessage } from './protocol.ts';
import { protocolV1 } from './protocol-v1.ts';

/** Bytes of the chunk signature context prefix ("plushlink/v2/clip-chunk" and a NUL) [PLK-2.3]. */
const CHUNK_CONTEXT_BYTES = CHUNK_CONTEXT.CHUNK.length + 1;

/** Receipt ids of a sealed v2 clip, by message: the lab keeps them beside the messages. */
const deliveryIds = new WeakMap<SealedClip, Uint8Array[]>();

export const protocolV2: ProtocolModule = {
  version: 2,
  label: 'v2 (experimental): a chain of sealed, signed chunks, sent while recording [PLK-14]',

  parseOptions(raw) {
    const out: Record<string, number> = { chunkMs: CHUNK_LIMITS.defaultChunkMs, padTo: 0 };
    for (const [k, v] of Object.entries(raw)) {
      if (k === 'chunkMs') {
        if (
          typeof v !== 'number' ||
          !Number.isInteger(v) ||
          v < CHUNK_LIMITS.minChunkMs ||
          v > CHUNK_LIMITS.maxChunkMs
        )
          throw configError(
            'protocol.chunkMs',
            `must be an integer ${CHUNK_LIMITS.minChunkMs}..${CHUNK_LIMITS.maxChunkMs} (ms of audio per chunk), got ${JSON.stringify(v)}`,
          );
        out.chunkMs = v;
      } else if (k === 'padTo') {
        if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > CHUNK_LIMITS.maxChunkPaddedBytes)
          throw configError(
            'protocol.padTo',
            `must be an integer 0..${CHUNK_LIMITS.maxChunkPaddedBytes} (bytes every chunk is padded to at least), got ${JSON.stringify(v)}`,
          );
        out.padTo = v;
      } else throw configError(`protocol.${k}`, 'unknown key (protocol version 2 has chunkMs and padTo)');
    }
    return out;
  },

  topics: protocolV1.topics, // [PLK-14.1] the same topics as v1: one inbox serves mixed fleets

  sealClip(input): SealedClip {
    const chunkMs = Number(input.options.chunkMs ?? CHUNK_LIMITS.defaultChunkMs);
    const padTo = Number(input.options.padTo ?? 0);
    // Pages of exactly chunkMs, as the recorder writes them [PLK-14.3]: chunks cut at page ends.
    const encoded = input.encode(input.pcm, { pageMs: chunkMs });
    const pieces = splitOggIntoChunks(encoded.ogg, chunkMs);
    const s = encoded.settings;
    let sealed: ReturnType<typeof sealChunkedClip>;
    try {
      sealed = sealChunkedClip({
        sender: input.sender,
        recipients: input.recipients,
        codec: {
          codec: 'opus-ogg',
          channels: s.channels,
          sampleRate: s.sampleRate,
          bitrate: s.bitrate,
          frameMs: s.frameMs,
        },
        padTo,
        random: input.random,
        chunks: pieces.map((p) => ({ ogg: p.ogg, durationMs: Math.max(1, Math.round(p.durationMs)) })),
        sequence: input.sequence,
        createdAt: input.createdAt,
      });
    } catch (err) {
      if (err instanceof PlushlinkError) {
        throw new LabError('LAB_PROTOCOL', `lab: protocol v2 cannot carry this clip: ${err.message}`, {
          cause: err,
        });
      }
      throw err;
    }
    sealed.contentKey.fill(0); // the lab never re-seals
    let playable = 0;
    const messages: WireMessage[] = sealed.chunks.map((bytes, i) => {
      const piece = pieces[i]!;
      const parts = chunkParts(bytes, piece.ogg.length);
      const d = decodeChunk(bytes);
      playable += piece.durationMs;
      return {
        bytes,
        parts: {
          opus: piece.packetBytes,
          ogg: piece.ogg.length - piece.packetBytes,
          header: parts.header,
          sealedKeys: parts.sealedKeys,
          signature: parts.signature,
          padding: parts.padding,
        },
        work: {
          sealedKeys: i === 0 ? input.recipients.length : 0,
          secretboxBytes: d.body.length - 16,
          signedBytes: CHUNK_CONTEXT_BYTES + d.signed.length,
          signatures: 1,
        },
        // [PLK-14.8] each chunk plays once it and every chunk before it have verified.
        playableMs: Math.min(input.durationMs, Math.round(playable)),
        // Streamed: a chunk leaves once its audio is recorded, not at the end of the clip.
        readyAfterMs: Math.min(input.durationMs, Math.round(playable)),
      };
    });
    const clip: SealedClip = { clipId: sealed.clipId, messages };
    deliveryIds.set(
      clip,
      messages.map((_, i) => chunkDeliveryId(sealed.clipId, i)),
    );
    return clip;
  },

  openClip(clip, recipient, sender) {
    return [
      openChunkedClip(
        clip.messages.map((m) => m.bytes),
        { recipient, sender },
      ).ogg,
    ];
  },

  /** [PLK-14.9] One receipt per chunk, each naming that chunk's delivery id. */
  receipts(clip, recipient, sender, receivedAt) {
    const ids = deliveryIds.get(clip);
    if (!ids) throw new LabError('LAB_PROTOCOL', 'lab: not a clip sealed by protocol v2');
    return ids.map((clipId) => createReceipt({ recipient, sender, clipId, receivedAt }));
  },

  connectMessages: (input) => protocolV1.connectMessages(input), // [PLK-14.1] connects are unchanged
};

registerProtocol(protocolV2);
