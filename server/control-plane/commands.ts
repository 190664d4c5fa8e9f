import { SdcError } from '../../core/errors/index.js';
import { encodeBusEntry } from '../bus-contract/entries.js';
import { gatewayCommandStream, kvKeys, streamMaxLen } from '../bus-contract/streams.js';
import type { AuditEntryInput } from '../../core/protocol/audit-chain.js';
import { canonicalize } from '../../core/protocol/canonical-json.js';
import { commandTable, type CommandEvent, type CommandState } from '../../core/protocol/command-machine.js';
import type { JsonObject, JsonValue } from '../../core/protocol/json-value.js';
import type { SignedCommand } from '../../core/protocol/messages/command.js';
import { CommandTtlMsMax } from '../../core/protocol/messages/command.js';
import { validateOpcodeArgs } from '../../core/protocol/messages/validate.js';
import { evaluatePolicy, type Policy } from '../../core/protocol/policy.js';
import { signCommand } from '../../core/protocol/signed-command.js';
import { isFinal, isTerminal, nextState } from '../../core/protocol/state-machine.js';
import type { ServiceSigner } from '../materials/materials.js';
import { actors, newId, type ServiceContext } from './context.js';
import { decodeCursor, encodeCursor, pageLimit } from './pagination.js';
import { nextCounterValue } from './stores/counters.js';
import type { Role } from './users.js';

/** Who asks: the authenticated operator. */
export interface Actor {
  readonly name: string;
  readonly role: Role;
}

export interface CreateCommandRequest {
  readonly actor: Actor;
  readonly deviceId: string;
  readonly opcode: string;
  readonly args: JsonObject;
  readonly ttlMs?: number;
  readonly idempotencyKey?: string;
}

export interface CommandHistoryEntry {
  readonly state: CommandState;
  readonly at_ms: number;
  readonly detail?: JsonValue;
}

export interface CommandView {
  readonly id: string;
  readonly device_id: string;
  readonly opcode: string;
  readonly args: JsonObject;
  readonly state: CommandState;
  readonly device_seq: number;
  readonly created_by: string;
  readonly created_at_ms: number;
  readonly updated_at_ms: number;
  readonly expires_at_ms: number;
  readonly attempts: number;
  readonly gateway_id: string | null;
  readonly signed: SignedCommand;
  /**
   * The device's signed COMMAND_RESULT frame, once known, as an object: its RFC 8785 canonical
   * form is the text the device signed (and the audit log holds), so it re-verifies from here.
   */
  readonly result_frame: JsonObject | null;
}

export interface CommandDetail extends CommandView {
  readonly history: readonly CommandHistoryEntry[];
}

interface CommandRow {
  id: string; device_id: string; opcode: string; args_json: string; state: string; created_by: string;
  idempotency_key: string | null; device_seq: number; signed_json: string; expires_at: number; attempts: number;
  created_at: number; updated_at: number; gateway_id: string | null; result_json: string | null; dispatched_at: number | null;
  /** NULL: no gateway stream ever held the command (migration 008). */
  first_dispatched_at: number | null;
}

export const nonTerminalStates: readonly CommandState[] = ['queued', 'sent', 'ack_received', 'executing'];
const nonTerminalList = nonTerminalStates.map((s) => `'${s}'`).join(', ');
export const commandLimits = Object.freeze({
  /** Commands redelivered to a device when it comes online; the rest wait for the next presence. */
  redeliverPerPresenceMax: 1_000,
  /** Commands expired per sweep. */
  expirePerSweepMax: 500,
  /** Commands re-dispatched per redelivery sweep; the oldest-dispatched go first, the rest wait for the next sweep. */
  redispatchPerSweepMax: 200,
  /** Earlier never-appended commands of a device dispatched ahead of a new one (keeps device_seq order). */
  waitingPerCreateMax: 100,
  /** History rows returned per command (a command has at most a few dozen transitions). */
  historyEntriesMax: 200,
  idempotencyKeyLengthMax: 128,
  transitionRetriesMax: 3,
});

