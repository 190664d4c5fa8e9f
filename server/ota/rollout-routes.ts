import { Type } from '@sinclair/typebox';
import { SdcError } from '../../core/errors/index.js';
import { executionStates } from '../../core/ota/execution-machine.js';
import { rolloutLimits, type RolloutPlan, type WavePlan } from '../../core/ota/rollout-decisions.js';
import { DeviceId } from '../../core/protocol/messages/fields.js';
import { approvalLimits } from '../../core/protocol/approvals.js';
import { principalOf } from '../control-plane/http/authentication.js';
import type { RoutesPlugin } from '../control-plane/http/plugin.js';
import { rolloutStoreLimits } from './rollout-store.js';
import { rolloutApprovalWindowMsMax, type RolloutService } from './rollouts.js';
import { resumeApprovalWindowMsMax } from './rollout-resume-approvals.js';

const strict = { additionalProperties: false } as const;
const RolloutId = Type.String({ pattern: '^ro-[0-9a-f]{32}$' });
const Count = Type.Integer({ minimum: 0, maximum: rolloutLimits.fleetDevicesMax });
const Percent = Type.Integer({ minimum: 0, maximum: 100 });

const WaveBody = Type.Object({
  percent: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, description: 'A share of the rollout\'s devices (rounded up); or name devices' })),
  device_ids: Type.Optional(Type.Array(DeviceId, { minItems: 1, maxItems: 10_000 })),
  success_threshold: Type.Object({ succeeded_min: Count, succeeded_percent_min: Percent, soak_ms: Type.Integer({ minimum: 0, maximum: rolloutLimits.soakMsMax }) }, strict),
  error_threshold: Type.Object({ executed_min: Count, failed_percent_max: Percent }, strict),
}, strict);

const StartBody = Type.Object({
  release_id: Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$' }),
  platform: Type.String({ pattern: '^[a-z][a-z0-9_-]{0,63}$', description: 'The platform the director names; one of the release\'s platforms' }),
  device_ids: Type.Array(DeviceId, { minItems: 1, maxItems: 10_000, description: 'The rollout\'s fleet; every device ends up in exactly one wave' }),
  waves: Type.Array(WaveBody, { minItems: 1, maxItems: rolloutLimits.wavesMax }),
  devices_per_minute_max: Type.Integer({ minimum: 1, maximum: rolloutLimits.devicesPerMinuteMax }),
  approval_window_ms: Type.Optional(Type.Integer({
    minimum: 60_000, maximum: rolloutApprovalWindowMsMax,
    description: 'How long the rollout may wait for approvals when the policy requires some (default 24 h); then it ends expired',
  })),
}, strict);

const statuses = ['pending_approval', 'running', 'paused', 'completed', 'aborted', 'rejected', 'expired'] as const;
const Status = Type.Union(statuses.map((s) => Type.Literal(s)));

const ApprovalView = Type.Union([Type.Null(), Type.Object({
  rule_id: Type.String(), count: Type.Integer(), roles: Type.Array(Type.String()), policy_revision: Type.Integer(), expires_at_ms: Type.Integer(),
  subject: Type.Object({}, { additionalProperties: true, description: 'What approvers sign (core/ota/rollout-approval.ts): the rollout id, release and artifact hashes, platform, waves with their devices and thresholds, rate, expiry, issuer, requester' }),
  subject_sha256: Type.String({ description: 'SHA-256 of the canonical subject: the approval statement\'s command_sha256' }),
  decisions: Type.Array(Type.Object({
    approver: Type.String(), decision: Type.String(), role: Type.String(), kid: Type.String(), at_ms: Type.Integer(), expires_at_ms: Type.Integer(), reason: Type.Optional(Type.String()),
  })),
  outcome: Type.Union([Type.Null(), Type.Object({
    state: Type.String(), at_ms: Type.Integer(), by: Type.String(), code: Type.Optional(Type.String()), approvers: Type.Optional(Type.Array(Type.String())),
  })]),
}, { description: 'Set when the policy required approvals for the rollout: what it waits (or waited) for, the decisions, and how the wait ended' })]);

const Sha256Hex = Type.String({ pattern: '^[0-9a-f]{64}$', description: 'Lower-case hex SHA-256 of the rollout\'s approval subject (approval.subject_sha256), recomputed by the approver' });
const Kid = Type.String({ pattern: '^[A-Za-z0-9_.:-]{1,128}$' });
const Signature = Type.String({ pattern: '^[A-Za-z0-9_-]{86}$', description: '64-byte Ed25519 signature over the approval statement, base64url' });
const ExpiresAtMs = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: 'The approval counts only for a start before this time; at most the rollout\'s approval expiry' });
const ApproveBody = Type.Object({ rollout_sha256: Sha256Hex, kid: Kid, expires_at_ms: ExpiresAtMs, signature: Signature }, strict);
const RejectBody = Type.Object({
  rollout_sha256: Sha256Hex, kid: Kid, expires_at_ms: ExpiresAtMs, signature: Signature,
  reason: Type.String({ minLength: 1, maxLength: approvalLimits.reasonLengthMax, description: 'Why; part of the signed statement, audited with the rejection' }),
}, strict);

