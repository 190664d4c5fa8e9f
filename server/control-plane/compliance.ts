import { SdcError } from '../../core/errors/index.js';
import {
  complianceStates, evaluateCompliance, type ComplianceFacts, type ComplianceReason, type ComplianceResult, type ComplianceRules,
  type ComplianceState, type DeviceCompliance, type DeviceComplianceReader,
} from '../../core/protocol/compliance.js';
import type { DevicePosture } from '../../core/protocol/messages/posture.js';
import { decodeBusEntry } from '../bus-contract/entries.js';
import type { BusEntry } from '../stores/bus/bus-port.js';
import type { SqlExecutor } from '../stores/sql/sql-port.js';
import { readOpenEpisode, type OpenEpisode } from './alert-episodes.js';
import type { PreviousReport } from './compliance-tamper.js';
import { actors, type ServiceContext } from './context.js';
import type { DeviceKeyReadMark } from './device-key-cache.js';
import { decodeCursor, encodeCursor, pageLimit } from './pagination.js';

/**
 * Compliance per device (roadmap 10.3). The facts a device reports in its AUTH (agent version and
 * posture, passed on by the gateway in the presence entry) are stored in `device_compliance`
 * (migration 010) with the state core/protocol/compliance.ts gives them under the configured
 * rules and the device's certificate expiry from its record. Time alone changes a state (a
 * certificate comes within the warning window), so `reevaluateDue` re-judges stored rows on a
 * sweep, and one device's read re-judges it on the spot. A change of state is audited.
 *
 * Other modules read a device's state through the DeviceComplianceReader port (`readCompliance`).
 */

export interface DeviceComplianceView {
  readonly device_id: string;
  readonly state: ComplianceState | 'unknown';
  readonly reasons: readonly ComplianceReason[];
  /** The facts judged: what the device reported, and its certificate expiry from its record. */
  readonly facts: ReportedFacts & { readonly cert_not_after_ms: number | null };
  readonly reported_at_ms: number | null;
  readonly evaluated_at_ms: number | null;
}

/** What the device reported, as stored (snake_case, the wire's names). */
export interface ReportedFacts extends DevicePosture {
  readonly agent_version?: string;
}

export const complianceLimits = Object.freeze({
  /** Rows re-judged per sweep pass, the longest unjudged first; the rest wait for the next pass. */
  reevaluatePerSweepMax: 500,
  /** A stored state older than this is re-judged by the sweep. */
  reevaluateAfterMs: 60 * 60 * 1000,
});

interface ComplianceRow { device_id: string; state: string; reasons_json: string; facts_json: string; reported_at: number; evaluated_at: number }
/** A row of a LEFT JOIN's right side: every column null when there was no match. */
type Nullable<T> = { [K in keyof T]: T[K] | null };

/** Where the devices row's key and status go once read (DeviceService.deviceKeyMark and keepDeviceKey). */
export interface DeviceKeySink {
  deviceKeyMark(): DeviceKeyReadMark;
  keepDeviceKey(deviceId: string, row: { public_key: string | null; status: string }, mark: DeviceKeyReadMark): void;
}

/** A device's new posture report with its judgement and the report before it, for the tamper rule (AlertMonitor.onPostureReport). */
export interface PostureReport {
  readonly deviceId: string;
  readonly previous: PreviousReport | undefined;
  readonly reported: ReportedFacts;
  readonly result: ComplianceResult;
  readonly atMs: number;
}

/**
 * The device's certificate expiry and its stored compliance row, as one read found them; `stored`
 * undefined: no such device. Opaque to other modules: the presence handler reads it with its own
 * read of the same entry (ComplianceService.reportAndEpisodeOf) and hands it to onEventEntry.
 */
export interface DeviceReportRead {
  readonly stored: StoredReport | undefined;
}
interface StoredReport { readonly certNotAfterMs: number | null; readonly row: ComplianceRow | undefined }

/** Whether a presence entry's data is one onEventEntry records: a device online with AUTH facts. */
export function carriesAuthFacts(data: { readonly online: boolean; readonly agent_version?: string; readonly posture?: DevicePosture }): boolean {
  return data.online && (data.agent_version !== undefined || data.posture !== undefined);
}

/** What a device's compliance read takes from its devices row. */
interface DeviceFacts { cert_not_after: number | null; public_key: string | null; status: string }
/** The device's rows as one read found them: its devices row, its device_compliance row, the alert open under the episode key asked for. */
interface DeviceReportRows { device: DeviceFacts | undefined; row: ComplianceRow | undefined; episode: OpenEpisode | undefined }

