/**
 * The composer's reading of the policy's dry run (`POST /v1/policy/evaluate`, docs/policy.md
 * "Dry run"): what a create would get, said in one line. Pure, tested in Node.
 */
import { visibleText as v } from './visible-text.js';

export interface EvaluateAnswer {
  readonly policy_revision: number;
  readonly decision: 'allow' | 'deny';
  readonly reason: string;
  readonly rule_id?: string;
  readonly missing_approval?: { readonly rule_id: string; readonly count: number; readonly roles: readonly string[] };
  readonly device_refusal?: { readonly code: string; readonly message: string };
  readonly refusal_code?: string;
}

export type VerdictKind = 'allowed' | 'approval' | 'denied' | 'refused';

export interface Verdict {
  readonly kind: VerdictKind;
  /** One sentence for the operator; the API's words in it (a device's refusal, a rule's reason) through visibleText. */
  readonly text: string;
  /** The code a create would be refused with, when it would be. */
  readonly code?: string;
  readonly ruleId?: string;
}

export function verdictOf(answer: EvaluateAnswer): Verdict {
  const rule = answer.rule_id === undefined ? {} : { ruleId: answer.rule_id };
  if (answer.device_refusal !== undefined) {
    return { kind: 'refused', text: `refused before the policy: ${v(answer.device_refusal.message)}`, code: answer.device_refusal.code, ...rule };
  }
  if (answer.missing_approval !== undefined) {
    const a = answer.missing_approval;
    return {
      kind: 'approval', ruleId: a.rule_id,
      text: `needs ${v(a.count)} approval${a.count === 1 ? '' : 's'} by ${a.roles.map(v).join(' or ')} (rule ${v(a.rule_id)}): it will wait in the approvals inbox`,
    };
  }
  if (answer.decision === 'allow') return { kind: 'allowed', text: `allowed${answer.rule_id === undefined ? '' : ` by rule ${v(answer.rule_id)}`}`, ...rule };
  return {
    kind: 'denied', text: `denied: ${v(answer.reason)}${answer.rule_id === undefined ? '' : ` (rule ${v(answer.rule_id)})`}`,
    ...(answer.refusal_code === undefined ? {} : { code: answer.refusal_code }), ...rule,
  };
}

/** Devices a composer sends to at once when picked by tag: one command each, so the list is bounded. */
export const composerDevicesMax = 100;
