import { Type } from '@sinclair/typebox';
import { SdcError } from '../../../../core/errors/index.js';
import { canonicalize } from '../../../../core/protocol/canonical-json.js';
import { decideCreateAdmission } from '../../../../core/protocol/command-decisions.js';
import type { JsonObject } from '../../../../core/protocol/json-value.js';
import { DeviceId } from '../../../../core/protocol/messages/fields.js';
import { validateOpcodeArgs } from '../../../../core/protocol/messages/validate.js';
import { explainPolicy, type RuleExplanation, type RuleFate } from '../../../../core/protocol/policy-explain.js';
import { policyLimits, policyRoles } from '../../../../core/protocol/policy.js';
import { actors } from '../../context.js';
import type { PolicyRevision } from '../../policy-store.js';
import type { ControlPlaneServices } from '../../services.js';
import { principalOf } from '../authentication.js';
import { sendError } from '../errors.js';
import { strictJsonBodyParser } from '../strict-json-parser.js';
import { CommandReason } from '../policy-schemas.js';
import { policyRefusalCode } from '../../policy-facts.js';
import type { RoutesPlugin } from '../plugin.js';

const strict = { additionalProperties: false } as const;
const Role = Type.Union(policyRoles.map((role) => Type.Literal(role)));

/** The document is checked by parsePolicy, which names the bad field's path; the schema only says it is an object. */
const PolicyDocumentBody = Type.Unsafe<unknown>(Type.Object({}, { additionalProperties: true, description: 'A policy document (docs/policy.md)' }));
/** `If-Match: "N"` (or `N`): the revision the change replaces. */
const PolicyPutHeaders = Type.Object({
  'if-match': Type.Optional(Type.String({ pattern: '^(W/)?"?[0-9]{1,15}"?$', description: 'The revision this change replaces' })),
});
const PolicyView = Type.Object({
  revision: Type.Integer({ description: '0: nothing stored, the built-in default policy is in force' }),
  source: Type.Union([Type.Literal('stored'), Type.Literal('builtin')]),
  document: Type.Unsafe<JsonObject>(Type.Object({}, { additionalProperties: true })),
  document_sha256: Type.String(),
  created_by: Type.Union([Type.String(), Type.Null()]),
  created_at_ms: Type.Union([Type.Integer(), Type.Null()]),
});
const EvaluateBody = Type.Object({
  device_id: DeviceId,
  opcode: Type.String({ pattern: '^[A-Z][A-Z0-9_]{0,63}$' }),
  args: Type.Unsafe<JsonObject>(Type.Record(Type.String({ maxLength: 64 }), Type.Unknown(), { maxProperties: 32 })),
  /** What-if approvals; the approvals flow does not exist yet, so only a dry run can supply them. */
  approvals: Type.Optional(Type.Array(Type.Object({ name: Type.String({ minLength: 1, maxLength: 128 }), role: Role }, strict), { maxItems: policyLimits.approvalsMax })),
  /** Evaluate at this time instead of now (time windows). */
  at_ms: Type.Optional(Type.Integer({ minimum: 0, maximum: 8_640_000_000_000_000 })),
  /** The reason the command would state (ethics: reasonRequired). */
  reason: Type.Optional(CommandReason),
}, strict);

