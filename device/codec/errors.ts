// Typed errors for the audio codec path (WAV, Opus, Ogg): a stable `code` plus a human message.
import { CodedError } from '../../shared/errors.ts';

/** Stable error codes raised by device/audio and device/codec. */
export type CodecErrorCode =
  | 'WAV_TRUNCATED'
  | 'WAV_NOT_RIFF'
  | 'WAV_UNSUPPORTED'
  | 'WAV_TOO_LARGE'
  | 'OGG_BAD_CAPTURE'
  | 'OGG_BAD_VERSION'
  | 'OGG_BAD_CRC'
  | 'OGG_TRUNCATED'
  | 'OGG_TOO_LARGE'
  | 'OGG_BAD_SEQUENCE'
  | 'OGG_BAD_STREAM'
  | 'OPUS_BAD_HEAD'
  | 'OPUS_BAD_TAGS'
  | 'OPUS_BAD_PACKET'
  | 'OPUS_ENCODE_FAILED'
  | 'OPUS_DECODE_FAILED'
  | 'CODEC_DESTROYED'
  | 'POOL_EXHAUSTED';

export class CodecError extends CodedError<CodecErrorCode> {}
