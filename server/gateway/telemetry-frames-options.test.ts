import assert from 'node:assert/strict';
import { test } from 'node:test';
import { telemetryFramesLimits } from '../bus-contract/entries.js';
import { resolveGatewayOptions } from './gateway-core.js';
import { coreOptions, embeddedStores } from './test-support.js';

// Decision 0023: frames of several devices go in one bus entry, joined at a batch's flush; the
// options that set it are refused, GATEWAY_INVALID_ARGUMENT, when no entry could hold them.
test('telemetryFramesPerEntryMax: above the entry bound, or above 1 without batched appends, is refused GATEWAY_INVALID_ARGUMENT', () => {
  const base = coreOptions(embeddedStores());
  const framesMax = telemetryFramesLimits.framesPerEntryMax;
  assert.equal(resolveGatewayOptions({ ...base, telemetryFramesPerEntryMax: framesMax, telemetryBatchEntriesMax: 64 }).telemetryFramesPerEntryMax, framesMax);
  assert.throws(() => resolveGatewayOptions({ ...base, telemetryFramesPerEntryMax: framesMax + 1, telemetryBatchEntriesMax: 64 }), { code: 'GATEWAY_INVALID_ARGUMENT' });
  assert.throws(() => resolveGatewayOptions({ ...base, telemetryFramesPerEntryMax: 2, telemetryBatchEntriesMax: 1 }), { code: 'GATEWAY_INVALID_ARGUMENT' });
  assert.equal(resolveGatewayOptions({ ...base, telemetryFramesPerEntryMax: 1, telemetryBatchEntriesMax: 1 }).telemetryFramesPerEntryMax, 1);
});
