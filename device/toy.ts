// The plush toy: an endpoint that seals its recordings to every parent of its family and plays the parents' messages.
import type { PublicIdentity } from '../shared/identity.ts';
import { Endpoint, type EndpointOptions } from './endpoint.ts';

export interface ToyOptions extends EndpointOptions {}

/** A plush toy: seals its recordings to every parent of its family and plays the parents' messages. */
export class Toy extends Endpoint {
  constructor(opts: ToyOptions) {
    super(opts);
  }
  protected defaultRecipients(): readonly PublicIdentity[] {
    return this.family().filter((m) => m.role === 'parent');
  }
}
