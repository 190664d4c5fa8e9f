export { SdcError, assert, type ErrorDetails } from './sdc-error.js';
export { errorRegistry, errorDomains, isErrorCode, type ErrorCode } from './registry.js';
export type { Fault, ErrorSpec } from './error-spec.js';
