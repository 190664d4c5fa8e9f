import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { nobleSha256 } from '../core/crypto/sha256-noble.js';
import { createNobleEd25519Provider } from '../core/crypto/ed25519-noble.js';
import { rolloutResumeSubjectHash, type RolloutResumeSubject } from '../core/ota/rollout-resume-approval.js';
import { approvalSigningInput } from '../core/protocol/approvals.js';
import { bytesFromBase64url } from '../core/crypto/bytes.js';
import { approvalKeyFromSeed, checkedResumeSubjectHash, rolloutResumeRequestBody } from './approval-signing.js';
import {
  resumeDecisionAccess, resumeDecisionResultText, resumeOffer, resumeOutcomeText, resumeStopText, type ResumableRollout, type ResumeAuthorityView, type ResumeRequestView,
} from './rollout-resume.js';

const subject: RolloutResumeSubject = {
  kind: 'ota_rollout_resume', v: 1, request_id: `rr-${'1'.repeat(32)}`, rollout_id: 'ro-1', release_id: 'rel-2', rollout_subject_sha256: null, wave: 0,
  pause_reason: 'error_threshold', safety_stop: 'error_threshold', error_threshold: { executed_min: 1, failed_percent_max: 0 },
  success_threshold: { succeeded_min: 0, succeeded_percent_min: 0, soak_ms: 0 }, wave_stats: { size: 3, executed: 2, failed: 2, succeeded: 0 },
  accepted_before: { executed: 0, failed: 0, success_waived: false }, stop_sha256: 'd'.repeat(64), requested_by: 'otto', reason: 'a lab cable',
  requested_at: 1_800_000_000_000, expires_at: 1_800_000_060_000,
};
const request = (overrides: Partial<ResumeRequestView> = {}): ResumeRequestView => ({
  id: subject.request_id, rule_id: 'four-eyes', count: 2, roles: ['approver', 'admin'], policy_revision: 3, expires_at_ms: subject.expires_at, waiting: true,
  subject, subject_sha256: rolloutResumeSubjectHash(subject, nobleSha256), decisions: [], outcome: null, ...overrides,
});
const rollout = (overrides: Partial<ResumableRollout> = {}): ResumableRollout => ({ id: 'ro-1', release_id: 'rel-2', status: 'paused', wave_index: 0, resume_request: request(), ...overrides });
const authority = (verdict: ResumeAuthorityView['verdict']): ResumeAuthorityView => ({ status: 'paused', safety_stop: 'error_threshold', verdict });