/** MySQL: the devices row LEFT JOIN its device_compliance row, both by primary key. */
const deviceReportJoinSql = `SELECT d.cert_not_after, d.public_key, d.status, c.device_id, c.state, c.reasons_json, c.facts_json, c.reported_at, c.evaluated_at
  FROM devices d LEFT JOIN device_compliance c ON c.device_id = d.id WHERE d.id = ?`;
/**
 * sql.js: the same rows as parts of a UNION ALL (and, given an episode key, the open alert as a
 * third part; the caller's episode read): SQLite's LEFT JOIN of the two rows by key cost about
 * four times the parts (warm, 10,000 devices: 19.7 against 5.0 µs; with the alert 6.0 against
 * 22.7 for the join and the episode read apart; docs/benchmarks.md 2026-12-06 h5). Columns by
 * position: part, then n1, t1-t4, n2 as the part names them (reportRowsOf).
 */
const deviceReportUnionSql = `SELECT 'd' AS part, cert_not_after AS n1, public_key AS t1, status AS t2, NULL AS t3, NULL AS t4, NULL AS n2 FROM devices WHERE id = ?
  UNION ALL SELECT 'c', reported_at, state, reasons_json, facts_json, device_id, evaluated_at FROM device_compliance WHERE device_id = ?`;
const deviceReportAndEpisodeUnionSql = `${deviceReportUnionSql}
  UNION ALL SELECT 'a', NULL, id, device_id, kind, NULL, NULL FROM alerts WHERE episode_key = ?`;
type UnionRow = { part: string; n1: number | null; t1: string | null; t2: string | null; t3: string | null; t4: string | null; n2: number | null };

/** The parts of a deviceReportUnionSql read, by their tag (in any order: a UNION's rows come in no promised order). */
function reportRowsOf(rows: readonly UnionRow[]): DeviceReportRows {
  const read: DeviceReportRows = { device: undefined, row: undefined, episode: undefined };
  for (const r of rows) {
    if (r.part === 'd') read.device = { cert_not_after: r.n1, public_key: r.t1, status: String(r.t2) };
    else if (r.part === 'c') read.row = { state: String(r.t1), reasons_json: String(r.t2), facts_json: String(r.t3), device_id: String(r.t4), reported_at: Number(r.n1), evaluated_at: Number(r.n2) };
    else read.episode = { id: String(r.t1), device_id: r.t2, kind: String(r.t3) };
  }
  return read;
}

/** When a recorded change's audit entry is chained: before the call resolves, or by the instant's one drain. */
type AuditSettle = 'now' | 'soon';

export class ComplianceService implements DeviceComplianceReader {
  readonly #ctx: ServiceContext;
  readonly #rules: ComplianceRules;
  readonly #onReported: (report: PostureReport) => Promise<void>;
  readonly #deviceKeys: DeviceKeySink | undefined;

  /**
   * `onReported`: each new report, before it is stored (a failure there leaves the report to be
   * taken again, judged against the same previous one). `deviceKeys`: where the device's key and
   * status, read with its certificate expiry, are kept for the device's frames (DeviceService).
   */
  constructor(options: { context: ServiceContext; rules: ComplianceRules; onReported?: (report: PostureReport) => Promise<void>; deviceKeys?: DeviceKeySink }) {
    this.#ctx = options.context;
    this.#rules = options.rules;
    this.#onReported = options.onReported ?? (async () => undefined);
    this.#deviceKeys = options.deviceKeys;
  }

  get rules(): ComplianceRules {
    return this.#rules;
  }

  /**
   * An events-stream entry, after the events handler took it: a device coming online with its
   * AUTH facts has them recorded. Other entries are skipped before any decoding. `read`: this
   * device's report as the events handler read it for this entry (reportAndEpisodeOf), so it is
   * not read again; without it, read here.
   */
  async onEventEntry(entry: BusEntry, read?: DeviceReportRead): Promise<void> {
    if (entry.fields['kind'] !== 'presence') return;
    const decoded = decodeBusEntry(entry.fields);
    if (decoded.kind !== 'presence' || !carriesAuthFacts(decoded.data)) return;
    const { agent_version: agentVersion, posture } = decoded.data;
    // The events handler does not read the chain: its entry is chained by the instant's one drain (audit-drain-soon.ts, issue 17).
    await this.record(decoded.data.device_id, { ...(posture ?? {}), ...(agentVersion === undefined ? {} : { agent_version: agentVersion }) }, decoded.data.at_ms, 'soon', read);
  }