const Approval = Type.Object({ count: Type.Integer(), roles: Type.Array(Type.String()) });
const TimeWindowView = Type.Object({
  startMinute: Type.Integer(), endMinute: Type.Integer(), utcOffsetMinutes: Type.Optional(Type.Integer()), daysOfWeek: Type.Optional(Type.Array(Type.Integer())),
});
const ruleFates = [
  'applies', 'outside_time_window', 'outside_quiet_hours', 'under_rate_limit', 'args_too_large', 'posture_failed', 'reason_missing', 'rate_limited', 'approval_missing',
] as const satisfies readonly RuleFate[];
/** The dry run's answer (docs/policy.md, "Dry run"); every member is listed, since the serializer drops unlisted ones. */
const EvaluateView = Type.Object({
  policy_revision: Type.Integer(),
  evaluated_at_ms: Type.Integer(),
  decision: Type.Union([Type.Literal('allow'), Type.Literal('deny')]),
  reason: Type.String(),
  rule_id: Type.Optional(Type.String()),
  missing_approval: Type.Optional(Type.Object({ rule_id: Type.String(), count: Type.Integer(), roles: Type.Array(Type.String()) })),
  device_refusal: Type.Optional(Type.Object({ code: Type.String(), message: Type.String() })),
  rules: Type.Array(Type.Object({
    id: Type.String(),
    effect: Type.Union([Type.Literal('allow'), Type.Literal('deny')]),
    fate: Type.Union(ruleFates.map((fate) => Type.Literal(fate))),
    time_window: Type.Optional(TimeWindowView),
    quiet_hours: Type.Optional(TimeWindowView),
    approval: Type.Optional(Approval),
    rate_limit: Type.Optional(Type.Object({
      per: Type.Array(Type.String()), count: Type.Integer(), window_ms: Type.Integer(),
      count_in_window: Type.Union([Type.Integer(), Type.Null()]), remaining: Type.Union([Type.Integer(), Type.Null()]),
    })),
    posture: Type.Optional(Type.Object({
      online: Type.Optional(Type.Boolean()), complianceStates: Type.Optional(Type.Array(Type.String())),
      riskScoreBelow: Type.Optional(Type.Number()), agentVersionAtLeast: Type.Optional(Type.String()),
    })),
    posture_field: Type.Optional(Type.String()),
    reason_required: Type.Optional(Type.Boolean()),
  })),
  /** The facts the server gathered for the request (what a create would be judged on). */
  facts: Type.Object({
    device_tags: Type.Array(Type.String()),
    posture: Type.Optional(Type.Object({
      online: Type.Optional(Type.Boolean()), complianceState: Type.Optional(Type.String()),
      riskScore: Type.Optional(Type.Number()), agentVersion: Type.Optional(Type.String()),
    })),
  }),
  /** Set when a condition of the policy decided the deny: the code a create would be refused with. */
  refusal_code: Type.Optional(Type.String()),
});

function view(current: PolicyRevision) {
  return {
    revision: current.revision, source: current.createdBy === null ? 'builtin' as const : 'stored' as const,
    document: current.policy as unknown as JsonObject, document_sha256: current.documentSha256,
    created_by: current.createdBy, created_at_ms: current.createdAtMs,
  };
}

/** One rule's fate as the dry run reports it (snake_case, like the rest of the API). */
function ruleView(rule: RuleExplanation) {
  const limit = rule.rateLimit;
  return {
    id: rule.id, effect: rule.effect, fate: rule.fate,
    ...(rule.timeWindow === undefined ? {} : { time_window: rule.timeWindow }),
    ...(rule.quietHours === undefined ? {} : { quiet_hours: rule.quietHours }),
    ...(rule.approval === undefined ? {} : { approval: rule.approval }),
    ...(limit === undefined ? {} : {
      rate_limit: { per: [...limit.per], count: limit.count, window_ms: limit.windowMs, count_in_window: limit.countInWindow, remaining: limit.remaining },
    }),
    ...(rule.posture === undefined ? {} : { posture: rule.posture }),
    ...(rule.postureField === undefined ? {} : { posture_field: rule.postureField }),
    ...(rule.reasonRequired === undefined ? {} : { reason_required: true }),
  };
}

