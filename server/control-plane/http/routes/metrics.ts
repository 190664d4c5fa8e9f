import { metricsContentType, requireScrapeAllowed, type ServiceMetrics } from '../../../observability/metrics.js';
import type { RoutesPlugin } from '../plugin.js';
import { sendError } from '../errors.js';

/**
 * `GET /metrics`, Prometheus text format. Not public: with a scrape token configured it needs
 * `Authorization: Bearer <token>`; without one it answers loopback peers only (docs/api.md).
 * Public to the JWT hook (a scraper has no operator token); the check is here.
 */
export const metricsRoutes: RoutesPlugin<{ readonly metrics: ServiceMetrics; readonly scrapeToken: string | undefined }> = async (app, { metrics, scrapeToken }) => {
  // No summary: like the probes, it is not an operator API route and stays out of the OpenAPI document (docs/api.md has it).
  app.get('/metrics', { config: { auth: 'public' } }, async (request, reply) => {
    try {
      requireScrapeAllowed({ scrapeToken, authorization: request.headers.authorization, remoteAddress: request.socket.remoteAddress });
    } catch (error) {
      return sendError(request, reply, error);
    }
    return reply.header('content-type', metricsContentType).header('cache-control', 'no-store').send(await metrics.text());
  });
};

/** The error code of an API answer body, for the error counter; `unknown` for anything not in our shape. */
export function errorCodeOfPayload(payload: unknown): string {
  if (typeof payload !== 'string' || payload.length > 4096) return 'unknown';
  try {
    const code = (JSON.parse(payload) as { error?: { code?: unknown } } | null)?.error?.code;
    return typeof code === 'string' && /^[A-Z][A-Z0-9_]{1,63}$/.test(code) ? code : 'unknown';
  } catch {
    return 'unknown';
  }
}
