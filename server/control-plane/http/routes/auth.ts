import type { ControlPlaneServices } from '../../services.js';
import { principalOf } from '../authentication.js';
import type { RoutesPlugin } from '../plugin.js';
import type { AuthRateLimiter } from '../rate-limit.js';
import { LoginBody, LogoutAllAnswer } from '../schemas.js';

/** Logging in, logging out everywhere, and the public keys that verify the tokens login hands out. */
export const authRoutes: RoutesPlugin<{ readonly services: ControlPlaneServices; readonly authLimiter: AuthRateLimiter }> = async (app, { services, authLimiter }) => {
  app.post('/v1/auth/login', {
    schema: { body: LoginBody }, config: { auth: 'public', summary: 'Exchange a name and password for a JWT' },
  }, async (request) => {
    const { name, password } = request.body;
    return authLimiter.guardLogin({ source: request.ip, account: name }, () => services.auth.login(name, password));
  });

  // Every token of the caller's, this one included (a token cannot be revoked alone: they carry
  // no id we keep). Refused at once on this control plane, within 5 s on the others.
  app.post('/v1/auth/logout-all', {
    schema: { response: { 200: LogoutAllAnswer } },
    config: { auth: 'viewer', summary: 'Revoke every token the caller holds (log in again after); closes the caller\'s live streams here' },
  }, async (request) => {
    const { name } = principalOf(request);
    await services.auth.revokeTokens(name, name);
    // At once, before the audit settles: this process's own re-check (the notice) would close them uncounted.
    const closed = services.live.closeUser(name, 'token_revoked');
    await services.context.settleAudit();
    return { name, live_streams_closed: closed };
  });

  app.get('/.well-known/jwks.json', { config: { auth: 'public', summary: 'Public keys that verify operator tokens' } }, async () => services.auth.authority.jwks());
};
