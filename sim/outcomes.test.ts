import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { countOutcomes, outcomeKey, resultErrorCode } from './outcomes.js';

describe('command outcomes by state and code', () => {
  it('keys a result with an error code by both, one without by its state', () => {
    assert.equal(outcomeKey('failed', 'KERNEL_REFUSED'), 'failed:KERNEL_REFUSED');
    assert.equal(outcomeKey('succeeded', undefined), 'succeeded');
  });

  it('reads the code from a stored result frame and survives a frame it cannot read', () => {
    assert.equal(resultErrorCode(JSON.stringify({ type: 'COMMAND_RESULT', body: { status: 'failed', error: { code: 'KERNEL_NOT_SUPPORTED' } } })), 'KERNEL_NOT_SUPPORTED');
    assert.equal(resultErrorCode(JSON.stringify({ body: { status: 'succeeded' } })), undefined);
    assert.equal(resultErrorCode('{not json'), undefined);
    assert.equal(resultErrorCode(null), undefined);
  });

  it('counts rows of the commands table', () => {
    const failed = JSON.stringify({ body: { error: { code: 'KERNEL_REFUSED' } } });
    const rows = [
      { state: 'succeeded', result_json: '{"body":{}}' }, { state: 'succeeded', result_json: '{"body":{}}' },
      { state: 'failed', result_json: failed }, { state: 'dead_lettered', result_json: null },
    ];
    assert.deepEqual(countOutcomes(rows), { succeeded: 2, 'failed:KERNEL_REFUSED': 1, dead_lettered: 1 });
  });
});
