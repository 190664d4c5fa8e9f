import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RolloutApprovalSubject } from '../core/ota/rollout-approval.js';
import type { PendingRollout, RolloutApprovalView } from './approval-signing.js';
import {
  rolloutApprovalNeeds, rolloutApprovalOutcomeText, rolloutApprovalsHolding, rolloutDecisionAccess, rolloutDecisionResultText, rolloutDecisionText,
  rolloutScopeText, rolloutSubjectText,
} from './rollout-approval.js';

const subject: RolloutApprovalSubject = {
  kind: 'ota_rollout', id: 'ro-1', release_id: 'rel-2', platform: 'linux-x64',
  target: { path: 'fw.bin', length: 4_096, sha256: 'a'.repeat(64), sha512: 'b'.repeat(128), release_counter: 2, version: '2.0.0' },
  waves: [
    { devices: ['d1'], success_threshold: { succeeded_min: 1, succeeded_percent_min: 100, soak_ms: 0 }, error_threshold: { executed_min: 1, failed_percent_max: 0 } },
    { devices: ['d2', 'd3'], success_threshold: { succeeded_min: 0, succeeded_percent_min: 0, soak_ms: 0 }, error_threshold: { executed_min: 1, failed_percent_max: 50 } },
  ],
  devices_per_minute_max: 10, expires_at: 1_800_000_000_000, issuer: 'cp', requested_by: 'rhea',
};

function approval(overrides: Partial<RolloutApprovalView> = {}): RolloutApprovalView {
  return { rule_id: 'updates', count: 2, roles: ['approver', 'admin'], policy_revision: 4, expires_at_ms: subject.expires_at, subject, subject_sha256: 'c'.repeat(64), decisions: [], outcome: null, ...overrides };
}
function rollout(overrides: Partial<PendingRollout> = {}): PendingRollout {
  return { id: 'ro-1', release_id: 'rel-2', status: 'pending_approval', created_by: 'rhea', waves: subject.waves, approval: approval(), ...overrides };
}
const at = Date.UTC(2026, 11, 6, 0, 30);

