import { SdcError } from '../../../../core/errors/index.js';
import { actors } from '../../context.js';
import type { ControlPlaneServices } from '../../services.js';
import type { User } from '../../users.js';
import { principalOf } from '../authentication.js';
import type { RoutesPlugin } from '../plugin.js';
import type { AuthRateLimiter } from '../rate-limit.js';
import { CreateUserBody, PageQuery, SetPasswordBody, SetRoleBody, UserPage, UserParams, UserView } from '../schemas.js';

function view(user: User) {
  return { id: user.id, name: user.name, role: user.role, created_at_ms: user.createdAtMs };
}

/**
 * Operator accounts. Every change is audited in its own transaction (docs/audit.md); the last
 * admin can be neither removed nor demoted (API_LAST_ADMIN). A new role or password revokes the
 * user's tokens (API_TOKEN_REVOKED; users.ts, token generation), a removal makes them
 * API_TOKEN_SUBJECT_INVALID: at once on this process, whose live streams of that user close too,
 * and on the others when they hear subjectChanged's notice (at once; within 5 s should it be
 * lost: tokenSubjectLimits.cacheTtlMs, and their streams' periodic re-check, live.ts).
 */
export const userRoutes: RoutesPlugin<{ readonly services: ControlPlaneServices; readonly authLimiter: AuthRateLimiter }> = async (app, { services, authLimiter }) => {
  const { users } = services.auth;
  const { audit } = services.context;

  app.post('/v1/users', {
    schema: { body: CreateUserBody }, config: { auth: 'admin', summary: 'Create an operator account' },
  }, async (request, reply) => {
    const actor = principalOf(request).name;
    const user = await users.add({
      ...request.body, nowMs: services.context.clock.nowMs(),
      audit: (tx, added) => audit.record(tx, { kind: 'user.created', actor: actors.user(actor), subject: `user:${added.name}`, payload: { role: added.role } }),
    });
    await services.context.settleAudit();
    return reply.status(201).send(view(user));
  });

  app.get('/v1/users', {
    schema: { querystring: PageQuery, response: { 200: UserPage } }, config: { auth: 'admin', summary: 'List operator accounts by name' },
  }, async (request) => {
    const page = await users.list(request.query);
    return { items: page.items.map(view), next_cursor: page.next_cursor };
  });

  app.delete('/v1/users/:name', {
    schema: { params: UserParams, response: { 200: UserView } }, config: { auth: 'admin', summary: 'Remove an operator account (not the last admin)' },
  }, async (request) => {
    const actor = principalOf(request).name;
    const removed = await users.remove({
      name: request.params.name,
      audit: (tx, user) => audit.record(tx, { kind: 'user.removed', actor: actors.user(actor), subject: `user:${user.name}`, payload: { role: user.role } }),
    });
    services.auth.subjectChanged(removed.name);
    services.live.closeUser(removed.name, 'user_removed');
    await services.context.settleAudit();
    return view(removed);
  });

  app.put('/v1/users/:name/role', {
    schema: { params: UserParams, body: SetRoleBody, response: { 200: UserView } }, config: { auth: 'admin', summary: 'Give an operator another role (not the last admin)' },
  }, async (request) => {
    const actor = principalOf(request).name;
    const { user, changed } = await users.setRole({
      name: request.params.name, role: request.body.role,
      audit: (tx, change) => audit.record(tx, { kind: 'user.role_changed', actor: actors.user(actor), subject: `user:${change.user.name}`, payload: { from: change.from, to: change.user.role } }),
    });
    if (changed) {
      services.auth.subjectChanged(user.name);
      services.live.closeUser(user.name, 'token_revoked');
      await services.context.settleAudit();
    }
    return view(user);
  });

  // Any logged-in user for their own password, which needs the current one (a borrowed token
  // alone must not take over the account); an admin for anyone else's.
  app.put('/v1/users/:name/password', {
    schema: { params: UserParams, body: SetPasswordBody, response: { 200: UserView } },
    config: { auth: 'viewer', summary: 'Set a password: one\'s own (with the current one), or anyone\'s as admin' },
  }, async (request) => {
    const principal = principalOf(request);
    const { name } = request.params;
    const self = principal.name === name;
    if (!self && principal.role !== 'admin') throw new SdcError('API_FORBIDDEN', 'only an admin may set another user\'s password', { role: principal.role, needed: 'admin' });
    const current = request.body.current_password;
    if (self && current === undefined) throw new SdcError('API_VALIDATION', 'current_password is required to change your own password', { path: 'body/current_password' });
    const change = () => users.setPassword({
      name, password: request.body.password, ...(self ? { currentPassword: current! } : {}),
      audit: (tx, user) => audit.record(tx, { kind: 'user.password_changed', actor: actors.user(principal.name), subject: `user:${user.name}`, payload: { by: self ? 'self' : 'admin' } }),
    });
    // Checking the current password is a password guess like a login, and counted as one.
    const user = self ? await authLimiter.guardLogin({ source: request.ip, account: name }, change) : await change();
    // Every token of the user's is revoked now, the caller's own too when it is their password.
    services.auth.subjectChanged(user.name);
    services.live.closeUser(user.name, 'token_revoked');
    await services.context.settleAudit();
    return view(user);
  });
};
