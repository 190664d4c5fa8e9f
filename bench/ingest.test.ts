import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runIngestBench } from './ingest.js';

// A smoke run of the bench's own accounting, not a measurement: every stored sample came from a
// telemetry INSERT, and each INSERT is one of the statements counted.
test('ingest reports SQL statements per sample and rows per telemetry INSERT from the same tally as the samples stored', async () => {
  const { rows } = await runIngestBench({ connections: 2, durationMs: 300, warmupMs: 200, modes: ['session-mac'], scrapeIntervalMs: 0 });
  const [row] = rows;
  assert.ok(row !== undefined && row.samples_stored > 0);
  assert.ok(row.rows_per_telemetry_insert >= 1, `rows per INSERT ${row.rows_per_telemetry_insert}`);
  // At least the INSERTs themselves: one statement per rows_per_telemetry_insert samples.
  assert.ok(row.sql_statements_per_sample >= 1 / row.rows_per_telemetry_insert - 1e-9, `statements per sample ${row.sql_statements_per_sample}`);
  assert.ok(Number.isInteger(Math.round(row.samples_stored / row.rows_per_telemetry_insert)));
});
