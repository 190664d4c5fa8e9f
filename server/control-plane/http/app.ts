import type { TLSSocket } from 'node:tls';
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import type { TSchema } from '@sinclair/typebox';
import type { Logger } from 'pino';
import { SdcError } from '../../../core/errors/index.js';
import { hexFromBytes } from '../../../core/crypto/bytes.js';
import { auditScanLimitMax } from '../../../core/protocol/audit-chain.js';
import type { JsonObject } from '../../../core/protocol/json-value.js';
import type { RandomSource } from '../../../core/ports/ports.js';
import { AuthService, type VerifiedPrincipal } from '../auth.js';
import type { PresentedClientCertificate } from '../devices.js';
import type { ControlPlaneServices } from '../services.js';
import type { Role } from '../users.js';
import { frameworkErrorHandler } from './client-errors.js';
import { sendError } from './errors.js';
import { openApiDocument, type RouteDoc } from './openapi.js';
import { refuseUnsafeQueryIntegers } from './query-numbers.js';
import { AuthRateLimiter, type AuthRateLimits } from './rate-limit.js';
import { strictJsonBodyParser } from './strict-json-parser.js';
import {
  Alert, AlertListQuery, AlertPage, AlertParams, AuditQuery, CommandDetail, CommandListQuery, CommandPage, CommandParams, CreateCommandBody, CreateCommandHeaders, CreateUserBody, DeviceParams, EnrollBody,
  LiveQuery, LoginBody, PageQuery, PairingTokenBody, RenewBody, RevokeBody, TelemetryQuery,
} from './schemas.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** 'public' (no token) or the least role the route needs. Every route states one. */
    auth?: 'public' | Role;
    /** Accept the token as `?token=` (EventSource cannot set headers). */
    queryToken?: boolean;
  }
  interface FastifyRequest {
    principal?: VerifiedPrincipal;
  }
}

export interface HttpAppOptions {
  readonly services: ControlPlaneServices;
  readonly logger: Logger;
  readonly random: RandomSource;
  readonly bodyLimitBytes?: number;
  /** Overrides of authRateLimits (http/rate-limit.ts). */
  readonly authRateLimits?: Partial<AuthRateLimits>;
}

function principalOf(request: FastifyRequest): VerifiedPrincipal {
  if (request.principal === undefined) throw new SdcError('API_UNAUTHENTICATED', 'no principal on an authenticated route');
  return request.principal;
}

/**
 * The TLS client certificate of the connection, if any. The HTTPS listener requests one but does
 * not require it, and accepts any (rejectUnauthorized: false): only the renewal route uses it, and
 * verifies it itself. Over plain HTTP (or inject) there is none.
 */
function presentedClientCertificate(request: FastifyRequest): PresentedClientCertificate | undefined {
  const socket = request.raw.socket as Partial<TLSSocket>;
  if (typeof socket.getPeerCertificate !== 'function') return undefined;
  const certificate = socket.getPeerCertificate(false);
  const raw = (certificate as { raw?: unknown } | null)?.raw;
  return raw instanceof Uint8Array && raw.length > 0 ? { certDer: new Uint8Array(raw) } : undefined;
}

/**
 * The HTTP adapter: routes, schemas, authentication (an onRequest hook, never in handlers), the
 * error format and the OpenAPI document. Handlers only translate to and from the services.
 */
