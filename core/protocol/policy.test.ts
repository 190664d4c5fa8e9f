import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SdcError } from '../errors/index.js';
import {
  defaultPolicy, devicePolicyOf, evaluatePolicy, judgeRule, noRuleAllowsReason, parsePolicy, policyLimits, policyRoles,
  rateLimitsFor, readOnlyOpcodes, updateOpcodes,
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
  const everyOpcode = [...readOnlyOpcodes, ...updateOpcodes, 'EXEC_COLLECT_ARTIFACT', 'EXEC_REBOOT'];
  const allowed: Record<PolicyRole, readonly string[]> = {
    viewer: [],
    operator: [...readOnlyOpcodes, 'EXEC_COLLECT_ARTIFACT'],
    approver: [...readOnlyOpcodes, 'EXEC_COLLECT_ARTIFACT', ...updateOpcodes],
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
  const rateLimit = fc.record({
    per: fc.shuffledSubarray(['actor', 'device', 'opcode'], { minLength: 1 }), count: fc.integer({ min: 1, max: 3 }), windowMs: fc.constantFrom(1_000, 60_000),
  });
  const posture = fc.record({
    online: fc.boolean(), complianceStates: fc.subarray(['compliant', 'warning'], { minLength: 1 }),
    riskScoreBelow: fc.integer({ min: 1, max: 100 }), agentVersionAtLeast: fc.constantFrom('0.1.0', '1.2.0', '2.0.0-rc.1'),
  }, { requiredKeys: [] }).filter((p) => Object.keys(p).length > 0);
  const denyConditions = fc.option(fc.record({ timeWindow, quietHours: timeWindow, rateLimit }, { requiredKeys: [] }), { nil: undefined });
  const allowConditions = fc.option(fc.record({
    argsBytesMax: fc.integer({ min: 0, max: 200 }),
    timeWindow,
    approval: fc.record({ count: fc.integer({ min: 1, max: 2 }), roles: fc.subarray([...policyRoles], { minLength: 1 }) }),
    reasonRequired: fc.constant(true),
    posture,
    rateLimit,
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
  const devicePosture = fc.record({
    online: fc.boolean(), complianceState: fc.constantFrom('compliant', 'warning', 'non_compliant', 'unknown'),
    riskScore: fc.integer({ min: 0, max: 100 }), agentVersion: fc.constantFrom('sdc-agent/0.1.0', 'sdc-agent/1.2.3', '2.0.0-rc.2', 'garbage'),
  }, { requiredKeys: [] });
  const requestArb: fc.Arbitrary<PolicyRequest> = fc.record({
    actor: fc.record({ id: fc.constantFrom(...actors), role: fc.constantFrom(...policyRoles) }),
    opcode: fc.constantFrom(...opcodes),
    device: fc.record({ id: fc.constantFrom(...deviceIds), tags: fc.subarray(tags), posture: devicePosture }, { requiredKeys: ['id', 'tags'] }),
    nowMs: fc.integer({ min: 0, max: 4_102_444_800_000 }),
    argsBytes: fc.option(fc.integer({ min: 0, max: 300 }), { nil: undefined }),
    approvals: fc.array(fc.record({ id: fc.constantFrom(...actors), role: fc.constantFrom(...policyRoles) }), { maxLength: 3 }),
    reason: fc.constantFrom('', 'ticket 1'),
  }, { requiredKeys: ['actor', 'opcode', 'device', 'nowMs'] });
  /** Counts for the request's rate limits, from a list of small numbers; a missing entry leaves that key unknown. */
  const withCounts = (policy: Policy, req: PolicyRequest, counts: readonly number[]): PolicyRequest => ({
    ...req, rateCounts: Object.fromEntries(rateLimitsFor(policy, req).flatMap((use, index) => (index < counts.length ? [[use.key, counts[index]!]] : []))),
  });
  const countsArb = fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 8 });

  it('an empty policy denies everything', () => {
    const empty = parsePolicy({ version: 1, rules: [] });
    fc.assert(fc.property(requestArb, (req) => {
      assert.deepEqual(evaluatePolicy(empty, req), { decision: 'deny', reason: noRuleAllowsReason });
    }), { numRuns: 300 });
  });

  it('adding a deny rule never turns a deny into an allow (whatever its quiet hours and rate limit, whatever the counts)', () => {
    fc.assert(fc.property(policyArb, ruleBody('deny'), requestArb, countsArb, countsArb, (policy, denyBody, rawReq, counts, addedCounts) => {
      const req = withCounts(policy, rawReq, counts);
      const before = evaluatePolicy(policy, req);
      const extended = parsePolicy({ version: 1, rules: [...policy.rules, withoutUndefined({ id: 'added-deny', ...denyBody })] });
      // The added rule's own count is arbitrary (or unknown); every other fact stays as it was.
      const addedUse = rateLimitsFor(extended, req).find((use) => use.ruleId === 'added-deny');
      const addedCount = addedUse === undefined || addedCounts.length === 0 ? {} : { [addedUse.key]: addedCounts[0]! };
      const after = evaluatePolicy(extended, { ...req, rateCounts: { ...req.rateCounts, ...addedCount } });
      if (before.decision === 'deny') assert.equal(after.decision, 'deny');
    }), { numRuns: 500 });
  });

  it('a rate limit never allows at or above its count: an allow by a rate-limited rule had fewer in the window; an unknown count never allows through it', () => {
    fc.assert(fc.property(policyArb, requestArb, countsArb, (policy, rawReq, counts) => {
      const req = withCounts(policy, rawReq, counts);
      const result = evaluatePolicy(policy, req);
      if (result.decision !== 'allow') return;
      const rule = policy.rules.find((r) => r.id === result.ruleId)!;
      const judgement = judgeRule(rule, req);
      const limit = rule.conditions?.rateLimit;
      if (limit !== undefined) {
        assert.notEqual(judgement.rate?.countInWindow, null);
        assert.ok(judgement.rate!.countInWindow! < limit.count);
      }
      // No deny rule's rate limit is reached.
      for (const use of rateLimitsFor(policy, req)) {
        const denyRule = policy.rules.find((r) => r.id === use.ruleId && r.effect === 'deny');
        if (denyRule !== undefined) assert.ok((req.rateCounts?.[use.key] ?? Infinity) < use.limit.count);
      }
    }), { numRuns: 500 });
  });

  it('the device\'s policy (devicePolicyOf, no counts, posture or reason) allows whatever the full policy allows with its facts', () => {
    fc.assert(fc.property(policyArb, requestArb, countsArb, (policy, rawReq, counts) => {
      const req = withCounts(policy, rawReq, counts);
      if (evaluatePolicy(policy, req).decision !== 'allow') return;
      const { rateCounts: _counts, reason: _reason, ...bare } = req;
      const deviceRequest = { ...bare, device: { id: req.device.id, ...(req.device.tags === undefined ? {} : { tags: req.device.tags }) } };
      assert.equal(evaluatePolicy(devicePolicyOf(policy), deviceRequest).decision, 'allow');
    }), { numRuns: 500 });
  });

  it('raising a count never turns a deny into an allow', () => {
    fc.assert(fc.property(policyArb, requestArb, countsArb, fc.integer({ min: 1, max: 3 }), (policy, rawReq, counts, extra) => {
      const req = withCounts(policy, rawReq, counts);
      const higher = { ...req, rateCounts: Object.fromEntries(Object.entries(req.rateCounts ?? {}).map(([key, count]) => [key, count + extra])) };
      if (evaluatePolicy(policy, req).decision === 'deny') assert.equal(evaluatePolicy(policy, higher).decision, 'deny');
    }), { numRuns: 300 });
  });

  it('a matching deny rule always wins, whatever else the policy allows', () => {
    fc.assert(fc.property(policyArb, requestArb, countsArb, (policy, rawReq, counts) => {
      const req = withCounts(policy, rawReq, counts);
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
    fc.assert(fc.property(policyArb, requestArb, countsArb, (policy, rawReq, counts) => {
      const req = withCounts(policy, rawReq, counts);
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

describe('issue 12 conditions', () => {
  const base = (extra: Partial<PolicyRequest> = {}): PolicyRequest => request('operator', 'EXEC_GET_STATUS', extra);
  const limited = parsePolicy({
    version: 1,
    rules: [{ id: 'limited', effect: 'allow', roles: ['operator'], opcodes: '*', devices: '*', conditions: { rateLimit: { per: ['actor', 'opcode'], count: 2, windowMs: 60_000 } } }],
  });

  it('rate limit: keys per the named dimensions; below the count allows, at it denies with the limit, unknown fails closed', () => {
    const [use] = rateLimitsFor(limited, base());
    assert.deepEqual(JSON.parse(use!.key), ['limited', 60_000, 'alice', null, 'EXEC_GET_STATUS']);
    assert.equal(rateLimitsFor(limited, base({ device: { id: 'other' } }))[0]!.key, use!.key, 'device is not a dimension here');
    assert.equal(evaluatePolicy(limited, base({ rateCounts: { [use!.key]: 1 } })).decision, 'allow');
    const reached = evaluatePolicy(limited, base({ rateCounts: { [use!.key]: 2 } }));
    assert.equal(reached.decision, 'deny');
    assert.deepEqual(reached.blocked, { kind: 'rate_limit', ruleId: 'limited', limit: limited.rules[0]!.conditions!.rateLimit, countInWindow: 2 });
    assert.equal(evaluatePolicy(limited, base()).blocked?.kind, 'rate_limit', 'no count given: refused');
  });

  it('rate limit on a deny rule: applies only once reached (or unknown), and then wins over every allow', () => {
    const policy = parsePolicy({
      version: 1,
      rules: [
        { id: 'all', effect: 'allow', roles: '*', opcodes: '*', devices: '*' },
        { id: 'cap', effect: 'deny', roles: '*', opcodes: '*', devices: '*', conditions: { rateLimit: { per: ['device'], count: 5, windowMs: 1_000 } } },
      ],
    });
    const key = rateLimitsFor(policy, base())[0]!.key;
    assert.equal(evaluatePolicy(policy, base({ rateCounts: { [key]: 4 } })).decision, 'allow');
    assert.equal(evaluatePolicy(policy, base({ rateCounts: { [key]: 5 } })).ruleId, 'cap');
    assert.equal(evaluatePolicy(policy, base({ rateCounts: {} })).ruleId, 'cap');
  });

  it('posture: each field fails closed when unknown; the first failing field is named', () => {
    const policy = parsePolicy({
      version: 1,
      rules: [{ id: 'healthy', effect: 'allow', roles: '*', opcodes: '*', devices: '*', conditions: { posture: { online: true, complianceStates: ['compliant'], riskScoreBelow: 50, agentVersionAtLeast: '1.2.0' } } }],
    });
    const good = { online: true, complianceState: 'compliant', riskScore: 49.5, agentVersion: 'sdc-agent/1.10.0' };
    const withPosture = (posture: Record<string, unknown>) => base({ device: { id: 'lab-1', posture: posture as never } });
    assert.equal(evaluatePolicy(policy, withPosture(good)).decision, 'allow');
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ ...good, online: false }, 'online'], [{ ...good, complianceState: 'unknown' }, 'complianceState'],
      [{ ...good, riskScore: 50 }, 'riskScore'], [{ ...good, riskScore: undefined }, 'riskScore'],
      [{ ...good, agentVersion: 'sdc-agent/1.2.0-rc.1' }, 'agentVersion'], [{ ...good, agentVersion: 'sdc-agent' }, 'agentVersion'], [{}, 'online'],
    ];
    for (const [posture, field] of cases) {
      const result = evaluatePolicy(policy, withPosture(JSON.parse(JSON.stringify(posture)) as Record<string, unknown>));
      assert.deepEqual(result.blocked, { kind: 'posture', ruleId: 'healthy', field }, JSON.stringify(posture));
    }
  });

  it('reasonRequired: no reason or a blank one is refused, any stated reason allows', () => {
    const policy = parsePolicy({ version: 1, rules: [{ id: 'why', effect: 'allow', roles: '*', opcodes: '*', devices: '*', conditions: { reasonRequired: true } }] });
    assert.deepEqual(evaluatePolicy(policy, base()).blocked, { kind: 'reason_required', ruleId: 'why' });
    assert.equal(evaluatePolicy(policy, base({ reason: '  ' })).decision, 'deny');
    assert.equal(evaluatePolicy(policy, base({ reason: 'incident 12' })).decision, 'allow');
  });

  it('quiet hours: a group\'s deny rule applies inside its window in its zone (wrapping midnight) and names the window', () => {
    const policy = parsePolicy({
      version: 1,
      rules: [
        { id: 'all', effect: 'allow', roles: '*', opcodes: '*', devices: '*' },
        { id: 'lab-nights', effect: 'deny', roles: '*', opcodes: '*', devices: { tags: ['group:lab'] }, conditions: { quietHours: { startMinute: 22 * 60, endMinute: 6 * 60, utcOffsetMinutes: 60 } } },
      ],
    });
    const at = (hourUtc: number) => base({ device: { id: 'lab-1', tags: ['group:lab'] }, nowMs: Date.UTC(2024, 0, 3, hourUtc, 30) });
    assert.equal(evaluatePolicy(policy, at(12)).decision, 'allow');
    const night = evaluatePolicy(policy, at(21));
    assert.equal(night.ruleId, 'lab-nights');
    assert.equal(night.blocked?.kind, 'quiet_hours');
    assert.match(night.reason, /22:00-06:00 UTC\+01:00/);
    assert.equal(evaluatePolicy(policy, at(4)).decision, 'deny');
    assert.equal(evaluatePolicy(policy, at(5)).decision, 'allow', '06:30 local');
    assert.equal(evaluatePolicy(policy, { ...at(21), device: { id: 'lab-1', tags: ['group:other'] } }).decision, 'allow');
  });

  it('parse: the new conditions are checked field by field, deny rules take only time, quiet hours and rate limits', () => {
    const rule = (effect: string, conditions: unknown) => ({ version: 1, rules: [{ id: 'r', effect, roles: '*', opcodes: '*', devices: '*', conditions }] });
    expectPolicyError(rule('allow', { rateLimit: { per: [], count: 1, windowMs: 1000 } }), 'POLICY_INVALID', 'rules[0].conditions.rateLimit.per');
    expectPolicyError(rule('allow', { rateLimit: { per: ['actor', 'actor'], count: 1, windowMs: 1000 } }), 'POLICY_INVALID', 'rules[0].conditions.rateLimit.per[1]');
    expectPolicyError(rule('allow', { rateLimit: { per: ['actor'], count: 0, windowMs: 1000 } }), 'POLICY_INVALID', 'rules[0].conditions.rateLimit.count');
    expectPolicyError(rule('allow', { rateLimit: { per: ['actor'], count: 1, windowMs: 86_400_001 } }), 'POLICY_INVALID', 'rules[0].conditions.rateLimit.windowMs');
    expectPolicyError(rule('allow', { posture: {} }), 'POLICY_INVALID', 'rules[0].conditions.posture');
    expectPolicyError(rule('allow', { posture: { riskScoreBelow: 0 } }), 'POLICY_INVALID', 'rules[0].conditions.posture.riskScoreBelow');
    expectPolicyError(rule('allow', { posture: { complianceStates: ['ok', ''] } }), 'POLICY_INVALID', 'rules[0].conditions.posture.complianceStates[1]');
    expectPolicyError(rule('allow', { posture: { online: 'yes' } }), 'POLICY_INVALID', 'rules[0].conditions.posture.online');
    expectPolicyError(rule('allow', { reasonRequired: false }), 'POLICY_INVALID', 'rules[0].conditions.reasonRequired');
    expectPolicyError(rule('allow', { quietHours: { startMinute: 0, endMinute: 60 } }), 'POLICY_INVALID', 'rules[0].conditions.quietHours');
    expectPolicyError(rule('deny', { posture: { online: true } }), 'POLICY_INVALID', 'rules[0].conditions.posture');
    expectPolicyError(rule('deny', { reasonRequired: true }), 'POLICY_INVALID', 'rules[0].conditions.reasonRequired');
    expectPolicyError(rule('deny', { quietHours: { startMinute: 0, endMinute: 1441 } }), 'POLICY_INVALID', 'rules[0].conditions.quietHours.endMinute');
    assert.doesNotThrow(() => parsePolicy(rule('deny', { quietHours: { startMinute: 0, endMinute: 60 }, rateLimit: { per: ['opcode'], count: 1, windowMs: 1000 } })));
  });

  it('refuses malformed facts in the request with POLICY_REQUEST_INVALID', () => {
    for (const [extra, path] of [
      [{ reason: 'x'.repeat(policyLimits.reasonLengthMax + 1) }, 'reason'],
      [{ rateCounts: { k: -1 } }, 'rateCounts["k"]'],
      [{ device: { id: 'lab-1', posture: { riskScore: Number.NaN } } }, 'device.posture.riskScore'],
    ] as const) {
      assert.throws(() => evaluatePolicy(limited, base(extra as Partial<PolicyRequest>)), (error: unknown) => SdcError.is(error, 'POLICY_REQUEST_INVALID') && error.details.path === path);
    }
  });
});
