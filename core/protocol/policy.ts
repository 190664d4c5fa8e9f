import { SdcError } from '../errors/index.js';
import { compareSemVer, parseSemVer, semVerIn } from './semver.js';

/**
 * The policy engine: who may send which opcode to which device, and when.
 *
 * A policy is data (a JSON document, see docs/policy.md), checked once by `parsePolicy` and then
 * evaluated many times by `evaluatePolicy`. Evaluation is deny by default and deny-overrides:
 * any matching deny rule wins; otherwise a fully matching allow rule allows; otherwise the
 * answer is deny with reason 'no rule allows'. When several rules match, the one with the
 * smallest id (by UTF-16 code units) is reported, so the result never depends on rule order.
 * Pure: time comes in as `nowMs`, nothing is read from the environment.
 */

export const policyRoles = ['viewer', 'operator', 'approver', 'admin'] as const;
export type PolicyRole = (typeof policyRoles)[number];

export const policyFormatVersion = 1;

/** Every list, string and the rule count are bounded, so evaluation cost per request is bounded. */
export const policyLimits = Object.freeze({
  /** Rules in one policy; a fleet's policy has tens of rules, 256 leaves room without unbounded scans. */
  rulesMax: 256,
  /** Entries in one list (roles, opcodes, device ids, tags, approver roles). */
  listEntriesMax: 256,
  /** Length of ids, opcodes, device ids and tags in UTF-16 code units. */
  nameLengthMax: 128,
  /** Length of a rule's free-text description. */
  descriptionLengthMax: 512,
  /** Size of a policy given as JSON text, checked before parsing. */
  policyTextLengthMax: 262_144,
  /** Approvals attached to one request; multi-approval flows need a handful. */
  approvalsMax: 16,
  /** Approvals a rule may demand. */
  approvalCountMax: 8,
  /** A command's stated reason (ethics: `reasonRequired`), in UTF-16 code units; a sentence or two. */
  reasonLengthMax: 512,
  /** Commands one rate limit may allow per window. */
  rateLimitCountMax: 1_000_000,
  /** Shortest rate-limit window: the counters' buckets are a tenth of it, and a bucket is at least 100 ms. */
  rateLimitWindowMsMin: 1_000,
  /** Longest rate-limit window (one day): the counters live in the key/value store for about that long. */
  rateLimitWindowMsMax: 86_400_000,
  /** Compliance states one posture condition may list. */
  complianceStatesMax: 16,
});

/** Targets devices by exact id, by id prefix (`'lab-*'`), or by tag (groups are tags); `'*'` is every device. */
export type DeviceSelector = '*' | { readonly ids?: readonly string[]; readonly tags?: readonly string[] };

/**
 * Minutes of the day in which a rule applies: [startMinute, endMinute), in the zone given by
 * `utcOffsetMinutes` (default 0 = UTC). `startMinute > endMinute` wraps past midnight.
 */
export interface TimeWindow {
  readonly startMinute: number;
  readonly endMinute: number;
  readonly utcOffsetMinutes?: number;
  /** 0 = Sunday … 6 = Saturday, of the local day that contains `nowMs`. */
  readonly daysOfWeek?: readonly number[];
}

/** The action needs `count` approvals by distinct other people whose role is in `roles`. */
export interface ApprovalCondition {
  readonly count: number;
  readonly roles: readonly PolicyRole[];
}

/** What a rate limit counts per: each distinct combination of the named facts has its own count. */
export const rateLimitDimensions = ['actor', 'device', 'opcode'] as const;
export type RateLimitDimension = (typeof rateLimitDimensions)[number];

/**
 * At most `count` admitted commands that the rule targets, per `per` combination, in any
 * `windowMs`. On an allow rule: the rule stops allowing once `count` is reached. On a deny rule:
 * the rule denies once `count` is reached (a limit no allow rule can get round).
 */
export interface RateLimitCondition {
  readonly per: readonly RateLimitDimension[];
  readonly count: number;
  readonly windowMs: number;
}

/** The device's state an allow rule demands; a fact the request does not carry fails the condition (fail closed). */
export interface PostureCondition {
  /** The gateway holds a session with the device now. */
  readonly online?: boolean;
  /** The device's compliance state is one of these (the compliance engine's words, e.g. `compliant`). */
  readonly complianceStates?: readonly string[];
  /** The device's latest risk score (0-100) is strictly below this. */
  readonly riskScoreBelow?: number;
  /** The agent's reported version is at least this semantic version. */
  readonly agentVersionAtLeast?: string;
}

/**
 * Extra conditions; all must hold for the rule to apply. Deny rules may carry only `timeWindow`,
 * `quietHours` and `rateLimit`: the others describe the request or the device, and a deny that a
 * smaller argument or an unknown fact could escape would be no deny.
 */
export interface PolicyConditions {
  readonly argsBytesMax?: number;
  readonly timeWindow?: TimeWindow;
  readonly approval?: ApprovalCondition;
  /** Allow rules: the command must state why it is sent (`reason`); the reason is audited. */
  readonly reasonRequired?: boolean;
  readonly posture?: PostureCondition;
  readonly rateLimit?: RateLimitCondition;
  /** Deny rules: the window in which the devices it selects (a group's tag) take no commands. */
  readonly quietHours?: TimeWindow;
}

