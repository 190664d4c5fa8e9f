import { commandNotExecutedStates, type CommandState } from '../../core/protocol/command-machine.js';
import { checkCommandHistories, checkNoneLost, checkPresence, type CommandEventRow } from '../checkers.js';
import { emptyStates } from './command-schedule.js';
import { forEachBounded, sleep } from './concurrency.js';
import type { OperatorApi } from './operator-api.js';
import type { RealViolation, ViolationLog } from './violations.js';
import type { WorkerCollection, WorkerPool } from './worker-pool.js';

/** The buckets of sim/run.ts, so virtual and real histograms compare. */
const latencyBucketsMs = [10, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 300_000];
const readBackConcurrency = 16;
/** States the device's own result put the command in: the round trip ends there. */
const deviceResultStates: readonly CommandState[] = ['succeeded', 'failed', 'rejected'];
/** A session reconnecting right now may disagree with the control plane for a moment: a few looks. */
const presenceAttemptsMax = 5;
const presenceRetryMs = 1_000;
const devicePagesMax = 10_000;
/** The writer stores what reached the bus a moment after the agents stopped: a few looks, as for presence. */
const storedTelemetryAttemptsMax = 5;
const storedTelemetryRetryMs = 1_000;
/** Pages of one device's telemetry read at most (500 rows each: 5,000,000 rows, above any retention). */
const telemetryPagesMax = 10_000;

export interface CommandRecord {
  id: string;
  state: CommandState;
  history: Array<{ state: CommandState; at_ms: number; detail?: unknown }>;
}

export type LatencyHistogram = ReadonlyArray<{ readonly le_ms: number | null; readonly count: number }>;

/** Step: every accepted command's record as the control plane holds it, with its state history. */
export async function readBackCommands(api: OperatorApi, ids: readonly string[]): Promise<CommandRecord[]> {
  const records: CommandRecord[] = [];
  await forEachBounded(ids, readBackConcurrency, async (id) => { records.push(await api.call<CommandRecord>('GET', `/v1/commands/${id}`)); });
  return records;
}

/**
 * Step: the checkers over the records against what the workers' kernels saw: none lost, legal
 * transitions, at most once, ran once, not executed. Returns the records by final state and the
 * round-trip histogram (creation to the device's result).
 */
export function checkCommandRecords(options: { records: readonly CommandRecord[]; accepted: readonly string[]; collection: WorkerCollection; violations: ViolationLog }): { commandsByState: Record<CommandState, number>; latencyHistogram: LatencyHistogram } {
  const { records, collection, violations } = options;
  for (const v of checkNoneLost(records, new Set(options.accepted))) violations.add('none_lost', v.message);
  const rows: CommandEventRow[] = records.flatMap((r) => r.history.map((h) => ({
    command_id: r.id, state: h.state, at: h.at_ms, detail_json: h.detail === undefined ? null : JSON.stringify(h.detail),
  })));
  for (const v of checkCommandHistories(rows, new Map(records.map((r) => [r.id, r.state])))) violations.add('legal_transitions', v.message);
  const commandsByState = emptyStates();
  for (const record of records) {
    commandsByState[record.state] += 1;
    checkExecutions(record, collection.executions.get(record.id) ?? 0, violations);
  }
  return { commandsByState, latencyHistogram: latencyHistogramOf(records) };
}

function checkExecutions(record: CommandRecord, executions: number, violations: ViolationLog): void {
  if (executions > 1) violations.add('at_most_once', `command ${record.id} took effect ${executions} times`);
  // Every opcode is exactly one kernel call, so a success that never reached a kernel was not run by our agent.
  if ((record.state === 'succeeded' || record.state === 'succeeded_late') && executions !== 1) violations.add('ran_once', `command ${record.id} ${record.state} with ${executions} kernel executions`);
  if (commandNotExecutedStates.includes(record.state) && executions > 0) violations.add('not_executed', `command ${record.id} is ${record.state}, which guarantees it never ran, but took effect ${executions} times`);
}

function latencyHistogramOf(records: readonly CommandRecord[]): LatencyHistogram {
  const latency = new Array<number>(latencyBucketsMs.length + 1).fill(0);
  for (const record of records) {
    const first = record.history[0];
    const last = record.history.at(-1);
    if (!deviceResultStates.includes(record.state) || first === undefined || last === undefined) continue;
    const rttMs = last.at_ms - first.at_ms;
    const bucket = latencyBucketsMs.findIndex((le) => rttMs <= le);
    latency[bucket === -1 ? latencyBucketsMs.length : bucket]! += 1;
  }
  return latency.map((count, i) => ({ le_ms: latencyBucketsMs[i] ?? null, count }));
}

/** Step: the control plane verifies its audit chain. */
export async function checkAuditChain(api: OperatorApi, violations: ViolationLog): Promise<void> {
  const audit = await api.call<{ ok: boolean; firstBrokenSeq?: number; reason?: string }>('GET', '/v1/audit/verify');
  if (audit.ok !== true) violations.add('audit_chain', `audit chain broken at seq ${String(audit.firstBrokenSeq)}: ${String(audit.reason)}`);
}

/**
 * Step: what the control plane shows online against the sessions the workers hold, looked at up to
 * presenceAttemptsMax times. Returns the devices online at each end at the last look.
 */
