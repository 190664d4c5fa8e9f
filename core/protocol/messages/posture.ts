import { Type, type Static } from '@sinclair/typebox';
import { ShortText } from './fields.js';

/**
 * What an agent reports about itself for compliance (roadmap 10.3), carried by AUTH: once per
 * connection, not on every heartbeat (the hot path). The facts change only with a restart of the
 * agent (a new binary or configuration) or of the kernel, and every restart authenticates again.
 * Every member is optional: an agent that predates one, or cannot tell, leaves it out, and the
 * compliance rules decide what a missing fact means (core/protocol/compliance.ts).
 */
const Sha256Hex = Type.String({ pattern: '^[0-9a-f]{64}$' });

export const kernelAttestationStatuses = ['attested', 'unattested', 'failed'] as const;
export type KernelAttestationStatus = (typeof kernelAttestationStatuses)[number];

/**
 * The kernel backend the agent actually runs on (not the one asked for): `native` (the Linux
 * library), `windows` (the driver), or `mock` (the in-process simulation: nothing is locked or
 * installed). Reported so an operator, and a compliance rule, can tell a mock-backed device.
 */
export const kernelBackendKinds = ['mock', 'native', 'windows'] as const;
export type KernelBackendKind = (typeof kernelBackendKinds)[number];

export const DevicePostureSchema = Type.Object({
  /** The operating system's name and release as the agent reads it (e.g. `Linux 6.8.0`). */
  os_version: Type.Optional(ShortText(128)),
  /** SHA-256 of the agent's own entry file as loaded: a changed binary is a tamper signal. */
  binary_sha256: Type.Optional(Sha256Hex),
  /** SHA-256 of the agent's configuration (its canonical JSON): a changed configuration is a tamper signal. */
  config_sha256: Type.Optional(Sha256Hex),
  /**
   * The kernel service's status: `attested` when the kernel proved its integrity, `unattested`
   * when it answered but no attestation was made, `failed` when it did not answer as it must.
   */
  kernel_attestation: Type.Optional(Type.Union(kernelAttestationStatuses.map((status) => Type.Literal(status)))),
  /**
   * The kernel backend in use (kernelBackendKinds). Optional like every member: an older agent
   * leaves it out. A gateway that predates it refuses an AUTH carrying it (strict schema), so
   * gateways are upgraded before agents, as for `posture` itself.
   */
  kernel_backend: Type.Optional(Type.Union(kernelBackendKinds.map((kind) => Type.Literal(kind)))),
  /** Version of the signed policy bundle the device enforces, when it holds one. */
  policy_bundle_version: Type.Optional(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER })),
}, { additionalProperties: false });
export type DevicePosture = Static<typeof DevicePostureSchema>;
