import { SdcError } from '../../core/errors/index.js';
import type { JsonObject } from '../../core/protocol/json-value.js';
import type { PolicyBundleReport } from '../../core/protocol/policy-bundle-schema.js';
import { actors, type ServiceContext } from './context.js';

/** One device's POLICY_BUNDLE_REPORT as the events stream carries it, its frame verified. */
export interface BundleReportFacts {
  readonly deviceId: string;
  readonly gatewayId: string;
  readonly atMs: number;
  readonly report: PolicyBundleReport;
  /** The device-signed frame, verbatim: the audit entry rests on the device's own bytes. */
  readonly frame: string;
}

/**
 * The audit of what devices say about their policy bundles (docs/policy.md, "The device's
 * policy bundle"): `policy_bundle.accepted` or `policy_bundle.refused` (with the code), once per
 * (device, version, outcome). The gateway pushes the same bundle at every AUTH and re-sign, so
 * the same report arrives many times; the row in `policy_bundle_reports` (migration 015) and
 * the audit entry are inserted in one transaction through the audit outbox, and a repeat (also
 * from another control plane) is a unique violation that records nothing.
 */
export class PolicyBundleReports {
  readonly #ctx: ServiceContext;

  constructor(context: ServiceContext) {
    this.#ctx = context;
  }

  /** True when this report was new and is now audited; false for a repeat. */
  async record(facts: BundleReportFacts): Promise<boolean> {
    const { deviceId, report } = facts;
    const outcome = report.status;
    const code = report.error?.code ?? null;
    const payload: JsonObject = {
      version: report.version, status: outcome, gateway_id: facts.gatewayId, frame: facts.frame,
      ...(report.held_version === undefined ? {} : { held_version: report.held_version }),
      ...(report.error === undefined ? {} : { code: report.error.code, message: report.error.message }),
    };
    try {
      await this.#ctx.db.transaction(async (tx) => {
        // No read first: the primary key refuses a repeat, and the audit entry after it is then
        // never written (the transaction rolls back). A read before the INSERT cost a statement
        // per first report, one per device at a fleet's start (issue 17), to save nothing on a repeat.
        await tx.execute('INSERT INTO policy_bundle_reports (device_id, version, outcome, code, gateway_id, reported_at) VALUES (?, ?, ?, ?, ?, ?)',
          [deviceId, report.version, outcome, code, facts.gatewayId, facts.atMs]);
        await this.#ctx.audit.record(tx, { kind: `policy_bundle.${outcome}`, actor: actors.device(deviceId), subject: `device:${deviceId}`, payload });
      });
    } catch (error) {
      if (SdcError.is(error, 'STORE_UNIQUE_VIOLATION')) return false;
      throw error;
    }
    // Nothing here reads the chain: the entry is chained by the instant's one drain (audit-drain-soon.ts).
    this.#ctx.settleAuditSoon();
    return true;
  }
}