const ResumeRequestView = Type.Union([Type.Null(), Type.Object({
  id: Type.String({ description: 'The request\'s id (rr-…): the approval statement\'s command_id' }),
  rule_id: Type.String(), count: Type.Integer(), roles: Type.Array(Type.String()), policy_revision: Type.Integer(), expires_at_ms: Type.Integer(),
  waiting: Type.Boolean({ description: 'true while it waits for approvals' }),
  subject: Type.Object({}, { additionalProperties: true, description: 'What approvers sign (core/ota/rollout-resume-approval.ts): the request and rollout ids, the stop it waives (wave, pause reason, safety stop, thresholds, the wave\'s figures, what was accepted before, the hash of the rollout\'s record), who asked, why, until when' }),
  subject_sha256: Type.String({ description: 'SHA-256 of the canonical subject: the approval statement\'s command_sha256' }),
  decisions: Type.Array(Type.Object({
    approver: Type.String(), decision: Type.String(), role: Type.String(), kid: Type.String(), at_ms: Type.Integer(), expires_at_ms: Type.Integer(), reason: Type.Optional(Type.String()),
  })),
  outcome: Type.Union([Type.Null(), Type.Object({
    state: Type.String(), at_ms: Type.Integer(), by: Type.String(), code: Type.Optional(Type.String()), why: Type.Optional(Type.String()), approvers: Type.Optional(Type.Array(Type.String())),
  })]),
}, { description: 'The latest request to resume past a safety stop with approvals (decision 0019), waiting or ended' })]);

const RolloutView = Type.Object({
  id: Type.String(),
  release_id: Type.String(),
  status: Status,
  pause_reason: Type.Union([Type.Null(), Type.Literal('error_threshold'), Type.Literal('success_threshold_not_met'), Type.Literal('operator')]),
  wave_index: Type.Integer(),
  waves: Type.Array(Type.Object({
    devices: Type.Array(Type.String()), size: Type.Integer(), started: Type.Integer(), succeeded: Type.Integer(), failed: Type.Integer(), terminal: Type.Integer(),
  })),
  executions: Type.Array(Type.Object({
    id: Type.String(), device_id: Type.String(), wave: Type.Integer(), state: Type.Union(executionStates.map((s) => Type.Literal(s))),
    created_at_ms: Type.Integer(), ended_at_ms: Type.Union([Type.Integer(), Type.Null()]), last_error_code: Type.Union([Type.String(), Type.Null()]),
    policy_refusal: Type.Optional(Type.Object({
      code: Type.String(), reason: Type.String(), opcode: Type.String(), rule_id: Type.Optional(Type.String()), revision: Type.Integer(),
    }, { description: 'Set when the command policy refused the device for this rollout: its execution ended canceled and the device was told nothing' })),
  })),
  created_by: Type.String(),
  created_at_ms: Type.Integer(),
  updated_at_ms: Type.Integer(),
  approval: ApprovalView,
  resume_request: ResumeRequestView,
});
const DecisionOutcome = Type.Object({
  started: Type.Boolean({ description: 'true when this approval completed what the policy requires: the rollout started and its first devices were notified' }),
  rollout: RolloutView,
});
const RolloutList = Type.Object({ items: Type.Array(RolloutView) });
const ResumeRequestBody = Type.Object({
  reason: Type.String({ minLength: 1, maxLength: approvalLimits.reasonLengthMax, description: 'Why the stop should be waived; part of what approvers sign, audited' }),
  approval_window_ms: Type.Optional(Type.Integer({ minimum: 60_000, maximum: resumeApprovalWindowMsMax, description: 'How long the request may wait for approvals (default and most 24 h); then it ends expired' })),
}, strict);
const RequestId = Type.String({ pattern: '^rr-[0-9a-f]{32}$', description: 'The resume request decided on (resume_request.id): a decision on an earlier request is refused APPROVAL_NOT_PENDING' });
const ResumeApproveBody = Type.Object({ request_id: RequestId, subject_sha256: Sha256Hex, kid: Kid, expires_at_ms: ExpiresAtMs, signature: Signature }, strict);
const ResumeRejectBody = Type.Object({
  request_id: RequestId, subject_sha256: Sha256Hex, kid: Kid, expires_at_ms: ExpiresAtMs, signature: Signature,
  reason: Type.String({ minLength: 1, maxLength: approvalLimits.reasonLengthMax, description: 'Why; part of the signed statement, audited with the rejection' }),
}, strict);
const ResumeOutcome = Type.Object({
  resumed: Type.Boolean({ description: 'true when this approval completed what the policy requires: the rollout resumed' }),
  rollout: RolloutView,
});
const ResumeAuthority = Type.Object({
  status: Status,
  safety_stop: Type.Union([Type.Null(), Type.Literal('error_threshold'), Type.Literal('success_threshold_not_met')]),
  verdict: Type.Union(['allowed', 'approval_required', 'denied', 'not_paused'].map((v) => Type.Literal(v))),
  code: Type.Optional(Type.String()), message: Type.Optional(Type.String()),
});
const Params = Type.Object({ id: RolloutId }, strict);
const ListQuery = Type.Object({ limit: Type.Optional(Type.Integer({ minimum: 1, maximum: rolloutStoreLimits.listMax })), status: Type.Optional(Status) }, strict);