export interface PolicyRule {
  readonly id: string;
  readonly description?: string;
  readonly effect: 'allow' | 'deny';
  readonly roles: readonly PolicyRole[] | '*';
  readonly opcodes: readonly string[] | '*';
  readonly devices: DeviceSelector;
  readonly conditions?: PolicyConditions;
}

export interface Policy {
  /** Format version of the document; only 1 exists. */
  readonly version: 1;
  /** The author's revision counter, recorded with decisions; not interpreted. */
  readonly revision?: number;
  readonly rules: readonly PolicyRule[];
}

export interface PolicyActor {
  readonly id: string;
  readonly role: PolicyRole;
}

/** What the server knows of the device's state (docs/policy.md, "Posture"); absent facts are unknown. */
export interface DevicePosture {
  readonly online?: boolean;
  readonly complianceState?: string;
  readonly riskScore?: number;
  readonly agentVersion?: string;
}

export interface PolicyRequest {
  readonly actor: PolicyActor;
  readonly opcode: string;
  readonly device: { readonly id: string; readonly tags?: readonly string[]; readonly posture?: DevicePosture };
  /** The caller's notion of now, in Unix milliseconds; only time windows read it. */
  readonly nowMs: number;
  /** Size of the command's canonical arguments; unknown size fails `argsBytesMax` (fail closed). */
  readonly argsBytes?: number;
  /** Approvals already collected for this command. */
  readonly approvals?: readonly PolicyActor[];
  /** Why the operator sends the command (ethics: `reasonRequired`). */
  readonly reason?: string;
  /**
   * Per rate-limit key (`rateLimitsFor`), the commands admitted in the window before this one.
   * A key without a count fails closed: an allow rule does not allow, a deny rule denies.
   */
  readonly rateCounts?: Readonly<Record<string, number>>;
}

/** Which of a rule's conditions decided a deny the caller refuses with its own error code. */
export type PolicyBlock =
  | { readonly kind: 'quiet_hours'; readonly ruleId: string; readonly window: TimeWindow }
  | { readonly kind: 'rate_limit'; readonly ruleId: string; readonly limit: RateLimitCondition; readonly countInWindow: number | null }
  | { readonly kind: 'posture'; readonly ruleId: string; readonly field: PostureField }
  | { readonly kind: 'reason_required'; readonly ruleId: string };

export type PostureField = 'online' | 'complianceState' | 'riskScore' | 'agentVersion';

export interface PolicyDecision {
  readonly decision: 'allow' | 'deny';
  /** The rule that decided; absent when nothing matched. */
  readonly ruleId?: string;
  /**
   * Human-readable; the caller records it in the audit log and, on a deny, refuses the command
   * with COMMAND_POLICY_DENIED carrying it.
   */
  readonly reason: string;
  /** Set on a deny when an allow rule would apply once these approvals are collected. */
  readonly approval?: { readonly ruleId: string; readonly count: number; readonly roles: readonly PolicyRole[] };
  /** Set on a deny decided by quiet hours, a rate limit, the device's posture or a missing reason. */
  readonly blocked?: PolicyBlock;
}

export const noRuleAllowsReason = 'no rule allows';

// ---------------------------------------------------------------------------------------------
// Evaluation

export function evaluatePolicy(policy: Policy, request: PolicyRequest): PolicyDecision {
  checkRequest(request);
  let deny: { rule: PolicyRule; judgement: RuleJudgement } | undefined;
  let allowId: string | undefined;
  let nearMiss: { rule: PolicyRule; judgement: RuleJudgement } | undefined;
  for (const rule of policy.rules) {
    const judgement = judgeRule(rule, request);
    if (judgement.fate === 'applies') {
      if (rule.effect === 'deny' && (deny === undefined || rule.id < deny.rule.id)) deny = { rule, judgement };
      if (rule.effect === 'allow' && (allowId === undefined || rule.id < allowId)) allowId = rule.id;
    } else if (nearMissFates.has(judgement.fate) && (nearMiss === undefined || rule.id < nearMiss.rule.id)) {
      nearMiss = { rule, judgement };
    }
  }
  if (deny !== undefined) return denyDecision(deny.rule, deny.judgement);
  if (allowId !== undefined) return { decision: 'allow', ruleId: allowId, reason: `allowed by rule ${allowId}` };
  if (nearMiss !== undefined) return nearMissDecision(nearMiss.rule, nearMiss.judgement);
  return { decision: 'deny', reason: noRuleAllowsReason };
}

/**
 * What became of one rule for a request. `applies`: an allow rule allows, a deny rule denies.
 * The others say which condition stopped it, in the order they are checked: targeting, the time
 * windows, argsBytesMax, posture, the stated reason, the rate limit, approvals.
 */
export type RuleFate =
  | 'not_targeted' | 'applies' | 'outside_time_window' | 'outside_quiet_hours' | 'under_rate_limit'
  | 'args_too_large' | 'posture_failed' | 'reason_missing' | 'rate_limited' | 'approval_missing';

