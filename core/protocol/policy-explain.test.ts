import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { explainPolicy } from './policy-explain.js';
import { evaluatePolicy, parsePolicy, type PolicyRequest } from './policy.js';

/** 2026-12-02 10:00 UTC, a Wednesday. */
const tenUtcMs = Date.UTC(2026, 11, 2, 10, 0);

const policy = parsePolicy({
  version: 1,
  rules: [
    { id: 'night-only', effect: 'allow', roles: ['operator'], opcodes: ['EXEC_GET_STATUS'], devices: '*', conditions: { timeWindow: { startMinute: 22 * 60, endMinute: 6 * 60 } } },
    { id: 'small-args', effect: 'allow', roles: ['operator'], opcodes: ['EXEC_GET_STATUS'], devices: '*', conditions: { argsBytesMax: 4 } },
    { id: 'two-eyes', effect: 'allow', roles: ['operator'], opcodes: ['EXEC_GET_STATUS'], devices: '*', conditions: { approval: { count: 1, roles: ['approver'] } } },
    { id: 'no-lab', effect: 'deny', roles: '*', opcodes: '*', devices: { ids: ['lab-*'] } },
    { id: 'admins', effect: 'allow', roles: ['admin'], opcodes: '*', devices: '*' },
  ],
});

function request(overrides: Partial<PolicyRequest> = {}): PolicyRequest {
  return { actor: { id: 'olga', role: 'operator' }, opcode: 'EXEC_GET_STATUS', device: { id: 'pc-1' }, nowMs: tenUtcMs, argsBytes: 10, ...overrides };
}

describe('explainPolicy', () => {
  it('names each targeting rule\'s fate: outside its window, arguments too large, approvals missing; other rules are left out', () => {
    const explained = explainPolicy(policy, request());
    assert.equal(explained.decision, 'deny');
    assert.equal(explained.approval?.ruleId, 'two-eyes');
    assert.deepEqual(explained.rules.map((rule) => [rule.id, rule.fate]), [
      ['night-only', 'outside_time_window'], ['small-args', 'args_too_large'], ['two-eyes', 'approval_missing'],
    ]);
    assert.deepEqual(explained.rules[0]?.timeWindow, { startMinute: 1320, endMinute: 360 });
  });

  it('a deny rule that applies is reported beside the allow rules it overrides', () => {
    const explained = explainPolicy(policy, request({ actor: { id: 'root', role: 'admin' }, device: { id: 'lab-3' } }));
    assert.equal(explained.ruleId, 'no-lab');
    assert.deepEqual(explained.rules.map((rule) => [rule.id, rule.fate]), [['no-lab', 'applies'], ['admins', 'applies']]);
  });

  it('its decision is always the engine\'s, and the rule that decided is reported as applying', () => {
    fc.assert(fc.property(
      fc.constantFrom('viewer', 'operator', 'approver', 'admin'), fc.constantFrom('pc-1', 'lab-1'), fc.integer({ min: 0, max: 7 * 86_400_000 }),
      fc.integer({ min: 0, max: 8 }), fc.boolean(),
      (role, deviceId, offsetMs, argsBytes, approved) => {
        const req = request({ actor: { id: 'u', role }, device: { id: deviceId }, nowMs: tenUtcMs + offsetMs, argsBytes, approvals: approved ? [{ id: 'a', role: 'approver' }] : [] });
        const explained = explainPolicy(policy, req);
        const { rules, ...decision } = explained;
        assert.deepEqual(decision, evaluatePolicy(policy, req));
        if (explained.ruleId !== undefined) assert.equal(rules.find((rule) => rule.id === explained.ruleId)?.fate, 'applies');
      },
    ), { numRuns: 300 });
  });
});
