import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { OtaDeviceFacts } from '../../../sim/real/messages.js';
import { deviceViolations, resumeViolations } from './ota-cut.js';

// The ota-cut scenario's own judgement of one device (`sdc chaos run --scenario ota-cut`), on
// planted facts: what a good resumed download looks like, and each way it may go wrong.

const sha256 = 'a'.repeat(64);
const resumed: OtaDeviceFacts['requests'] = [
  { offset: 0, status: 200, bytes: 16_000, cut: true },
  { offset: 16_000, status: 206, bytes: 16_000, cut: true },
  { offset: 32_000, status: 206, bytes: 8_000, cut: false },
];
const good: OtaDeviceFacts = {
  deviceId: 'dev-1', requests: resumed, downloads: [{ attempts: 3, start_offsets: [0, 16_000, 32_000] }], staged_sha256: [sha256],
  kernel_calls: { stage: 1, commit: 1, rollback: 0 }, kernel: { current_version: '2.0.0', previous_version: '1.0.0', commits: 1, rollbacks: 0, stage_failures: 0 },
  execution: { id: 'ex-1', state: 'succeeded' },
};
const checkers = (facts: OtaDeviceFacts, expected: 'succeeded' | 'rolled_back' = 'succeeded', state: string = expected) =>
  deviceViolations({ expected, execution: { state }, device: facts, sha256 }).map((v) => v.checker);

describe('ota-cut: one device judged from outside', () => {
  it('a download cut twice and resumed from its bytes each time, staged once with the published digest, holds', () => {
    assert.deepEqual(checkers(good), []);
    assert.deepEqual(checkers({ ...good, kernel_calls: { stage: 1, commit: 1, rollback: 1 }, kernel: { ...good.kernel, current_version: '1.0.0', rollbacks: 1 } }, 'rolled_back'), []);
  });

  it('a retry from 0, from past the bytes held, or answered 200 is not a resume', () => {
    assert.deepEqual(resumeViolations([resumed[0]!, { offset: 0, status: 200, bytes: 40_000, cut: false }]).map((v) => v.message), ['request 2 asked from byte 0, but 16000 bytes had arrived']);
    assert.equal(resumeViolations([resumed[0]!, { offset: 20_000, status: 206, bytes: 20_000, cut: false }]).length, 1);
    assert.equal(resumeViolations([resumed[0]!, { offset: 16_000, status: 200, bytes: 24_000, cut: false }]).length, 1);
    assert.deepEqual(resumeViolations([{ ...resumed[0]! }]).map((v) => v.message), ['the last request was cut']);
    assert.deepEqual(resumeViolations([]).map((v) => v.checker), ['resume']);
  });

  it('staged bytes of another digest are a splice; a second STAGE or COMMIT ran twice; a wrong end state is liveness', () => {
    assert.deepEqual(checkers({ ...good, staged_sha256: ['b'.repeat(64)] }), ['no_splice']);
    assert.deepEqual(checkers({ ...good, kernel: { ...good.kernel, stage_failures: 1 } }), ['no_splice']);
    assert.deepEqual(checkers({ ...good, kernel_calls: { stage: 2, commit: 1, rollback: 0 } }), ['at_most_once']);
    assert.deepEqual(checkers(good, 'succeeded', 'failed'), ['liveness']);
    assert.deepEqual(checkers(good, 'rolled_back', 'rolled_back'), ['at_most_once', 'liveness']);
  });
});