export async function checkPresenceAgreement(options: { api: OperatorApi; pool: WorkerPool; deviceIds: readonly string[]; collection: WorkerCollection; violations: ViolationLog }): Promise<{ agents: number; controlPlane: number }> {
  const { api, pool, deviceIds } = options;
  const ours = new Set(deviceIds);
  let connected = options.collection.connected;
  let online = new Set<string>();
  let disagreements: RealViolation[] = [];
  for (let attempt = 1; attempt <= presenceAttemptsMax; attempt += 1) {
    online = await onlineAtControlPlane(api, ours);
    disagreements = checkPresence(deviceIds.map((id) => ({ deviceId: id, connected: connected.has(id), online: online.has(id) })))
      .map((v) => ({ checker: 'presence', message: v.message }));
    if (disagreements.length === 0 || attempt === presenceAttemptsMax) break;
    await sleep(presenceRetryMs);
    connected = (await pool.collect()).connected;
  }
  for (const v of disagreements) options.violations.add(v.checker, v.message);
  return { agents: connected.size, controlPlane: online.size };
}

async function onlineAtControlPlane(api: OperatorApi, ours: ReadonlySet<string>): Promise<Set<string>> {
  const online = new Set<string>();
  let cursor: string | null | undefined;
  for (let page = 0; page < devicePagesMax; page += 1) {
    const answer = await api.call<{ items: Array<{ id: string; online: boolean }>; next_cursor?: string | null }>('GET', `/v1/devices?limit=500${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    for (const d of answer.items) if (d.online && ours.has(d.id)) online.add(d.id);
    cursor = answer.next_cursor;
    if (!cursor) break;
  }
  return online;
}

/** What the control plane stored for the run's devices: distinct samples, and the rows beyond them. */
export interface StoredTelemetry {
  /** Distinct samples: a device's rows with the same time (sampled_at) and metrics count once. */
  stored: number;
  /**
   * Rows minus distinct samples: a sample stored more than once. 0 by construction since migration
   * 020 (docs/decisions/0012-telemetry-sample-identity.md: a UNIQUE key on device, ts and a digest of
   * the canonical metrics, the same identity as here) for every row the writer stored since, which
   * is every row of a run's fresh database; kept as the check that the key holds (a redelivery, a
   * retried bus append or an agent's resend once made extra rows here).
   */
  duplicates: number;
}

/**
 * Step, after the agents stopped: the telemetry the control plane holds for the run's devices
 * (GET /v1/devices/{id}/telemetry, paged; the devices are this run's own, so every row is one of
 * its samples). Samples are counted distinct, by device, time (ts_ms, the sampled_at) and metrics,
 * so a lost sample and another stored twice do not read as "all stored"; the extra rows are
 * `duplicates`. The writer stores a sample a moment after its frame reached the gateway, so it
 * looks up to storedTelemetryAttemptsMax times, 1 s apart, until the distinct samples reach
 * `samplesSent`; a sample lost on the way (a store or gateway fault) leaves fewer, and the last
 * look is answered. Not a checker: the full tier does not judge telemetry either (docs/simulation.md).
 */
export async function readStoredTelemetry(api: OperatorApi, deviceIds: readonly string[], samplesSent: number): Promise<StoredTelemetry> {
  let result: StoredTelemetry = { stored: 0, duplicates: 0 };
  for (let attempt = 1; attempt <= storedTelemetryAttemptsMax; attempt += 1) {
    let stored = 0;
    let rows = 0;
    await forEachBounded(deviceIds, readBackConcurrency, async (id) => {
      // Read first, then added: `stored += await ...` would add to the value read before the await.
      const device = await deviceTelemetrySamples(api, id);
      stored += device.distinct;
      rows += device.rows;
    });
    result = { stored, duplicates: rows - stored };
    if (stored >= samplesSent || attempt === storedTelemetryAttemptsMax) break;
    await sleep(storedTelemetryRetryMs);
  }
  return result;
}

interface TelemetryItem { ts_ms: number; metrics?: unknown }

/** A sample's identity within its device: its time and its metrics, as the API answers them (the stored JSON, parsed). */
function sampleKey(item: TelemetryItem): string {
  return `${item.ts_ms} ${JSON.stringify(item.metrics ?? null)}`;
}

/**
 * One device's telemetry rows and distinct samples, newest first in pages of 500: each next page
 * ends at the oldest time of the last (the rows at that time are taken from the next page, once).
 */
async function deviceTelemetrySamples(api: OperatorApi, deviceId: string): Promise<{ rows: number; distinct: number }> {
  const pageRows = 500;
  let rows = 0;
  // Bounded by the rows read: at most telemetryPagesMax pages of pageRows.
  const samples = new Set<string>();
  const take = (items: readonly TelemetryItem[]): void => {
    rows += items.length;
    for (const item of items) samples.add(sampleKey(item));
  };
  let toMs: number | undefined;
  for (let page = 0; page < telemetryPagesMax; page += 1) {
    const answer = await api.call<{ items: TelemetryItem[] }>('GET', `/v1/devices/${encodeURIComponent(deviceId)}/telemetry?limit=${pageRows}${toMs === undefined ? '' : `&to_ms=${toMs}`}`);
    if (answer.items.length < pageRows) {
      take(answer.items);
      break;
    }
    const oldestMs = answer.items.at(-1)!.ts_ms;
    const newer = answer.items.filter((item) => item.ts_ms > oldestMs);
    // A full page of one time cannot be paged by time: taken, and the next page starts before it
    // (rows of that time past the page would be missed; a device samples a second or more apart).
    if (newer.length === 0) {
      take(answer.items);
      if (oldestMs === 0) break;
      toMs = oldestMs - 1;
    } else {
      take(newer);
      toMs = oldestMs;
    }
  }
  return { rows, distinct: samples.size };
}
