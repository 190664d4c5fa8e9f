import type { ControlPlaneServices } from '../../services.js';
import type { RoutesPlugin } from '../plugin.js';
import type { AuthRateLimiter } from '../rate-limit.js';
import { LoginBody } from '../schemas.js';

/** Logging in, and the public keys that verify the tokens it hands out. */
export const authRoutes: RoutesPlugin<{ readonly services: ControlPlaneServices; readonly authLimiter: AuthRateLimiter }> = async (app, { services, authLimiter }) => {
  app.post('/v1/auth/login', {
    schema: { body: LoginBody }, config: { auth: 'public', summary: 'Exchange a name and password for a JWT' },
  }, async (request) => {
    const { name, password } = request.body;
    return authLimiter.guardLogin({ source: request.ip, account: name }, () => services.auth.login(name, password));
  });

  app.get('/.well-known/jwks.json', { config: { auth: 'public', summary: 'Public keys that verify operator tokens' } }, async () => services.auth.authority.jwks());
};
