import type { ErrorCode } from '../../core/errors/index.js';
import { canonicalize } from '../../core/protocol/canonical-json.js';
import type { JsonObject } from '../../core/protocol/json-value.js';
import { evaluatePolicy, type Policy, type PolicyActor, type PolicyRequest, type PolicyRole } from '../../core/protocol/policy.js';
import type { SignedCommand } from '../../core/protocol/messages/command.js';
import { policyRefusalCode } from '../control-plane/policy-facts.js';
import type { PolicyRevision } from '../control-plane/policy-store.js';
import type { Role } from '../control-plane/users.js';

/**
 * The command policy for rollouts (docs/ota.md, "Rollouts and the command policy"). A rollout
 * signs EXEC_STAGE_UPDATE and EXEC_COMMIT_UPDATE for each device, so each device is judged for
 * both by the same engine and facts as a command of the rollout's creator (evaluatePolicy, the
 * device's tags and posture, the rate counts, the creator's current role), when the rollout
 * starts and again each time an execution is about to be created: a policy revised mid-rollout,
 * a time window that closed, or a creator demoted or removed decides the devices notified after.
 *
 * A rule that allows the update only with approvals makes the rollout wait for them at its start
 * (rollout-approvals.ts); the approvals it started with are counted at each execution, as a
 * released command's are, so only a policy that asks more since refuses a device for them.
 *
 * EXEC_ROLLBACK_UPDATE is not judged: the rollback command only undoes this execution's own
 * update (a failed health check, a cancel after the commit), and a kernel whose watchdog is not
 * confirmed rolls back by itself anyway; a deny on it would only leave an unhealthy image running
 * longer.
 *
 * Rate limits: the rollout's kernel commands count against the policy's rate limits as commands
 * do. At the start every device is judged on the current counts (`gather`, nothing taken); when an
 * execution is about to be created its STAGE and COMMIT each take a place (`reserve`, the same
 * sliding-window counters as command admission, PolicyFacts.reserve), and a device whose place is
 * refused is refused like a denied one (COMMAND_RATE_LIMITED). Its places are given back when the
 * device is refused or its execution is not stored. Without this a "5 per hour" rule let one
 * operator start a 10,000-device rollout.
 */

/** What the gate reads: the current policy, the device facts the policy uses, the creator's current role. */
export interface RolloutPolicyPort {
  current(): Promise<PolicyRevision>;
  /** The request with the device's tags, posture and current rate counts (PolicyFacts.peek); reserves nothing. */
  gather(policy: Policy, base: PolicyRequest): Promise<PolicyRequest>;
  /** The same request, each rate limit's place taken for this command (PolicyFacts.reserve); `release` gives them back. */
  reserve(policy: Policy, base: PolicyRequest): Promise<{ readonly request: PolicyRequest; release(): Promise<void> }>;
  /** The user's role now, undefined when no user has this name (a removed creator's rollout notifies nobody more). */
  roleOf(name: string): Promise<Role | undefined>;
}

/** The kernel commands a rollout signs that the policy must allow, in the order they run. */
export type GatedCommand = Pick<SignedCommand, 'opcode' | 'args'>;

/** Why the policy refused one device, as its execution, its audit entry and the API show it. */
export interface PolicyRefusal {
  readonly code: ErrorCode;
  readonly reason: string;
  readonly opcode: string;
  readonly rule_id?: string;
  /** The policy revision that decided (0: the built-in default). */
  readonly revision: number;
  /** With OTA_ROLLOUT_APPROVAL_REQUIRED: what the allow rule waits for (a rollout waits for it at its start). */
  readonly approval?: { readonly count: number; readonly roles: readonly PolicyRole[] };
}

/** `release` (when places were taken): gives the device's rate-limit places back, for an execution that was not stored. */
export type DeviceVerdict = { readonly allowed: true; readonly release?: () => Promise<void> } | { readonly allowed: false; readonly refusal: PolicyRefusal };

export interface RolloutJudgement {
  /** The creator's role the devices were judged with; undefined when the creator is no user (every device refused). */
  readonly role: Role | undefined;
  readonly revision: number;
  readonly verdicts: ReadonlyMap<string, DeviceVerdict>;
}

/**
 * Judges devices for a rollout's commands: one policy read and one role read per call, then each
 * device. `places: 'take'` (an execution about to be created) takes each allowed device's
 * rate-limit places; 'read' (the default, the start's look at every device) takes none. A store
 * failure while taking throws, after giving back every place this call took (fail closed).
 */
