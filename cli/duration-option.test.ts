import { test } from 'node:test';
import assert from 'node:assert/strict';
import { durationOption, formatDurationMs, parseDurationText, type DurationOptionSpec } from './duration-option.js';

const spec: DurationOptionSpec = { name: 'duration', fallbackMs: 2_000, minMs: 100, maxMs: 600_000, legacy: { name: 'seconds', unitMs: 1_000, fractions: true } };
const args = (values: Record<string, string>) => ({ values, positionals: [] });
const isUsage = (error: Error & { code?: string }) => error.code === 'CLI_USAGE';

test('durations take a unit: ms, s, m, h, d, fractions allowed', () => {
  assert.equal(parseDurationText('duration', '500ms'), 500);
  assert.equal(parseDurationText('duration', '1.5s'), 1_500);
  assert.equal(parseDurationText('duration', '10m'), 600_000);
  assert.equal(parseDurationText('duration', '30d'), 30 * 86_400_000);
  for (const bad of ['10', '-1s', '1e3s', '1 h', 'soon', '']) assert.throws(() => parseDurationText('duration', bad), isUsage);
  assert.equal(formatDurationMs(600_000), '10m');
  assert.equal(formatDurationMs(1_500), '1500ms');
});

test('durationOption: the new spelling, the deprecated one with a note, the bounds, not both', () => {
  const notes: string[] = [];
  assert.equal(durationOption(args({}), spec), 2_000);
  assert.equal(durationOption(args({ duration: '3s' }), spec, (t) => notes.push(t)), 3_000);
  assert.equal(notes.length, 0);
  assert.equal(durationOption(args({ seconds: '0.5' }), spec, (t) => notes.push(t)), 500);
  assert.match(notes[0]!, /--seconds is deprecated .* use --duration 500ms/);
  assert.throws(() => durationOption(args({ duration: '11m' }), spec), /from 100ms to 10m/);
  assert.throws(() => durationOption(args({ duration: '1s', seconds: '1' }), spec), /not both/);
  assert.throws(() => durationOption(args({ seconds: '1s' }), spec), isUsage);
});
