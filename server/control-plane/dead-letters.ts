import { SdcError } from '../../core/errors/index.js';
import type { JsonObject } from '../../core/protocol/json-value.js';
import type { SignedCommand } from '../../core/protocol/messages/command.js';
import { traceLogFields } from '../../core/trace/trace-context.js';
import { encodeBusEntry } from '../bus-contract/entries.js';
import { gatewayCommandStream, streamMaxLen } from '../bus-contract/streams.js';
import type { SqlExecutor } from '../stores/sql/sql-port.js';
import { CommandRepository, signedCommandOf, storedTraceparent } from './command-repository.js';
import { actors, type ServiceContext } from './context.js';
import { DeadBusEntryService } from './dead-letters-bus.js';
import { decodeCursor, encodeCursor, pageLimit } from './pagination.js';

/**
 * Dead-letter remediation (roadmap 11.4). A dead letter is a command in state `dead_lettered`:
 * the gateway gave up (no ACK after its attempts, or it refused the command). The commands table
 * is the index, per device and fleet-wide; `dead_letters` (migration 010) keeps what operators
 * did about one: retries, and a discard with its reason. Every action is audited.
 *
 * A retry is a new delivery attempt of the SAME signed command: same id, same device_seq, same
 * signature, appended again to the stream of the gateway that holds the device now. Not a
 * re-signed copy under a new id and seq, because a dead letter is `unknown` execution (the device
 * may have taken and run it, and only its ACK was lost): the agent's journal recognises a known
 * command id and answers from its record instead of running it again, and its replay guard
 * refuses a device_seq it has passed, so at most once holds whatever happened before. A re-signed
 * copy would be a new command to the device and could run twice. The cost: a retry cannot outlive
 * the signed expiry (DLQ_RETRY_EXPIRED: create a new command, which is a new decision under the
 * policy), and an old seq is refused by the device once a later command of it has run (the
 * device's signed `rejected` result then settles the dead letter: it never ran).
 *
 * The command's state is not changed by a retry: it stays `dead_lettered` (execution unknown)
 * until the device's signed result refines it (succeeded_late, failed_late, rejected), which also
 * takes it off the list. Progress reports of the new attempt (deliver, ack) are late events the
 * command machine ignores.
 */

export interface DeadLetterView {
  readonly command_id: string;
  readonly device_id: string;
  readonly opcode: string;
  readonly device_seq: number;
  readonly created_by: string;
  readonly created_at_ms: number;
  readonly dead_lettered_at_ms: number;
  readonly expires_at_ms: number;
  /** The gateway's reason (its detail of the dead_letter event), when recorded. */
  readonly reason: string | null;
  readonly retries: number;
  readonly last_retry_at_ms: number | null;
  readonly last_retry_by: string | null;
}

export type RetryOutcome =
  | { readonly command_id: string; readonly outcome: 'retried'; readonly gateway_id: string; readonly retries: number }
  | { readonly command_id: string; readonly outcome: 'refused'; readonly error: { readonly code: string; readonly message: string } };

export const deadLetterLimits = Object.freeze({
  /** Ids per retry request: each is a few queries and one append, so one request stays short. */
  retryIdsMax: 100,
  /** A discard reason is for people; 512 characters is a paragraph. */
  discardReasonCharsMax: 512,
});

interface ListedRow {
  id: string; device_id: string; opcode: string; device_seq: number; created_by: string; created_at: number; updated_at: number;
  expires_at: number; retries: number | null; last_retry_at: number | null; last_retry_by: string | null;
}
interface ActionRow { retries: number; discarded_at: number | null }

export class DeadLetterService {
  readonly #ctx: ServiceContext;
  readonly #commands: CommandRepository;
  readonly #presenceGateway: (deviceId: string) => Promise<string | undefined>;
  /** The other kind of dead letter: entries the bus moved to `<stream>:dead` (dead-letters-bus.ts). */
  readonly busEntries: DeadBusEntryService;

  /** `presenceGateway`: the gateway holding a device now (CommandService.presenceGateway). */
  constructor(options: { context: ServiceContext; presenceGateway: (deviceId: string) => Promise<string | undefined> }) {
    this.#ctx = options.context;
    this.#commands = new CommandRepository({ db: options.context.db, audit: options.context.audit });
    this.#presenceGateway = options.presenceGateway;
    this.busEntries = new DeadBusEntryService({ context: options.context });
  }