describe('the console\'s reading of a resume past a safety stop', () => {
  it('offers Resume only to an operator the policy lets resume, a resume request where approvals are needed, the waiting request\'s panel, else nothing', () => {
    const asked = rollout({ resume_request: null });
    assert.equal(resumeOffer(asked, 'operator', authority('allowed')), 'resume');
    assert.equal(resumeOffer(asked, 'operator', authority('approval_required')), 'request');
    assert.equal(resumeOffer(asked, 'operator', authority('denied')), 'none', 'no button the server would refuse');
    assert.equal(resumeOffer(asked, 'operator', undefined), 'none', 'not before the server answered');
    assert.equal(resumeOffer(asked, 'viewer', authority('allowed')), 'none');
    assert.equal(resumeOffer(rollout(), 'operator', authority('approval_required')), 'pending');
    assert.equal(resumeOffer(rollout({ resume_request: request({ waiting: false }) }), 'operator', authority('approval_required')), 'request', 'an ended request: ask again');
    assert.equal(resumeOffer(rollout({ status: 'running' }), 'admin', authority('allowed')), 'none');
  });

  it('says the stop a request waives, and how it ended', () => {
    assert.equal(resumeStopText(subject), 'wave 1: its error threshold was crossed (2 of 2 executed failed, 0 of 3 succeeded; at most 0% failed of at least 1)');
    assert.equal(resumeStopText({ ...subject, safety_stop: 'success_threshold_not_met', success_threshold: { succeeded_min: 2, succeeded_percent_min: 50, soak_ms: 0 } }),
      'wave 1: it ended below its success threshold (2 of 2 executed failed, 0 of 3 succeeded; at least 2 and 50% succeeded)');
    assert.equal(resumeOutcomeText(request()), undefined);
    const at = Date.UTC(2026, 11, 6, 1, 0);
    assert.equal(resumeOutcomeText(request({ outcome: { state: 'resumed', at_ms: at, by: 'ann', approvers: ['ann', 'bob'] } })), 'resumed at 2026-12-06 01:00:00Z with the approvals of ann, bob');
    assert.equal(resumeOutcomeText(request({ outcome: { state: 'stale', at_ms: at, by: 'system', code: 'OTA_ROLLOUT_RESUME_STALE', why: 'figures changed' } })),
      'ended at 2026-12-06 01:00:00Z: the stop changed since it was asked (figures changed) (OTA_ROLLOUT_RESUME_STALE); ask again');
    assert.equal(resumeOutcomeText(request({ outcome: { state: 'aborted', at_ms: at, by: 'otto' } })), 'ended at 2026-12-06 01:00:00Z: otto aborted the rollout');
    assert.equal(resumeDecisionResultText('ro-1', 'approve', true), 'Approved the resume of rollout ro-1: it runs again.');
    assert.equal(resumeDecisionResultText('ro-1', 'reject', false), 'Rejected the resume of rollout ro-1: it stays paused.');
  });

  it('lets approvers other than the requester decide a waiting request once', () => {
    assert.deepEqual(resumeDecisionAccess(rollout(), 'ann', 'approver'), { may: true });
    assert.deepEqual(resumeDecisionAccess(rollout(), 'otto', 'admin'), { may: false, why: 'You asked for this resume; another approver decides.' });
    assert.deepEqual(resumeDecisionAccess(rollout(), 'ann', 'operator'), { may: false, why: 'Approvers and admins decide on it.' });
    const decided = rollout({ resume_request: request({ decisions: [{ approver: 'ann', decision: 'approve', role: 'approver', kid: 'k', at_ms: Date.UTC(2026, 11, 6), expires_at_ms: subject.expires_at }] }) });
    assert.deepEqual(resumeDecisionAccess(decided, 'ann', 'approver'), { may: false, why: 'You decided already: approve at 2026-12-06 00:00:00Z.' });
    assert.deepEqual(resumeDecisionAccess(rollout({ resume_request: request({ waiting: false }) }), 'ann', 'approver'), { may: false, why: undefined });
  });

  it('signs the request\'s id and its recomputed subject hash, and signs nothing for a subject that is not the rollout and request shown', () => {
    const key = approvalKeyFromSeed(new Uint8Array(32).fill(7));
    const body = rolloutResumeRequestBody({ rollout: rollout(), decision: 'approve', approver: 'ann', kid: 'k-ann', key });
    assert.deepEqual([body['request_id'], body['subject_sha256'], body['expires_at_ms']], [subject.request_id, rolloutResumeSubjectHash(subject, nobleSha256), subject.expires_at]);
    const statement = { command_id: subject.request_id, command_sha256: body['subject_sha256'] as string, decision: 'approve' as const, approver: 'ann', kid: 'k-ann', expires_at: subject.expires_at };
    assert.ok(createNobleEd25519Provider().verify(bytesFromBase64url(key.publicKey, { code: 'API_VALIDATION', name: 'public key' }), approvalSigningInput(statement), bytesFromBase64url(body['signature'] as string, { code: 'API_VALIDATION', name: 'signature' })));

    const mismatch = (r: ResumableRollout) => assert.throws(() => checkedResumeSubjectHash(r), (e: Error & { code?: string }) => e.code === 'APPROVAL_STATEMENT_MISMATCH');
    mismatch(rollout({ id: 'ro-2' }));
    mismatch(rollout({ wave_index: 1 }));
    mismatch(rollout({ resume_request: request({ id: `rr-${'2'.repeat(32)}` }) }));
    mismatch(rollout({ resume_request: request({ subject: { ...subject, wave_stats: { ...subject.wave_stats, failed: 1 } } }) }), );
    assert.throws(() => checkedResumeSubjectHash(rollout({ resume_request: request({ waiting: false }) })), (e: Error & { code?: string }) => e.code === 'APPROVAL_NOT_PENDING');
    assert.throws(() => checkedResumeSubjectHash(rollout({ status: 'running' })), (e: Error & { code?: string }) => e.code === 'APPROVAL_NOT_PENDING');
  });
});
