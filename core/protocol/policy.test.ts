import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SdcError } from '../errors/index.js';
import {
  defaultPolicy, evaluatePolicy, noRuleAllowsReason, parsePolicy, policyLimits, policyRoles,
  readOnlyOpcodes, updateOpcodes,
  type Policy, type PolicyRequest, type PolicyRole,
} from './policy.js';

// 2024-01-03 (a Wednesday) 12:00 UTC.
const noonWednesdayMs = Date.UTC(2024, 0, 3, 12, 0);

function request(role: PolicyRole, opcode: string, extra: Partial<PolicyRequest> = {}): PolicyRequest {
  return { actor: { id: 'alice', role }, opcode, device: { id: 'lab-1', tags: ['lab'] }, nowMs: noonWednesdayMs, ...extra };
}

function expectPolicyError(document: unknown, code: string, path: string): void {
  assert.throws(() => parsePolicy(document), (error: unknown) => {
    assert.ok(SdcError.is(error), String(error));
    assert.equal(error.code, code);
    assert.equal(error.details.path, path);
    return true;
  });
}

describe('default policy', () => {
  const everyOpcode = [...readOnlyOpcodes, ...updateOpcodes, 'EXEC_REBOOT'];
  const allowed: Record<PolicyRole, readonly string[]> = {
    viewer: [],
    operator: readOnlyOpcodes,
    approver: [...readOnlyOpcodes, ...updateOpcodes],
    admin: everyOpcode,
  };
  for (const role of policyRoles) {
    for (const opcode of everyOpcode) {
      const expected = allowed[role].includes(opcode) ? 'allow' : 'deny';
      it(`${role} ${opcode} -> ${expected}`, () => {
        const result = evaluatePolicy(defaultPolicy, request(role, opcode));
        assert.equal(result.decision, expected);
        if (expected === 'deny') {
          assert.equal(result.reason, noRuleAllowsReason);
          assert.equal(result.ruleId, undefined);
        } else {
          assert.ok(result.ruleId);
          assert.equal(result.reason, `allowed by rule ${result.ruleId}`);
        }
      });
    }
  }
});