  /** Dead-lettered commands not discarded, newest first; one device's with `deviceId`. */
  async list(query: { deviceId?: string; limit?: number; cursor?: string }): Promise<{ items: DeadLetterView[]; next_cursor: string | null }> {
    const limit = pageLimit(query.limit);
    const where = ["c.state = 'dead_lettered'", 'd.discarded_at IS NULL'];
    const params: Array<string | number> = [];
    if (query.deviceId !== undefined) { where.push('c.device_id = ?'); params.push(query.deviceId); }
    if (query.cursor !== undefined) {
      const [createdAt, id] = decodeCursor(query.cursor);
      where.push('(c.created_at < ? OR (c.created_at = ? AND c.id < ?))');
      params.push(Number(createdAt), Number(createdAt), id!);
    }
    const rows = await this.#ctx.db.query<ListedRow>(
      `SELECT c.id, c.device_id, c.opcode, c.device_seq, c.created_by, c.created_at, c.updated_at, c.expires_at, d.retries, d.last_retry_at, d.last_retry_by
       FROM commands c LEFT JOIN dead_letters d ON d.command_id = c.id WHERE ${where.join(' AND ')} ORDER BY c.created_at DESC, c.id DESC LIMIT ?`,
      [...params, limit + 1],
    );
    const page = rows.slice(0, limit);
    const reasons = await this.#reasons(page.map((row) => row.id));
    const last = page.at(-1);
    return {
      items: page.map((row) => viewOf(row, reasons.get(row.id) ?? null)),
      next_cursor: rows.length > limit && last !== undefined ? encodeCursor([String(last.created_at), last.id]) : null,
    };
  }

  /** The gateway's detail of each command's latest dead_letter event. */
  async #reasons(ids: readonly string[]): Promise<Map<string, string>> {
    const reasons = new Map<string, string>();
    if (ids.length === 0) return reasons;
    const rows = await this.#ctx.db.query<{ command_id: string; detail_json: string | null }>(
      `SELECT command_id, detail_json FROM command_events WHERE state = 'dead_lettered' AND command_id IN (${ids.map(() => '?').join(', ')}) ORDER BY id`,
      [...ids],
    );
    for (const row of rows) {
      const reason = reasonOf(row.detail_json);
      if (reason !== null) reasons.set(row.command_id, reason);
    }
    return reasons;
  }

  /** Retries each id on its own (one refused id does not stop the others); answers each id's outcome. */
  async retry(ids: readonly string[], actor: string): Promise<RetryOutcome[]> {
    if (ids.length === 0 || ids.length > deadLetterLimits.retryIdsMax) {
      throw new SdcError('API_VALIDATION', `ids must hold 1 to ${deadLetterLimits.retryIdsMax} command ids`, { path: 'body/ids' });
    }
    const outcomes: RetryOutcome[] = [];
    for (const id of new Set(ids)) {
      try {
        outcomes.push(await this.#retryOne(id, actor));
      } catch (error) {
        if (!SdcError.is(error)) throw error;
        outcomes.push({ command_id: id, outcome: 'refused', error: { code: error.code, message: error.message } });
      }
    }
    return outcomes;
  }

  async #retryOne(commandId: string, actor: string): Promise<RetryOutcome> {
    const { command, deviceId, traceparent } = await this.#deadLettered(commandId);
    if ((await this.#commands.deviceStatus(deviceId)) === 'revoked') {
      throw new SdcError('API_DEVICE_REVOKED', `device ${deviceId} is revoked; its commands are not retried`, { deviceId });
    }
    const nowMs = this.#ctx.clock.nowMs();
    if (nowMs >= command.expires_at) {
      throw new SdcError('DLQ_RETRY_EXPIRED', `command ${commandId} expired at ${command.expires_at}; create a new command instead`);
    }
    const gatewayId = await this.#presenceGateway(deviceId);
    if (gatewayId === undefined) throw new SdcError('DLQ_DEVICE_OFFLINE', `device ${deviceId} is not connected; retry once it is online`, { deviceId });
    const retries = await this.#record(commandId, deviceId, (tx, row) => this.#recordRetry(tx, { commandId, deviceId, row, actor, nowMs, gatewayId, command }));
    await this.#ctx.settleAudit();
    // After the audit entry is committed: an append that fails leaves an audited request the
    // operator sees refused (STORE_*) and can repeat; a delivery never goes out unaudited.
    // Under the trace the command was created with (migration 017): the retry's path logs the same trace id.
    await this.#ctx.bus.append(gatewayCommandStream(gatewayId), encodeBusEntry('deliver', { command, retry: retries, ...(traceparent === undefined ? {} : { traceparent }) }), { maxLen: streamMaxLen.gatewayCommands });
    this.#ctx.logger.info({ commandId, gatewayId, retries, ...traceLogFields(traceparent) }, 'dead-lettered command retried');
    return { command_id: commandId, outcome: 'retried', gateway_id: gatewayId, retries };
  }

  async #recordRetry(tx: SqlExecutor, r: { commandId: string; deviceId: string; row: ActionRow | undefined; actor: string; nowMs: number; gatewayId: string; command: SignedCommand }): Promise<number> {
    if (r.row?.discarded_at != null) throw discarded(r.commandId);
    const retries = (r.row?.retries ?? 0) + 1;
    if (r.row === undefined) {
      await tx.execute(
        'INSERT INTO dead_letters (command_id, device_id, retries, last_retry_at, last_retry_by) VALUES (?, ?, ?, ?, ?)',
        [r.commandId, r.deviceId, retries, r.nowMs, r.actor],
      );
    } else {
      await tx.execute('UPDATE dead_letters SET retries = ?, last_retry_at = ?, last_retry_by = ? WHERE command_id = ?', [retries, r.nowMs, r.actor, r.commandId]);
    }
    await this.#ctx.audit.record(tx, {
      kind: 'dead_letter.retried', actor: actors.user(r.actor), subject: `command:${r.commandId}`,
      payload: { command_id: r.commandId, device_id: r.deviceId, device_seq: r.command.device_seq, retry: retries, gateway_id: r.gatewayId, mode: 'same_signed_command' },
    });
    return retries;
  }

  /** Takes the command off the dead-letter list for good, with the operator's reason. */
  async discard(commandId: string, reason: string, actor: string): Promise<{ command_id: string; discarded_at_ms: number; reason: string }> {
    const trimmed = reason.trim();
    if (trimmed.length === 0 || trimmed.length > deadLetterLimits.discardReasonCharsMax) {
      throw new SdcError('API_VALIDATION', `reason must be 1 to ${deadLetterLimits.discardReasonCharsMax} characters`, { path: 'body/reason' });
    }
    const { deviceId } = await this.#deadLettered(commandId);
    const nowMs = this.#ctx.clock.nowMs();
    await this.#record(commandId, deviceId, async (tx, row) => {
      if (row?.discarded_at != null) throw discarded(commandId);
      if (row === undefined) {
        await tx.execute(
          'INSERT INTO dead_letters (command_id, device_id, retries, discarded_at, discarded_by, discard_reason) VALUES (?, ?, 0, ?, ?, ?)',
          [commandId, deviceId, nowMs, actor, trimmed],
        );
      } else {
        await tx.execute('UPDATE dead_letters SET discarded_at = ?, discarded_by = ?, discard_reason = ? WHERE command_id = ?', [nowMs, actor, trimmed, commandId]);
      }
      await this.#ctx.audit.record(tx, {
        kind: 'dead_letter.discarded', actor: actors.user(actor), subject: `command:${commandId}`,
        payload: { command_id: commandId, device_id: deviceId, reason: trimmed },
      });
    });
    await this.#ctx.settleAudit();
    return { command_id: commandId, discarded_at_ms: nowMs, reason: trimmed };
  }

  /** The command, which must be dead-lettered now (DLQ_ENTRY_NOT_FOUND otherwise, naming its state). */
  async #deadLettered(commandId: string): Promise<{ command: SignedCommand; deviceId: string; traceparent: string | undefined }> {
    const row = await this.#commands.byId(commandId);
    if (row === undefined) throw new SdcError('DLQ_ENTRY_NOT_FOUND', `no command ${commandId}`);
    if (row.state !== 'dead_lettered') throw new SdcError('DLQ_ENTRY_NOT_FOUND', `command ${commandId} is ${row.state}, not dead-lettered`, { state: row.state });
    return { command: signedCommandOf(row), deviceId: row.device_id, traceparent: storedTraceparent(row.traceparent) };
  }

  /**
   * Runs `change` in a transaction with the command's dead_letters row as read inside it. Two
   * first actions on one command race on the primary key: the loser runs once more and sees the row.
   */
  async #record<T>(commandId: string, deviceId: string, change: (tx: SqlExecutor, row: ActionRow | undefined) => Promise<T>): Promise<T> {
    const attempt = () => this.#ctx.db.transaction(async (tx) => {
      const [row] = await tx.query<ActionRow>('SELECT retries, discarded_at FROM dead_letters WHERE command_id = ?', [commandId]);
      return change(tx, row === undefined ? undefined : { retries: Number(row.retries), discarded_at: row.discarded_at === null ? null : Number(row.discarded_at) });
    });
    try {
      return await attempt();
    } catch (error) {
      if (!SdcError.is(error, 'STORE_UNIQUE_VIOLATION')) throw error;
      this.#ctx.logger.info({ commandId, deviceId }, 'concurrent first action on a dead letter; read again');
      return attempt();
    }
  }
}

function discarded(commandId: string): SdcError {
  return new SdcError('DLQ_ENTRY_DISCARDED', `command ${commandId} was discarded; it is never retried`);
}

function reasonOf(detailJson: string | null): string | null {
  if (detailJson === null) return null;
  try {
    const detail = JSON.parse(detailJson) as JsonObject;
    return typeof detail['detail'] === 'string' ? detail['detail'] : null;
  } catch {
    return null;
  }
}

function viewOf(row: ListedRow, reason: string | null): DeadLetterView {
  return {
    command_id: row.id, device_id: row.device_id, opcode: row.opcode, device_seq: Number(row.device_seq), created_by: row.created_by,
    created_at_ms: Number(row.created_at), dead_lettered_at_ms: Number(row.updated_at), expires_at_ms: Number(row.expires_at), reason,
    retries: row.retries === null ? 0 : Number(row.retries), last_retry_at_ms: row.last_retry_at === null ? null : Number(row.last_retry_at),
    last_retry_by: row.last_retry_by,
  };
}
