import type { SqlAuditStore } from './stores/sql-audit-store.js';
import type { AlertService } from './alerts.js';
import type { AuthService } from './auth.js';
import type { CommandService } from './commands.js';
import type { ServiceContext } from './context.js';
import type { DeviceService } from './devices.js';
import type { EventHandlers } from './events.js';
import type { LiveHub } from './live.js';
import type { PolicyStore } from './policy-store.js';
import type { ApprovalService } from './approvals.js';
import type { SigningKeyStore } from './signing-keys.js';
import type { ComplianceService } from './compliance.js';
import type { DeadLetterService } from './dead-letters.js';

/** The transport-agnostic services behind the HTTP routes; the simulator calls them directly. */
export interface ControlPlaneServices {
  readonly context: ServiceContext;
  readonly auth: AuthService;
  readonly devices: DeviceService;
  readonly commands: CommandService;
  readonly events: EventHandlers;
  readonly alerts: AlertService;
  readonly live: LiveHub;
  /** The stored, versioned policy (GET/PUT /v1/policy); command admission reads it. */
  readonly policy: PolicyStore;
  /** Per-device compliance state (roadmap 10.3); also the DeviceComplianceReader port other modules read it through. */
  readonly compliance: ComplianceService;
  /** Dead-letter remediation: list, retry, discard (roadmap 11.4). */
  readonly deadLetters: DeadLetterService;
  /** The approval flow: pending commands, approve and reject (docs/policy.md "Approvals"). */
  readonly approvals: ApprovalService;
  /** Operators' approval signing keys (public keys only). */
  readonly signingKeys: SigningKeyStore;
  readonly auditStore: SqlAuditStore;
}