  /**
   * The device's report (as onEventEntry needs it) and the alert open under `episodeKey` (the
   * presence handler's read of its offline episode, as readOpenEpisode reads it), in one
   * statement on sql.js: a statement less per AUTH (issue 17). On MySQL two (the events handler
   * does not call this there: its episode read rides with its commands read).
   */
  async reportAndEpisodeOf(deviceId: string, episodeKey: string): Promise<{ report: DeviceReportRead; episode: OpenEpisode | undefined }> {
    const mark = this.#deviceKeys?.deviceKeyMark();
    const read = await this.#readReport(deviceId, episodeKey);
    return { report: { stored: this.#keptReport(deviceId, read, mark) }, episode: read.episode };
  }

  /**
   * Stores what the device reported at `reportedAtMs` and judges it now. `settle`: 'now' chains a
   * change's audit entry before this resolves; 'soon' leaves it to the instant's one drain
   * (ServiceContext.settleAuditSoon), committed with the row either way. `read`: the device's
   * report read already (reportAndEpisodeOf); read here when absent.
   */
  async record(deviceId: string, reported: ReportedFacts, reportedAtMs: number, settle: AuditSettle = 'now', read?: DeviceReportRead): Promise<ComplianceResult> {
    const nowMs = this.#ctx.clock.nowMs();
    const stored = read === undefined ? await this.#deviceAndReport(deviceId) : read.stored;
    if (stored === undefined) throw new SdcError('API_DEVICE_NOT_FOUND', `no device ${deviceId}`);
    const result = evaluateCompliance(factsOf(reported, reportedAtMs, stored.certNotAfterMs), this.#rules, nowMs);
    const previous = stored.row === undefined ? undefined : { reported: reportedOf(stored.row), reasons: JSON.parse(stored.row.reasons_json) as ComplianceReason[] };
    await this.#onReported({ deviceId, previous, reported, result, atMs: reportedAtMs });
    await this.#store(deviceId, { reported, reportedAtMs, result, nowMs }, settle, stored.row === undefined);
    return result;
  }

  /** The port: the device's state judged now; `unknown` before it reported anything; undefined for no such device. */
  async readCompliance(deviceId: string): Promise<DeviceCompliance | undefined> {
    const view = await this.deviceCompliance(deviceId).catch((error: unknown) => {
      if (SdcError.is(error, 'API_DEVICE_NOT_FOUND')) return undefined;
      throw error;
    });
    if (view === undefined) return undefined;
    return { deviceId, state: view.state, reasons: view.reasons, evaluatedAtMs: view.evaluated_at_ms };
  }

  /** One device, judged now under the current rules and certificate (and stored when the state changed). */
  async deviceCompliance(deviceId: string): Promise<DeviceComplianceView> {
    const stored = await this.#deviceAndReport(deviceId);
    if (stored === undefined) throw new SdcError('API_DEVICE_NOT_FOUND', `no device ${deviceId}`);
    const { certNotAfterMs, row } = stored;
    const certFact = { cert_not_after_ms: certNotAfterMs };
    if (row === undefined) return { device_id: deviceId, state: 'unknown', reasons: [], facts: certFact, reported_at_ms: null, evaluated_at_ms: null };
    const reported = reportedOf(row);
    const nowMs = this.#ctx.clock.nowMs();
    const result = evaluateCompliance(factsOf(reported, Number(row.reported_at), certNotAfterMs), this.#rules, nowMs);
    if (result.state !== row.state) await this.#store(deviceId, { reported, reportedAtMs: Number(row.reported_at), result, nowMs });
    return { device_id: deviceId, state: result.state, reasons: result.reasons, facts: { ...reported, ...certFact }, reported_at_ms: Number(row.reported_at), evaluated_at_ms: nowMs };
  }

  /**
   * The fleet: devices per state (`unknown`: enrolled devices that have reported nothing), and one
   * page of the devices in `state` (default non_compliant) with their reasons, by device id.
   */
  async summary(query: { state?: ComplianceState; limit?: number; cursor?: string }): Promise<{
    counts: Record<ComplianceState | 'unknown', number>; state: ComplianceState;
    items: Array<{ device_id: string; reasons: readonly ComplianceReason[]; evaluated_at_ms: number }>; next_cursor: string | null;
  }> {
    const limit = pageLimit(query.limit);
    const state = query.state ?? 'non_compliant';
    const counts = { compliant: 0, warning: 0, non_compliant: 0, unknown: 0 };
    for (const row of await this.#ctx.db.query<{ state: string; n: number }>('SELECT state, COUNT(*) AS n FROM device_compliance GROUP BY state')) {
      if ((complianceStates as readonly string[]).includes(row.state)) counts[row.state as ComplianceState] = Number(row.n);
    }
    const [unreported] = await this.#ctx.db.query<{ n: number }>(
      "SELECT COUNT(*) AS n FROM devices d WHERE d.status = 'enrolled' AND NOT EXISTS (SELECT 1 FROM device_compliance c WHERE c.device_id = d.id)",
    );
    counts.unknown = Number(unreported?.n ?? 0);
    const after = query.cursor === undefined ? '' : decodeCursor(query.cursor)[1];
    const rows = await this.#ctx.db.query<ComplianceRow>(
      'SELECT * FROM device_compliance WHERE state = ? AND device_id > ? ORDER BY device_id LIMIT ?', [state, after, limit + 1],
    );
    const page = rows.slice(0, limit);
    const last = page.at(-1);
    return {
      counts, state,
      items: page.map((row) => ({ device_id: row.device_id, reasons: JSON.parse(row.reasons_json) as ComplianceReason[], evaluated_at_ms: Number(row.evaluated_at) })),
      next_cursor: rows.length > limit && last !== undefined ? encodeCursor(['0', last.device_id]) : null,
    };
  }

  /** The sweep: re-judges the stored states judged longest ago (at most `reevaluatePerSweepMax`); returns how many changed. */
  async reevaluateDue(): Promise<number> {
    const nowMs = this.#ctx.clock.nowMs();
    const rows = await this.#ctx.db.query<ComplianceRow & { cert_not_after: number | null }>(
      `SELECT c.*, d.cert_not_after FROM device_compliance c JOIN devices d ON d.id = c.device_id
       WHERE c.evaluated_at <= ? ORDER BY c.evaluated_at LIMIT ?`,
      [nowMs - complianceLimits.reevaluateAfterMs, complianceLimits.reevaluatePerSweepMax],
    );
    let changed = 0;
    for (const row of rows) {
      const reported = reportedOf(row);
      const result = evaluateCompliance(factsOf(reported, Number(row.reported_at), row.cert_not_after === null ? null : Number(row.cert_not_after)), this.#rules, nowMs);
      if (result.state !== row.state) changed += 1;
      await this.#store(row.device_id, { reported, reportedAtMs: Number(row.reported_at), result, nowMs });
    }
    return changed;
  }

  /**
   * The device's certificate expiry (null when none is on record) and its stored compliance row,
   * if any, in one statement (issue 17: a read less per AUTH); undefined when there is no such device.
   */
  async #deviceAndReport(deviceId: string): Promise<StoredReport | undefined> {
    const mark = this.#deviceKeys?.deviceKeyMark();
    return this.#keptReport(deviceId, await this.#readReport(deviceId), mark);
  }

  /** The device's row and compliance row, and with `episodeKey` the alert open under it: one statement on sql.js, on MySQL the join (and the episode's own read). */
  async #readReport(deviceId: string, episodeKey?: string): Promise<DeviceReportRows> {
    if (this.#ctx.db.dialect !== 'mysql') {
      return reportRowsOf(await this.#ctx.db.query<UnionRow>(episodeKey === undefined ? deviceReportUnionSql : deviceReportAndEpisodeUnionSql,
        episodeKey === undefined ? [deviceId, deviceId] : [deviceId, deviceId, episodeKey]));
    }
    const episode = episodeKey === undefined ? undefined : await readOpenEpisode(this.#ctx.db, episodeKey);
    const [found] = await this.#ctx.db.query<DeviceFacts & Nullable<ComplianceRow>>(deviceReportJoinSql, [deviceId]);
    if (found === undefined) return { device: undefined, row: undefined, episode };
    const device = { cert_not_after: found.cert_not_after, public_key: found.public_key, status: found.status };
    return { device, row: found.device_id === null ? undefined : found as ComplianceRow, episode };
  }

