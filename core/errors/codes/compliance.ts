import { defineErrors } from '../error-spec.js';

/** Compliance (roadmap 10.3): the rules a device's reported posture is judged by (core/protocol/compliance.ts). */
export const complianceErrors = defineErrors({
  COMPLIANCE_RULES_INVALID: { fault: 'remote', status: 400, summary: 'Compliance rules are malformed; details name the path of the bad field' },
});