describe('evaluatePolicy', () => {
  const base = {
    version: 1,
    rules: [
      { id: 'ops-lab', effect: 'allow', roles: ['operator'], opcodes: ['EXEC_LOCK_SCREEN'], devices: { ids: ['lab-*'] } },
      { id: 'ops-tagged', effect: 'allow', roles: ['operator'], opcodes: ['EXEC_PING_KERNEL'], devices: { tags: ['kiosk'] } },
      { id: 'ops-exact', effect: 'allow', roles: ['operator'], opcodes: ['EXEC_GET_STATUS'], devices: { ids: ['prod-7'] } },
    ],
  };
  const policy = parsePolicy(base);

  it('matches device ids by prefix glob, exact id and tag', () => {
    assert.equal(evaluatePolicy(policy, request('operator', 'EXEC_LOCK_SCREEN', { device: { id: 'lab-9' } })).decision, 'allow');
    assert.equal(evaluatePolicy(policy, request('operator', 'EXEC_LOCK_SCREEN', { device: { id: 'labx' } })).decision, 'deny');
    assert.equal(evaluatePolicy(policy, request('operator', 'EXEC_PING_KERNEL', { device: { id: 'x', tags: ['kiosk'] } })).decision, 'allow');
    assert.equal(evaluatePolicy(policy, request('operator', 'EXEC_PING_KERNEL', { device: { id: 'x', tags: ['lab'] } })).decision, 'deny');
    assert.equal(evaluatePolicy(policy, request('operator', 'EXEC_GET_STATUS', { device: { id: 'prod-7' } })).decision, 'allow');
    assert.equal(evaluatePolicy(policy, request('operator', 'EXEC_GET_STATUS', { device: { id: 'prod-70' } })).decision, 'deny');
  });

  it('lets an explicit deny win over an allow, naming the deny rule', () => {
    const withDeny = parsePolicy({
      ...base,
      rules: [...base.rules, { id: 'freeze-lab', effect: 'deny', roles: '*', opcodes: '*', devices: { ids: ['lab-*'] } }],
    });
    assert.deepEqual(evaluatePolicy(withDeny, request('operator', 'EXEC_LOCK_SCREEN')), {
      decision: 'deny', ruleId: 'freeze-lab', reason: 'denied by rule freeze-lab',
    });
  });

  it('applies a time window in the rule zone, wrapping past midnight', () => {
    const night = parsePolicy({
      version: 1,
      rules: [{
        id: 'night-shift', effect: 'allow', roles: ['operator'], opcodes: '*', devices: '*',
        // 22:00-06:00 at UTC+02:00.
        conditions: { timeWindow: { startMinute: 22 * 60, endMinute: 6 * 60, utcOffsetMinutes: 120 } },
      }],
    });
    const at = (hourUtc: number, minute = 0): string =>
      evaluatePolicy(night, request('operator', 'EXEC_PING_KERNEL', { nowMs: Date.UTC(2024, 0, 3, hourUtc, minute) })).decision;
    assert.equal(at(19, 59), 'deny'); // 21:59 local
    assert.equal(at(20, 0), 'allow'); // 22:00 local
    assert.equal(at(1), 'allow'); // 03:00 local
    assert.equal(at(3, 59), 'allow'); // 05:59 local
    assert.equal(at(4, 0), 'deny'); // 06:00 local: the end is exclusive
    assert.equal(at(12), 'deny');
  });

  it('restricts a time window to days of the week', () => {
    const weekdays = parsePolicy({
      version: 1,
      rules: [{
        id: 'weekday', effect: 'allow', roles: ['operator'], opcodes: '*', devices: '*',
        conditions: { timeWindow: { startMinute: 0, endMinute: 1440, daysOfWeek: [1, 2, 3, 4, 5] } },
      }],
    });
    assert.equal(evaluatePolicy(weekdays, request('operator', 'X', { nowMs: Date.UTC(2024, 0, 3, 9) })).decision, 'allow'); // Wednesday
    assert.equal(evaluatePolicy(weekdays, request('operator', 'X', { nowMs: Date.UTC(2024, 0, 6, 9) })).decision, 'deny'); // Saturday
    assert.equal(evaluatePolicy(weekdays, request('operator', 'X', { nowMs: Date.UTC(1969, 11, 28, 9) })).decision, 'deny'); // Sunday, before the epoch
    assert.equal(evaluatePolicy(weekdays, request('operator', 'X', { nowMs: Date.UTC(1969, 11, 29, 9) })).decision, 'allow'); // Monday, before the epoch
  });

  it('applies argsBytesMax and fails closed when the size is unknown', () => {
    const small = parsePolicy({
      version: 1,
      rules: [{ id: 'small', effect: 'allow', roles: ['operator'], opcodes: '*', devices: '*', conditions: { argsBytesMax: 100 } }],
    });
    assert.equal(evaluatePolicy(small, request('operator', 'X', { argsBytes: 100 })).decision, 'allow');
    assert.equal(evaluatePolicy(small, request('operator', 'X', { argsBytes: 101 })).decision, 'deny');
    assert.equal(evaluatePolicy(small, request('operator', 'X')).decision, 'deny');
  });

  it('requires approvals by distinct other people in the named roles', () => {
    const twoApprovals = parsePolicy({
      version: 1,
      rules: [{
        id: 'update-with-approval', effect: 'allow', roles: ['operator'], opcodes: ['EXEC_COMMIT_UPDATE'], devices: '*',
        conditions: { approval: { count: 2, roles: ['approver', 'admin'] } },
      }],
    });
    const commit = (approvals: PolicyRequest['approvals']) => evaluatePolicy(twoApprovals, request('operator', 'EXEC_COMMIT_UPDATE', { approvals }));
    assert.deepEqual(commit(undefined), {
      decision: 'deny',
      reason: 'approval required by rule update-with-approval',
      approval: { ruleId: 'update-with-approval', count: 2, roles: ['approver', 'admin'] },
    });
    assert.equal(commit([{ id: 'bob', role: 'approver' }, { id: 'bob', role: 'approver' }]).decision, 'deny');
    assert.equal(commit([{ id: 'bob', role: 'approver' }, { id: 'carol', role: 'viewer' }]).decision, 'deny');
    assert.equal(commit([{ id: 'bob', role: 'approver' }, { id: 'alice', role: 'admin' }]).decision, 'deny'); // self-approval
    assert.equal(commit([{ id: 'bob', role: 'approver' }, { id: 'dave', role: 'admin' }]).decision, 'allow');
  });

  it('refuses malformed requests with POLICY_REQUEST_INVALID', () => {
    const cases: Array<[unknown, string]> = [
      [{ ...request('operator', 'X'), nowMs: Number.NaN }, 'nowMs'],
      [{ ...request('operator', 'X'), actor: { id: 'a', role: 'root' } }, 'actor.role'],
      [{ ...request('operator', 'X'), device: { id: '' } }, 'device.id'],
      [{ ...request('operator', 'X'), argsBytes: -1 }, 'argsBytes'],
      [{ ...request('operator', 'X'), approvals: [{ id: 'b' }] }, 'approvals[0]'],
    ];
    for (const [bad, path] of cases) {
      assert.throws(() => evaluatePolicy(defaultPolicy, bad as PolicyRequest), (error: unknown) =>
        SdcError.is(error, 'POLICY_REQUEST_INVALID') && error.details.path === path);
    }
  });
});

