import { evaluatePolicy, type Policy, type PolicyDecision, type PolicyRequest, type PolicyRule, type TimeWindow } from './policy.js';

/**
 * Why a policy decides what it decides (the dry run, `POST /v1/policy/evaluate`): the engine's
 * decision, unchanged, plus every rule that targets the request (its roles, opcodes and devices
 * match) and what became of it. Each rule's fate is found by asking the engine itself about a
 * one-rule policy with and without the rule's conditions, so this explanation can never disagree
 * with `evaluatePolicy` about how a condition is judged. Pure; at most 3 evaluations per rule.
 */

export type RuleFate =
  /** Applied: an allow rule that allows, or a deny rule that denies. */
  | 'applies'
  /** Targets the request, but now is outside its time window. */
  | 'outside_time_window'
  /** An allow rule whose argsBytesMax the command's arguments exceed. */
  | 'args_too_large'
  /** An allow rule that would apply once its approvals are collected. */
  | 'approval_missing';

export interface RuleExplanation {
  readonly id: string;
  readonly effect: 'allow' | 'deny';
  readonly fate: RuleFate;
  readonly timeWindow?: TimeWindow;
  readonly approval?: { readonly count: number; readonly roles: readonly string[] };
}

export interface PolicyExplanation extends PolicyDecision {
  /** The rules that target the request, in the policy's order. */
  readonly rules: readonly RuleExplanation[];
}

export function explainPolicy(policy: Policy, request: PolicyRequest): PolicyExplanation {
  const decision = evaluatePolicy(policy, request);
  const rules: RuleExplanation[] = [];
  for (const rule of policy.rules) {
    const fate = fateOf(rule, request);
    if (fate === undefined) continue;
    const conditions = rule.conditions ?? {};
    rules.push({
      id: rule.id, effect: rule.effect, fate,
      ...(conditions.timeWindow === undefined ? {} : { timeWindow: conditions.timeWindow }),
      ...(conditions.approval === undefined ? {} : { approval: conditions.approval }),
    });
  }
  return { ...decision, rules };
}

/** The rule's fate for this request, or undefined when it does not target it. */
function fateOf(rule: PolicyRule, request: PolicyRequest): RuleFate | undefined {
  const decidedBy = (candidate: PolicyRule): PolicyDecision => evaluatePolicy({ version: 1, rules: [candidate] }, request);
  const { conditions, ...bare } = rule;
  if (decidedBy(bare).ruleId !== rule.id) return undefined;
  if (conditions?.timeWindow !== undefined && decidedBy({ ...bare, conditions: { timeWindow: conditions.timeWindow } }).ruleId !== rule.id) {
    return 'outside_time_window';
  }
  const full = decidedBy(rule);
  if (full.ruleId === rule.id) return 'applies';
  if (full.approval?.ruleId === rule.id) return 'approval_missing';
  // Only an allow rule's argsBytesMax is left that can make a targeting rule in its window not apply.
  return 'args_too_large';
}