export interface RuleJudgement {
  readonly fate: RuleFate;
  /** For a rule with a rate limit that targets the request: its key and the count the request carried (null: none). */
  readonly rate?: { readonly key: string; readonly countInWindow: number | null };
  /** For `posture_failed`: the first posture field that failed. */
  readonly postureField?: PostureField;
}

/** Allow rules that target the request and fail only on something the caller can act on or wait for. */
const nearMissFates: ReadonlySet<RuleFate> = new Set(['posture_failed', 'reason_missing', 'rate_limited', 'approval_missing']);

/** The fate of one rule for a request; evaluatePolicy and policy-explain both judge rules with it. */
export function judgeRule(rule: PolicyRule, request: PolicyRequest): RuleJudgement {
  if (!targets(rule, request)) return { fate: 'not_targeted' };
  const conditions = rule.conditions ?? {};
  if (conditions.timeWindow !== undefined && !inTimeWindow(conditions.timeWindow, request.nowMs)) return { fate: 'outside_time_window' };
  if (conditions.quietHours !== undefined && !inTimeWindow(conditions.quietHours, request.nowMs)) return { fate: 'outside_quiet_hours' };
  const rate = conditions.rateLimit === undefined ? undefined : rateOf(rule, conditions.rateLimit, request);
  const overLimit = rate !== undefined && (rate.countInWindow === null || rate.countInWindow >= conditions.rateLimit!.count);
  const withRate = (fate: RuleFate): RuleJudgement => (rate === undefined ? { fate } : { fate, rate });
  if (rule.effect === 'deny') return withRate(rate === undefined || overLimit ? 'applies' : 'under_rate_limit');
  if (conditions.argsBytesMax !== undefined && !(request.argsBytes !== undefined && request.argsBytes <= conditions.argsBytesMax)) return withRate('args_too_large');
  if (conditions.posture !== undefined) {
    const postureField = failedPostureField(conditions.posture, request.device.posture ?? {});
    if (postureField !== undefined) return { ...withRate('posture_failed'), postureField };
  }
  if (conditions.reasonRequired === true && !hasReason(request)) return withRate('reason_missing');
  if (overLimit) return withRate('rate_limited');
  if (conditions.approval !== undefined && !approvalsSatisfy(conditions.approval, request)) return withRate('approval_missing');
  return withRate('applies');
}

function denyDecision(rule: PolicyRule, judgement: RuleJudgement): PolicyDecision {
  const conditions = rule.conditions ?? {};
  if (conditions.quietHours !== undefined) {
    return { decision: 'deny', ruleId: rule.id, reason: `quiet hours of rule ${rule.id} (${describeWindow(conditions.quietHours)})`, blocked: { kind: 'quiet_hours', ruleId: rule.id, window: conditions.quietHours } };
  }
  if (conditions.rateLimit !== undefined) {
    return {
      decision: 'deny', ruleId: rule.id, reason: `rate limit of rule ${rule.id} reached (${describeLimit(conditions.rateLimit)})`,
      blocked: { kind: 'rate_limit', ruleId: rule.id, limit: conditions.rateLimit, countInWindow: judgement.rate?.countInWindow ?? null },
    };
  }
  return { decision: 'deny', ruleId: rule.id, reason: `denied by rule ${rule.id}` };
}

function nearMissDecision(rule: PolicyRule, judgement: RuleJudgement): PolicyDecision {
  const conditions = rule.conditions ?? {};
  const deny = (reason: string, blocked: PolicyBlock): PolicyDecision => ({ decision: 'deny', reason, blocked });
  switch (judgement.fate) {
    case 'posture_failed':
      return deny(`device posture (${judgement.postureField}) fails rule ${rule.id}`, { kind: 'posture', ruleId: rule.id, field: judgement.postureField! });
    case 'reason_missing':
      return deny(`rule ${rule.id} requires a stated reason`, { kind: 'reason_required', ruleId: rule.id });
    case 'rate_limited':
      return deny(`rate limit of rule ${rule.id} reached (${describeLimit(conditions.rateLimit!)})`, { kind: 'rate_limit', ruleId: rule.id, limit: conditions.rateLimit!, countInWindow: judgement.rate?.countInWindow ?? null });
    default: {
      const approval = conditions.approval!;
      return { decision: 'deny', reason: `approval required by rule ${rule.id}`, approval: { ruleId: rule.id, count: approval.count, roles: approval.roles } };
    }
  }
}

function describeLimit(limit: RateLimitCondition): string {
  return `${limit.count} per ${limit.windowMs} ms per ${limit.per.join('+')}`;
}

function describeWindow(window: TimeWindow): string {
  const clock = (minute: number) => `${String(Math.floor(minute / 60)).padStart(2, '0')}:${String(minute % 60).padStart(2, '0')}`;
  const offset = window.utcOffsetMinutes ?? 0;
  const zone = `UTC${offset < 0 ? '-' : '+'}${clock(Math.abs(offset))}`;
  return `${clock(window.startMinute)}-${clock(window.endMinute)} ${zone}${window.daysOfWeek === undefined ? '' : ` days ${window.daysOfWeek.join(',')}`}`;
}

