import { auditScanLimitMax } from '../../../../core/protocol/audit-chain.js';
import type { ControlPlaneServices } from '../../services.js';
import type { RoutesPlugin } from '../plugin.js';
import { AuditQuery } from '../schemas.js';

/** The audit log, by page from a sequence number, and the check of its hash chain. */
export const auditRoutes: RoutesPlugin<{ readonly services: ControlPlaneServices }> = async (app, { services }) => {
  app.get('/v1/audit', {
    schema: { querystring: AuditQuery }, config: { auth: 'admin', summary: 'Audit entries from a sequence number' },
  }, async (request) => {
    const limit = Math.min(request.query.limit ?? 100, auditScanLimitMax);
    // Read your writes: what committed before this request is chained first (commands ask for
    // their drain within a window, ControlPlaneOptions.commandAuditWindowMs).
    await services.context.settleAudit();
    const items = await services.auditStore.scan(request.query.from_seq ?? 1, limit);
    const last = items.at(-1);
    return { items, next_from_seq: items.length === limit && last !== undefined ? last.seq + 1 : null };
  });

  app.get('/v1/audit/verify', {
    config: { auth: 'admin', summary: 'Verify the whole audit hash chain' },
  }, async () => {
    await services.context.settleAudit();
    return services.context.audit.verify();
  });
};
