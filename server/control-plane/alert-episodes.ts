import { SdcError } from '../../core/errors/index.js';
import type { JsonObject } from '../../core/protocol/json-value.js';
import type { SqlExecutor } from '../stores/sql/sql-port.js';
import { actors, newId, type ServiceContext } from './context.js';

export interface RaiseAlert {
  readonly deviceId: string | null;
  readonly kind: string;
  readonly severity: string;
  readonly message: string;
  readonly atMs: number;
  readonly detail: JsonObject;
  readonly actor: string;
  /**
   * Names the condition's episode (kind and subject, episodeKeyOf): while an alert with this key
   * is open, raising again raises nothing. Absent: every raise is a new alert (a device's own
   * ALERT frames, which have no clearing condition).
   */
  readonly episodeKey?: string;
}

/** What a raise did: the new alert's id, or undefined when its episode was already open. */
export type RaiseOutcome = { readonly raised: true; readonly id: string } | { readonly raised: false };

/** The alert open under an episode key: what a clear needs of it. */
export interface OpenEpisode {
  readonly id: string;
  readonly device_id: string | null;
  readonly kind: string;
}

/** The alert open under `episodeKey`, if any (AlertEpisodes.clear; the presence handler's read on sql.js). */
export async function readOpenEpisode(db: SqlExecutor, episodeKey: string): Promise<OpenEpisode | undefined> {
  const [row] = await db.query<OpenEpisode>('SELECT id, device_id, kind FROM alerts WHERE episode_key = ?', [episodeKey]);
  return row;
}

/** `kind:subject`, at most 191 characters (the indexed column). */
export function episodeKeyOf(kind: string, subject: string): string {
  return `${kind}:${subject}`.slice(0, 191);
}

/** Alert kinds whose episode ends when an operator acknowledges it: nothing else says they are over. */
export const clearedByAcknowledgement: ReadonlySet<string> = new Set(['tamper', 'update_failed']);

/**
 * Alerts in SQL, raised once per episode. A raise inserts the alert and its audit entry in one
 * transaction, then publishes it live. The UNIQUE index on episode_key (migration 010) decides a
 * race between control planes: the loser's insert is a unique violation, rolled back with its
 * audit entry, so each episode is stored, audited and published exactly once. A clear ends the
 * episode (episode_key back to NULL), so the condition's next return raises a new alert.
 */
export class AlertEpisodes {
  readonly #ctx: ServiceContext;
  readonly #onRaised: (kind: string) => void;

  constructor(options: { context: ServiceContext; onRaised?: (kind: string) => void }) {
    this.#ctx = options.context;
    this.#onRaised = options.onRaised ?? (() => undefined);
  }

  /** True if an alert with this episode key is open (cheap: the unique index). */
  async isOpen(episodeKey: string): Promise<boolean> {
    const rows = await this.#ctx.db.query<{ id: string }>('SELECT id FROM alerts WHERE episode_key = ?', [episodeKey]);
    return rows.length > 0;
  }

  async raise(options: RaiseAlert): Promise<RaiseOutcome> {
    const id = newId('a', this.#ctx.random);
    try {
      await this.#ctx.db.transaction(async (tx) => {
        await tx.execute(
          "INSERT INTO alerts (id, device_id, kind, severity, state, message, detail_json, created_at, updated_at, episode_key) VALUES (?, ?, ?, ?, 'open', ?, ?, ?, ?, ?)",
          [id, options.deviceId, options.kind, options.severity, options.message.slice(0, 1024), JSON.stringify(options.detail), options.atMs, options.atMs, options.episodeKey ?? null],
        );
        await this.#ctx.audit.record(tx, {
          kind: 'alert.raised', actor: options.actor, subject: options.deviceId === null ? `alert:${id}` : `device:${options.deviceId}`,
          payload: { alert_id: id, kind: options.kind, severity: options.severity, message: options.message, ...(options.episodeKey === undefined ? {} : { episode_key: options.episodeKey }) },
        });
      });
    } catch (error) {
      // Another raise of the same episode (here or on another control plane) came first.
      if (options.episodeKey !== undefined && SdcError.is(error, 'STORE_UNIQUE_VIOLATION')) return { raised: false };
      throw error;
    }
    await this.#ctx.settleAudit();
    this.#onRaised(options.kind);
    this.#ctx.publishLive({
      type: 'alert', alert_id: id, device_id: options.deviceId, severity: options.severity, kind: options.kind, message: options.message, at_ms: options.atMs,
    });
    return { raised: true, id };
  }

  /**
   * Ends the episode: its alert stays (open or acknowledged) with cleared_at set, and the next
   * raise of the key is a new alert. The clear is audited (`alert.cleared`) in the transaction of
   * the conditional UPDATE, so of two control planes clearing one episode only the one whose
   * UPDATE changed the row records it: once. Returns the alert's id, or undefined when none was open.
   * `open`: the episode's alert as the caller just read it (undefined: none open), instead of a
   * read here (the presence handler reads it with the device's commands, issue 17); the UPDATE's
   * condition on the key still decides, so a row cleared since is not cleared twice.
   */
  async clear(episodeKey: string, atMs: number, actor: string = actors.system, open?: { readonly row: OpenEpisode | undefined }): Promise<string | undefined> {
    const row = open === undefined ? await readOpenEpisode(this.#ctx.db, episodeKey) : open.row;
    if (row === undefined) return undefined;
    const cleared = await this.#ctx.db.transaction(async (tx) => {
      const updated = await tx.execute('UPDATE alerts SET episode_key = NULL, cleared_at = ?, updated_at = ? WHERE id = ? AND episode_key = ?', [atMs, atMs, row.id, episodeKey]);
      if (updated.changes === 0) return false;
      await this.#ctx.audit.record(tx, {
        kind: 'alert.cleared', actor, subject: row.device_id === null ? `alert:${row.id}` : `device:${row.device_id}`,
        payload: { alert_id: row.id, kind: row.kind, episode_key: episodeKey, cleared_at_ms: atMs },
      });
      return true;
    });
    if (!cleared) return undefined;
    await this.#ctx.settleAudit();
    this.#ctx.publishLive({ type: 'alert_cleared', alert_id: row.id, device_id: row.device_id, kind: row.kind, at_ms: atMs });
    return row.id;
  }
}