/** The revision a PUT replaces: If-Match first, else the document's own `revision` field; one of them is required. */
function expectedRevision(ifMatch: string | undefined, document: unknown): number {
  if (ifMatch !== undefined) return Number(ifMatch.replace(/^W\//, '').replaceAll('"', ''));
  const revision = (document as { revision?: unknown }).revision;
  if (Number.isSafeInteger(revision) && (revision as number) >= 0) return revision as number;
  if (revision !== undefined) throw new SdcError('POLICY_INVALID', 'policy field revision must be a non-negative integer', { path: 'revision' });
  throw new SdcError('POLICY_REVISION_REQUIRED', 'name the revision this policy replaces: If-Match: "N" or the document\'s revision field (GET /v1/policy gives N)');
}

/**
 * The stored policy (docs/policy.md, "Stored policy"): read it, replace it (admin, optimistic
 * concurrency on the revision, audited), and a dry run that explains a decision and stores nothing.
 */
export const policyRoutes: RoutesPlugin<{ readonly services: ControlPlaneServices }> = async (app, { services }) => {
  const { policy } = services;

  // A policy of 256 rules does not fit the API's usual 64 KiB body: this scope's JSON parser has
  // no limit of its own, so each route's bodyLimit applies (the app's default unless raised below,
  // for PUT only, to the engine's document limit); the strict parser checks that limit again.
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, strictJsonBodyParser(policyLimits.policyTextLengthMax));

  // These routes' refusals carry what the client needs to fix the request beside the usual shape:
  // the bad field's `path` (parsePolicy's details) and, for a stale change, the `current_revision`.
  app.setErrorHandler((error, request, reply) => {
    if (!SdcError.is(error) || !error.code.startsWith('POLICY_')) return sendError(request, reply, error);
    const { path, current } = error.details as { path?: unknown; current?: unknown };
    request.log.info({ code: error.code, traceId: request.id, detail: error.message }, 'request refused');
    return reply.status(error.status).header('content-type', 'application/json; charset=utf-8').send({
      error: {
        code: error.code, message: error.message, trace_id: String(request.id),
        ...(typeof path === 'string' ? { path } : {}), ...(typeof current === 'number' ? { current_revision: current } : {}),
      },
    });
  });

  app.get('/v1/policy', {
    schema: { response: { 200: PolicyView } }, config: { auth: 'operator', summary: 'The policy in force, with its revision (ETag)' },
  }, async (_request, reply) => {
    const current = await policy.current();
    return reply.header('etag', `"${current.revision}"`).send(view(current));
  });

  app.put('/v1/policy', {
    bodyLimit: policyLimits.policyTextLengthMax,
    schema: { body: PolicyDocumentBody, headers: PolicyPutHeaders, response: { 200: PolicyView } },
    config: { auth: 'admin', summary: 'Replace the policy (If-Match or revision: the revision replaced); takes effect at once' },
  }, async (request, reply) => {
    const expected = expectedRevision(request.headers['if-match'], request.body);
    const stored = await policy.set({ document: request.body, expectedRevision: expected, actor: actors.user(principalOf(request).name) });
    return reply.header('etag', `"${stored.revision}"`).send(view(stored));
  });

  app.post('/v1/policy/evaluate', {
    schema: { body: EvaluateBody, response: { 200: EvaluateView } }, config: { auth: 'operator', summary: 'Dry run: what a command would get from the policy, and why; creates nothing' },
  }, async (request) => {
    const principal = principalOf(request);
    const { device_id: deviceId, args } = request.body;
    const opcode = validateOpcodeArgs(request.body.opcode, args);
    const nowMs = request.body.at_ms ?? services.context.clock.nowMs();
    const [device, current] = await Promise.all([services.devices.get(deviceId).catch((error: unknown) => {
      if (SdcError.is(error, 'API_DEVICE_NOT_FOUND')) return undefined;
      throw error;
    }), policy.current()]);
    const { reason } = request.body;
    // The same facts a create gathers (tags, posture, rate counts), read without counting this request.
    const policyRequest = await services.commands.policyFacts.peek(current.policy, {
      actor: { id: principal.name, role: principal.role }, opcode, device: { id: deviceId }, nowMs,
      argsBytes: Buffer.byteLength(canonicalize(args), 'utf8'),
      approvals: (request.body.approvals ?? []).map((approval) => ({ id: approval.name, role: approval.role })),
      ...(reason === undefined ? {} : { reason }),
    });
    const explanation = explainPolicy(current.policy, policyRequest);
    // The same admission a create runs, so a device that may take no command is reported as the create would refuse it.
    const admission = decideCreateAdmission({
      deviceId, deviceStatus: device?.status, opcode, args, auditActor: actors.user(principal.name), policy: () => explanation,
    });
    const refusalCode = explanation.decision === 'deny' ? policyRefusalCode(explanation) : undefined;
    return {
      policy_revision: current.revision, evaluated_at_ms: nowMs, decision: explanation.decision, reason: explanation.reason,
      ...(explanation.ruleId === undefined ? {} : { rule_id: explanation.ruleId }),
      ...(explanation.approval === undefined ? {} : { missing_approval: { rule_id: explanation.approval.ruleId, count: explanation.approval.count, roles: explanation.approval.roles } }),
      ...(admission.admitted || admission.refusal.code === 'COMMAND_POLICY_DENIED' ? {} : { device_refusal: { code: admission.refusal.code, message: admission.refusal.message } }),
      ...(refusalCode === undefined ? {} : { refusal_code: refusalCode }),
      facts: { device_tags: [...(policyRequest.device.tags ?? [])], ...(policyRequest.device.posture === undefined ? {} : { posture: policyRequest.device.posture }) },
      rules: explanation.rules.map(ruleView),
    };
  });
};