describe('parsePolicy', () => {
  const rule = { id: 'r', effect: 'allow', roles: ['operator'], opcodes: ['EXEC_PING_KERNEL'], devices: '*' };

  it('accepts JSON text and returns a frozen policy', () => {
    const policy = parsePolicy(JSON.stringify({ version: 1, revision: 7, rules: [rule] }));
    assert.equal(policy.revision, 7);
    assert.ok(Object.isFrozen(policy) && Object.isFrozen(policy.rules) && Object.isFrozen(policy.rules[0]));
  });

  it('names the path of the bad field', () => {
    const cases: Array<[unknown, string, string]> = [
      ['{', 'POLICY_INVALID', '$'],
      [[], 'POLICY_INVALID', '$'],
      [{ version: 2, rules: [] }, 'POLICY_UNSUPPORTED_VERSION', 'version'],
      [{ version: '1', rules: [] }, 'POLICY_INVALID', 'version'],
      [{ version: 1, rules: [], extra: true }, 'POLICY_INVALID', 'extra'],
      [{ version: 1, rules: [{ ...rule, effect: 'maybe' }] }, 'POLICY_INVALID', 'rules[0].effect'],
      [{ version: 1, rules: [rule, { ...rule, roles: ['root'] }] }, 'POLICY_INVALID', 'rules[1].roles[0]'],
      [{ version: 1, rules: [rule, rule] }, 'POLICY_INVALID', 'rules[1].id'],
      [{ version: 1, rules: [{ ...rule, opcodes: ['exec'] }] }, 'POLICY_INVALID', 'rules[0].opcodes[0]'],
      [{ version: 1, rules: [{ ...rule, devices: { ids: ['a*b'] } }] }, 'POLICY_INVALID', 'rules[0].devices.ids[0]'],
      [{ version: 1, rules: [{ ...rule, devices: {} }] }, 'POLICY_INVALID', 'rules[0].devices'],
      [{ version: 1, rules: [{ ...rule, conditions: { timeWindow: { startMinute: 60, endMinute: 60 } } }] }, 'POLICY_INVALID', 'rules[0].conditions.timeWindow.endMinute'],
      [{ version: 1, rules: [{ ...rule, conditions: { timeWindow: { startMinute: 1440, endMinute: 60 } } }] }, 'POLICY_INVALID', 'rules[0].conditions.timeWindow.startMinute'],
      [{ version: 1, rules: [{ ...rule, effect: 'deny', conditions: { argsBytesMax: 10 } }] }, 'POLICY_INVALID', 'rules[0].conditions.argsBytesMax'],
      [{ version: 1, rules: [{ ...rule, conditions: { approval: { count: 0, roles: ['admin'] } } }] }, 'POLICY_INVALID', 'rules[0].conditions.approval.count'],
      [{ version: 1, rules: [{ ...rule, id: 'bad\nid' }] }, 'POLICY_INVALID', 'rules[0].id'],
      [{ version: 1, rules: Array.from({ length: policyLimits.rulesMax + 1 }, (_, i) => ({ ...rule, id: `r${i}` })) }, 'POLICY_TOO_LARGE', 'rules'],
      [{ version: 1, rules: [{ ...rule, devices: { tags: Array.from({ length: policyLimits.listEntriesMax + 1 }, (_, i) => `t${i}`) } }] }, 'POLICY_TOO_LARGE', 'rules[0].devices.tags'],
    ];
    for (const [document, code, path] of cases) expectPolicyError(document, code, path);
  });
});