describe('the rollouts view\'s reading of a rollout\'s approvals', () => {
  it('says what the rule needs, how many approvals hold now and each decision', () => {
    assert.equal(rolloutApprovalNeeds(approval()), 'needs 2 approvals from approver or admin (rule updates, policy revision 4)');
    assert.equal(rolloutApprovalNeeds(approval({ count: 1, roles: ['admin'] })), 'needs 1 approval from admin (rule updates, policy revision 4)');
    const decisions = [
      { approver: 'ann', decision: 'approve', role: 'admin', kid: 'k1', at_ms: at, expires_at_ms: at + 60_000 },
      { approver: 'bob', decision: 'approve', role: 'approver', kid: 'k2', at_ms: at, expires_at_ms: at + 1_000 },
    ];
    // Bob's approval was given for a second only: at +2 s it no longer counts, and says so.
    assert.equal(rolloutApprovalsHolding(approval({ decisions }), at + 500), 2);
    assert.equal(rolloutApprovalsHolding(approval({ decisions }), at + 2_000), 1);
    assert.equal(rolloutDecisionText(decisions[0]!, at + 2_000), 'approve by ann (admin) at 2026-12-06 00:30:00Z');
    assert.equal(rolloutDecisionText(decisions[1]!, at + 2_000), 'approve by bob (approver) at 2026-12-06 00:30:00Z (expired)');
    assert.equal(rolloutDecisionText({ approver: 'cy', decision: 'reject', role: 'admin', kid: 'k3', at_ms: at, expires_at_ms: at, reason: 'change freeze' }, at),
      'reject by cy (admin) at 2026-12-06 00:30:00Z: change freeze');
  });

  it('says how the wait ended: started with whose approvals, rejected or expired with the code, aborted', () => {
    assert.equal(rolloutApprovalOutcomeText(approval()), undefined);
    assert.equal(rolloutApprovalOutcomeText(approval({ outcome: { state: 'started', at_ms: at, by: 'bob', approvers: ['ann', 'bob'] } })),
      'started at 2026-12-06 00:30:00Z, released by bob with the approvals of ann, bob');
    assert.equal(rolloutApprovalOutcomeText(approval({ outcome: { state: 'rejected', at_ms: at, by: 'cy', code: 'OTA_ROLLOUT_APPROVAL_REJECTED' } })),
      'rejected at 2026-12-06 00:30:00Z by cy (OTA_ROLLOUT_APPROVAL_REJECTED); nothing was sent');
    assert.equal(rolloutApprovalOutcomeText(approval({ outcome: { state: 'expired', at_ms: at, by: 'system', code: 'OTA_ROLLOUT_APPROVAL_EXPIRED' } })),
      'expired at 2026-12-06 00:30:00Z without enough approvals (OTA_ROLLOUT_APPROVAL_EXPIRED); nothing was sent');
    assert.equal(rolloutApprovalOutcomeText(approval({ outcome: { state: 'aborted', at_ms: at, by: 'olga' } })), 'aborted at 2026-12-06 00:30:00Z by olga while waiting; nothing was sent');
  });

  it('shows what is signed: release, artifact, devices, waves, rate and requester; an incomplete subject is said to be one', () => {
    assert.equal(rolloutSubjectText(subject),
      `release rel-2 2.0.0 (fw.bin, 4096 bytes, sha256 ${'a'.repeat(64)}) on linux-x64, 3 devices in 2 waves, at most 10/min, asked by rhea`);
    assert.match(rolloutSubjectText({ ...subject, waves: undefined } as unknown as RolloutApprovalSubject), /incomplete; it cannot be signed/);
    assert.match(rolloutSubjectText({ ...subject, target: null } as unknown as RolloutApprovalSubject), /incomplete/);
  });

  it('says how far a rollout reaches (the inbox\'s heading) and what a decision did', () => {
    assert.equal(rolloutScopeText(subject.waves), '3 devices in 2 waves');
    assert.equal(rolloutScopeText([{ devices: ['d1'] }]), '1 device in 1 wave');
    assert.equal(rolloutDecisionResultText('ro-1', 'approve', true), 'Approved rollout ro-1: started, its first devices notified.');
    assert.equal(rolloutDecisionResultText('ro-1', 'approve', false), 'Approved rollout ro-1: waiting for more approvals.');
    assert.equal(rolloutDecisionResultText('ro-1', 'reject', false), 'Rejected rollout ro-1: nothing sent.');
  });

  it('lets an approver or admin decide once on a waiting rollout they did not start', () => {
    assert.deepEqual(rolloutDecisionAccess(rollout(), 'ann', 'admin'), { may: true });
    assert.deepEqual(rolloutDecisionAccess(rollout(), 'ann', 'approver'), { may: true });
    assert.deepEqual(rolloutDecisionAccess(rollout(), 'ann', 'operator'), { may: false, why: 'Approvers and admins decide on it.' });
    assert.deepEqual(rolloutDecisionAccess(rollout(), 'rhea', 'admin'), { may: false, why: 'You started this rollout; another approver decides.' });
    const decided = rollout({ approval: approval({ decisions: [{ approver: 'ann', decision: 'approve', role: 'admin', kid: 'k1', at_ms: at, expires_at_ms: at + 1 }] }) });
    assert.deepEqual(rolloutDecisionAccess(decided, 'ann', 'admin'), { may: false, why: 'You decided already: approve at 2026-12-06 00:30:00Z.' });
    // Nothing to decide (and nothing said) once it runs or never waited.
    assert.deepEqual(rolloutDecisionAccess(rollout({ status: 'running' }), 'ann', 'admin'), { may: false, why: undefined });
    assert.deepEqual(rolloutDecisionAccess(rollout({ approval: null }), 'ann', 'admin'), { may: false, why: undefined });
  });
});
