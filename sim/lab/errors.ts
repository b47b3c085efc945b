// Errors of the protocol lab: a bad configuration, an unreadable speech file, a protocol that cannot carry a clip — one line each.
import { CodedError } from '../../shared/errors.ts';

export type LabErrorCode = 'LAB_CONFIG' | 'LAB_SPEECH' | 'LAB_PROTOCOL';

/** Every message starts with "lab: " and names the configuration key or the file it concerns. */
export class LabError extends CodedError<LabErrorCode> {}

/** A refused configuration value: `lab: codec.bitrateKbps: must be 6..64, got 1000`. */
export function configError(key: string, problem: string): LabError {
  return new LabError('LAB_CONFIG', `lab: ${key}: ${problem}`);
}