/** The key under which a rate-limited rule counts this request: the rule, its window and the facts it counts per. */
export function rateLimitKey(rule: PolicyRule, limit: RateLimitCondition, request: PolicyRequest): string {
  const per = (dimension: RateLimitDimension, value: string): string | null => (limit.per.includes(dimension) ? value : null);
  return JSON.stringify([rule.id, limit.windowMs, per('actor', request.actor.id), per('device', request.device.id), per('opcode', request.opcode)]);
}

function rateOf(rule: PolicyRule, limit: RateLimitCondition, request: PolicyRequest): { key: string; countInWindow: number | null } {
  const key = rateLimitKey(rule, limit, request);
  const count = request.rateCounts !== undefined && Object.hasOwn(request.rateCounts, key) ? request.rateCounts[key]! : null;
  return { key, countInWindow: count };
}

/** A rate limit a request is counted against: its key, and the rule's limit. */
export interface RateLimitUse {
  readonly key: string;
  readonly ruleId: string;
  readonly limit: RateLimitCondition;
}

/**
 * The rate limits that count this request: every rule with a `rateLimit` that targets it and
 * whose time windows hold. The caller reads (or reserves) these counts, passes them as
 * `rateCounts`, and keeps the reservation only when the command is admitted.
 */
export function rateLimitsFor(policy: Policy, request: PolicyRequest): RateLimitUse[] {
  const uses: RateLimitUse[] = [];
  for (const rule of policy.rules) {
    const limit = rule.conditions?.rateLimit;
    if (limit === undefined || !targets(rule, request)) continue;
    const { timeWindow, quietHours } = rule.conditions!;
    if (timeWindow !== undefined && !inTimeWindow(timeWindow, request.nowMs)) continue;
    if (quietHours !== undefined && !inTimeWindow(quietHours, request.nowMs)) continue;
    uses.push({ key: rateLimitKey(rule, limit, request), ruleId: rule.id, limit });
  }
  return uses;
}

/**
 * The policy as a device enforces it (its policy bundle): without the conditions only the control
 * plane can judge, which it judged at admission. A device holds no rate counts, no posture of its
 * own as the control plane sees it and no reason, and would otherwise fail them closed: every
 * command a rate-limited, posture or reason rule allows would be refused on the device, and a
 * deny rule's cap would deny everything it targets. So allow rules lose `rateLimit`, `posture` and
 * `reasonRequired`, and deny rules that carry a `rateLimit` are left out (a cap applies only once
 * reached, which only the shared counters know). Time windows, quiet hours, argument sizes and
 * approvals stay: the device can judge those. The result allows at least what the full policy
 * allows with any facts (a property test checks this), so the device never refuses a command the
 * control plane admitted for these conditions.
 */
export function devicePolicyOf(policy: Policy): Policy {
  const rules: PolicyRule[] = [];
  for (const rule of policy.rules) {
    const conditions = rule.conditions;
    if (conditions === undefined) {
      rules.push(rule);
      continue;
    }
    if (rule.effect === 'deny' && conditions.rateLimit !== undefined) continue;
    const { rateLimit: _rate, posture: _posture, reasonRequired: _reason, ...deviceConditions } = conditions;
    rules.push({ ...rule, conditions: deviceConditions });
  }
  return { ...policy, rules };
}

/** Whether any rule demands posture facts, so the caller gathers them only when they can matter. */
export function policyUsesPosture(policy: Policy): boolean {
  return policy.rules.some((rule) => rule.conditions?.posture !== undefined);
}

/** Whether any rule selects devices by tag: only then can a device's tags change a decision (selectsDevice). */
export function policyUsesTags(policy: Policy): boolean {
  return policy.rules.some((rule) => rule.devices !== '*' && (rule.devices.tags?.length ?? 0) > 0);
}

function failedPostureField(condition: PostureCondition, posture: DevicePosture): PostureField | undefined {
  if (condition.online !== undefined && posture.online !== condition.online) return 'online';
  if (condition.complianceStates !== undefined && !(posture.complianceState !== undefined && condition.complianceStates.includes(posture.complianceState))) return 'complianceState';
  if (condition.riskScoreBelow !== undefined && !(posture.riskScore !== undefined && posture.riskScore < condition.riskScoreBelow)) return 'riskScore';
  if (condition.agentVersionAtLeast !== undefined) {
    const reported = posture.agentVersion === undefined ? undefined : semVerIn(posture.agentVersion);
    const wanted = parseSemVer(condition.agentVersionAtLeast);
    if (reported === undefined || wanted === undefined || compareSemVer(reported, wanted) < 0) return 'agentVersion';
  }
  return undefined;
}

function hasReason(request: PolicyRequest): boolean {
  return request.reason !== undefined && request.reason.trim().length > 0;
}

function targets(rule: PolicyRule, request: PolicyRequest): boolean {
  if (rule.roles !== '*' && !rule.roles.includes(request.actor.role)) return false;
  if (rule.opcodes !== '*' && !rule.opcodes.includes(request.opcode)) return false;
  return selectsDevice(rule.devices, request.device);
}

