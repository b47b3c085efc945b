// Protocol v1 for the lab: one clip = one Ogg Opus file in one padded, sealed and signed envelope [PLK-5], from the real shared/ code.

import { decodeClip, openClip, sealClip } from '../../shared/envelope.ts';
import { PlushlinkError } from '../../shared/errors.ts';
import { publicPart } from '../../shared/identity.ts';
import { CONTEXT, SEALED_KEY_BYTES, SECRETBOX_MAC_BYTES, SIGNATURE_BYTES } from '../../shared/limits.ts';
import { createReceipt } from '../../shared/receipt.ts';
import { createRoster } from '../../shared/roster.ts';
import { createConnectToken, createGatewayProof, decodeConnectToken } from '../../shared/token.ts';
import { clipTopic, inboxTopic, receiptTopic, relayTopic } from '../../shared/topics.ts';
import { configError, LabError } from './errors.ts';
import { type ProtocolModule, registerProtocol, type SealedClip } from './protocol.ts';

/** Bytes of the signature context prefix ("plushlink/v1/clip" and a NUL) that Ed25519 hashes with the body [PLK-2.3]. */
const CLIP_CONTEXT_BYTES = CONTEXT.CLIP.length + 1;

export const protocolV1: ProtocolModule = {
  version: 1,
  label: 'v1: one padded, sealed and signed envelope per clip [PLK-5]',

  parseOptions(raw) {
    const keys = Object.keys(raw);
    if (keys.length > 0)
      throw configError(`protocol.${keys[0]}`, 'unknown key (protocol version 1 has no options)');
    return {};
  },

  topics: { clip: clipTopic, relay: relayTopic, receipt: receiptTopic, inbox: inboxTopic },

  sealClip(input): SealedClip {
    const encoded = input.encode(input.pcm);
    const s = encoded.settings;
    let envelope: Uint8Array;
    try {
      envelope = sealClip({
        sender: input.sender,
        recipients: input.recipients,
        sequence: input.sequence,
        createdAt: input.createdAt,
        durationMs: Math.round(input.durationMs),
        codec: {
          codec: 'opus-ogg',
          channels: s.channels,
          sampleRate: s.sampleRate,
          bitrate: s.bitrate,
          frameMs: s.frameMs,
        },
        ogg: encoded.ogg,
        random: input.random,
      });
    } catch (err) {
      if (err instanceof PlushlinkError) {
        throw new LabError('LAB_PROTOCOL', `lab: protocol v1 cannot carry this clip: ${err.message}`, {
          cause: err,
        });
      }
      throw err;
    }
    // Every part from the real envelope's fields [PLK-5.1]: body = MAC ‖ secretbox(u32 length ‖ Ogg ‖ zeros).
    const decoded = decodeClip(envelope);
    const n = decoded.header.recipients.length;
    const paddedBytes = decoded.body.length - SECRETBOX_MAC_BYTES;
    const padding = paddedBytes - 4 - encoded.ogg.length;
    const sealedKeys = n * SEALED_KEY_BYTES;
    const oggOverhead = encoded.ogg.length - encoded.packetBytes;
    const header = envelope.length - encoded.ogg.length - padding - sealedKeys - SIGNATURE_BYTES;
    return {
      clipId: decoded.header.clipId,
      messages: [
        {
          bytes: envelope,
          parts: {
            opus: encoded.packetBytes,
            ogg: oggOverhead,
            header,
            sealedKeys,
            signature: SIGNATURE_BYTES,
            padding,
          },
          work: {
            sealedKeys: n,
            secretboxBytes: paddedBytes,
            signedBytes: CLIP_CONTEXT_BYTES + decoded.signed.length,
            signatures: 1,
          },
          // The signature comes last: nothing can be played before the whole envelope has verified.
          playableMs: input.durationMs,
          readyAfterMs: input.durationMs,
        },
      ],
    };
  },

  openClip(clip, recipient, sender) {
    return clip.messages.map((m) => openClip(m.bytes, { recipient, sender }).ogg);
  },

  receipts(clip, recipient, sender, receivedAt) {
    return [createReceipt({ recipient, sender, clipId: clip.clipId, receivedAt })];
  },

  connectMessages(input) {
    const token = createConnectToken({
      identity: input.endpoint,
      gatewayId: input.gateway.id,
      now: input.now,
      random: input.random,
    });
    const proof = createGatewayProof({
      gateway: input.gateway,
      endpointId: input.endpoint.id,
      nonce: decodeConnectToken(token.bytes).nonce,
      now: input.now,
    });
    const roster = createRoster({
      gateway: input.gateway,
      version: 1,
      issuedAt: input.now,
      members: input.family.map((m) => ({ ...publicPart(m.identity), role: m.role })),
    });
    return { token: token.bytes, proof, roster };
  },
};

registerProtocol(protocolV1);