export interface CommandServiceOptions {
  readonly context: ServiceContext;
  readonly signer: ServiceSigner;
  readonly policy: Policy;
  readonly ttlMsDefault: number;
  /** `issuer` field of signed commands. */
  readonly issuer: string;
  /**
   * An unfinished command is re-dispatched by the redelivery sweep at most once per this
   * interval. Default 30 s: a gateway retries a delivery for about ackTimeoutMs x
   * deliveryAttemptsMax (5 s x 5 by default) and ignores a duplicate while it does.
   */
  readonly redispatchIntervalMs?: number;
}

/** Default of CommandServiceOptions.redispatchIntervalMs. */
export const redispatchIntervalMsDefault = 30_000;

export interface TransitionOptions {
  readonly detail?: JsonObject;
  /** The device's signed COMMAND_RESULT frame, stored with the command. */
  readonly resultFrame?: string;
  /** Audit actor of the default `command.state` entry (default `system`). */
  readonly actor?: string;
  /** The audit entry of this change instead of `command.state` (e.g. `command.result`), given the states it moved between. */
  readonly audit?: (from: CommandState, to: CommandState) => Omit<AuditEntryInput, 'ts'>;
}

/** Result of applying an event: the transition made, or why nothing changed. */
export type TransitionOutcome =
  | { readonly applied: true; readonly from: CommandState; readonly to: CommandState }
  | { readonly applied: false; readonly reason: 'unknown_command' | 'illegal' | 'terminal'; readonly state?: CommandState };

/**
 * Command ingest, state and dispatch. A command is stored (state `queued`, with its event) in
 * one transaction before anything else happens; dispatch to a gateway comes after and may fail
 * without losing it: it stays queued and is sent again on the device's next presence, with the
 * device's next new command, or by the redelivery sweep (`redispatchDue`), whichever comes first.
 */
export class CommandService {
  readonly #ctx: ServiceContext;
  readonly #options: CommandServiceOptions;

  constructor(options: CommandServiceOptions) {
    this.#ctx = options.context;
    this.#options = options;
  }

