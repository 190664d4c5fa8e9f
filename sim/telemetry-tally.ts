import type { ExecuteResult, SqlDatabase, SqlTransaction, SqlValue } from '../server/stores/sql/sql-port.js';
import { telemetryInsertParamsPerRow } from '../server/control-plane/telemetry-rows.js';
import { LatencyRecorder, type LatencyPercentiles } from './latency-recorder.js';

/**
 * Telemetry as the full tier sees it, frames and samples apart (issue 17, telemetry batches):
 * the frames agents send (TELEMETRY: one sample; TELEMETRY_BATCH: several, decision 0004
 * "Batches"), and each stored row's storage delay (virtual ms from its sampled_at to the INSERT
 * that stored it: the time it waited in the agent's batch buffer, on the wire, on the bus and in
 * the writer). Counting reads only what crosses the network and the SQL port; nothing here
 * changes what the run does, so trace hashes do not move.
 */

const typeTelemetry = Buffer.from('"type":"TELEMETRY');
const textDecoder = new TextDecoder();

/**
 * The samples a telemetry frame carries: 1 for TELEMETRY, the length of `body.samples` for
 * TELEMETRY_BATCH; undefined for any other frame. Only frames holding the type's bytes are parsed
 * (a telemetry frame's members are numbers and hashes, so other frames rarely hold them; one that
 * did is parsed and answered undefined).
 */
export function telemetryFrameOf(bytes: Uint8Array): { readonly batch: boolean; readonly samples: number } | undefined {
  if (Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).indexOf(typeTelemetry) === -1) return undefined;
  let frame: { type?: unknown; body?: { samples?: unknown } };
  try {
    frame = JSON.parse(textDecoder.decode(bytes)) as typeof frame;
  } catch {
    return undefined;
  }
  if (frame.type === 'TELEMETRY') return { batch: false, samples: 1 };
  if (frame.type === 'TELEMETRY_BATCH' && Array.isArray(frame.body?.samples)) return { batch: true, samples: frame.body.samples.length };
  return undefined;
}

export interface TelemetryCounts {
  /** TELEMETRY and TELEMETRY_BATCH frames sent by agents (each once, as it leaves the agent). */
  readonly telemetry_frames_sent: number;
  /** Of them, TELEMETRY_BATCH frames. */
  readonly telemetry_batch_frames_sent: number;
  /** Samples in those frames. */
  readonly telemetry_samples_sent: number;
}

export class TelemetryTally {
  framesSent = 0;
  batchFramesSent = 0;
  samplesSent = 0;
  /** Virtual ms from sampled_at to the INSERT that stored the row, one value per stored row. */
  readonly storageDelay = new LatencyRecorder();

  /** A frame leaving an agent. */
  sent(bytes: Uint8Array): void {
    const frame = telemetryFrameOf(bytes);
    if (frame === undefined) return;
    this.framesSent += 1;
    this.samplesSent += frame.samples;
    if (frame.batch) this.batchFramesSent += 1;
  }

  /** Rows stored at nowMs, by their sampled_at. */
  stored(sampledAtMs: readonly number[], nowMs: number): void {
    for (const at of sampledAtMs) this.storageDelay.record(Math.max(0, nowMs - at));
  }

  counts(): TelemetryCounts {
    return { telemetry_frames_sent: this.framesSent, telemetry_batch_frames_sent: this.batchFramesSent, telemetry_samples_sent: this.samplesSent };
  }

  storageDelaySummary(): LatencyPercentiles {
    return this.storageDelay.summary();
  }
}

const telemetryInsert = 'INSERT INTO telemetry ';
/** The writer's row shape (server/control-plane/telemetry-rows.ts): device_id, ts, metrics_json, risk_score, sample_digest. */
const telemetryColumns = telemetryInsertParamsPerRow;
const tsColumn = 1;

/**
 * The control plane's SQL port, telling `onStored` the sampled_at of every telemetry row an
 * INSERT stored, after it succeeded (a refused INSERT, e.g. in an SQL outage, stores nothing).
 * A row the INSERT skipped as stored already (migration 020) would be told too; the virtual runs
 * have none (the gateway refuses a duplicated or replayed frame, and nothing retries a stored one).
 * Statements inside a transaction are not looked at: the telemetry writer does not use one.
 */
export function telemetryObservedSql(inner: SqlDatabase, onStored: (sampledAtMs: number[]) => void): SqlDatabase {
  return {
    dialect: inner.dialect,
    query: <T = Record<string, unknown>>(sql: string, params?: readonly SqlValue[]): Promise<T[]> => inner.query<T>(sql, params),
    async execute(sql: string, params?: readonly SqlValue[]): Promise<ExecuteResult> {
      const result = await inner.execute(sql, params);
      if (params !== undefined && sql.startsWith(telemetryInsert)) {
        const times: number[] = [];
        for (let i = tsColumn; i < params.length; i += telemetryColumns) times.push(Number(params[i]));
        onStored(times);
      }
      return result;
    },
    transaction: <T>(fn: (tx: SqlTransaction) => Promise<T>): Promise<T> => inner.transaction(fn),
    close: () => inner.close(),
  };
}
