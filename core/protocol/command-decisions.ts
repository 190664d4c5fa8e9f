import type { AuditEntryInput } from './audit-chain.js';
import { commandTable, type CommandEvent, type CommandState } from './command-machine.js';
import type { JsonObject } from './json-value.js';
import type { SignedCommand } from './messages/command.js';
import type { PolicyDecision } from './policy.js';
import { isFinal, isTerminal, nextState } from './state-machine.js';

/**
 * The control plane's decisions about one command, as data (sans-IO, like h11's
 * `Connection.send` returning bytes): given what is stored and what happened, say what changes.
 * CommandService reads the record, asks here, and hands the effects to the CommandRepository,
 * which performs the transactional ones in one SQL transaction (the audit outbox row included)
 * and the after-commit ones once it committed. Nothing here reads a store, a clock or a socket.
 */

/** What a decision needs to know about a stored command. */
export interface CommandRecord {
  readonly id: string;
  readonly deviceId: string;
  readonly state: CommandState;
  /** When a gateway stream was first about to hold it; null: it never left the control plane. */
  readonly firstDispatchedAtMs: number | null;
}

/** An audit entry without its time: AuditLog.record stamps it inside the transaction. */
export type AuditRecord = Omit<AuditEntryInput, 'ts'>;

/** The `commands` row a create inserts (state `queued`, never dispatched, no attempt yet). */
export interface NewCommandRow {
  readonly command: SignedCommand;
  readonly createdBy: string;
  readonly idempotencyKey: string | null;
  /** The args as canonical JSON: the idempotency fingerprint compares this text. */
  readonly argsJson: string;
  /** The W3C traceparent of the request that created it (core/trace); every later step logs under its trace id. */
  readonly traceparent?: string;
}

/** Effects performed inside one SQL transaction: all of them commit, or none. */
export type TransactionEffect =
  | { readonly type: 'insert_command'; readonly row: NewCommandRow }
  | {
    /** A compare-and-set: it applies only while the row is still in `from` (and, when asked, never dispatched). */
    readonly type: 'update_state'; readonly commandId: string; readonly from: CommandState; readonly to: CommandState;
    readonly atMs: number; readonly attemptsIncrement: 0 | 1; readonly resultFrame: string | null; readonly onlyIfNeverDispatched: boolean;
  }
  | { readonly type: 'append_history'; readonly commandId: string; readonly state: CommandState; readonly atMs: number; readonly detail: JsonObject }
  | { readonly type: 'record_audit'; readonly entry: AuditRecord };

/** Effects after the commit; none may turn a committed change into an error. */
export type AfterCommitEffect =
  | { readonly type: 'publish_live'; readonly event: { readonly type: 'command'; readonly command_id: string; readonly device_id: string; readonly state: CommandState; readonly at_ms: number } }
  /** Bus delivery: the device's queued commands no gateway holds go to the gateway its presence names. */
  | { readonly type: 'dispatch_waiting'; readonly deviceId: string };

export interface CommandEffects {
  readonly transaction: readonly TransactionEffect[];
  readonly afterCommit: readonly AfterCommitEffect[];
}

// ---------------------------------------------------------------------------------------------
// Create

/** Why a create is refused before anything is stored; the service throws SdcError(code). */
export type CreateRefusal =
  | { readonly code: 'API_DEVICE_NOT_FOUND' | 'API_DEVICE_REVOKED' | 'API_DEVICE_NOT_ENROLLED'; readonly message: string }
  /** A policy denial is audited (`command.denied`, appended on its own: nothing else changes). */
  | { readonly code: 'COMMAND_POLICY_DENIED'; readonly message: string; readonly reason: string; readonly audit: AuditRecord };

export interface CreateAdmissionInput {
  readonly deviceId: string;
  /** The device row's status; undefined when the device is unknown. */
  readonly deviceStatus: string | undefined;
  readonly opcode: string;
  readonly args: JsonObject;
  /** The policy's decision, asked only for a device that may take commands. */
  readonly policy: () => PolicyDecision;
  /** Audit actor of the operator, e.g. `user:alice`. */
  readonly auditActor: string;
}

export type CreateAdmission =
  | { readonly admitted: true; readonly policyRecord: JsonObject }
  | { readonly admitted: false; readonly refusal: CreateRefusal };

