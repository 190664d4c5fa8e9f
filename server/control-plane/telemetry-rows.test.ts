import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SdcError } from '../../core/errors/index.js';
import type { ExecuteResult, SqlDatabase, SqlValue } from '../stores/sql/sql-port.js';
import { canonicalize } from '../../core/protocol/canonical-json.js';
import { canonicalMetricsJson, TelemetryRowWriter, telemetryInsertParamsPerRow, telemetryRowLimits, type TelemetryRow } from './telemetry-rows.js';
import { withOneByOneBatches } from '../stores/sql/sql-batch.js';

/** Records each INSERT's rows; a row whose device id is `bad` fails its statement. Answers after a few microtask turns, as a driver would. */
function fakeDb(): { db: SqlDatabase; statements: string[][] } {
  const statements: string[][] = [];
  const execute = async (_sql: string, params: readonly SqlValue[] = []): Promise<ExecuteResult> => {
    for (let i = 0; i < 3; i++) await Promise.resolve();
    const devices = params.filter((_, i) => i % telemetryInsertParamsPerRow === 0) as string[];
    if (devices.includes('bad')) throw new SdcError('STORE_CONFLICT', 'constraint');
    statements.push(devices);
    return { changes: devices.length };
  };
  const db: SqlDatabase = {
    dialect: 'sqlite', query: async () => [], execute, transaction: (fn) => fn(withOneByOneBatches({ dialect: 'sqlite', query: async () => [], execute })), close: async () => undefined,
  };
  return { db, statements };
}

const row = (deviceId: string, sampledAtMs = 1): TelemetryRow => ({ deviceId, sampledAtMs, metricsJson: '{}', riskScore: 0 });

describe('canonicalMetricsJson', () => {
  it('is canonicalize\'s text for metrics in any member order, nested values and numbers JSON writes oddly included', () => {
    const cases: object[] = [
      { cpu_pct: 12.5, disk_pct: 61, mem_pct: 40.25, net_rx_bytes_per_sec: 18_000, net_tx_bytes_per_sec: 4_200, process_count: 212 },
      { net_tx_bytes_per_sec: 4_200, cpu_pct: 12.5, mem_pct: 40.25, disk_pct: 61, net_rx_bytes_per_sec: 18_000 },
      { a: -0, b: 1e21, c: 5e-7, d: 0.1 + 0.2 },
      { b: 1, a: 2 }, { 10: 1, 9: 2 }, { a: { d: 1, c: 2 }, b: [2, 1] }, { Z: 1, a: 2, é: 3, ä: 4 }, {},
    ];
    for (const metrics of cases) assert.equal(canonicalMetricsJson(metrics), canonicalize(metrics), JSON.stringify(metrics));
  });
});

