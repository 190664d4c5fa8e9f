import type { Logger } from 'pino';
import type { AuditLog } from '../../core/protocol/audit-chain.js';
import type { JsonObject } from '../../core/protocol/json-value.js';
import type { Clock, Ed25519Provider, RandomSource, Scheduler } from '../../core/ports/ports.js';
import type { StreamBus } from '../stores/bus/bus-port.js';
import type { KeyValueStore } from '../stores/kv/kv-port.js';
import type { SqlDatabase, SqlExecutor } from '../stores/sql/sql-port.js';
import { hexFromBytes } from '../../core/crypto/bytes.js';

/** What every control-plane service shares: the ports, the stores, the audit log and the live feed. */
export interface ServiceContext {
  readonly db: SqlDatabase;
  readonly bus: StreamBus;
  readonly kv: KeyValueStore;
  readonly clock: Clock;
  readonly random: RandomSource;
  readonly scheduler: Scheduler;
  readonly logger: Logger;
  /**
   * The audit chain. A change records its entry with `audit.record(tx, …)` inside the change's own
   * transaction (the outbox, docs/audit.md), then calls `settleAudit()` after the commit; `append`
   * is for audited events that change nothing else (logins, refusals).
   */
  readonly audit: AuditLog<SqlExecutor>;
  /**
   * Chains what committed transactions recorded (AuditLog.drainRecorded). Never throws: the
   * change is committed and its entry stays in the outbox for the periodic drain, so an
   * operation that committed is answered as committed.
   */
  settleAudit(): Promise<void>;
  /**
   * For work that never reads the chain after its commit (the event handlers): asks for one drain
   * at the end of the current instant, shared by every input committed before it
   * (audit-drain-soon.ts, issue 17). The input is recorded either way; this only moves when it is chained.
   */
  settleAuditSoon(): void;
  /**
   * For a command's create and transitions: `settleAudit()`, or, where the control plane has a
   * `commandAuditWindowMs`, a request for one drain within that window shared by every input
   * committed before it fires, resolved at once (issue 17). Never throws.
   */
  settleCommandAudit(): Promise<void>;
  readonly ed25519: Ed25519Provider;
  /** Publishes an operator-visible change on the kv live channel (fire and forget, never throws). */
  publishLive(event: LiveEvent): void;
}

export type LiveEvent =
  | { readonly type: 'command'; readonly command_id: string; readonly device_id: string; readonly state: string; readonly at_ms: number }
  | { readonly type: 'presence'; readonly device_id: string; readonly online: boolean; readonly gateway_id: string; readonly at_ms: number }
  | { readonly type: 'alert'; readonly alert_id: string; readonly device_id: string | null; readonly severity: string; readonly kind: string; readonly message: string; readonly at_ms: number }
  /** The alert's condition is over (its episode ended); the alert itself stays, open or acknowledged. */
  | { readonly type: 'alert_cleared'; readonly alert_id: string; readonly device_id: string | null; readonly kind: string; readonly at_ms: number }
  | {
    readonly type: 'alert_acknowledged'; readonly alert_id: string; readonly device_id: string | null; readonly kind: string;
    readonly acknowledged_by: string; readonly note: string | null; readonly at_ms: number;
  };

/** A random id with a readable prefix: `c_` commands, `u_` users, `a_` alerts. 128 bits. */
export function newId(prefix: string, random: RandomSource): string {
  return `${prefix}_${hexFromBytes(random.bytes(16))}`;
}

/** Actor names as the audit log spells them. */
export const actors = {
  user: (name: string) => `user:${name}`,
  device: (id: string) => `device:${id}`,
  gateway: (id: string) => `gateway:${id}`,
  system: 'system',
} as const;

export type AuditPayload = JsonObject;
