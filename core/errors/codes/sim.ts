import { defineErrors } from '../error-spec.js';

/** The fleet simulator (sim/), in particular `sdc sim --real` and its worker processes. */
export const simErrors = defineErrors({
  SIM_WORKER_FAILED: { fault: 'local', status: 500, summary: 'A simulator worker process exited, failed to start its agents or sent a malformed report' },
  SIM_REAL_SETUP_FAILED: { fault: 'remote', status: 502, summary: 'A --real run could not log in, pair its agents or bring them online against the target deployment' },
});
