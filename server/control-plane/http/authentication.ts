import type { FastifyRequest } from 'fastify';
import { SdcError } from '../../../core/errors/index.js';
import { AuthService, type VerifiedPrincipal } from '../auth.js';
import type { Role } from '../users.js';
import { appWide } from './plugin.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** 'public' (no token) or the least role the route needs. Every route states one. */
    auth?: 'public' | Role;
    /**
     * Accept a one-time ticket as `?ticket=` (POST /v1/live/tickets), besides the header: EventSource
     * cannot set headers, and a token is never accepted in a URL (`?token=` is API_LIVE_TOKEN_IN_URL).
     */
    liveTicket?: boolean;
  }
  interface FastifyRequest {
    /** Set by the authentication hook on every route that is not public. */
    principal: VerifiedPrincipal | undefined;
  }
}

/** The verified caller of an authenticated route (the hook has run; on a public route there is none). */
export function principalOf(request: FastifyRequest): VerifiedPrincipal {
  if (request.principal === undefined) throw new SdcError('API_UNAUTHENTICATED', 'no principal on an authenticated route');
  return request.principal;
}

/** The bearer token of a request: the Authorization header (never the URL: live-tickets.ts says why). */
function presentedToken(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (typeof header === 'string' && header.startsWith('Bearer ')) return header.slice('Bearer '.length).trim();
  return undefined;
}

/**
 * On a route that takes a live ticket: the principal of the `?ticket=` it carries (spent now), or
 * undefined without one. A `?token=` is refused, header or not, so that a client still sending its
 * JWT in the URL fails at once instead of leaking it on every reconnect.
 */
async function principalOfTicket(request: FastifyRequest, auth: AuthService): Promise<VerifiedPrincipal | undefined> {
  const query = request.query as { token?: unknown; ticket?: unknown } | undefined;
  if (query?.token !== undefined) {
    throw new SdcError('API_LIVE_TOKEN_IN_URL', 'a token in the URL is refused: send Authorization: Bearer <token>, or open the stream with ?ticket= from POST /v1/live/tickets');
  }
  if (query?.ticket === undefined) return undefined;
  // A repeated ?ticket= arrives as an array: no ticket of ours.
  return auth.liveTickets.redeem(typeof query.ticket === 'string' ? query.ticket : '');
}

/**
 * Authentication and roles for every route, in one onRequest hook (never in handlers): each
 * route states `config.auth`, and one that forgot is treated as admin-only (fail closed). The
 * route's own schema has not run yet, so the query's ticket is read as the raw text it is.
 */
export const authentication = appWide<{ readonly auth: AuthService }>(async (app, { auth }) => {
  app.decorateRequest('principal', undefined);
  app.addHook('onRequest', async (request) => {
    if (request.is404) return;
    const stated = request.routeOptions.config.auth;
    if (stated === 'public') return;
    const least: Role = stated ?? 'admin';
    const ticketed = request.routeOptions.config.liveTicket === true ? await principalOfTicket(request, auth) : undefined;
    if (ticketed !== undefined) {
      AuthService.requireRole(ticketed, least);
      request.principal = ticketed;
      return;
    }
    const token = presentedToken(request);
    if (token === undefined || token.length === 0) throw new SdcError('API_UNAUTHENTICATED', 'send Authorization: Bearer <token> (POST /v1/auth/login)');
    const principal = await auth.verify(token);
    AuthService.requireRole(principal, least);
    request.principal = principal;
  });
});
