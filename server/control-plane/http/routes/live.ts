import type { ControlPlaneServices } from '../../services.js';
import { principalOf } from '../authentication.js';
import type { RoutesPlugin } from '../plugin.js';
import { LiveQuery, LiveTicketAnswer } from '../schemas.js';

/**
 * Server-Sent Events; the stream limits per user and the close at token expiry are the LiveHub's.
 * A browser opens the stream with a one-time ticket (EventSource cannot set headers, and a token
 * never goes in a URL: live-tickets.ts); other clients may send the Authorization header.
 */
export const liveRoutes: RoutesPlugin<{ readonly services: ControlPlaneServices }> = async (app, { services }) => {
  app.post('/v1/live/tickets', {
    schema: { response: { 200: LiveTicketAnswer } },
    config: { auth: 'viewer', summary: 'A one-time ticket that opens one live stream (GET /v1/live?ticket=) within 30 s' },
  }, async (request, reply) => {
    const issued = await services.auth.liveTickets.issue(principalOf(request));
    // A credential: no cache keeps it.
    reply.header('cache-control', 'no-store');
    return { ticket: issued.ticket, expires_at_ms: issued.expiresAtMs };
  });

  app.get('/v1/live', {
    schema: { querystring: LiveQuery },
    config: { auth: 'viewer', liveTicket: true, summary: 'Server-Sent Events: command states, presence, alerts (Authorization header, or ?ticket= from POST /v1/live/tickets)' },
  }, async (request, reply) => {
    const principal = principalOf(request);
    // Refused (API_TOO_MANY_STREAMS) while the reply is still ours to answer in our error shape.
    services.live.reserve(principal.name);
    reply.hijack();
    // The whole principal: the stream is re-checked as its token would be (live.ts).
    services.live.attach(reply.raw, principal);
  });
};
