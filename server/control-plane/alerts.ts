import { SdcError } from '../../core/errors/index.js';
import type { JsonObject } from '../../core/protocol/json-value.js';
import { clearedByAcknowledgement } from './alert-episodes.js';
import { actors, type ServiceContext } from './context.js';
import { decodeCursor, encodeCursor, pageLimit } from './pagination.js';

/** The alerts.state column holds only these: rows are inserted 'open' and updated to 'acknowledged'. */
export type AlertState = 'open' | 'acknowledged';

/** Longest acknowledgement note kept (the column's width). */
export const ackNoteCharsMax = 1024;

export interface AlertView {
  readonly id: string;
  readonly device_id: string | null;
  readonly kind: string;
  readonly severity: string;
  readonly state: AlertState;
  readonly message: string;
  readonly detail: JsonObject | null;
  readonly created_at_ms: number;
  readonly updated_at_ms: number;
  readonly acknowledged_by: string | null;
  readonly acknowledged_at_ms: number | null;
  /** The note given with the acknowledgement. */
  readonly ack_note: string | null;
  /** When the alert's condition cleared (its episode ended); null while it holds, and for alerts without a condition. */
  readonly cleared_at_ms: number | null;
}

interface AlertRow {
  id: string; device_id: string | null; kind: string; severity: string; state: AlertState; message: string; detail_json: string | null;
  created_at: number; updated_at: number; acknowledged_by: string | null; acknowledged_at: number | null; ack_note: string | null; cleared_at: number | null;
}

const columns = 'id, device_id, kind, severity, state, message, detail_json, created_at, updated_at, acknowledged_by, acknowledged_at, ack_note, cleared_at';

function viewOf(row: AlertRow): AlertView {
  return {
    id: row.id, device_id: row.device_id, kind: row.kind, severity: row.severity, state: row.state, message: row.message,
    detail: row.detail_json === null ? null : JSON.parse(row.detail_json) as JsonObject,
    created_at_ms: Number(row.created_at), updated_at_ms: Number(row.updated_at), acknowledged_by: row.acknowledged_by,
    acknowledged_at_ms: row.acknowledged_at === null ? null : Number(row.acknowledged_at),
    ack_note: row.ack_note, cleared_at_ms: row.cleared_at === null ? null : Number(row.cleared_at),
  };
}

/** Alerts for operators: raised by EventHandlers (risk score, device ALERT frames), listed and acknowledged here. */
export class AlertService {
  readonly #ctx: ServiceContext;

  constructor(options: { context: ServiceContext }) {
    this.#ctx = options.context;
  }

  /** Newest first; `sinceMs` keeps alerts raised at or after it; `acknowledged` picks one state (`state=open|acked` in the API). */
  async list(query: { deviceId?: string; sinceMs?: number; acknowledged?: boolean; limit?: number; cursor?: string }): Promise<{ items: AlertView[]; next_cursor: string | null }> {
    const limit = pageLimit(query.limit);
    const where: string[] = [];
    const params: Array<string | number> = [];
    if (query.deviceId !== undefined) { where.push('device_id = ?'); params.push(query.deviceId); }
    if (query.sinceMs !== undefined) { where.push('created_at >= ?'); params.push(query.sinceMs); }
    if (query.acknowledged !== undefined) { where.push('state = ?'); params.push(query.acknowledged ? 'acknowledged' : 'open'); }
    if (query.cursor !== undefined) {
      const [createdAt, id] = decodeCursor(query.cursor);
      where.push('(created_at < ? OR (created_at = ? AND id < ?))');
      params.push(Number(createdAt), Number(createdAt), id);
    }
    const rows = await this.#ctx.db.query<AlertRow>(
      `SELECT ${columns} FROM alerts ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at DESC, id DESC LIMIT ?`,
      [...params, limit + 1],
    );
    const page = rows.slice(0, limit);
    const last = page.at(-1);
    return { items: page.map(viewOf), next_cursor: rows.length > limit && last !== undefined ? encodeCursor([String(last.created_at), last.id]) : null };
  }

  async get(alertId: string): Promise<AlertView> {
    const [row] = await this.#ctx.db.query<AlertRow>(`SELECT ${columns} FROM alerts WHERE id = ?`, [alertId]);
    if (row === undefined) throw new SdcError('API_ALERT_NOT_FOUND', `no alert ${alertId}`, { alertId });
    return viewOf(row);
  }

  /**
   * Acknowledges an open alert, recording who, when and the note, audits it and publishes it
   * live. An acknowledged alert is refused (API_ALERT_ALREADY_ACKED, with who and when): the
   * conditional UPDATE makes one of two racing acknowledgements the only one recorded, and the
   * other is told so. Acknowledging a tamper or update_failed alert also ends its episode (nothing
   * else says those conditions are over), so the next signal raises a new alert.
   */
  async acknowledge(options: { alertId: string; actor: string; note?: string }): Promise<AlertView> {
    const nowMs = this.#ctx.clock.nowMs();
    const note = options.note === undefined ? null : options.note.slice(0, ackNoteCharsMax);
    // The acknowledgement and its audit entry commit together.
    const acked = await this.#ctx.db.transaction(async (tx) => {
      const updated = await tx.execute(
        "UPDATE alerts SET state = 'acknowledged', acknowledged_by = ?, acknowledged_at = ?, ack_note = ?, updated_at = ? WHERE id = ? AND state = 'open'",
        [options.actor, nowMs, note, nowMs, options.alertId],
      );
      if (updated.changes === 0) return undefined;
      const [row] = await tx.query<{ device_id: string | null; kind: string }>('SELECT device_id, kind FROM alerts WHERE id = ?', [options.alertId]);
      const kind = row?.kind ?? '';
      // The episode ends with the acknowledgement (tamper, update_failed): said in this audit entry, not a second one.
      const cleared = clearedByAcknowledgement.has(kind)
        && (await tx.execute('UPDATE alerts SET episode_key = NULL, cleared_at = ? WHERE id = ? AND episode_key IS NOT NULL', [nowMs, options.alertId])).changes > 0;
      await this.#ctx.audit.record(tx, {
        kind: 'alert.acknowledged', actor: actors.user(options.actor), subject: `alert:${options.alertId}`,
        payload: { alert_id: options.alertId, device_id: row?.device_id ?? null, kind, acknowledged_at_ms: nowMs, note, ...(cleared ? { cleared: true } : {}) },
      });
      return { deviceId: row?.device_id ?? null, kind };
    });
    if (acked === undefined) {
      const current = await this.get(options.alertId);
      throw new SdcError('API_ALERT_ALREADY_ACKED', `alert ${options.alertId} was acknowledged by ${current.acknowledged_by ?? 'someone'}`, {
        alertId: options.alertId, acknowledgedBy: current.acknowledged_by, acknowledgedAtMs: current.acknowledged_at_ms,
      });
    }
    await this.#ctx.settleAudit();
    this.#ctx.publishLive({
      type: 'alert_acknowledged', alert_id: options.alertId, device_id: acked.deviceId, kind: acked.kind, acknowledged_by: options.actor, note, at_ms: nowMs,
    });
    return this.get(options.alertId);
  }
}