describe('policy properties', () => {
  const opcodes = ['EXEC_PING_KERNEL', 'EXEC_LOCK_SCREEN', 'EXEC_COMMIT_UPDATE'];
  const deviceIds = ['lab-1', 'lab-2', 'prod-1'];
  const tags = ['lab', 'kiosk'];
  const actors = ['alice', 'bob', 'carol'];

  const roleList = fc.oneof(fc.constant('*' as const), fc.subarray([...policyRoles], { minLength: 1 }));
  const opcodeList = fc.oneof(fc.constant('*' as const), fc.subarray(opcodes, { minLength: 1 }));
  const devices = fc.oneof(
    fc.constant('*' as const),
    fc.record({ ids: fc.subarray([...deviceIds, 'lab-*', 'prod-*'], { minLength: 1 }) }),
    fc.record({ tags: fc.subarray(tags, { minLength: 1 }) }),
  );
  const timeWindow = fc.tuple(fc.integer({ min: 0, max: 1439 }), fc.integer({ min: 0, max: 1440 }))
    .filter(([start, end]) => start !== end)
    .map(([startMinute, endMinute]) => ({ startMinute, endMinute }));
  const denyConditions = fc.option(fc.record({ timeWindow }), { nil: undefined });
  const allowConditions = fc.option(fc.record({
    argsBytesMax: fc.integer({ min: 0, max: 200 }),
    timeWindow,
    approval: fc.record({ count: fc.integer({ min: 1, max: 2 }), roles: fc.subarray([...policyRoles], { minLength: 1 }) }),
  }, { requiredKeys: [] }), { nil: undefined });
  const ruleBody = (effect: 'allow' | 'deny') => fc.record({
    effect: fc.constant(effect),
    roles: roleList,
    opcodes: opcodeList,
    devices,
    conditions: effect === 'allow' ? allowConditions : denyConditions,
  });
  const withoutUndefined = <T extends object>(value: T): T => JSON.parse(JSON.stringify(value)) as T;
  const rules = fc.array(fc.oneof(ruleBody('allow'), ruleBody('deny')), { maxLength: 8 })
    .map((bodies) => bodies.map((body, index) => withoutUndefined({ id: `rule-${index}`, ...body })));
  const policyArb = rules.map((list) => parsePolicy({ version: 1, rules: list }));
  const requestArb: fc.Arbitrary<PolicyRequest> = fc.record({
    actor: fc.record({ id: fc.constantFrom(...actors), role: fc.constantFrom(...policyRoles) }),
    opcode: fc.constantFrom(...opcodes),
    device: fc.record({ id: fc.constantFrom(...deviceIds), tags: fc.subarray(tags) }),
    nowMs: fc.integer({ min: 0, max: 4_102_444_800_000 }),
    argsBytes: fc.option(fc.integer({ min: 0, max: 300 }), { nil: undefined }),
    approvals: fc.array(fc.record({ id: fc.constantFrom(...actors), role: fc.constantFrom(...policyRoles) }), { maxLength: 3 }),
  }, { requiredKeys: ['actor', 'opcode', 'device', 'nowMs'] });

  it('an empty policy denies everything', () => {
    const empty = parsePolicy({ version: 1, rules: [] });
    fc.assert(fc.property(requestArb, (req) => {
      assert.deepEqual(evaluatePolicy(empty, req), { decision: 'deny', reason: noRuleAllowsReason });
    }), { numRuns: 300 });
  });

  it('adding a deny rule never turns a deny into an allow', () => {
    fc.assert(fc.property(policyArb, ruleBody('deny'), requestArb, (policy, denyBody, req) => {
      const before = evaluatePolicy(policy, req);
      const after = evaluatePolicy(parsePolicy({ version: 1, rules: [...policy.rules, withoutUndefined({ id: 'added-deny', ...denyBody })] }), req);
      if (before.decision === 'deny') assert.equal(after.decision, 'deny');
    }), { numRuns: 500 });
  });

  it('a matching deny rule always wins, whatever else the policy allows', () => {
    fc.assert(fc.property(policyArb, requestArb, (policy, req) => {
      const deny = { id: 'zz-deny', effect: 'deny', roles: [req.actor.role], opcodes: [req.opcode], devices: { ids: [req.device.id] } };
      const combined = parsePolicy({ version: 1, rules: [...policy.rules, deny] });
      const result = evaluatePolicy(combined, req);
      assert.equal(result.decision, 'deny');
      assert.equal(combined.rules.find((r) => r.id === result.ruleId)?.effect, 'deny');
    }), { numRuns: 300 });
  });

  it('evaluation is deterministic and independent of rule order', () => {
    fc.assert(fc.property(
      rules.chain((list) => fc.tuple(fc.constant(list), fc.shuffledSubarray(list, { minLength: list.length, maxLength: list.length }))),
      requestArb,
      ([list, shuffled], req) => {
        const policy: Policy = parsePolicy({ version: 1, rules: list });
        const first = evaluatePolicy(policy, req);
        assert.deepEqual(evaluatePolicy(policy, req), first);
        assert.deepEqual(evaluatePolicy(parsePolicy({ version: 1, rules: shuffled }), req), first);
      },
    ), { numRuns: 500 });
  });

  it('an allow names a rule that is an allow rule; a deny by rule names a deny rule', () => {
    fc.assert(fc.property(policyArb, requestArb, (policy, req) => {
      const result = evaluatePolicy(policy, req);
      if (result.ruleId === undefined) {
        assert.equal(result.decision, 'deny');
        return;
      }
      const rule = policy.rules.find((r) => r.id === result.ruleId);
      assert.ok(rule);
      assert.equal(rule.effect, result.decision);
    }), { numRuns: 300 });
  });
});