function selectsDevice(selector: DeviceSelector, device: PolicyRequest['device']): boolean {
  if (selector === '*') return true;
  for (const pattern of selector.ids ?? []) {
    if (pattern.endsWith('*') ? device.id.startsWith(pattern.slice(0, -1)) : device.id === pattern) return true;
  }
  const tags = device.tags ?? [];
  return (selector.tags ?? []).some((tag) => tags.includes(tag));
}

const minuteMs = 60_000;
const dayMs = 86_400_000;
/** 1970-01-01 was a Thursday. */
const epochDayOfWeek = 4;

function inTimeWindow(window: TimeWindow, nowMs: number): boolean {
  const localMs = nowMs + (window.utcOffsetMinutes ?? 0) * minuteMs;
  const dayIndex = Math.floor(localMs / dayMs);
  const minute = Math.floor((localMs - dayIndex * dayMs) / minuteMs);
  if (window.daysOfWeek !== undefined) {
    const dayOfWeek = (((dayIndex + epochDayOfWeek) % 7) + 7) % 7;
    if (!window.daysOfWeek.includes(dayOfWeek)) return false;
  }
  const { startMinute, endMinute } = window;
  return startMinute < endMinute
    ? minute >= startMinute && minute < endMinute
    : minute >= startMinute || minute < endMinute;
}

function approvalsSatisfy(condition: ApprovalCondition, request: PolicyRequest): boolean {
  const approvers = new Set<string>();
  for (const approval of request.approvals ?? []) {
    // Nobody approves their own command.
    if (approval.id !== request.actor.id && condition.roles.includes(approval.role)) approvers.add(approval.id);
  }
  return approvers.size >= condition.count;
}

function checkRequest(request: PolicyRequest): void {
  const bad = (field: string): never => {
    throw new SdcError('POLICY_REQUEST_INVALID', `policy request field ${field} is malformed`, { path: field });
  };
  if (!isRecord(request)) bad('$');
  if (!isRecord(request.actor)) bad('actor');
  if (!isName(request.actor.id)) bad('actor.id');
  if (!isRole(request.actor.role)) bad('actor.role');
  if (typeof request.opcode !== 'string' || request.opcode.length === 0) bad('opcode');
  if (!isRecord(request.device)) bad('device');
  if (!isName(request.device.id)) bad('device.id');
  const tags: unknown = request.device.tags;
  if (tags !== undefined && !(Array.isArray(tags) && tags.length <= policyLimits.listEntriesMax && tags.every(isName))) bad('device.tags');
  if (typeof request.nowMs !== 'number' || !Number.isFinite(request.nowMs)) bad('nowMs');
  const argsBytes: unknown = request.argsBytes;
  if (argsBytes !== undefined && !(Number.isSafeInteger(argsBytes) && (argsBytes as number) >= 0)) bad('argsBytes');
  const approvals: unknown = request.approvals;
  if (approvals !== undefined) {
    if (!Array.isArray(approvals) || approvals.length > policyLimits.approvalsMax) bad('approvals');
    (approvals as unknown[]).forEach((approval, index) => {
      if (!isRecord(approval) || !isName(approval.id) || !isRole(approval.role)) bad(`approvals[${index}]`);
    });
  }
  const reason: unknown = request.reason;
  if (reason !== undefined && !(typeof reason === 'string' && reason.length <= policyLimits.reasonLengthMax)) bad('reason');
  checkRateCounts(request.rateCounts, bad);
  checkPosture(request.device.posture, bad);
}

function checkRateCounts(counts: unknown, bad: (field: string) => never): void {
  if (counts === undefined) return;
  if (!isRecord(counts) || Object.keys(counts).length > policyLimits.rulesMax) bad('rateCounts');
  for (const [key, count] of Object.entries(counts as Record<string, unknown>)) {
    if (!Number.isSafeInteger(count) || (count as number) < 0) bad(`rateCounts[${JSON.stringify(key).slice(0, 200)}]`);
  }
}

function checkPosture(posture: unknown, bad: (field: string) => never): void {
  if (posture === undefined) return;
  if (!isRecord(posture)) bad('device.posture');
  const { online, complianceState, riskScore, agentVersion } = posture as Record<string, unknown>;
  if (online !== undefined && typeof online !== 'boolean') bad('device.posture.online');
  if (complianceState !== undefined && !isName(complianceState)) bad('device.posture.complianceState');
  if (riskScore !== undefined && !(typeof riskScore === 'number' && Number.isFinite(riskScore))) bad('device.posture.riskScore');
  if (agentVersion !== undefined && !isName(agentVersion)) bad('device.posture.agentVersion');
}

// ---------------------------------------------------------------------------------------------
// Parsing

/**
 * Validates a policy document (a parsed JSON value, or JSON text) and returns a frozen copy.
 * Refuses with POLICY_INVALID / POLICY_TOO_LARGE / POLICY_UNSUPPORTED_VERSION; `details.path`
 * names the bad field, e.g. `rules[2].conditions.timeWindow.endMinute`.
 */
