// Objective speech-quality helpers for codec tests: the mel-band log-spectral distance now lives in device/codec/quality.ts (shared with the protocol lab).
export { bestLag, melLogEnergies, type QualityResult, speechQuality } from '../../device/codec/quality.ts';