describe('TelemetryRowWriter', () => {
  it('stores the rows of concurrent callers in few multi-row INSERTs, each caller resolving after its row', async () => {
    const { db, statements } = fakeDb();
    const writer = new TelemetryRowWriter(db);
    const devices = Array.from({ length: 600 }, (_, i) => `dev-${i}`);
    await Promise.all(devices.map((d) => writer.insert(row(d))));
    assert.deepEqual(statements.flat().sort(), [...devices].sort(), 'every row once');
    assert.ok(statements.length <= Math.ceil(devices.length / telemetryRowLimits.rowsPerInsertMax) + 1, `${statements.length} statements`);
    assert.ok(statements.every((s) => s.length <= telemetryRowLimits.rowsPerInsertMax));
  });

  it('rows that arrive while an INSERT runs go into the next one', async () => {
    const { db, statements } = fakeDb();
    const writer = new TelemetryRowWriter(db);
    const first = writer.insert(row('a'));
    await Promise.resolve();
    await Promise.resolve();
    const later = [writer.insert(row('b')), writer.insert(row('c'))];
    await Promise.all([first, ...later]);
    assert.deepEqual(statements, [['a'], ['b', 'c']]);
  });

  it('a row that fails its statement fails only its caller: the others of its batch are stored one by one', async () => {
    const { db, statements } = fakeDb();
    const writer = new TelemetryRowWriter(db);
    const results = await Promise.allSettled(['x', 'bad', 'y'].map((d) => writer.insert(row(d))));
    assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled']);
    assert.ok(SdcError.is((results[1] as PromiseRejectedResult).reason, 'STORE_CONFLICT'));
    assert.deepEqual(statements.flat().sort(), ['x', 'y']);
  });

  it('refuses with STORE_LIMIT beyond waitingMax rows, without losing those it took', async () => {
    const { db, statements } = fakeDb();
    const writer = new TelemetryRowWriter(db);
    const taken = Array.from({ length: telemetryRowLimits.waitingMax }, (_, i) => writer.insert(row(`d${i}`)));
    await assert.rejects(writer.insert(row('one-too-many')), (error: unknown) => SdcError.is(error, 'STORE_LIMIT'));
    await Promise.all(taken);
    assert.equal(statements.flat().length, telemetryRowLimits.waitingMax);
  });

  it("a frame's rows (addFrame, a TELEMETRY_BATCH) share one INSERT and are retried as one statement: stored all together or not at all", async () => {
    const { db, statements } = fakeDb();
    const writer = new TelemetryRowWriter(db);
    const frameOf = (...devices: string[]) => devices.map((d, i) => row(d, i));
    const tickets = [writer.addFrame(frameOf('a1', 'a2', 'a3')), writer.add(row('b')), writer.addFrame(frameOf('c1', 'bad', 'c3')), writer.addFrame(frameOf('d1', 'd2'))];
    const outcomes = await Promise.all(tickets.map(async (ticket) => ((await ticket.failures)?.has(ticket.index) === true ? 'failed' : 'stored')));
    assert.deepEqual(outcomes, ['stored', 'stored', 'failed', 'stored']);
    // The first INSERT with every row failed; then one statement per frame, the bad frame's other rows never stored alone.
    assert.deepEqual(statements, [['a1', 'a2', 'a3'], ['b'], ['d1', 'd2']]);
    assert.throws(() => writer.addFrame([]), (error: unknown) => SdcError.is(error, 'STORE_INVALID_ARGUMENT'));
  });

  it("never splits a frame's rows across INSERTs, and refuses a frame that would pass waitingMax whole (nothing queued)", async () => {
    const { db, statements } = fakeDb();
    const writer = new TelemetryRowWriter(db);
    const singles = Array.from({ length: telemetryRowLimits.rowsPerInsertMax - 2 }, (_, i) => writer.insert(row(`s${i}`)));
    const frame = writer.addFrame(Array.from({ length: 8 }, (_, i) => row(`f${i}`)));
    await Promise.all(singles);
    assert.equal(await frame.failures, undefined);
    const holding = statements.filter((devices) => devices.some((d) => d.startsWith('f')));
    assert.equal(holding.length, 1, 'one INSERT holds the whole frame');
    assert.equal(holding[0]!.filter((d) => d.startsWith('f')).length, 8);
    const full = Array.from({ length: telemetryRowLimits.waitingMax - 4 }, (_, i) => writer.insert(row(`w${i}`)));
    assert.throws(() => writer.addFrame(Array.from({ length: 5 }, (_, i) => row(`over${i}`))), (error: unknown) => SdcError.is(error, 'STORE_LIMIT'));
    await Promise.all(full);
    assert.equal(statements.flat().filter((d) => d.startsWith('over')).length, 0);
  });
});

/** INSERTs that wait until the test releases them, each with the devices of its rows, in the order they started. */
function heldDb(): { db: SqlDatabase; held: Array<{ devices: string[]; release(fail?: boolean): void }>; running: () => number; maxRunning: () => number } {
  const held: Array<{ devices: string[]; release(fail?: boolean): void }> = [];
  let running = 0;
  let maxRunning = 0;
  const execute = (_sql: string, params: readonly SqlValue[] = []): Promise<ExecuteResult> => new Promise((resolve, reject) => {
    const devices = params.filter((_, i) => i % telemetryInsertParamsPerRow === 0) as string[];
    running += 1;
    maxRunning = Math.max(maxRunning, running);
    held.push({
      devices,
      release(fail = false) {
        running -= 1;
        if (fail) reject(new SdcError('STORE_UNAVAILABLE', 'connection lost'));
        else resolve({ changes: devices.length });
      },
    });
  });
  const db: SqlDatabase = {
    dialect: 'sqlite', query: async () => [], execute, transaction: (fn) => fn(withOneByOneBatches({ dialect: 'sqlite', query: async () => [], execute })), close: async () => undefined,
  };
  return { db, held, running: () => running, maxRunning: () => maxRunning };
}

