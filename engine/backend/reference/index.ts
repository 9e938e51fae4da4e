// Public surface of the reference (plain TypeScript) backend.
export { createReferenceBackend, ReferenceBackend } from './reference-backend';
export type { ReferenceBackendOptions } from './reference-backend';
export { Rope } from './rope';
export { activationFormatFor, roundTripActivations } from './activation-quant';
export type { ActivationFormat } from './activation-quant';
