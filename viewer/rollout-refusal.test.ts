import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { policyRefusalText, policyRefusedCount, refusalReasonCharsMax } from './rollout-refusal.js';

describe('the rollouts view\'s reading of a device the command policy refused', () => {
  it('says the policy refused it, why, by which rule, opcode and revision, and that the device was not notified', () => {
    assert.equal(policyRefusalText({ code: 'COMMAND_QUIET_HOURS', reason: 'quiet hours of rule night (22:00-06:00)', opcode: 'EXEC_STAGE_UPDATE', rule_id: 'night', revision: 3 }),
      'refused by the command policy: quiet hours of rule night (22:00-06:00) (rule night, EXEC_STAGE_UPDATE, policy revision 3); the device was not notified');
  });
  it('says no rule allows it when the refusal names none, and the approvals an allow rule waits for', () => {
    assert.match(policyRefusalText({ code: 'COMMAND_POLICY_DENIED', reason: 'no rule allows it', opcode: 'EXEC_COMMIT_UPDATE', revision: 0 }), /\(no rule allows it, EXEC_COMMIT_UPDATE, policy revision 0\)/);
    assert.match(policyRefusalText({ code: 'OTA_ROLLOUT_APPROVAL_REQUIRED', reason: 'approval required by rule lock', opcode: 'EXEC_STAGE_UPDATE', rule_id: 'lock', revision: 5, approval: { count: 2, roles: ['admin', 'approver'] } }),
      /approval required by rule lock; needs 2 approvals by admin or approver \(rule lock,/);
  });
  it('cuts a reason longer than refusalReasonCharsMax', () => {
    const text = policyRefusalText({ code: 'COMMAND_POLICY_DENIED', reason: 'x'.repeat(5_000), opcode: 'EXEC_STAGE_UPDATE', revision: 1 });
    assert.ok(text.includes(`${'x'.repeat(refusalReasonCharsMax)}…`));
    assert.ok(!text.includes('x'.repeat(refusalReasonCharsMax + 1)));
  });
  it('counts the refused executions of a rollout', () => {
    const refusal = { code: 'COMMAND_RATE_LIMITED', reason: 'rate', opcode: 'EXEC_STAGE_UPDATE', revision: 1 };
    assert.equal(policyRefusedCount([{}, { policy_refusal: refusal }, { policy_refusal: refusal }]), 2);
    assert.equal(policyRefusedCount([{}]), 0);
  });
});