export function buildHttpApp(options: HttpAppOptions): FastifyInstance {
  const { services, random } = options;
  const bodyLimitBytes = options.bodyLimitBytes ?? 64 * 1024;
  const app = Fastify({
    loggerInstance: options.logger,
    bodyLimit: bodyLimitBytes,
    genReqId: () => hexFromBytes(random.bytes(8)),
    // Unknown members are refused, not silently dropped.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', allErrors: false } },
    return503OnClosing: true,
    // Router refusals (a path parameter over maxParamLength, bad percent-encoding) in our shape.
    frameworkErrors: frameworkErrorHandler(sendError),
  });
  const docs: RouteDoc[] = [];
  const authLimiter = new AuthRateLimiter({
    kv: services.context.kv, clock: services.context.clock, ...(options.authRateLimits === undefined ? {} : { limits: options.authRateLimits }),
  });
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit: bodyLimitBytes }, strictJsonBodyParser(bodyLimitBytes));
  app.addHook('preValidation', refuseUnsafeQueryIntegers);

  app.setErrorHandler((error, request, reply) => sendError(request, reply, error));
  app.setNotFoundHandler((request, reply) => sendError(request, reply, new SdcError('API_NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`)));

  app.addHook('onRequest', async (request) => {
    if (request.is404) return;
    const config = request.routeOptions.config;
    const auth = config.auth;
    if (auth === 'public') return;
    // A route that forgot to say is treated as admin-only: fail closed.
    const least: Role = auth ?? 'admin';
    const header = request.headers.authorization;
    let token: string | undefined;
    if (typeof header === 'string' && header.startsWith('Bearer ')) token = header.slice('Bearer '.length).trim();
    if (token === undefined && config.queryToken === true) {
      const query = request.query as { token?: unknown } | undefined;
      if (typeof query?.token === 'string') token = query.token;
    }
    if (token === undefined || token.length === 0) throw new SdcError('API_UNAUTHENTICATED', 'send Authorization: Bearer <token> (POST /v1/auth/login)');
    const principal = await services.auth.verify(token);
    AuthService.requireRole(principal, least);
    request.principal = principal;
  });

  function route(spec: RouteDoc & { queryToken?: boolean; handler: Parameters<FastifyInstance['route']>[0]['handler'] }): void {
    docs.push({ method: spec.method, url: spec.url, summary: spec.summary, auth: spec.auth, schema: spec.schema, ...(spec.response === undefined ? {} : { response: spec.response }) });
    app.route({
      method: spec.method as 'GET' | 'POST',
      url: spec.url,
      schema: { ...(spec.schema as Record<string, TSchema>), ...(spec.response === undefined ? {} : { response: { 200: spec.response } }) },
      config: { auth: spec.auth as 'public' | Role, ...(spec.queryToken === true ? { queryToken: true } : {}) },
      handler: spec.handler,
    });
  }

  // --- auth and keys
  route({
    method: 'POST', url: '/v1/auth/login', summary: 'Exchange a name and password for a JWT', auth: 'public', schema: { body: LoginBody },
    handler: async (request) => {
      const body = request.body as LoginBody;
      return authLimiter.guardLogin({ source: request.ip, account: body.name }, () => services.auth.login(body.name, body.password));
    },
  });
  route({
    method: 'POST', url: '/v1/users', summary: 'Create an operator account', auth: 'admin', schema: { body: CreateUserBody },
    handler: async (request, reply) => {
      const body = request.body as CreateUserBody;
      const user = await services.auth.users.add({
        ...body, nowMs: services.context.clock.nowMs(),
        audit: (tx, added) => services.context.audit.record(tx, { kind: 'user.created', actor: `user:${principalOf(request).name}`, subject: `user:${added.name}`, payload: { role: added.role } }),
      });
      await services.context.settleAudit();
      return reply.status(201).send({ id: user.id, name: user.name, role: user.role, created_at_ms: user.createdAtMs });
    },
  });
  route({
    method: 'GET', url: '/.well-known/jwks.json', summary: 'Public keys that verify operator tokens', auth: 'public', schema: {},
    handler: async () => services.auth.authority.jwks(),
  });
  route({
    method: 'GET', url: '/openapi.json', summary: 'This API as OpenAPI 3.1', auth: 'public', schema: {},
    handler: async () => openApiDocument(docs, { title: 'Secure Device Control API', version: '1' }),
  });
  route({
    method: 'GET', url: '/v1/crl', summary: 'The current certificate revocation list (PEM)', auth: 'public', schema: {},
    handler: async (_request, reply) => reply.header('content-type', 'application/x-pem-file').send(await services.devices.crlPem()),
  });

  // --- devices
  route({
    method: 'GET', url: '/v1/devices', summary: 'List devices', auth: 'viewer', schema: { querystring: PageQuery },
    handler: async (request) => services.devices.list(request.query as PageQuery),
  });
  route({
    method: 'GET', url: '/v1/devices/:id', summary: 'One device, with presence and certificate', auth: 'viewer', schema: { params: DeviceParams },
    handler: async (request) => services.devices.get((request.params as { id: string }).id),
  });
  route({
    method: 'POST', url: '/v1/devices/:id/pairing-tokens', summary: 'Create a one-time pairing token (shown once)', auth: 'admin',
    schema: { params: DeviceParams, body: PairingTokenBody },
    handler: async (request, reply) => {
      const body = request.body as PairingTokenBody;
      const created = await services.devices.createPairingToken({
        actor: principalOf(request).name, deviceId: (request.params as { id: string }).id, ...(body.ttl_ms === undefined ? {} : { ttlMs: body.ttl_ms }),
      });
      return reply.status(201).header('cache-control', 'no-store').send(created);
    },
  });
  route({
    method: 'POST', url: '/v1/devices/:id/revoke', summary: 'Revoke the device certificate', auth: 'admin', schema: { params: DeviceParams, body: RevokeBody },
    handler: async (request) => {
      const body = request.body as RevokeBody;
      return services.devices.revoke({ actor: principalOf(request).name, deviceId: (request.params as { id: string }).id, ...(body.reason === undefined ? {} : { reason: body.reason }) });
    },
  });
  route({
    method: 'POST', url: '/v1/enroll', summary: 'Enroll a device: one-time token + CSR for a certificate', auth: 'public', schema: { body: EnrollBody },
    handler: async (request, reply) => {
      const body = request.body as EnrollBody;
      const answer = await authLimiter.guardEnrollment({ source: request.ip, deviceId: body.device_id },
        () => services.devices.enroll({ deviceId: body.device_id, token: body.token, csrPem: body.csr_pem }));
      return reply.status(201).send(answer);
    },
  });
  route({
    // Public as far as bearer tokens go: the device authenticates with its certificate in the TLS handshake.
    method: 'POST', url: '/v1/devices/:id/renew', summary: 'Renew a device certificate: CSR + the current certificate as the TLS client certificate',
    auth: 'public', schema: { params: DeviceParams, body: RenewBody },
    handler: async (request, reply) => {
      const body = request.body as RenewBody;
      const answer = await services.devices.renew({
        deviceId: (request.params as { id: string }).id, csrPem: body.csr_pem, presented: presentedClientCertificate(request),
      });
      return reply.status(201).send(answer);
    },
  });
  route({
    method: 'GET', url: '/v1/devices/:id/telemetry', summary: 'Telemetry samples, newest first', auth: 'viewer', schema: { params: DeviceParams, querystring: TelemetryQuery },
    handler: async (request) => {
      const q = request.query as TelemetryQuery;
      const deviceId = (request.params as { id: string }).id;
      await services.devices.get(deviceId);
      return { items: await services.events.telemetry({ deviceId, ...(q.from_ms === undefined ? {} : { fromMs: q.from_ms }), ...(q.to_ms === undefined ? {} : { toMs: q.to_ms }), ...(q.limit === undefined ? {} : { limit: q.limit }) }) };
    },
  });

  // --- commands
  route({
    method: 'POST', url: '/v1/commands', summary: 'Create a signed command (Idempotency-Key supported)', auth: 'operator',
    schema: { body: CreateCommandBody, headers: CreateCommandHeaders },
    handler: async (request, reply) => {
      const body = request.body as CreateCommandBody;
      const key = (request.headers as CreateCommandHeaders)['idempotency-key'];
      const { command, created } = await services.commands.create({
        actor: principalOf(request), deviceId: body.device_id, opcode: body.opcode, args: body.args as JsonObject,
        ...(body.ttl_ms === undefined ? {} : { ttlMs: body.ttl_ms }), ...(key === undefined ? {} : { idempotencyKey: key }),
      });
      return reply.status(created ? 201 : 200).send(command);
    },
  });
  route({
    method: 'GET', url: '/v1/commands/:id', summary: 'One command with its state history', auth: 'viewer', schema: { params: CommandParams }, response: CommandDetail,
    handler: async (request) => services.commands.get((request.params as { id: string }).id),
  });
  route({
    method: 'GET', url: '/v1/commands', summary: 'List commands, newest first', auth: 'viewer', schema: { querystring: CommandListQuery }, response: CommandPage,
    handler: async (request) => {
      const q = request.query as CommandListQuery;
      return services.commands.list({
        ...(q.device_id === undefined ? {} : { deviceId: q.device_id }), ...(q.state === undefined ? {} : { state: q.state }),
        ...(q.limit === undefined ? {} : { limit: q.limit }), ...(q.cursor === undefined ? {} : { cursor: q.cursor }),
      });
    },
  });

  // --- alerts
  route({
    method: 'GET', url: '/v1/alerts', summary: 'List alerts, newest first', auth: 'viewer', schema: { querystring: AlertListQuery }, response: AlertPage,
    handler: async (request) => {
      const q = request.query as AlertListQuery;
      return services.alerts.list({
        ...(q.device_id === undefined ? {} : { deviceId: q.device_id }), ...(q.since_ms === undefined ? {} : { sinceMs: q.since_ms }),
        ...(q.acknowledged === undefined ? {} : { acknowledged: q.acknowledged }),
        ...(q.limit === undefined ? {} : { limit: q.limit }), ...(q.cursor === undefined ? {} : { cursor: q.cursor }),
      });
    },
  });
  route({
    method: 'POST', url: '/v1/alerts/:id/ack', summary: 'Acknowledge an alert (idempotent: the first acknowledgement is kept)', auth: 'operator',
    schema: { params: AlertParams }, response: Alert,
    handler: async (request) => {
      const { alert } = await services.alerts.acknowledge({ alertId: (request.params as { id: string }).id, actor: principalOf(request).name });
      return alert;
    },
  });

  // --- audit
  route({
    method: 'GET', url: '/v1/audit', summary: 'Audit entries from a sequence number', auth: 'admin', schema: { querystring: AuditQuery },
    handler: async (request) => {
      const q = request.query as AuditQuery;
      const limit = Math.min(q.limit ?? 100, auditScanLimitMax);
      const items = await services.auditStore.scan(q.from_seq ?? 1, limit);
      const last = items.at(-1);
      return { items, next_from_seq: items.length === limit && last !== undefined ? last.seq + 1 : null };
    },
  });
  route({
    method: 'GET', url: '/v1/audit/verify', summary: 'Verify the whole audit hash chain', auth: 'admin', schema: {},
    handler: async () => services.context.audit.verify(),
  });

  // --- live updates
  route({
    method: 'GET', url: '/v1/live', summary: 'Server-Sent Events: command states, presence, alerts', auth: 'viewer', queryToken: true, schema: { querystring: LiveQuery },
    handler: async (request, reply) => {
      const principal = principalOf(request);
      services.live.reserve(principal.name);
      reply.hijack();
      services.live.attach(reply.raw, { user: principal.name, tokenExpiresAtMs: principal.tokenExpiresAtMs });
    },
  });

  // The pino Logger type is wider than FastifyBaseLogger; the instance is the same.
  return app as unknown as FastifyInstance;
}