export function parsePolicy(document: unknown): Policy {
  let value = document;
  if (typeof document === 'string') {
    if (document.length > policyLimits.policyTextLengthMax) {
      throw new SdcError('POLICY_TOO_LARGE', `policy text exceeds ${policyLimits.policyTextLengthMax} characters`, { path: '$' });
    }
    try {
      value = JSON.parse(document) as unknown;
    } catch (error) {
      throw new SdcError('POLICY_INVALID', 'policy text is not valid JSON', { path: '$' }, { cause: error });
    }
  }
  const doc = expectObject(value, '$', ['version', 'revision', 'rules']);
  if (doc.version !== policyFormatVersion) {
    if (typeof doc.version === 'number') {
      throw new SdcError('POLICY_UNSUPPORTED_VERSION', `policy format version ${doc.version} is not supported`, { path: 'version' });
    }
    invalid('version', `must be ${policyFormatVersion}`);
  }
  const revision = doc.revision === undefined ? undefined : expectInteger(doc.revision, 'revision', 0, Number.MAX_SAFE_INTEGER);
  const rawRules = expectArray(doc.rules, 'rules', policyLimits.rulesMax);
  const rules = rawRules.map((rule, index) => parseRule(rule, `rules[${index}]`));
  const seen = new Set<string>();
  rules.forEach((rule, index) => {
    if (seen.has(rule.id)) invalid(`rules[${index}].id`, `duplicate rule id ${rule.id}`);
    seen.add(rule.id);
  });
  return deepFreeze({ version: policyFormatVersion, ...(revision === undefined ? {} : { revision }), rules });
}

function parseRule(value: unknown, path: string): PolicyRule {
  const raw = expectObject(value, path, ['id', 'description', 'effect', 'roles', 'opcodes', 'devices', 'conditions']);
  const id = expectName(raw.id, `${path}.id`);
  if (raw.effect !== 'allow' && raw.effect !== 'deny') invalid(`${path}.effect`, "must be 'allow' or 'deny'");
  const effect = raw.effect as 'allow' | 'deny';
  const rule: {
    id: string; description?: string; effect: 'allow' | 'deny'; roles: PolicyRole[] | '*';
    opcodes: string[] | '*'; devices: DeviceSelector; conditions?: PolicyConditions;
  } = {
    id,
    effect,
    roles: raw.roles === '*' ? '*' : expectRoles(raw.roles, `${path}.roles`),
    opcodes: raw.opcodes === '*' ? '*' : expectList(raw.opcodes, `${path}.opcodes`, expectOpcode),
    devices: parseDeviceSelector(raw.devices, `${path}.devices`),
  };
  if (raw.description !== undefined) {
    if (typeof raw.description !== 'string' || raw.description.length > policyLimits.descriptionLengthMax) {
      invalid(`${path}.description`, `must be a string of at most ${policyLimits.descriptionLengthMax} characters`);
    }
    rule.description = raw.description as string;
  }
  if (raw.conditions !== undefined) rule.conditions = parseConditions(raw.conditions, `${path}.conditions`, effect);
  return rule;
}

function parseDeviceSelector(value: unknown, path: string): DeviceSelector {
  if (value === '*') return '*';
  const raw = expectObject(value, path, ['ids', 'tags']);
  const selector: { ids?: string[]; tags?: string[] } = {};
  if (raw.ids !== undefined) selector.ids = expectList(raw.ids, `${path}.ids`, expectDevicePattern);
  if (raw.tags !== undefined) selector.tags = expectList(raw.tags, `${path}.tags`, expectName);
  if ((selector.ids?.length ?? 0) + (selector.tags?.length ?? 0) === 0) {
    invalid(path, "selects no device; use '*' for every device");
  }
  return selector;
}

/** Conditions a deny rule may carry: the others a requester could escape by changing the request, or by the device hiding a fact. */
const denyConditionKeys: ReadonlySet<string> = new Set(['timeWindow', 'quietHours', 'rateLimit']);
/** Only meaningful on deny rules: on an allow rule, quiet hours would be a time window turned inside out. */
const denyOnlyConditionKeys: ReadonlySet<string> = new Set(['quietHours']);

function parseConditions(value: unknown, path: string, effect: 'allow' | 'deny'): PolicyConditions {
  const raw = expectObject(value, path, ['argsBytesMax', 'timeWindow', 'approval', 'reasonRequired', 'posture', 'rateLimit', 'quietHours']);
  for (const key of Object.keys(raw)) {
    if (effect === 'deny' && !denyConditionKeys.has(key)) invalid(`${path}.${key}`, 'is only allowed on allow rules');
    if (effect === 'allow' && denyOnlyConditionKeys.has(key)) invalid(`${path}.${key}`, 'is only allowed on deny rules');
  }
  const conditions: {
    argsBytesMax?: number; timeWindow?: TimeWindow; approval?: ApprovalCondition; reasonRequired?: boolean;
    posture?: PostureCondition; rateLimit?: RateLimitCondition; quietHours?: TimeWindow;
  } = {};
  if (raw.argsBytesMax !== undefined) conditions.argsBytesMax = expectInteger(raw.argsBytesMax, `${path}.argsBytesMax`, 0, Number.MAX_SAFE_INTEGER);
  if (raw.timeWindow !== undefined) conditions.timeWindow = parseTimeWindow(raw.timeWindow, `${path}.timeWindow`);
  if (raw.quietHours !== undefined) conditions.quietHours = parseTimeWindow(raw.quietHours, `${path}.quietHours`);
  if (raw.approval !== undefined) {
    const approval = expectObject(raw.approval, `${path}.approval`, ['count', 'roles']);
    conditions.approval = {
      count: expectInteger(approval.count, `${path}.approval.count`, 1, policyLimits.approvalCountMax),
      roles: expectRoles(approval.roles, `${path}.approval.roles`),
    };
  }
  if (raw.reasonRequired !== undefined) {
    // Only `true`: `false` would read as a way to waive a reason another rule demands, which it is not.
    if (raw.reasonRequired !== true) invalid(`${path}.reasonRequired`, 'must be true (leave it out when no reason is required)');
    conditions.reasonRequired = true;
  }
  if (raw.posture !== undefined) conditions.posture = parsePosture(raw.posture, `${path}.posture`);
  if (raw.rateLimit !== undefined) conditions.rateLimit = parseRateLimit(raw.rateLimit, `${path}.rateLimit`);
  return conditions;
}

