import { Type } from '@sinclair/typebox';
import { SdcError } from '../../core/errors/index.js';
import { executionStates } from '../../core/ota/execution-machine.js';
import { rolloutLimits, type RolloutPlan, type WavePlan } from '../../core/ota/rollout-decisions.js';
import { DeviceId } from '../../core/protocol/messages/fields.js';
import { principalOf } from '../control-plane/http/authentication.js';
import type { RoutesPlugin } from '../control-plane/http/plugin.js';
import { rolloutStoreLimits } from './rollout-store.js';
import type { RolloutService } from './rollouts.js';

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
}, strict);

const RolloutView = Type.Object({
  id: Type.String(),
  release_id: Type.String(),
  status: Type.Union([Type.Literal('running'), Type.Literal('paused'), Type.Literal('completed'), Type.Literal('aborted')]),
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
});
const RolloutList = Type.Object({ items: Type.Array(RolloutView) });
const Params = Type.Object({ id: RolloutId }, strict);
const ListQuery = Type.Object({ limit: Type.Optional(Type.Integer({ minimum: 1, maximum: rolloutStoreLimits.listMax })) }, strict);

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
    config: { auth: 'operator', summary: 'Start a rollout of a published release to devices in waves, with a rate limit and per-wave success and error thresholds' },
  }, async (request, reply) => {
    const body = request.body;
    const view = await required().start({ releaseId: body.release_id, platform: body.platform, deviceIds: body.device_ids, plan: planOf(body) }, principalOf(request).name);
    return reply.status(201).send(view);
  });

  app.get('/v1/rollouts', {
    schema: { querystring: ListQuery, response: { 200: RolloutList } }, config: { auth: 'viewer', summary: 'Rollouts, newest first, with their waves and executions' },
  }, async (request) => ({ items: await required().list(request.query.limit ?? 50) }));

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
          resume: 'Resume a paused rollout: the failures seen so far in the current wave are accepted, not counted again',
          abort: 'Abort: nobody else is notified, queued executions are canceled, those in flight finish',
          emergency_abort: 'Emergency abort (admin): as abort, and every execution in flight is canceled (rolled back after commit)',
        }[action],
      },
    }, async (request) => required().act(request.params.id, action, principalOf(request).name));
  }
};
