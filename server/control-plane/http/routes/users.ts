import type { ControlPlaneServices } from '../../services.js';
import { principalOf } from '../authentication.js';
import type { RoutesPlugin } from '../plugin.js';
import { CreateUserBody } from '../schemas.js';

/** Operator accounts. */
export const userRoutes: RoutesPlugin<{ readonly services: ControlPlaneServices }> = async (app, { services }) => {
  app.post('/v1/users', {
    schema: { body: CreateUserBody }, config: { auth: 'admin', summary: 'Create an operator account' },
  }, async (request, reply) => {
    const actor = principalOf(request).name;
    const user = await services.auth.users.add({
      ...request.body, nowMs: services.context.clock.nowMs(),
      audit: (tx, added) => services.context.audit.record(tx, { kind: 'user.created', actor: `user:${actor}`, subject: `user:${added.name}`, payload: { role: added.role } }),
    });
    await services.context.settleAudit();
    return reply.status(201).send({ id: user.id, name: user.name, role: user.role, created_at_ms: user.createdAtMs });
  });
};