describe('docs/policy.md', () => {
  it('its example document parses and behaves as described', async () => {
    const { readFile } = await import('node:fs/promises');
    const text = await readFile(new URL('../../docs/policy.md', import.meta.url), 'utf8');
    const example = /```json\n([\s\S]*?)\n```/.exec(text)?.[1];
    assert.ok(example);
    const policy = parsePolicy(example);
    // Wednesday 10:00 in Berlin winter time (UTC+1) = 09:00 UTC.
    const tenAm = Date.UTC(2024, 0, 3, 9, 0);
    const base = { actor: { id: 'alice', role: 'operator' as const }, device: { id: 'lab-1' }, nowMs: tenAm, argsBytes: 10 };
    assert.equal(evaluatePolicy(policy, { ...base, opcode: 'EXEC_PING_KERNEL' }).decision, 'allow');
    assert.equal(evaluatePolicy(policy, { ...base, opcode: 'EXEC_PING_KERNEL', nowMs: Date.UTC(2024, 0, 6, 9, 0) }).decision, 'deny');
    assert.equal(evaluatePolicy(policy, { ...base, opcode: 'EXEC_COMMIT_UPDATE' }).approval?.count, 2);
    const night = { ...base, opcode: 'EXEC_PING_KERNEL', device: { id: 'lab-1', tags: ['prod'] }, nowMs: Date.UTC(2024, 0, 3, 23, 0) };
    assert.deepEqual(evaluatePolicy(policy, night), { decision: 'deny', ruleId: 'freeze-prod-nights', reason: 'denied by rule freeze-prod-nights' });
  });
});