  /** Creates (or, for a repeated idempotency key with the same request, returns) a command. */
  async create(request: CreateCommandRequest): Promise<{ command: CommandDetail; created: boolean }> {
    const { actor, deviceId } = request;
    const opcode = validateOpcodeArgs(request.opcode, request.args);
    const ttlMs = request.ttlMs ?? this.#options.ttlMsDefault;
    if (!Number.isSafeInteger(ttlMs) || ttlMs <= 0 || ttlMs > CommandTtlMsMax) {
      throw new SdcError('COMMAND_TTL_INVALID', `ttl_ms must be from 1 to ${CommandTtlMsMax}`);
    }
    const key = request.idempotencyKey;
    if (key !== undefined && (key.length === 0 || key.length > commandLimits.idempotencyKeyLengthMax)) {
      throw new SdcError('API_VALIDATION', `Idempotency-Key must be 1-${commandLimits.idempotencyKeyLengthMax} characters`, { path: 'headers/idempotency-key' });
    }
    const fingerprint = { device_id: deviceId, opcode, args: canonicalize(request.args), ttl_ms: ttlMs };
    if (key !== undefined) {
      const existing = await this.#byIdempotencyKey(actor.name, key);
      if (existing !== undefined) return { command: await this.#replay(existing, fingerprint), created: false };
    }
    const [device] = await this.#ctx.db.query<{ status: string }>('SELECT status FROM devices WHERE id = ?', [deviceId]);
    if (device === undefined) throw new SdcError('API_DEVICE_NOT_FOUND', `device ${deviceId} is unknown`, { deviceId });
    if (device.status === 'revoked') throw new SdcError('API_DEVICE_REVOKED', `device ${deviceId} is revoked`, { deviceId });
    // A device that only has a pairing token has no key to check its answers with and no session
    // to deliver on: refused at once (docs/api.md), not held until it enrolls.
    if (device.status !== 'enrolled') throw new SdcError('API_DEVICE_NOT_ENROLLED', `device ${deviceId} has not enrolled yet`, { deviceId });

    const nowMs = this.#ctx.clock.nowMs();
    const argsBytes = Buffer.byteLength(fingerprint.args, 'utf8');
    const decision = evaluatePolicy(this.#options.policy, {
      actor: { id: actor.name, role: actor.role }, opcode, device: { id: deviceId }, nowMs, argsBytes,
    });
    const policyRecord: JsonObject = { decision: decision.decision, reason: decision.reason, ...(decision.ruleId === undefined ? {} : { rule_id: decision.ruleId }) };
    if (decision.decision === 'deny') {
      await this.#ctx.audit.append({
        kind: 'command.denied', actor: actors.user(actor.name), subject: `device:${deviceId}`,
        payload: { opcode, args: request.args, policy: policyRecord },
      });
      throw new SdcError('COMMAND_POLICY_DENIED', `policy denies ${opcode} on ${deviceId}: ${decision.reason}`, { reason: decision.reason });
    }

    const id = newId('c', this.#ctx.random);
    let signed: SignedCommand;
    try {
      signed = await this.#ctx.db.transaction(async (tx) => {
        const deviceSeq = await nextCounterValue(tx, `device_seq:${deviceId}`);
        const command = signCommand({
          command: { id, device_id: deviceId, opcode, args: request.args, issued_at: nowMs, expires_at: nowMs + ttlMs, device_seq: deviceSeq, issuer: this.#options.issuer },
          kid: this.#options.signer.kid, seed: this.#options.signer.seed, provider: this.#ctx.ed25519,
        });
        await tx.execute(
          `INSERT INTO commands (id, device_id, opcode, args_json, state, created_by, idempotency_key, device_seq, signed_json, expires_at, attempts, created_at, updated_at)
           VALUES (?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?, 0, ?, ?)`,
          [id, deviceId, opcode, fingerprint.args, actor.name, key ?? null, deviceSeq, canonicalize(command), command.expires_at, nowMs, nowMs],
        );
        await tx.execute('INSERT INTO command_events (command_id, state, at, detail_json) VALUES (?, ?, ?, ?)',
          [id, 'queued', nowMs, canonicalize({ event: 'create', by: actor.name })]);
        // In the same transaction: no stored command without its command.created, none for a command not stored.
        await this.#ctx.audit.record(tx, {
          kind: 'command.created', actor: actors.user(actor.name), subject: `command:${id}`,
          payload: { command: command as unknown as JsonObject, policy: policyRecord },
        });
        return command;
      });
    } catch (error) {
      // Two requests with one key raced; the loser answers like a retry.
      if (key !== undefined && SdcError.is(error, 'STORE_UNIQUE_VIOLATION')) {
        const existing = await this.#byIdempotencyKey(actor.name, key);
        if (existing !== undefined) return { command: await this.#replay(existing, fingerprint), created: false };
      }
      throw error;
    }
    // Committed: from here on nothing turns the answer into an error (issue 18.4), or a client
    // retrying without an Idempotency-Key would make a second command. Each step below either
    // never throws or has a fallback.
    await this.#ctx.settleAudit();
    this.#ctx.publishLive({ type: 'command', command_id: id, device_id: deviceId, state: 'queued', at_ms: nowMs });
    await this.#dispatchWaiting(deviceId);
    return { command: await this.#committedView(id, () => createdView(signed, actor.name, fingerprint.args)), created: true };
  }

  /** The command as stored now, or, when it cannot be read back (a store outage right after the commit), as it was committed. */
  async #committedView(commandId: string, asCommitted: () => CommandDetail): Promise<CommandDetail> {
    try {
      return await this.get(commandId);
    } catch (error) {
      this.#ctx.logger.warn({ err: error, commandId }, 'created command not readable after its commit; answered as committed');
      return asCommitted();
    }
  }

  async #byIdempotencyKey(createdBy: string, key: string): Promise<CommandRow | undefined> {
    const [row] = await this.#ctx.db.query<CommandRow>('SELECT * FROM commands WHERE created_by = ? AND idempotency_key = ?', [createdBy, key]);
    return row;
  }

  async #replay(row: CommandRow, want: { device_id: string; opcode: string; args: string; ttl_ms: number }): Promise<CommandDetail> {
    const same = row.device_id === want.device_id && row.opcode === want.opcode && row.args_json === want.args
      && Number(row.expires_at) - Number(row.created_at) === want.ttl_ms;
    if (!same) throw new SdcError('COMMAND_IDEMPOTENCY_CONFLICT', 'Idempotency-Key was already used for a different request');
    return this.get(row.id);
  }

  /**
   * Appends a `deliver` entry to the stream of the gateway holding the device, if any. Never
   * throws: a failure leaves the command queued for the next presence or the redelivery sweep.
   */
  async dispatch(command: SignedCommand, gatewayId?: string): Promise<boolean> {
    try {
      const gateway = gatewayId ?? (await this.presenceGateway(command.device_id));
      if (gateway === undefined) return false;
      return await this.#append(command, gateway);
    } catch (error) {
      this.#ctx.logger.warn({ err: error, commandId: command.id }, 'dispatch failed; the command stays queued for redelivery');
      return false;
    }
  }

  /** Appends the command to the gateway's stream; false (nothing appended) when it is terminal already. */
  async #append(command: SignedCommand, gateway: string): Promise<boolean> {
    if (!(await this.#markLeaving(command.id))) return false;
    await this.#ctx.bus.append(gatewayCommandStream(gateway), encodeBusEntry('deliver', { command }), { maxLen: streamMaxLen.gatewayCommands });
    await this.#ctx.db.execute('UPDATE commands SET gateway_id = ?, dispatched_at = ? WHERE id = ?', [gateway, this.#ctx.clock.nowMs(), command.id]);
    return true;
  }

  /**
   * Records that the command leaves the control plane (`first_dispatched_at`), before its first
   * append: from then on a device may have it, and its TTL passing makes it `timed_out`, never
   * `expired`. Both this update and the `expire` transition are conditional on the row, so one of
   * them wins: a command the sweep expired first is not appended (false).
   */
  async #markLeaving(commandId: string): Promise<boolean> {
    const marked = await this.#ctx.db.execute(
      `UPDATE commands SET first_dispatched_at = ? WHERE id = ? AND first_dispatched_at IS NULL AND state IN (${nonTerminalList})`,
      [this.#ctx.clock.nowMs(), commandId],
    );
    if (marked.changes === 1) return true;
    const [row] = await this.#ctx.db.query<{ state: string }>('SELECT state FROM commands WHERE id = ?', [commandId]);
    return row !== undefined && nonTerminalStates.includes(row.state as CommandState);
  }

  /**
   * Dispatches the device's queued commands that no gateway holds (a new one, and any an earlier
   * dispatch failed to append), in device_seq order, stopping at the first failure so a later
   * command never overtakes an earlier one (the agent refuses a device_seq below one it ran).
   */
  async #dispatchWaiting(deviceId: string): Promise<void> {
    try {
      const gateway = await this.presenceGateway(deviceId);
      if (gateway === undefined) return;
      const rows = await this.#ctx.db.query<Pick<CommandRow, 'signed_json'>>(
        `SELECT signed_json FROM commands WHERE device_id = ? AND state = 'queued' AND gateway_id IS NULL AND expires_at > ? ORDER BY device_seq ASC LIMIT ?`,
        [deviceId, this.#ctx.clock.nowMs(), commandLimits.waitingPerCreateMax],
      );
      for (const row of rows) await this.#append(JSON.parse(row.signed_json) as SignedCommand, gateway);
    } catch (error) {
      this.#ctx.logger.warn({ err: error, deviceId }, 'dispatch failed; the commands stay queued for redelivery');
    }
  }

  /**
   * The redelivery sweep: re-dispatches every unexpired, unfinished command (`queued`, `sent`,
   * `ack_received`, `executing`) whose last dispatch is older than the redispatch interval (or
   * that was never dispatched), to the gateway named by the device's presence key. It covers
   * what no presence event will: a dispatch that failed while the device stays connected, a
   * hand-back (`requeue`) while it stays connected, a gateway that died holding the command
   * without handing it back, and an ACK or RESULT the device sent that never reached us (lost
   * in a store outage at the gateway, or in transit). A duplicate is harmless: a gateway still
   * waiting for the device's ACK ignores it, one holding an acknowledged delivery sends the
   * command to the device again, and the agent answers a known command id from its journal (the
   * stored result, or an ACK of where it is), never running it twice. So a command the device
   * executed reaches a terminal state within about one interval plus one sweep period after the
   * stores and the link are healthy again (at most `redispatchPerSweepMax` commands per sweep,
   * oldest dispatch first). A long-running command is re-sent once per interval while it runs;
   * the agent answers those after it finishes. Commands of a device without a gateway are
   * stamped too, so they do not fill every batch; its next presence redelivers them. Returns
   * how many `deliver` entries were appended. `batchMax` lowers the batch (never above the limit).
   */
  async redispatchDue(options: { batchMax?: number } = {}): Promise<number> {
    const batchMax = Math.min(options.batchMax ?? commandLimits.redispatchPerSweepMax, commandLimits.redispatchPerSweepMax);
    const nowMs = this.#ctx.clock.nowMs();
    const intervalMs = this.#options.redispatchIntervalMs ?? redispatchIntervalMsDefault;
    const rows = await this.#ctx.db.query<Pick<CommandRow, 'id' | 'device_id' | 'signed_json'>>(
      `SELECT id, device_id, signed_json FROM commands
       WHERE state IN (${nonTerminalList}) AND expires_at > ? AND (dispatched_at IS NULL OR dispatched_at <= ?)
       ORDER BY COALESCE(dispatched_at, 0) ASC, created_at ASC, device_seq ASC LIMIT ?`,
      [nowMs, nowMs - intervalMs, Math.max(1, batchMax)],
    );
    const gateways = new Map<string, string | undefined>();
    const failedDevices = new Set<string>();
    let sent = 0;
    for (const row of rows) {
      if (failedDevices.has(row.device_id)) continue;
      try {
        if (!gateways.has(row.device_id)) gateways.set(row.device_id, await this.presenceGateway(row.device_id));
        const gateway = gateways.get(row.device_id);
        if (gateway === undefined) {
          await this.#ctx.db.execute('UPDATE commands SET dispatched_at = ? WHERE id = ?', [nowMs, row.id]);
          continue;
        }
        if (await this.#append(JSON.parse(row.signed_json) as SignedCommand, gateway)) sent += 1;
      } catch (error) {
        // Not stamped: retried at the next sweep. Later commands of the device wait so they cannot overtake it.
        failedDevices.add(row.device_id);
        this.#ctx.logger.warn({ err: error, commandId: row.id }, 'redelivery sweep could not dispatch; retried at the next sweep');
      }
    }
    return sent;
  }

  /**
   * The gateway named by the device's presence key. The value is the gateway id, or a JSON object
   * with a `gateway_id` member (both spellings are accepted so the gateway may add fields).
   */
  async presenceGateway(deviceId: string): Promise<string | undefined> {
    const value = await this.#ctx.kv.get(kvKeys.presence(deviceId));
    if (value === null) return undefined;
    let gateway: unknown = value;
    if (value.startsWith('{')) {
      try {
        gateway = (JSON.parse(value) as { gateway_id?: unknown }).gateway_id;
      } catch {
        gateway = undefined;
      }
    }
    return typeof gateway === 'string' && /^[A-Za-z0-9_.-]{1,64}$/.test(gateway) ? gateway : undefined;
  }

  /**
   * Sends every unfinished, unexpired command of the device to `gatewayId`, in device_seq order.
   * Nothing is skipped on the strength of `last_command_seq`: a command still unfinished here
   * whose seq the agent has passed was executed but its result never reached us, and the agent
   * answers a redelivered id from its record, which is how that result is recovered. Commands with
   * a known result are terminal and never redelivered.
   */
  async redeliver(deviceId: string, gatewayId: string): Promise<number> {
    const nowMs = this.#ctx.clock.nowMs();
    const rows = await this.#ctx.db.query<CommandRow>(
      `SELECT * FROM commands WHERE device_id = ? AND state IN (${nonTerminalList}) AND expires_at > ? ORDER BY device_seq ASC LIMIT ?`,
      [deviceId, nowMs, commandLimits.redeliverPerPresenceMax],
    );
    let sent = 0;
    for (const row of rows) {
      if (await this.dispatch(JSON.parse(row.signed_json) as SignedCommand, gatewayId)) sent += 1;
    }
    return sent;
  }

  /**
   * A gateway handed the command back: no state change, forget the assignment; redelivered on the
   * next presence or by the redelivery sweep once the redispatch interval since its last dispatch
   * has passed (the interval is kept, so a gateway handing a command straight back cannot make it loop).
   */
  async requeue(commandId: string): Promise<void> {
    await this.#ctx.db.execute('UPDATE commands SET gateway_id = NULL WHERE id = ?', [commandId]);
  }

  /**
   * Applies a machine event at `atMs`. Illegal transitions and events for finished commands
   * change nothing and are reported, never thrown: the bus delivers at least once, so duplicates
   * and late events are normal. The update is a compare-and-set on the state, so two processes
   * applying events to one command cannot both win. A terminal state changes only when the table
   * lets a late result refine it (timed_out, dead_lettered). `expire` applies only to a command
   * that never left the control plane (checked in the same compare-and-set); one that left is
   * refused as illegal and times out instead (expireDue).
   */
  async transition(commandId: string, event: CommandEvent, atMs: number, options: TransitionOptions = {}): Promise<TransitionOutcome> {
    for (let attempt = 0; attempt < commandLimits.transitionRetriesMax; attempt += 1) {
      const [row] = await this.#ctx.db.query<CommandRow>('SELECT * FROM commands WHERE id = ?', [commandId]);
      if (row === undefined) return { applied: false, reason: 'unknown_command' };
      const from = row.state as CommandState;
      if (isFinal(commandTable, from)) return { applied: false, reason: 'terminal', state: from };
      if (event === 'expire' && row.first_dispatched_at !== null) return { applied: false, reason: 'illegal', state: from };
      const to = nextState(commandTable, from, event);
      // Progress reported after a timeout or dead letter is late, not illegal: only a result refines those.
      if (to === undefined && isTerminal(commandTable, from)) return { applied: false, reason: 'terminal', state: from };
      if (to === undefined) {
        this.#ctx.logger.warn({ commandId, from, event }, 'illegal command transition ignored');
        return { applied: false, reason: 'illegal', state: from };
      }
      const applied = await this.#ctx.db.transaction(async (tx) => {
        const updated = await tx.execute(
          `UPDATE commands SET state = ?, updated_at = ?, attempts = attempts + ?, result_json = COALESCE(?, result_json) WHERE id = ? AND state = ?
           AND (? = 0 OR first_dispatched_at IS NULL)`,
          [to, atMs, event === 'deliver' ? 1 : 0, options.resultFrame ?? null, commandId, from, event === 'expire' ? 1 : 0],
        );
        if (updated.changes !== 1) return false;
        await tx.execute('INSERT INTO command_events (command_id, state, at, detail_json) VALUES (?, ?, ?, ?)',
          [commandId, to, atMs, canonicalize({ event, ...(options.detail ?? {}) })]);
        // One audit entry per state change, committed with it.
        await this.#ctx.audit.record(tx, options.audit?.(from, to) ?? {
          kind: 'command.state', actor: options.actor ?? actors.system, subject: `command:${commandId}`,
          payload: { from, to, event, at_ms: atMs, ...(options.detail === undefined ? {} : { detail: options.detail }) },
        });
        return true;
      });
      if (!applied) continue;
      await this.#ctx.settleAudit();
      this.#ctx.publishLive({ type: 'command', command_id: commandId, device_id: row.device_id, state: to, at_ms: atMs });
      // No read-back of the command: the consumer applies several events per command and uses only from/to.
      return { applied: true, from, to };
    }
    throw new SdcError('STORE_CONFLICT', `command ${commandId} kept changing under concurrent updates`);
  }

  /**
   * Ends unfinished commands past their expiry; returns how many. One that never left the control
   * plane is `expired` (no device can have it); one that did is `timed_out` (it may have run; a
   * late result refines it). A dispatch racing the sweep makes `expire` illegal: it times out.
   */
  async expireDue(): Promise<number> {
    const nowMs = this.#ctx.clock.nowMs();
    const rows = await this.#ctx.db.query<{ id: string; first_dispatched_at: number | null }>(
      `SELECT id, first_dispatched_at FROM commands WHERE state IN (${nonTerminalList}) AND expires_at <= ? ORDER BY expires_at ASC LIMIT ?`,
      [nowMs, commandLimits.expirePerSweepMax],
    );
    let ended = 0;
    for (const { id, first_dispatched_at: firstDispatchedAt } of rows) {
      let outcome = firstDispatchedAt === null ? await this.transition(id, 'expire', nowMs) : undefined;
      if (outcome === undefined || (!outcome.applied && outcome.reason === 'illegal')) outcome = await this.transition(id, 'time_out', nowMs);
      if (outcome.applied) ended += 1;
    }
    return ended;
  }

  async get(commandId: string): Promise<CommandDetail> {
    const [row] = await this.#ctx.db.query<CommandRow>('SELECT * FROM commands WHERE id = ?', [commandId]);
    if (row === undefined) throw new SdcError('COMMAND_NOT_FOUND', `no command ${commandId}`);
    const events = await this.#ctx.db.query<{ state: string; at: number; detail_json: string | null }>(
      'SELECT state, at, detail_json FROM command_events WHERE command_id = ? ORDER BY id ASC LIMIT ?', [commandId, commandLimits.historyEntriesMax],
    );
    const history = events.map((e) => ({
      state: e.state as CommandState, at_ms: Number(e.at), ...(e.detail_json === null ? {} : { detail: JSON.parse(e.detail_json) as JsonValue }),
    }));
    return { ...viewOf(row), history };
  }

  async list(query: { deviceId?: string; state?: string; limit?: number; cursor?: string }): Promise<{ items: CommandView[]; next_cursor: string | null }> {
    const limit = pageLimit(query.limit);
    const where: string[] = [];
    const params: (string | number)[] = [];
    if (query.deviceId !== undefined) { where.push('device_id = ?'); params.push(query.deviceId); }
    if (query.state !== undefined) { where.push('state = ?'); params.push(query.state); }
    if (query.cursor !== undefined) {
      const [createdAt, id] = decodeCursor(query.cursor);
      where.push('(created_at < ? OR (created_at = ? AND id < ?))');
      params.push(Number(createdAt), Number(createdAt), id);
    }
    const rows = await this.#ctx.db.query<CommandRow>(
      `SELECT * FROM commands ${where.length > 0 ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY created_at DESC, id DESC LIMIT ?`,
      [...params, limit + 1],
    );
    const page = rows.slice(0, limit);
    const last = page.at(-1);
    return { items: page.map(viewOf), next_cursor: rows.length > limit && last !== undefined ? encodeCursor([String(last.created_at), last.id]) : null };
  }
}

