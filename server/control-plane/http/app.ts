import type { IncomingMessage } from 'node:http';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { RandomSource } from '../../../core/ports/ports.js';
import type { ControlPlaneServices } from '../services.js';
import { authentication } from './authentication.js';
import { frameworkErrorHandler } from './client-errors.js';
import { requestLogSerializer } from './log-redaction.js';
import { buildSharedSerializer, reuseCompiledValidators } from './schema-compilers.js';
import { sendError } from './errors.js';
import { openApi } from './openapi.js';
import { AuthRateLimiter, type AuthRateLimits } from './rate-limit.js';
import { requestHandling } from './request-handling.js';
import { answerTraceparent, requestTraceBindings, traceRequestId } from './request-trace.js';
import { alertRoutes } from './routes/alerts.js';
import { auditRoutes } from './routes/audit.js';
import { authRoutes } from './routes/auth.js';
import { commandRoutes } from './routes/commands.js';
import { deviceRoutes } from './routes/devices.js';
import { liveRoutes } from './routes/live.js';
import { errorCodeOfPayload, metricsRoutes } from './routes/metrics.js';
import type { ServiceMetrics } from '../../observability/metrics.js';
import { policyRoutes } from './routes/policy.js';
import { approvalRoutes } from './routes/approvals.js';
import { complianceRoutes } from './routes/compliance.js';
import { deadLetterRoutes } from './routes/dead-letters.js';
import { telemetryRoutes } from './routes/telemetry.js';
import { userRoutes } from './routes/users.js';
import { viewerStatic } from './viewer-static.js';

export interface HttpAppOptions {
  readonly services: ControlPlaneServices;
  readonly logger: Logger;
  readonly random: RandomSource;
  readonly bodyLimitBytes?: number;
  /** Overrides of authRateLimits (http/rate-limit.ts). */
  readonly authRateLimits?: Partial<AuthRateLimits>;
  /** The process's metrics: API errors are counted, and GET /metrics serves them. */
  readonly metrics?: ServiceMetrics;
  /** Bearer token GET /metrics needs; without one it answers loopback peers only. */
  readonly metricsScrapeToken?: string;
}

export const httpAppDefaults = Object.freeze({
  // Every request body we accept is a few kilobytes at most (a CSR is the largest, 8 KiB).
  bodyLimitBytes: 64 * 1024,
});

// Unknown members are refused, not silently dropped.
const ajvCustomOptions = Object.freeze({ removeAdditional: false, coerceTypes: 'array', allErrors: false } as const);
const reuseAjvCompiled = reuseCompiledValidators(ajvCustomOptions);

function createFastify(options: HttpAppOptions, bodyLimitBytes: number): FastifyInstance {
  const app = Fastify({
    // Every line that logs a request (fastify's "incoming request", its error log) goes through
    // our `req` serializer, which keeps credentials sent in the URL (?token=, a presigned blob
    // URL's signature) out of the logs (log-redaction.ts). fastify gives the instance's own
    // serializers precedence over its defaults, and every request's child logger inherits them.
    loggerInstance: options.logger.child({}, { serializers: { req: requestLogSerializer } }),
    bodyLimit: bodyLimitBytes,
    // The request id is its W3C trace id (continued from a valid `traceparent`, else new), and its
    // logger carries trace_id and span_id on every line (request-trace.ts).
    genReqId: traceRequestId(options.random),
    childLoggerFactory: (logger, bindings, childOptions, rawRequest) => logger.child({ ...bindings, ...requestTraceBindings(rawRequest as IncomingMessage) }, childOptions),
    // A schema an earlier app of this process compiled is not compiled again (schema-compilers.ts).
    ajv: { customOptions: ajvCustomOptions, onCreate: reuseAjvCompiled },
    schemaController: { compilersFactory: { buildSerializer: buildSharedSerializer } },
    return503OnClosing: true,
    // Router refusals (a path parameter over maxParamLength, bad percent-encoding) in our shape.
    frameworkErrors: frameworkErrorHandler(sendError),
  });
  // The pino Logger type is wider than FastifyBaseLogger; the instance is the same.
  return app as unknown as FastifyInstance;
}

/**
 * The HTTP adapter, composed of plugins: first the app-wide ones (request parsing and the error
 * shape, authentication as an onRequest hook, the OpenAPI collector), then one encapsulated
 * plugin per resource (http/routes/), whose handlers only translate to and from the services.
 * fastify compiles every route schema once, when the app is made ready.
 */
export function buildHttpApp(options: HttpAppOptions): FastifyInstance {
  const { services } = options;
  const bodyLimitBytes = options.bodyLimitBytes ?? httpAppDefaults.bodyLimitBytes;
  const authLimiter = new AuthRateLimiter({
    kv: services.context.kv, clock: services.context.clock, ...(options.authRateLimits === undefined ? {} : { limits: options.authRateLimits }),
  });
  const app = createFastify(options, bodyLimitBytes);
  // First of all hooks, so that every answer, a refusal by authentication included, names its trace.
  app.addHook('onRequest', answerTraceparent);
  const { metrics } = options;
  if (metrics !== undefined) {
    // Every answer of 400 or above, by our error code, whichever route or hook refused it.
    app.addHook('onSend', async (_request, reply, payload) => {
      if (reply.statusCode >= 400) metrics.httpErrors.inc({ code: errorCodeOfPayload(payload), status: String(reply.statusCode) });
      return payload;
    });
  }
  app.register(requestHandling, { bodyLimitBytes });
  app.register(authentication, { auth: services.auth });
  app.register(openApi, { info: { title: 'Secure Device Control API', version: '1' } });
  app.register(authRoutes, { services, authLimiter });
  app.register(userRoutes, { services, authLimiter });
  app.register(deviceRoutes, { services, authLimiter });
  app.register(telemetryRoutes, { services });
  app.register(commandRoutes, { services });
  app.register(alertRoutes, { services });
  app.register(auditRoutes, { services });
  app.register(policyRoutes, { services });
  app.register(approvalRoutes, { services, authLimiter });
  app.register(complianceRoutes, { services });
  app.register(deadLetterRoutes, { services });
  app.register(liveRoutes, { services });
  if (metrics !== undefined) app.register(metricsRoutes, { metrics, scrapeToken: options.metricsScrapeToken });
  app.register(viewerStatic, {});
  return app;
}