function parseRateLimit(value: unknown, path: string): RateLimitCondition {
  const raw = expectObject(value, path, ['per', 'count', 'windowMs']);
  const per = expectList(raw.per, `${path}.per`, (dimension, dimensionPath) => {
    if (typeof dimension !== 'string' || !(rateLimitDimensions as readonly string[]).includes(dimension)) {
      invalid(dimensionPath, `must be one of ${rateLimitDimensions.join(', ')}`);
    }
    return dimension as RateLimitDimension;
  });
  if (per.length === 0) invalid(`${path}.per`, 'must name at least one of actor, device, opcode');
  per.forEach((dimension, index) => {
    if (per.indexOf(dimension) !== index) invalid(`${path}.per[${index}]`, `names ${dimension} twice`);
  });
  return {
    per,
    count: expectInteger(raw.count, `${path}.count`, 1, policyLimits.rateLimitCountMax),
    windowMs: expectInteger(raw.windowMs, `${path}.windowMs`, policyLimits.rateLimitWindowMsMin, policyLimits.rateLimitWindowMsMax),
  };
}

function parsePosture(value: unknown, path: string): PostureCondition {
  const raw = expectObject(value, path, ['online', 'complianceStates', 'riskScoreBelow', 'agentVersionAtLeast']);
  const posture: { online?: boolean; complianceStates?: string[]; riskScoreBelow?: number; agentVersionAtLeast?: string } = {};
  if (raw.online !== undefined) {
    if (typeof raw.online !== 'boolean') invalid(`${path}.online`, 'must be true or false');
    posture.online = raw.online as boolean;
  }
  if (raw.complianceStates !== undefined) {
    const states = expectArray(raw.complianceStates, `${path}.complianceStates`, policyLimits.complianceStatesMax);
    posture.complianceStates = states.map((state, index) => expectName(state, `${path}.complianceStates[${index}]`));
    if (posture.complianceStates.length === 0) invalid(`${path}.complianceStates`, 'must name at least one state');
  }
  if (raw.riskScoreBelow !== undefined) {
    // Risk scores are 0-100 (core/protocol/risk-score.ts); a threshold outside (0, 100] is always or never met.
    if (typeof raw.riskScoreBelow !== 'number' || !Number.isFinite(raw.riskScoreBelow) || raw.riskScoreBelow <= 0 || raw.riskScoreBelow > 100) {
      invalid(`${path}.riskScoreBelow`, 'must be a number above 0 and at most 100');
    }
    posture.riskScoreBelow = raw.riskScoreBelow as number;
  }
  if (raw.agentVersionAtLeast !== undefined) {
    if (typeof raw.agentVersionAtLeast !== 'string' || parseSemVer(raw.agentVersionAtLeast) === undefined) {
      invalid(`${path}.agentVersionAtLeast`, 'must be a semantic version MAJOR.MINOR.PATCH[-PRERELEASE]');
    }
    posture.agentVersionAtLeast = raw.agentVersionAtLeast as string;
  }
  if (Object.keys(posture).length === 0) invalid(path, 'must name at least one of online, complianceStates, riskScoreBelow, agentVersionAtLeast');
  return posture;
}

function parseTimeWindow(value: unknown, path: string): TimeWindow {
  const raw = expectObject(value, path, ['startMinute', 'endMinute', 'utcOffsetMinutes', 'daysOfWeek']);
  const startMinute = expectInteger(raw.startMinute, `${path}.startMinute`, 0, 1439);
  const endMinute = expectInteger(raw.endMinute, `${path}.endMinute`, 0, 1440);
  if (startMinute === endMinute) invalid(`${path}.endMinute`, 'must differ from startMinute (an empty window never applies)');
  const window: { startMinute: number; endMinute: number; utcOffsetMinutes?: number; daysOfWeek?: number[] } = { startMinute, endMinute };
  // Real zones span UTC-12:00 … UTC+14:00.
  if (raw.utcOffsetMinutes !== undefined) window.utcOffsetMinutes = expectInteger(raw.utcOffsetMinutes, `${path}.utcOffsetMinutes`, -720, 840);
  if (raw.daysOfWeek !== undefined) {
    window.daysOfWeek = expectList(raw.daysOfWeek, `${path}.daysOfWeek`, (day, dayPath) => expectInteger(day, dayPath, 0, 6));
    if (window.daysOfWeek.length === 0) invalid(`${path}.daysOfWeek`, 'must name at least one day');
  }
  return window;
}