/** A command just created, as its create transaction committed it (state queued, not yet dispatched). */
function createdView(signed: SignedCommand, createdBy: string, argsJson: string): CommandDetail {
  const atMs = signed.issued_at;
  return {
    id: signed.id, device_id: signed.device_id, opcode: signed.opcode, args: JSON.parse(argsJson) as JsonObject, state: 'queued',
    device_seq: signed.device_seq, created_by: createdBy, created_at_ms: atMs, updated_at_ms: atMs, expires_at_ms: signed.expires_at,
    attempts: 0, gateway_id: null, signed, result_frame: null, history: [{ state: 'queued', at_ms: atMs, detail: { by: createdBy, event: 'create' } }],
  };
}

function viewOf(row: CommandRow): CommandView {
  return {
    id: row.id, device_id: row.device_id, opcode: row.opcode, args: JSON.parse(row.args_json) as JsonObject,
    state: row.state as CommandState, device_seq: Number(row.device_seq), created_by: row.created_by,
    created_at_ms: Number(row.created_at), updated_at_ms: Number(row.updated_at), expires_at_ms: Number(row.expires_at),
    attempts: Number(row.attempts), gateway_id: row.gateway_id, signed: JSON.parse(row.signed_json) as SignedCommand,
    result_frame: row.result_json === null ? null : JSON.parse(row.result_json) as JsonObject,
  };
}