/** The policy decision as the audit log records it. */
export function policyRecordOf(policy: PolicyDecision): JsonObject {
  return { decision: policy.decision, reason: policy.reason, ...(policy.ruleId === undefined ? {} : { rule_id: policy.ruleId }) };
}

/**
 * May a command for this device be stored? Only an enrolled device: one that only has a pairing
 * token has no key to check its answers with and no session to deliver on (docs/api.md), so it is
 * refused at once, not held until it enrolls. Then the policy decides.
 */
export function decideCreateAdmission(input: CreateAdmissionInput): CreateAdmission {
  const { deviceId } = input;
  if (input.deviceStatus === undefined) return refuse({ code: 'API_DEVICE_NOT_FOUND', message: `device ${deviceId} is unknown` });
  if (input.deviceStatus === 'revoked') return refuse({ code: 'API_DEVICE_REVOKED', message: `device ${deviceId} is revoked` });
  if (input.deviceStatus !== 'enrolled') return refuse({ code: 'API_DEVICE_NOT_ENROLLED', message: `device ${deviceId} has not enrolled yet` });
  const policy = input.policy();
  const policyRecord = policyRecordOf(policy);
  if (policy.decision === 'allow') return { admitted: true, policyRecord };
  return refuse({
    code: 'COMMAND_POLICY_DENIED', message: `policy denies ${input.opcode} on ${deviceId}: ${policy.reason}`, reason: policy.reason,
    audit: { kind: 'command.denied', actor: input.auditActor, subject: `device:${deviceId}`, payload: { opcode: input.opcode, args: input.args, policy: policyRecord } },
  });
}

function refuse(refusal: CreateRefusal): CreateAdmission {
  return { admitted: false, refusal };
}

/**
 * The effects of storing an admitted, signed command: its row (queued), its first history entry
 * and its `command.created` audit entry in one transaction (no stored command without its entry,
 * no entry for a command not stored); then the live event and the dispatch.
 */
export function decideCreate(input: { readonly row: NewCommandRow; readonly auditActor: string; readonly policyRecord: JsonObject }): CommandEffects {
  const { command, createdBy } = input.row;
  const atMs = command.issued_at;
  return {
    transaction: [
      { type: 'insert_command', row: input.row },
      { type: 'append_history', commandId: command.id, state: 'queued', atMs, detail: { event: 'create', by: createdBy } },
      { type: 'record_audit', entry: {
        kind: 'command.created', actor: input.auditActor, subject: `command:${command.id}`,
        // The trace of the request that created it: the audit entry names the logs' trace id.
        payload: { command: command as unknown as JsonObject, policy: input.policyRecord, ...(input.row.traceparent === undefined ? {} : { traceparent: input.row.traceparent }) },
      } },
    ],
    afterCommit: [
      { type: 'publish_live', event: { type: 'command', command_id: command.id, device_id: command.device_id, state: 'queued', at_ms: atMs } },
      { type: 'dispatch_waiting', deviceId: command.device_id },
    ],
  };
}

// ---------------------------------------------------------------------------------------------
// Transitions: progress, results, expiry

/** The device's signed COMMAND_RESULT as it arrived: stored with the command and audited verbatim. */
export interface ResultReport {
  readonly frame: string;
  readonly gatewayId: string;
}

/** The device's signed COMMAND_ACK (stage received or executing) as it arrived: audited verbatim with the state change it causes. */
export interface AckReport {
  readonly frame: string;
  readonly gatewayId: string;
}

export interface TransitionInput {
  readonly event: CommandEvent;
  readonly atMs: number;
  /** Kept in the history entry and the `command.state` audit payload. */
  readonly detail?: JsonObject;
  /** Audit actor of the change, e.g. `gateway:gw1`. */
  readonly actor: string;
  /** A result: stored on the row, audited as `command.result` with the frame instead of `command.state`. */
  readonly result?: ResultReport;
  /** An ACK (`ack` or `start`): audited as `command.ack` with the frame instead of `command.state`. */
  readonly ack?: AckReport;
}

export type TransitionRefusalReason = 'unknown_command' | 'illegal' | 'terminal';

export type TransitionDecision =
  | { readonly applied: true; readonly from: CommandState; readonly to: CommandState; readonly effects: CommandEffects }
  | {
    readonly applied: false; readonly reason: TransitionRefusalReason; readonly state?: CommandState;
    /** An event the table has no entry for in a running command: worth a warning (a duplicate or late event is not). */
    readonly unexpected: boolean;
  };

