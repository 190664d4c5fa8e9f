import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { verdictOf } from './policy-verdict.js';

describe('the composer\'s dry-run verdict', () => {
  const base = { policy_revision: 3, reason: '' };
  it('says allowed with the rule', () => {
    assert.deepEqual(verdictOf({ ...base, decision: 'allow', reason: 'allowed by rule admin-all', rule_id: 'admin-all' }), { kind: 'allowed', text: 'allowed by rule admin-all', ruleId: 'admin-all' });
  });
  it('says denied with the rule, the reason and the code a create would get', () => {
    assert.deepEqual(verdictOf({ ...base, decision: 'deny', reason: 'quiet hours of rule night (22:00-06:00)', rule_id: 'night', refusal_code: 'COMMAND_QUIET_HOURS' }),
      { kind: 'denied', text: 'denied: quiet hours of rule night (22:00-06:00) (rule night)', code: 'COMMAND_QUIET_HOURS', ruleId: 'night' });
    assert.equal(verdictOf({ ...base, decision: 'deny', reason: 'no rule allows it', refusal_code: 'COMMAND_POLICY_DENIED' }).code, 'COMMAND_POLICY_DENIED');
  });
  it('says approvals are needed (the engine\'s deny with an approval) rather than denied', () => {
    const v = verdictOf({ ...base, decision: 'deny', reason: 'approval required by rule lock', missing_approval: { rule_id: 'lock', count: 2, roles: ['admin', 'approver'] } });
    assert.deepEqual([v.kind, v.ruleId, v.code], ['approval', 'lock', undefined]);
    assert.match(v.text, /needs 2 approvals by admin or approver \(rule lock\)/);
  });
  it('puts a device refusal first: the policy never runs for a revoked or unknown device', () => {
    const v = verdictOf({ ...base, decision: 'allow', reason: '', rule_id: 'admin-all', device_refusal: { code: 'API_DEVICE_REVOKED', message: 'device is revoked' } });
    assert.deepEqual([v.kind, v.code], ['refused', 'API_DEVICE_REVOKED']);
  });
});