  /** A compliance read's rows as the report they hold; the device's key and status kept for its frames. */
  #keptReport(deviceId: string, read: DeviceReportRows, mark: DeviceKeyReadMark | undefined): StoredReport | undefined {
    const { device } = read;
    if (device === undefined) return undefined;
    // The key and status too: the device's policy bundle report follows its AUTH, and its check needs them (issue 17).
    if (mark !== undefined) this.#deviceKeys!.keepDeviceKey(deviceId, { public_key: device.public_key, status: device.status }, mark);
    return { certNotAfterMs: device.cert_not_after === null ? null : Number(device.cert_not_after), row: read.row };
  }

  /**
   * Upserts the row; a change of state is audited in the same transaction. `seenAbsent`: the
   * caller's read found no row, so the first try inserts without reading it again (a device's
   * first report, one statement less per device at a fleet's start, issue 17); a row written
   * since is refused by the primary key, and the retry below reads it.
   */
  async #store(deviceId: string, s: { reported: ReportedFacts; reportedAtMs: number; result: ComplianceResult; nowMs: number }, settle: AuditSettle = 'now', seenAbsent = false): Promise<void> {
    const write = (knownAbsent: boolean) => this.#ctx.db.transaction(async (tx) => {
      const [row] = knownAbsent ? [] : await tx.query<{ state: string }>('SELECT state FROM device_compliance WHERE device_id = ?', [deviceId]);
      const values = [s.result.state, JSON.stringify(s.result.reasons), JSON.stringify(s.reported), s.reportedAtMs, s.nowMs];
      if (row === undefined) {
        await tx.execute('INSERT INTO device_compliance (state, reasons_json, facts_json, reported_at, evaluated_at, device_id) VALUES (?, ?, ?, ?, ?, ?)', [...values, deviceId]);
      } else {
        await tx.execute('UPDATE device_compliance SET state = ?, reasons_json = ?, facts_json = ?, reported_at = ?, evaluated_at = ? WHERE device_id = ?', [...values, deviceId]);
      }
      if (row?.state !== s.result.state) await this.#auditChange(tx, deviceId, row?.state ?? 'unknown', s.result);
    });
    try {
      await write(seenAbsent);
    } catch (error) {
      // Two first reports of one device raced on the primary key: the loser updates the winner's row.
      if (!SdcError.is(error, 'STORE_UNIQUE_VIOLATION')) throw error;
      await write(false);
    }
    if (settle === 'soon') this.#ctx.settleAuditSoon();
    else await this.#ctx.settleAudit();
  }

  async #auditChange(tx: SqlExecutor, deviceId: string, from: string, result: ComplianceResult): Promise<void> {
    await this.#ctx.audit.record(tx, {
      kind: 'device.compliance', actor: actors.system, subject: `device:${deviceId}`,
      payload: { from, to: result.state, reasons: result.reasons.map((reason) => reason.code) },
    });
  }
}

