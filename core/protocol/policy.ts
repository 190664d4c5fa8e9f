import { SdcError } from '../errors/index.js';

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

/** Extra conditions; all must hold for the rule to apply. Deny rules may only carry `timeWindow`. */
export interface PolicyConditions {
  readonly argsBytesMax?: number;
  readonly timeWindow?: TimeWindow;
  readonly approval?: ApprovalCondition;
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

export interface PolicyRequest {
  readonly actor: PolicyActor;
  readonly opcode: string;
  readonly device: { readonly id: string; readonly tags?: readonly string[] };
  /** The caller's notion of now, in Unix milliseconds; only time windows read it. */
  readonly nowMs: number;
  /** Size of the command's canonical arguments; unknown size fails `argsBytesMax` (fail closed). */
  readonly argsBytes?: number;
  /** Approvals already collected for this command. */
  readonly approvals?: readonly PolicyActor[];
}

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
}

export const noRuleAllowsReason = 'no rule allows';

// ---------------------------------------------------------------------------------------------
// Evaluation

export function evaluatePolicy(policy: Policy, request: PolicyRequest): PolicyDecision {
  checkRequest(request);
  let denyId: string | undefined;
  let allowId: string | undefined;
  let pending: PolicyRule | undefined;
  for (const rule of policy.rules) {
    if (!targets(rule, request)) continue;
    const conditions = rule.conditions ?? {};
    if (conditions.timeWindow !== undefined && !inTimeWindow(conditions.timeWindow, request.nowMs)) continue;
    if (rule.effect === 'deny') {
      if (denyId === undefined || rule.id < denyId) denyId = rule.id;
      continue;
    }
    if (conditions.argsBytesMax !== undefined && !(request.argsBytes !== undefined && request.argsBytes <= conditions.argsBytesMax)) continue;
    if (conditions.approval !== undefined && !approvalsSatisfy(conditions.approval, request)) {
      if (pending === undefined || rule.id < pending.id) pending = rule;
      continue;
    }
    if (allowId === undefined || rule.id < allowId) allowId = rule.id;
  }
  if (denyId !== undefined) return { decision: 'deny', ruleId: denyId, reason: `denied by rule ${denyId}` };
  if (allowId !== undefined) return { decision: 'allow', ruleId: allowId, reason: `allowed by rule ${allowId}` };
  const approval = pending?.conditions?.approval;
  if (pending !== undefined && approval !== undefined) {
    return {
      decision: 'deny',
      reason: `approval required by rule ${pending.id}`,
      approval: { ruleId: pending.id, count: approval.count, roles: approval.roles },
    };
  }
  return { decision: 'deny', reason: noRuleAllowsReason };
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

function parseConditions(value: unknown, path: string, effect: 'allow' | 'deny'): PolicyConditions {
  const raw = expectObject(value, path, ['argsBytesMax', 'timeWindow', 'approval']);
  // A deny rule that only applies to small arguments or to unapproved commands would make a
  // deny easier to escape by changing the request; deny rules are therefore limited to time.
  if (effect === 'deny') {
    for (const key of ['argsBytesMax', 'approval'] as const) {
      if (raw[key] !== undefined) invalid(`${path}.${key}`, 'is only allowed on allow rules');
    }
  }
  const conditions: { argsBytesMax?: number; timeWindow?: TimeWindow; approval?: ApprovalCondition } = {};
  if (raw.argsBytesMax !== undefined) conditions.argsBytesMax = expectInteger(raw.argsBytesMax, `${path}.argsBytesMax`, 0, Number.MAX_SAFE_INTEGER);
  if (raw.timeWindow !== undefined) conditions.timeWindow = parseTimeWindow(raw.timeWindow, `${path}.timeWindow`);
  if (raw.approval !== undefined) {
    const approval = expectObject(raw.approval, `${path}.approval`, ['count', 'roles']);
    conditions.approval = {
      count: expectInteger(approval.count, `${path}.approval.count`, 1, policyLimits.approvalCountMax),
      roles: expectRoles(approval.roles, `${path}.approval.roles`),
    };
  }
  return conditions;
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
