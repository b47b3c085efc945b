// Parent app simulator: same identity model as a toy; sends voice messages to the family's toys, saves their clips as playable .opus files.
import type { PublicIdentity } from '../shared/identity.ts';
import { Endpoint, type EndpointOptions, type RecordResult } from './endpoint.ts';
import type { AudioInput } from './recorder.ts';

export interface ParentAppOptions extends EndpointOptions {}

/**
 * A parent's phone app. Received clips are verified, opened, decoded and (with `playDir`) saved as
 * `.opus` files: exactly the toy's Ogg Opus bytes, playable by any Ogg Opus player. Each one is
 * acknowledged with a signed receipt; duplicates are discarded by (sender, clip id) and receipted again.
 */
export class ParentApp extends Endpoint {
  constructor(opts: ParentAppOptions) {
    super({ playFormat: 'ogg', ...opts });
  }

  protected defaultRecipients(): readonly PublicIdentity[] {
    return this.family().filter((m) => m.role === 'toy');
  }

  /** Records a voice message (WAV file or synthetic speech) and sends it to the family's toys (or `to`). */
  sendVoice(seconds: number, input: AudioInput, to?: readonly PublicIdentity[]): Promise<RecordResult> {
    return this.record(seconds, input, to);
  }
}
