import type { ErrorSpec } from './error-spec.js';
import { protocolErrors } from './codes/protocol.js';
import { cryptoErrors } from './codes/crypto.js';
import { trustErrors } from './codes/trust.js';
import { jwtErrors } from './codes/jwt.js';
import { cliErrors } from './codes/cli.js';
import { commandErrors } from './codes/command.js';
import { httpErrors } from './codes/http.js';
import { policyErrors } from './codes/policy.js';
import { policyBundleErrors } from './codes/policy-bundle.js';
import { approvalErrors } from './codes/approval.js';
import { auditErrors } from './codes/audit.js';
import { storeErrors } from './codes/store.js';
import { kernelErrors } from './codes/kernel.js';
import { apiErrors } from './codes/api.js';
import { agentErrors } from './codes/agent.js';
import { gatewayErrors } from './codes/gateway.js';
import { simErrors } from './codes/sim.js';
import { chaosErrors } from './codes/chaos.js';
import { benchErrors } from './codes/bench.js';
import { tufErrors } from './codes/tuf.js';
import { otaErrors } from './codes/ota.js';
import { artifactErrors } from './codes/artifact.js';
import { complianceErrors } from './codes/compliance.js';
import { dlqErrors } from './codes/dlq.js';
import { viewerErrors } from './codes/viewer.js';

/**
 * The one registry of error codes. Each domain keeps its codes in codes/<domain>.ts;
 * docs/errors.md is generated from this object (`npm run docs:errors`) and a test pins the two.
 */
export const errorRegistry = {
  ...protocolErrors,
  ...cryptoErrors,
  ...trustErrors,
  ...jwtErrors,
  ...cliErrors,
  ...commandErrors,
  ...httpErrors,
  ...policyErrors,
  ...policyBundleErrors,
  ...approvalErrors,
  ...auditErrors,
  ...storeErrors,
  ...kernelErrors,
  ...apiErrors,
  ...agentErrors,
  ...gatewayErrors,
  ...simErrors,
  ...chaosErrors,
  ...benchErrors,
  ...tufErrors,
  ...otaErrors,
  ...artifactErrors,
  ...complianceErrors,
  ...dlqErrors,
  ...viewerErrors,
} as const;

export type ErrorCode = keyof typeof errorRegistry;

/** Domain tables, in documentation order; the test checks no code is defined twice. */
export const errorDomains: ReadonlyArray<{ name: string; table: Readonly<Record<string, ErrorSpec>> }> = [
  { name: 'protocol', table: protocolErrors },
  { name: 'crypto', table: cryptoErrors },
  { name: 'trust', table: trustErrors },
  { name: 'jwt', table: jwtErrors },
  { name: 'cli', table: cliErrors },
  { name: 'command', table: commandErrors },
  { name: 'http', table: httpErrors },
  { name: 'policy', table: policyErrors },
  { name: 'policy_bundle', table: policyBundleErrors },
  { name: 'approval', table: approvalErrors },
  { name: 'audit', table: auditErrors },
  { name: 'store', table: storeErrors },
  { name: 'kernel', table: kernelErrors },
  { name: 'api', table: apiErrors },
  { name: 'agent', table: agentErrors },
  { name: 'gateway', table: gatewayErrors },
  { name: 'sim', table: simErrors },
  { name: 'chaos', table: chaosErrors },
  { name: 'bench', table: benchErrors },
  { name: 'tuf', table: tufErrors },
  { name: 'ota', table: otaErrors },
  { name: 'artifact', table: artifactErrors },
  { name: 'compliance', table: complianceErrors },
  { name: 'dlq', table: dlqErrors },
  { name: 'viewer', table: viewerErrors },
];

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(errorRegistry, value);
}