const AwaitingQuery = Type.Object({ limit: Type.Optional(Type.Integer({ minimum: 1, maximum: rolloutStoreLimits.listMax, description: 'How many of the newest waiting rollouts are read (then filtered)' })) }, strict);

type Body = typeof StartBody.static;

function planOf(body: Body): RolloutPlan {
  const waves = body.waves.map((wave, index): WavePlan => {
    if ((wave.percent === undefined) === (wave.device_ids === undefined)) {
      throw new SdcError('OTA_ROLLOUT_PLAN_INVALID', `wave ${index} must give either percent or device_ids`);
    }
    return {
      selector: wave.percent !== undefined ? { percent: wave.percent } : { deviceIds: wave.device_ids! },
      successThreshold: { succeededMin: wave.success_threshold.succeeded_min, succeededPercentMin: wave.success_threshold.succeeded_percent_min, soakMs: wave.success_threshold.soak_ms },
      errorThreshold: { executedMin: wave.error_threshold.executed_min, failedPercentMax: wave.error_threshold.failed_percent_max },
    };
  });
  return { waves, devicesPerMinuteMax: body.devices_per_minute_max };
}

/**
 * Rollouts (docs/ota.md "Rollouts", docs/api.md): operators start, pause, resume and abort;
 * an emergency abort (every execution in flight canceled, rolled back after commit) needs an
 * admin; viewers read. Without an image repository every route answers OTA_REPOSITORY_NOT_INITIALISED.
 */
