import type { ControlPlaneServices } from '../../services.js';
import { principalOf } from '../authentication.js';
import type { RoutesPlugin } from '../plugin.js';
import { requestTrace } from '../request-trace.js';
import { CommandDetail, CommandListQuery, CommandPage, CommandParams, CreateCommandHeaders } from '../schemas.js';
import { CreateCommandWithReasonBody } from '../policy-schemas.js';

/** Signed commands: creation (idempotent by key), one command, and the list. */
export const commandRoutes: RoutesPlugin<{ readonly services: ControlPlaneServices }> = async (app, { services }) => {
  const { commands } = services;

  app.post('/v1/commands', {
    schema: { body: CreateCommandWithReasonBody, headers: CreateCommandHeaders },
    config: { auth: 'operator', summary: 'Create a signed command (Idempotency-Key supported)' },
  }, async (request, reply) => {
    const { device_id: deviceId, opcode, args, ttl_ms: ttlMs, reason } = request.body;
    const idempotencyKey = request.headers['idempotency-key'];
    const trace = requestTrace(request);
    const { command, created } = await commands.create({
      actor: principalOf(request), deviceId, opcode, args,
      ...(ttlMs === undefined ? {} : { ttlMs }), ...(idempotencyKey === undefined ? {} : { idempotencyKey }), ...(reason === undefined ? {} : { reason }),
      ...(trace === undefined ? {} : { trace }),
    });
    return reply.status(created ? 201 : 200).send(command);
  });

  app.get('/v1/commands/:id', {
    schema: { params: CommandParams, response: { 200: CommandDetail } }, config: { auth: 'viewer', summary: 'One command with its state history' },
  }, async (request) => commands.get(request.params.id));

  app.get('/v1/commands', {
    schema: { querystring: CommandListQuery, response: { 200: CommandPage } }, config: { auth: 'viewer', summary: 'List commands, newest first' },
  }, async (request) => {
    const { device_id: deviceId, state, limit, cursor } = request.query;
    return commands.list({
      ...(deviceId === undefined ? {} : { deviceId }), ...(state === undefined ? {} : { state }),
      ...(limit === undefined ? {} : { limit }), ...(cursor === undefined ? {} : { cursor }),
    });
  });
};