function invalid(path: string, problem: string): never {
  throw new SdcError('POLICY_INVALID', `policy field ${path} ${problem}`, { path });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function expectObject(value: unknown, path: string, allowed: readonly string[]): Record<string, unknown> {
  if (!isRecord(value)) invalid(path, 'must be an object');
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) invalid(path === '$' ? key : `${path}.${key}`, 'is not a known field');
  }
  return value;
}

function expectArray(value: unknown, path: string, lengthMax: number): unknown[] {
  if (!Array.isArray(value)) invalid(path, 'must be an array');
  if (value.length > lengthMax) {
    throw new SdcError('POLICY_TOO_LARGE', `policy field ${path} has more than ${lengthMax} entries`, { path });
  }
  return value as unknown[];
}

function expectList<T>(value: unknown, path: string, item: (value: unknown, path: string) => T): T[] {
  return expectArray(value, path, policyLimits.listEntriesMax).map((entry, index) => item(entry, `${path}[${index}]`));
}

function expectInteger(value: unknown, path: string, min: number, max: number): number {
  if (!Number.isSafeInteger(value) || (value as number) < min || (value as number) > max) {
    invalid(path, `must be an integer in ${min}..${max}`);
  }
  return value as number;
}

function isName(value: unknown): value is string {
  // Control characters are refused so names print safely in logs and audit reasons.
  return typeof value === 'string' && value.length > 0 && value.length <= policyLimits.nameLengthMax && !/[\u0000-\u001f\u007f]/.test(value);
}

function expectName(value: unknown, path: string): string {
  if (!isName(value)) invalid(path, `must be a non-empty string of at most ${policyLimits.nameLengthMax} printable characters`);
  if (value.includes('*')) invalid(path, "must not contain '*'");
  return value;
}

function expectDevicePattern(value: unknown, path: string): string {
  if (!isName(value)) invalid(path, `must be a non-empty string of at most ${policyLimits.nameLengthMax} printable characters`);
  if (value.slice(0, -1).includes('*')) invalid(path, "may contain '*' only as its last character (a prefix match)");
  return value;
}

function expectOpcode(value: unknown, path: string): string {
  if (typeof value !== 'string' || !/^[A-Z][A-Z0-9_]{0,63}$/.test(value)) invalid(path, "must be an opcode name (UPPER_SNAKE) or the list must be '*'");
  return value;
}

function isRole(value: unknown): value is PolicyRole {
  return typeof value === 'string' && (policyRoles as readonly string[]).includes(value);
}

function expectRoles(value: unknown, path: string): PolicyRole[] {
  return expectList(value, path, (role, rolePath) => {
    if (!isRole(role)) invalid(rolePath, `must be one of ${policyRoles.join(', ')}`);
    return role;
  });
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const member of Object.values(value)) deepFreeze(member);
    Object.freeze(value);
  }
  return value;
}

// ---------------------------------------------------------------------------------------------
// Default policy

export const readOnlyOpcodes = ['EXEC_PING_KERNEL', 'EXEC_GET_PROCESS_LIST', 'EXEC_GET_STATUS', 'EXEC_LOCK_SCREEN'] as const;
export const updateOpcodes = ['EXEC_STAGE_UPDATE', 'EXEC_COMMIT_UPDATE', 'EXEC_ROLLBACK_UPDATE'] as const;

/**
 * The policy a fresh installation runs with. Roles are not implicitly ordered by the engine;
 * the hierarchy viewer < operator < approver < admin is spelled out here rule by rule:
 * viewers send nothing, operators (and approvers) the everyday opcodes, approvers the update
 * opcodes, admins everything.
 */
export const defaultPolicy: Policy = parsePolicy({
  version: 1,
  revision: 1,
  rules: [
    {
      id: 'operate-basic',
      description: 'Everyday diagnostics and screen lock',
      effect: 'allow',
      roles: ['operator', 'approver'],
      opcodes: [...readOnlyOpcodes],
      devices: '*',
    },
    {
      id: 'collect-artifacts',
      description: 'A device\'s logs or a screenshot, sealed to the control plane (docs/artifacts.md)',
      effect: 'allow',
      roles: ['operator', 'approver'],
      opcodes: ['EXEC_COLLECT_ARTIFACT'],
      devices: '*',
    },
    {
      id: 'approve-updates',
      description: 'Staging, committing and rolling back updates',
      effect: 'allow',
      roles: ['approver'],
      opcodes: [...updateOpcodes],
      devices: '*',
    },
    {
      id: 'admin-all',
      description: 'Administrators may send every opcode',
      effect: 'allow',
      roles: ['admin'],
      opcodes: '*',
      devices: '*',
    },
  ],
});