export const rolloutRoutes: RoutesPlugin<{ readonly rollouts: () => RolloutService | undefined }> = async (app, { rollouts }) => {
  const required = (): RolloutService => {
    const service = rollouts();
    if (service === undefined) throw new SdcError('OTA_REPOSITORY_NOT_INITIALISED', 'this control plane has no image repository: run sdc ota init --dir DATA_DIR and restart it');
    return service;
  };

  app.post('/v1/rollouts', {
    schema: { body: StartBody, response: { 201: RolloutView } },
    config: { auth: 'operator', summary: 'Start a rollout of a published release to devices in waves, with a rate limit and per-wave success and error thresholds; it waits in pending_approval when the policy requires approvals' },
  }, async (request, reply) => {
    const body = request.body;
    const view = await required().start({
      releaseId: body.release_id, platform: body.platform, deviceIds: body.device_ids, plan: planOf(body),
      ...(body.approval_window_ms === undefined ? {} : { approvalWindowMs: body.approval_window_ms }),
    }, principalOf(request).name);
    return reply.status(201).send(view);
  });

  app.get('/v1/rollouts', {
    schema: { querystring: ListQuery, response: { 200: RolloutList } }, config: { auth: 'viewer', summary: 'Rollouts, newest first, with their waves and executions' },
  }, async (request) => ({ items: await required().list(request.query.limit ?? 50, request.query.status) }));

  // The Approvals inbox's half for rollouts (docs/viewer.md "Approvals"): the same floor as the
  // decision routes, and only what this approver may still decide.
  app.get('/v1/approvals/rollouts', {
    schema: { querystring: AwaitingQuery, response: { 200: RolloutList } },
    config: {
      auth: 'approver',
      summary: 'Rollouts waiting for approvals that you may decide (not started by you, not decided by you, your role among the rule\'s, the window open), newest first',
    },
  }, async (request) => {
    // Without an image repository no rollout waits on anyone: the inbox asks every few seconds, and an empty list is the answer.
    const service = rollouts();
    return { items: service === undefined ? [] : await service.awaitingDecisionBy(principalOf(request).name, request.query.limit ?? 50) };
  });

  app.post('/v1/rollouts/:id/approve', {
    schema: { params: Params, body: ApproveBody, response: { 200: DecisionOutcome } },
    config: { auth: 'approver', summary: 'Approve a rollout waiting for approvals, with a signature over the approval statement (its id and subject hash); the last approval needed starts it' },
  }, async (request) => {
    const { rollout_sha256: subjectSha256, kid, expires_at_ms: expiresAtMs, signature } = request.body;
    return required().decide({ actor: principalOf(request), rolloutId: request.params.id, decision: 'approve', subjectSha256, kid, expiresAtMs, signature });
  });

  app.post('/v1/rollouts/:id/reject', {
    schema: { params: Params, body: RejectBody, response: { 200: DecisionOutcome } },
    config: { auth: 'approver', summary: 'Reject a rollout waiting for approvals (signed, with a reason); it ends rejected, nothing sent' },
  }, async (request) => {
    const { rollout_sha256: subjectSha256, kid, expires_at_ms: expiresAtMs, signature, reason } = request.body;
    return required().decide({ actor: principalOf(request), rolloutId: request.params.id, decision: 'reject', subjectSha256, kid, expiresAtMs, signature, reason });
  });

  // Approvals for a resume past a safety stop (decision 0019): asked by an operator, decided by approvers with signed statements.
  app.get('/v1/rollouts/:id/resume-authority', {
    schema: { params: Params, response: { 200: ResumeAuthority } },
    config: { auth: 'operator', summary: 'Whether the caller may resume this paused rollout now (allowed), needs approvers for it (approval_required: ask with a resume request), or is denied; nothing audited' },
  }, async (request) => required().resumeAuthority(request.params.id, principalOf(request).name));

  app.post('/v1/rollouts/:id/resume-request', {
    schema: { params: Params, body: ResumeRequestBody, response: { 201: RolloutView } },
    config: { auth: 'operator', summary: 'Ask approvers to resume a rollout paused at a safety stop when the policy allows the caller the resume only with approvals; the request binds this stop' },
  }, async (request, reply) => {
    const body = request.body;
    return reply.status(201).send(await required().requestResume(request.params.id, principalOf(request).name, body.reason, body.approval_window_ms));
  });

  for (const decision of ['approve', 'reject'] as const) {
    app.post(`/v1/rollouts/:id/resume-request/${decision}`, {
      schema: { params: Params, body: decision === 'approve' ? ResumeApproveBody : ResumeRejectBody, response: { 200: ResumeOutcome } },
      config: {
        auth: 'approver',
        summary: decision === 'approve'
          ? 'Approve the rollout\'s waiting resume request, with a signature over the approval statement (the request id and its subject hash); the last approval needed resumes it, if it is still at the same stop'
          : 'Reject the rollout\'s waiting resume request (signed, with a reason); it stays paused',
      },
    }, async (request) => {
      const body = request.body as typeof ResumeRejectBody.static;
      return required().decideResume({
        actor: principalOf(request), rolloutId: request.params.id, requestId: body.request_id, decision, subjectSha256: body.subject_sha256, kid: body.kid,
        expiresAtMs: body.expires_at_ms, signature: body.signature, ...(decision === 'reject' ? { reason: body.reason } : {}),
      });
    });
  }

  app.get('/v1/rollouts/:id', {
    schema: { params: Params, response: { 200: RolloutView } }, config: { auth: 'viewer', summary: 'One rollout: status, current wave, per-wave counts and every device\'s execution state' },
  }, async (request) => required().view(request.params.id));

  for (const [path, action, auth] of [
    ['pause', 'pause', 'operator'], ['resume', 'resume', 'operator'], ['abort', 'abort', 'operator'], ['emergency-abort', 'emergency_abort', 'admin'],
  ] as const) {
    app.post(`/v1/rollouts/:id/${path}`, {
      schema: { params: Params, response: { 200: RolloutView } },
      config: {
        auth,
        summary: {
          pause: 'Pause: no further device is notified; executions in flight go on',
          resume: 'Resume a paused rollout. Past a safety stop (a threshold pause, or a threshold crossed during a manual pause) the failures seen so far in the current wave are accepted, and the caller needs the authority to start it (decision 0019): OTA_ROLLOUT_POLICY_DENIED, or OTA_ROLLOUT_APPROVAL_REQUIRED (then ask with POST /v1/rollouts/{id}/resume-request); a waiting resume request ends superseded',
          abort: 'Abort: nobody else is notified, queued executions are canceled, those in flight finish; a rollout waiting for approvals ends aborted',
          emergency_abort: 'Emergency abort (admin): as abort, and every execution in flight is canceled (rolled back after commit)',
        }[action],
      },
    }, async (request) => required().act(request.params.id, action, principalOf(request).name));
  }
};
