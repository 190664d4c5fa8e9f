import {
  evaluatePolicy, judgeRule,
  type Policy, type PolicyDecision, type PolicyRequest, type PostureCondition, type PostureField, type RateLimitCondition, type RuleFate as EngineRuleFate, type TimeWindow,
} from './policy.js';

/**
 * Why a policy decides what it decides (the dry run, `POST /v1/policy/evaluate`): the engine's
 * decision, unchanged, plus every rule that targets the request (its roles, opcodes and devices
 * match) and what became of it. Each rule's fate comes from the engine's own `judgeRule`, the
 * function `evaluatePolicy` decides with, so this explanation can never disagree with it about
 * how a condition is judged. Pure; one judgement per rule.
 */

/**
 * Applied (an allow rule that allows, a deny rule that denies), or which condition stopped it:
 * outside its time window or quiet hours, a deny rule's rate limit not reached yet, arguments
 * too large, the device's posture, a missing reason, the rate limit reached, approvals missing.
 */
export type RuleFate = Exclude<EngineRuleFate, 'not_targeted'>;

export interface RateLimitExplanation extends RateLimitCondition {
  /** Commands admitted in the window before this one; null when the caller gave no count. */
  readonly countInWindow: number | null;
  /** How many more this window allows (0 when reached, null when unknown). */
  readonly remaining: number | null;
}

export interface RuleExplanation {
  readonly id: string;
  readonly effect: 'allow' | 'deny';
  readonly fate: RuleFate;
  readonly timeWindow?: TimeWindow;
  readonly quietHours?: TimeWindow;
  readonly approval?: { readonly count: number; readonly roles: readonly string[] };
  readonly rateLimit?: RateLimitExplanation;
  readonly posture?: PostureCondition;
  /** For `posture_failed`: the first posture field that failed. */
  readonly postureField?: PostureField;
  readonly reasonRequired?: true;
}

export interface PolicyExplanation extends PolicyDecision {
  /** The rules that target the request, in the policy's order. */
  readonly rules: readonly RuleExplanation[];
}

export function explainPolicy(policy: Policy, request: PolicyRequest): PolicyExplanation {
  const decision = evaluatePolicy(policy, request);
  const rules: RuleExplanation[] = [];
  for (const rule of policy.rules) {
    const judgement = judgeRule(rule, request);
    if (judgement.fate === 'not_targeted') continue;
    const conditions = rule.conditions ?? {};
    const rate = judgement.rate;
    const limit = conditions.rateLimit;
    rules.push({
      id: rule.id, effect: rule.effect, fate: judgement.fate,
      ...(conditions.timeWindow === undefined ? {} : { timeWindow: conditions.timeWindow }),
      ...(conditions.quietHours === undefined ? {} : { quietHours: conditions.quietHours }),
      ...(conditions.approval === undefined ? {} : { approval: conditions.approval }),
      ...(limit === undefined || rate === undefined ? {} : {
        rateLimit: { ...limit, countInWindow: rate.countInWindow, remaining: rate.countInWindow === null ? null : Math.max(0, limit.count - rate.countInWindow) },
      }),
      ...(conditions.posture === undefined ? {} : { posture: conditions.posture }),
      ...(judgement.postureField === undefined ? {} : { postureField: judgement.postureField }),
      ...(conditions.reasonRequired === true ? { reasonRequired: true as const } : {}),
    });
  }
  return { ...decision, rules };
}