const turns = async (count = 20) => {
  for (let i = 0; i < count; i++) await Promise.resolve();
};

describe('TelemetryRowWriter: several INSERTs in flight', () => {
  const frameRows = 32;
  const frame = (name: string) => Array.from({ length: frameRows }, (_, i) => row(name, i));
  const framesPerInsert = telemetryRowLimits.rowsPerInsertMax / frameRows;

  it(`runs at most insertsInFlightMax (${telemetryRowLimits.insertsInFlightMax}) at once, a second one only for a full batch`, async () => {
    const { db, held, running, maxRunning } = heldDb();
    const writer = new TelemetryRowWriter(db);
    // One frame alone: its INSERT goes; the frames that come while it runs wait for a full batch.
    const first = writer.addFrame(frame('f0'));
    await turns();
    assert.equal(running(), 1);
    const tickets = [first];
    for (let i = 1; i < framesPerInsert; i += 1) tickets.push(writer.addFrame(frame(`f${i}`)));
    await turns();
    assert.equal(running(), 1, 'a batch that can still take rows waits while an INSERT is in flight');
    // Enough full batches for more than the bound, and a partial one after them.
    const more = (telemetryRowLimits.insertsInFlightMax + 2) * framesPerInsert;
    for (let i = framesPerInsert; i < framesPerInsert + more; i += 1) tickets.push(writer.addFrame(frame(`f${i}`)));
    await turns();
    assert.equal(running(), telemetryRowLimits.insertsInFlightMax);
    assert.equal(writer.insertsInFlight, telemetryRowLimits.insertsInFlightMax);
    while (running() > 0) {
      held.find((insert, index) => index >= held.length - running())!.release();
      await turns();
      assert.ok(running() <= telemetryRowLimits.insertsInFlightMax);
    }
    const outcomes = await Promise.all(tickets.map(async (ticket) => (await ticket.failures)?.has(ticket.index) === true));
    assert.ok(outcomes.every((failed) => !failed));
    assert.equal(maxRunning(), telemetryRowLimits.insertsInFlightMax);
    assert.equal(held.flatMap((insert) => insert.devices).length, tickets.length * frameRows, 'every row once');
    assert.ok(held.every((insert) => insert.devices.length <= telemetryRowLimits.rowsPerInsertMax));
  });

  it('a failed INSERT fails only the frames it held, while another INSERT in flight ends first and stores its own', async () => {
    const { db, held } = heldDb();
    const writer = new TelemetryRowWriter(db);
    const tickets = Array.from({ length: 2 * framesPerInsert + 1 }, (_, i) => writer.addFrame(frame(`f${i}`)));
    await turns();
    // Two full batches at once; the last frame's batch is not full and waits.
    assert.deepEqual(held.map((insert) => insert.devices.length), [telemetryRowLimits.rowsPerInsertMax, telemetryRowLimits.rowsPerInsertMax]);
    const settled = new Set<number>();
    tickets.forEach((ticket, i) => { void ticket.failures.then(() => settled.add(i)); });
    // The second ends first: its frames are done, the first's still wait.
    held[1]!.release();
    await turns();
    assert.deepEqual([...settled].sort((a, b) => a - b), Array.from({ length: framesPerInsert }, (_, i) => framesPerInsert + i));
    // The first fails, and so does each of its frames on its own.
    held[0]!.release(true);
    for (let i = 0; i < framesPerInsert; i += 1) {
      await turns();
      assert.deepEqual(held.at(-1)!.devices, frame(`f${i}`).map((r) => r.deviceId));
      held.at(-1)!.release(true);
    }
    await turns();
    // Then the waiting batch goes.
    assert.deepEqual(held.at(-1)!.devices, frame(`f${2 * framesPerInsert}`).map((r) => r.deviceId));
    held.at(-1)!.release();
    const failed = await Promise.all(tickets.map(async (ticket) => (await ticket.failures)?.has(ticket.index) === true));
    assert.deepEqual(failed.map((f, i) => (f ? i : -1)).filter((i) => i >= 0), Array.from({ length: framesPerInsert }, (_, i) => i));
  });
});
