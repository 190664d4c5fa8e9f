import type { FastifyRequest } from 'fastify';
import { SdcError } from '../../../core/errors/index.js';
import { AuthService, type VerifiedPrincipal } from '../auth.js';
import type { Role } from '../users.js';
import { appWide } from './plugin.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** 'public' (no token) or the least role the route needs. Every route states one. */
    auth?: 'public' | Role;
    /** Accept the token as `?token=` (EventSource cannot set headers). */
    queryToken?: boolean;
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

/** The bearer token of a request: the Authorization header, or `?token=` on routes that allow it. */
function presentedToken(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (typeof header === 'string' && header.startsWith('Bearer ')) return header.slice('Bearer '.length).trim();
  if (request.routeOptions.config.queryToken !== true) return undefined;
  const query = request.query as { token?: unknown } | undefined;
  return typeof query?.token === 'string' ? query.token : undefined;
}

/**
 * Authentication and roles for every route, in one onRequest hook (never in handlers): each
 * route states `config.auth`, and one that forgot is treated as admin-only (fail closed). The
 * route's own schema has not run yet, so the query token is read as the raw text it is.
 */
export const authentication = appWide<{ readonly auth: AuthService }>(async (app, { auth }) => {
  app.decorateRequest('principal', undefined);
  app.addHook('onRequest', async (request) => {
    if (request.is404) return;
    const stated = request.routeOptions.config.auth;
    if (stated === 'public') return;
    const least: Role = stated ?? 'admin';
    const token = presentedToken(request);
    if (token === undefined || token.length === 0) throw new SdcError('API_UNAUTHENTICATED', 'send Authorization: Bearer <token> (POST /v1/auth/login)');
    const principal = await auth.verify(token);
    AuthService.requireRole(principal, least);
    request.principal = principal;
  });
});