/**
 * Applies `input.event` to the stored command. Refusals change nothing and are data, not errors:
 * the bus delivers at least once, so duplicates and late events are normal.
 * - no record: `unknown_command`;
 * - a final state: `terminal` (nothing changes it any more);
 * - `expire` for a command that left the control plane: `illegal` (it may be on a device; it
 *   times out instead, and a late result refines that);
 * - no table entry in a refinable terminal state (progress after a timeout or dead letter): `terminal`, late;
 * - no table entry otherwise: `illegal`, unexpected.
 */
export function decideTransition(record: CommandRecord | undefined, input: TransitionInput): TransitionDecision {
  if (record === undefined) return { applied: false, reason: 'unknown_command', unexpected: false };
  const from = record.state;
  if (isFinal(commandTable, from)) return { applied: false, reason: 'terminal', state: from, unexpected: false };
  if (input.event === 'expire' && record.firstDispatchedAtMs !== null) return { applied: false, reason: 'illegal', state: from, unexpected: false };
  const to = nextState(commandTable, from, input.event);
  if (to === undefined && isTerminal(commandTable, from)) return { applied: false, reason: 'terminal', state: from, unexpected: false };
  if (to === undefined) return { applied: false, reason: 'illegal', state: from, unexpected: true };
  return { applied: true, from, to, effects: transitionEffects(record, input, from, to) };
}

function transitionEffects(record: CommandRecord, input: TransitionInput, from: CommandState, to: CommandState): CommandEffects {
  const { event, atMs } = input;
  return {
    transaction: [
      {
        type: 'update_state', commandId: record.id, from, to, atMs, attemptsIncrement: event === 'deliver' ? 1 : 0,
        resultFrame: input.result?.frame ?? null, onlyIfNeverDispatched: event === 'expire',
      },
      { type: 'append_history', commandId: record.id, state: to, atMs, detail: { event, ...(input.detail ?? {}) } },
      // One audit entry per state change, committed with it.
      { type: 'record_audit', entry: transitionAudit(record, input, from, to) },
    ],
    afterCommit: [{ type: 'publish_live', event: { type: 'command', command_id: record.id, device_id: record.deviceId, state: to, at_ms: atMs } }],
  };
}

function transitionAudit(record: CommandRecord, input: TransitionInput, from: CommandState, to: CommandState): AuditRecord {
  const subject = `command:${record.id}`;
  if (input.result !== undefined) {
    // The device-signed frame, verbatim: anyone holding the device's certificate can re-verify it from the log.
    return { kind: 'command.result', actor: input.actor, subject, payload: { from, to, at_ms: input.atMs, gateway_id: input.result.gatewayId, frame: input.result.frame } };
  }
  if (input.ack !== undefined) {
    // As a result: the device's own word that it took (or started) the command, re-verifiable from the log.
    return {
      kind: 'command.ack', actor: input.actor, subject,
      payload: { from, to, event: input.event, at_ms: input.atMs, gateway_id: input.ack.gatewayId, frame: input.ack.frame },
    };
  }
  return {
    kind: 'command.state', actor: input.actor, subject,
    payload: { from, to, event: input.event, at_ms: input.atMs, ...(input.detail === undefined ? {} : { detail: input.detail }) },
  };
}

/**
 * The event that ends a command past its expiry: `expire` when it never left the control plane
 * (no device can have it), `time_out` when it did (it may have run). When `expire` then turns out
 * illegal (a dispatch won the race), the sweep times it out instead.
 */
export function expiryEvent(record: Pick<CommandRecord, 'firstDispatchedAtMs'>): 'expire' | 'time_out' {
  return record.firstDispatchedAtMs === null ? 'expire' : 'time_out';
}

// ---------------------------------------------------------------------------------------------
// The redelivery sweep

/**
 * What the redelivery sweep does with one due command: hand it to the gateway the device's
 * presence names, or, with no gateway, only stamp it as dispatched so it does not fill every
 * batch (the device's next presence redelivers it).
 */
export type RedispatchDecision =
  | { readonly type: 'deliver'; readonly gatewayId: string }
  | { readonly type: 'stamp_dispatched'; readonly commandId: string; readonly atMs: number };

export function decideRedispatch(commandId: string, gatewayId: string | undefined, nowMs: number): RedispatchDecision {
  return gatewayId === undefined ? { type: 'stamp_dispatched', commandId, atMs: nowMs } : { type: 'deliver', gatewayId };
}
