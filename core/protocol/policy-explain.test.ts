import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { explainPolicy } from './policy-explain.js';
import { evaluatePolicy, parsePolicy, rateLimitsFor, type PolicyRequest } from './policy.js';

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

describe('explainPolicy, issue 12 conditions', () => {
  const conditioned = parsePolicy({
    version: 1,
    rules: [
      { id: 'limited', effect: 'allow', roles: ['operator'], opcodes: '*', devices: '*', conditions: { rateLimit: { per: ['actor'], count: 3, windowMs: 60_000 } } },
      { id: 'healthy', effect: 'allow', roles: ['operator'], opcodes: '*', devices: '*', conditions: { posture: { riskScoreBelow: 40 } } },
      { id: 'why', effect: 'allow', roles: ['operator'], opcodes: '*', devices: '*', conditions: { reasonRequired: true } },
      { id: 'quiet', effect: 'deny', roles: '*', opcodes: '*', devices: { tags: ['group:night'] }, conditions: { quietHours: { startMinute: 0, endMinute: 60 } } },
      { id: 'cap', effect: 'deny', roles: '*', opcodes: '*', devices: '*', conditions: { rateLimit: { per: ['device'], count: 10, windowMs: 60_000 } } },
    ],
  });

  it('names which limit and how many are left, the posture field that failed, the missing reason, the quiet window', () => {
    const [limitedUse, capUse] = rateLimitsFor(conditioned, request());
    const explained = explainPolicy(conditioned, request({
      device: { id: 'pc-1', tags: ['group:night'], posture: { riskScore: 55 } }, rateCounts: { [limitedUse!.key]: 3, [capUse!.key]: 4 },
    }));
    assert.equal(explained.decision, 'deny');
    const byId = Object.fromEntries(explained.rules.map((rule) => [rule.id, rule]));
    assert.equal(byId['limited']?.fate, 'rate_limited');
    assert.deepEqual(byId['limited']?.rateLimit, { per: ['actor'], count: 3, windowMs: 60_000, countInWindow: 3, remaining: 0 });
    assert.equal(byId['healthy']?.fate, 'posture_failed');
    assert.equal(byId['healthy']?.postureField, 'riskScore');
    assert.equal(byId['why']?.fate, 'reason_missing');
    assert.equal(byId['quiet']?.fate, 'outside_quiet_hours');
    assert.deepEqual(byId['quiet']?.quietHours, { startMinute: 0, endMinute: 60 });
    assert.equal(byId['cap']?.fate, 'under_rate_limit');
    assert.equal(byId['cap']?.rateLimit?.remaining, 6);
    // The smallest id among the near misses decides what the refusal says.
    assert.equal(explained.blocked?.kind, 'posture');
    assert.equal(explainPolicy(conditioned, request({ reason: 'ticket 9', rateCounts: { [limitedUse!.key]: 3, [capUse!.key]: 4 } })).decision, 'allow');
  });

  it('its decision is always the engine\'s, with any counts and facts', () => {
    fc.assert(fc.property(
      fc.nat(5), fc.nat(12), fc.integer({ min: 0, max: 100 }), fc.boolean(), fc.integer({ min: 0, max: 86_400_000 }),
      (limitedCount, capCount, riskScore, withReason, offsetMs) => {
        const base = request({ device: { id: 'pc-1', tags: ['group:night'], posture: { riskScore } }, nowMs: tenUtcMs + offsetMs, ...(withReason ? { reason: 'r' } : {}) });
        const [limitedUse, capUse] = rateLimitsFor(conditioned, base);
        const req = { ...base, rateCounts: { [limitedUse!.key]: limitedCount, [capUse!.key]: capCount } };
        const { rules, ...decision } = explainPolicy(conditioned, req);
        assert.deepEqual(decision, evaluatePolicy(conditioned, req));
        if (decision.ruleId !== undefined) assert.equal(rules.find((rule) => rule.id === decision.ruleId)?.fate, 'applies');
      },
    ), { numRuns: 300 });
  });
});
