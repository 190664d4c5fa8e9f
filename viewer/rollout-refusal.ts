/**
 * The rollouts view's reading of a device the command policy kept out of a rollout
 * (`policy_refusal` on an execution of `GET /v1/rollouts`; docs/ota.md, "Rollouts and the command
 * policy"): the execution ended `canceled` and the device was told nothing, which its state alone
 * does not say (an operator's cancel looks the same). Pure, tested in Node.
 */
import { visibleText as v } from './visible-text.js';

export interface PolicyRefusalView {
  readonly code: string;
  readonly reason: string;
  readonly opcode: string;
  readonly rule_id?: string;
  /** The policy revision that decided (0: the built-in default). */
  readonly revision: number;
  /** With OTA_ROLLOUT_APPROVAL_REQUIRED, where the API gives it: what the allow rule waits for. */
  readonly approval?: { readonly count: number; readonly roles: readonly string[] };
}

/** Longest reason shown; the API's reasons are one line, but the page must stay readable whatever comes. */
export const refusalReasonCharsMax = 300;

/** One sentence for the device's row: who refused, why, by which rule and revision, and that the device was not told; the API's words through visibleText. */
export function policyRefusalText(refusal: PolicyRefusalView): string {
  const reason = v(refusal.reason.length > refusalReasonCharsMax ? `${refusal.reason.slice(0, refusalReasonCharsMax)}…` : refusal.reason);
  const approval = refusal.approval === undefined ? ''
    : `; needs ${v(refusal.approval.count)} approval${refusal.approval.count === 1 ? '' : 's'} by ${refusal.approval.roles.map(v).join(' or ')}`;
  const facts = [refusal.rule_id === undefined ? 'no rule allows it' : `rule ${v(refusal.rule_id)}`, v(refusal.opcode), `policy revision ${v(refusal.revision)}`];
  return `refused by the command policy: ${reason}${approval} (${facts.join(', ')}); the device was not notified`;
}

/** How many of a rollout's devices the policy refused, for the rollout's summary line (the device table is folded). */
export function policyRefusedCount(executions: ReadonlyArray<{ readonly policy_refusal?: PolicyRefusalView }>): number {
  return executions.filter((e) => e.policy_refusal !== undefined).length;
}
