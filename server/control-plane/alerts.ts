import { SdcError } from '../../core/errors/index.js';
import type { JsonObject } from '../../core/protocol/json-value.js';
import { actors, type ServiceContext } from './context.js';
import { decodeCursor, encodeCursor, pageLimit } from './pagination.js';

/** The alerts.state column holds only these: rows are inserted 'open' and updated to 'acknowledged'. */
export type AlertState = 'open' | 'acknowledged';

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
}

interface AlertRow {
  id: string; device_id: string | null; kind: string; severity: string; state: AlertState; message: string; detail_json: string | null;
  created_at: number; updated_at: number; acknowledged_by: string | null; acknowledged_at: number | null;
}

const columns = 'id, device_id, kind, severity, state, message, detail_json, created_at, updated_at, acknowledged_by, acknowledged_at';

function viewOf(row: AlertRow): AlertView {
  return {
    id: row.id, device_id: row.device_id, kind: row.kind, severity: row.severity, state: row.state, message: row.message,
    detail: row.detail_json === null ? null : JSON.parse(row.detail_json) as JsonObject,
    created_at_ms: Number(row.created_at), updated_at_ms: Number(row.updated_at), acknowledged_by: row.acknowledged_by,
    acknowledged_at_ms: row.acknowledged_at === null ? null : Number(row.acknowledged_at),
  };
}

/** Alerts for operators: raised by EventHandlers (risk score, device ALERT frames), listed and acknowledged here. */
export class AlertService {
  readonly #ctx: ServiceContext;

  constructor(options: { context: ServiceContext }) {
    this.#ctx = options.context;
  }

  /** Newest first; `sinceMs` keeps alerts raised at or after it; `acknowledged` picks one state. */
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
   * Acknowledges an open alert, recording who and when, and audits it. Idempotent: acknowledging
   * an acknowledged alert changes nothing (the first acknowledgement is kept, not audited again).
   * The conditional UPDATE makes one of two racing acknowledgements the only one recorded.
   */
  async acknowledge(options: { alertId: string; actor: string }): Promise<{ alert: AlertView; changed: boolean }> {
    const nowMs = this.#ctx.clock.nowMs();
    // The acknowledgement and its audit entry commit together.
    const changed = await this.#ctx.db.transaction(async (tx) => {
      const updated = await tx.execute(
        "UPDATE alerts SET state = 'acknowledged', acknowledged_by = ?, acknowledged_at = ?, updated_at = ? WHERE id = ? AND state = 'open'",
        [options.actor, nowMs, nowMs, options.alertId],
      );
      if (updated.changes === 0) return false;
      const [row] = await tx.query<{ device_id: string | null; kind: string }>('SELECT device_id, kind FROM alerts WHERE id = ?', [options.alertId]);
      await this.#ctx.audit.record(tx, {
        kind: 'alert.acknowledged', actor: actors.user(options.actor), subject: `alert:${options.alertId}`,
        payload: { alert_id: options.alertId, device_id: row?.device_id ?? null, kind: row?.kind ?? '', acknowledged_at_ms: nowMs },
      });
      return true;
    });
    if (changed) await this.#ctx.settleAudit();
    return { alert: await this.get(options.alertId), changed };
  }
}