export async function judgeRolloutDevices(port: RolloutPolicyPort, input: {
  readonly requester: string; readonly deviceIds: readonly string[]; readonly commands: readonly GatedCommand[]; readonly nowMs: number; readonly places?: 'read' | 'take';
  /** The approvals the rollout collected (docs/ota.md "Rollouts that need approvals"), counted as a released command's are. */
  readonly approvals?: readonly PolicyActor[];
}): Promise<RolloutJudgement> {
  const [{ policy, revision }, role] = await Promise.all([port.current(), port.roleOf(input.requester)]);
  const verdicts = new Map<string, DeviceVerdict>();
  try {
    for (const deviceId of input.deviceIds) {
      if (role === undefined) {
        // As a command released after approvals: a requester who is no longer a user gets nothing sent.
        verdicts.set(deviceId, refused({ code: 'COMMAND_POLICY_DENIED', reason: `the rollout's creator ${input.requester} is no longer a user`, opcode: input.commands[0]!.opcode, revision }));
        continue;
      }
      verdicts.set(deviceId, await judgeDevice(port, policy, revision, { name: input.requester, role }, deviceId, input));
    }
  } catch (error) {
    await releaseVerdicts(verdicts.values());
    throw error;
  }
  return { role, revision, verdicts };
}

/** Gives back the places of allowed verdicts (those not used for an execution); never throws. */
export async function releaseVerdicts(verdicts: Iterable<DeviceVerdict>): Promise<void> {
  await Promise.allSettled([...verdicts].map((verdict) => (verdict.allowed && verdict.release !== undefined ? verdict.release() : undefined)));
}

async function judgeDevice(
  port: RolloutPolicyPort, policy: Policy, revision: number, requester: { name: string; role: Role }, deviceId: string,
  input: { readonly commands: readonly GatedCommand[]; readonly nowMs: number; readonly places?: 'read' | 'take'; readonly approvals?: readonly PolicyActor[] },
): Promise<DeviceVerdict> {
  const taken: Array<() => Promise<void>> = [];
  const release = async () => { await Promise.allSettled(taken.map((give) => give())); };
  try {
    for (const command of input.commands) {
      const base: PolicyRequest = {
        actor: { id: requester.name, role: requester.role }, opcode: command.opcode, device: { id: deviceId }, nowMs: input.nowMs,
        argsBytes: Buffer.byteLength(canonicalize(command.args as JsonObject), 'utf8'),
        ...(input.approvals === undefined || input.approvals.length === 0 ? {} : { approvals: input.approvals }),
      };
      let request: PolicyRequest;
      if (input.places === 'take') {
        // Each signed command takes its place before the decision, as command admission does (two control planes cannot both take the last one).
        const reserved = await port.reserve(policy, base);
        taken.push(() => reserved.release());
        request = reserved.request;
      } else {
        request = await port.gather(policy, base);
      }
      const decision = evaluatePolicy(policy, request);
      if (decision.decision === 'allow') continue;
      // Refused: the places taken for this device's commands are given back, as for a command not admitted.
      await release();
      const ruleId = decision.approval?.ruleId ?? decision.ruleId ?? decision.blocked?.ruleId;
      // An allow that waits for approvals (more than the rollout has) is a refusal with its own code and the condition:
      // at the start the rollout waits for them; at an execution (the policy asks more since) the device is refused.
      const code: ErrorCode = decision.approval !== undefined ? 'OTA_ROLLOUT_APPROVAL_REQUIRED' : policyRefusalCode(decision);
      const approval = decision.approval === undefined ? {} : { approval: { count: decision.approval.count, roles: decision.approval.roles } };
      return refused({ code, reason: decision.reason, opcode: command.opcode, revision, ...(ruleId === undefined ? {} : { rule_id: ruleId }), ...approval });
    }
  } catch (error) {
    await release();
    throw error;
  }
  return taken.length === 0 ? { allowed: true } : { allowed: true, release };
}

function refused(refusal: PolicyRefusal): DeviceVerdict {
  return { allowed: false, refusal };
}

/**
 * A refused device's execution row keeps the refusal where a notice would be (notice_json), so
 * the view can show it and nothing ever pushes it to the device: canonical JSON with this one key.
 */
export function refusalNoticeJson(refusal: PolicyRefusal): string {
  return canonicalize({ policy_refusal: refusal as unknown as JsonObject });
}

/** The refusal stored by refusalNoticeJson, or undefined for an execution that was notified. */
export function storedRefusal(noticeJson: string): PolicyRefusal | undefined {
  if (!noticeJson.startsWith('{"policy_refusal":')) return undefined;
  return (JSON.parse(noticeJson) as { policy_refusal: PolicyRefusal }).policy_refusal;
}
