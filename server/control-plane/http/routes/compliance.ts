import { Type } from '@sinclair/typebox';
import { complianceStates } from '../../../../core/protocol/compliance.js';
import { DeviceId } from '../../../../core/protocol/messages/fields.js';
import { pageLimitMax } from '../../pagination.js';
import type { ControlPlaneServices } from '../../services.js';
import type { RoutesPlugin } from '../plugin.js';
import { queryInteger } from '../query-numbers.js';

const strict = { additionalProperties: false } as const;
const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) => Type.Union([schema, Type.Null()]);
const State = Type.Union(complianceStates.map((state) => Type.Literal(state)));
const Reason = Type.Object({ code: Type.String(), severity: Type.Union([Type.Literal('warning'), Type.Literal('non_compliant')]), message: Type.String() });

const SummaryQuery = Type.Object({
  state: Type.Optional(State),
  limit: Type.Optional(queryInteger({ minimum: 1, maximum: pageLimitMax, description: `Page size, at most ${pageLimitMax}` })),
  cursor: Type.Optional(Type.String({ maxLength: 256, pattern: '^[A-Za-z0-9_-]*$', description: 'Opaque cursor from the previous page' })),
}, strict);
const Summary = Type.Object({
  counts: Type.Object({ compliant: Type.Integer(), warning: Type.Integer(), non_compliant: Type.Integer(), unknown: Type.Integer() }),
  state: State,
  items: Type.Array(Type.Object({ device_id: Type.String(), reasons: Type.Array(Reason), evaluated_at_ms: Type.Integer() })),
  next_cursor: Nullable(Type.String()),
});
const DeviceParams = Type.Object({ id: DeviceId }, strict);
const DeviceCompliance = Type.Object({
  device_id: Type.String(),
  state: Type.Union([State, Type.Literal('unknown')]),
  reasons: Type.Array(Reason),
  facts: Type.Object({
    agent_version: Type.Optional(Type.String()), os_version: Type.Optional(Type.String()), binary_sha256: Type.Optional(Type.String()),
    config_sha256: Type.Optional(Type.String()), kernel_attestation: Type.Optional(Type.String()), kernel_backend: Type.Optional(Type.String()), policy_bundle_version: Type.Optional(Type.Integer()),
    cert_not_after_ms: Nullable(Type.Integer()),
  }),
  reported_at_ms: Nullable(Type.Integer()),
  evaluated_at_ms: Nullable(Type.Integer()),
});

/** Compliance (roadmap 10.3, docs/compliance.md): the fleet summary and one device's state with its reasons. */
export const complianceRoutes: RoutesPlugin<{ readonly services: ControlPlaneServices }> = async (app, { services }) => {
  const { compliance } = services;

  app.get('/v1/compliance', {
    schema: { querystring: SummaryQuery, response: { 200: Summary } },
    config: { auth: 'viewer', summary: 'Fleet compliance: devices per state, and a page of the devices in one state (default non_compliant) with reasons' },
  }, async (request) => {
    const { state, limit, cursor } = request.query;
    return compliance.summary({ ...(state === undefined ? {} : { state }), ...(limit === undefined ? {} : { limit }), ...(cursor === undefined ? {} : { cursor }) });
  });

  app.get('/v1/devices/:id/compliance', {
    schema: { params: DeviceParams, response: { 200: DeviceCompliance } },
    config: { auth: 'viewer', summary: "One device's compliance state, judged now, with its reasons and the facts judged" },
  }, async (request) => compliance.deviceCompliance(request.params.id));
};
