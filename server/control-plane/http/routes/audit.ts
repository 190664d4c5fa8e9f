import { Type, type Static } from '@sinclair/typebox';
import { auditScanLimitMax } from '../../../../core/protocol/audit-chain.js';
import { keptHeadOf, verifyAgainstKeptHead } from '../../audit-kept-head.js';
import type { ControlPlaneServices } from '../../services.js';
import type { RoutesPlugin } from '../plugin.js';
import { queryInteger, queryNumberLimits } from '../query-numbers.js';
import { AuditQuery } from '../schemas.js';

/** GET /v1/audit/verify: optionally a head the caller kept from an earlier check (audit-kept-head.ts). */
const AuditVerifyQuery = Type.Object({
  head_seq: Type.Optional(queryInteger({ minimum: 1, maximum: queryNumberLimits.valueMax, description: 'Seq of a head kept from an earlier check (with head_hash)' })),
  head_hash: Type.Optional(Type.String({ pattern: '^[0-9a-f]{64}$', description: 'Hash of that head, lower-case hex SHA-256 (with head_seq)' })),
}, { additionalProperties: false });
type AuditVerifyQuery = Static<typeof AuditVerifyQuery>;

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

  // Without head_seq/head_hash a chain whose tail was removed, or that was rewritten whole, checks
  // as valid: the kept head (recorded from `head` of an earlier answer, outside the log's reach) shows it.
  app.get<{ Querystring: AuditVerifyQuery }>('/v1/audit/verify', {
    schema: { querystring: AuditVerifyQuery },
    config: { auth: 'admin', summary: 'Verify the whole audit hash chain, optionally against a head kept from an earlier check' },
  }, async (request) => {
    const keptHead = keptHeadOf(request.query.head_seq, request.query.head_hash, { seq: 'querystring/head_seq', hash: 'querystring/head_hash' });
    await services.context.settleAudit();
    return verifyAgainstKeptHead({
      verifyChain: () => services.context.audit.verify(),
      entryAt: async (seq) => (await services.auditStore.scan(seq, 1))[0],
      storedHead: () => services.auditStore.head(),
      keptHead,
    });
  });
};