function factsOf(reported: ReportedFacts, reportedAtMs: number, certNotAfterMs: number | null): ComplianceFacts {
  return {
    ...(reported.agent_version === undefined ? {} : { agentVersion: reported.agent_version }),
    ...(reported.os_version === undefined ? {} : { osVersion: reported.os_version }),
    ...(reported.binary_sha256 === undefined ? {} : { binarySha256: reported.binary_sha256 }),
    ...(reported.config_sha256 === undefined ? {} : { configSha256: reported.config_sha256 }),
    ...(reported.kernel_attestation === undefined ? {} : { kernelAttestation: reported.kernel_attestation }),
    ...(reported.kernel_backend === undefined ? {} : { kernelBackend: reported.kernel_backend }),
    ...(reported.policy_bundle_version === undefined ? {} : { policyBundleVersion: reported.policy_bundle_version }),
    ...(certNotAfterMs === null ? {} : { certNotAfterMs }),
    reportedAtMs,
  };
}

/** The stored facts; a row that does not parse is STORE_CORRUPT, never a guess. */
function reportedOf(row: ComplianceRow): ReportedFacts {
  try {
    const facts = JSON.parse(row.facts_json) as unknown;
    if (typeof facts === 'object' && facts !== null && !Array.isArray(facts)) return facts as ReportedFacts;
  } catch {
    // Reported below.
  }
  throw new SdcError('STORE_CORRUPT', `device_compliance row ${row.device_id} facts_json is not an object`, { table: 'device_compliance', id: row.device_id });
}
