import type { ControlPlaneServices } from '../../services.js';
import { principalOf } from '../authentication.js';
import type { RoutesPlugin } from '../plugin.js';
import { LiveQuery } from '../schemas.js';

/** Server-Sent Events; the stream limits per user and the close at token expiry are the LiveHub's. */
export const liveRoutes: RoutesPlugin<{ readonly services: ControlPlaneServices }> = async (app, { services }) => {
  app.get('/v1/live', {
    schema: { querystring: LiveQuery }, config: { auth: 'viewer', queryToken: true, summary: 'Server-Sent Events: command states, presence, alerts' },
  }, async (request, reply) => {
    const principal = principalOf(request);
    // Refused (API_TOO_MANY_STREAMS) while the reply is still ours to answer in our error shape.
    services.live.reserve(principal.name);
    reply.hijack();
    services.live.attach(reply.raw, { user: principal.name, tokenExpiresAtMs: principal.tokenExpiresAtMs });
  });
};
