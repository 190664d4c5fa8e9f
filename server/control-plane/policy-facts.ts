import type { ErrorCode } from '../../core/errors/index.js';
import type { DeviceComplianceReader } from '../../core/protocol/compliance.js';
import type { JsonObject } from '../../core/protocol/json-value.js';
import {
  policyUsesPosture, policyUsesTags, rateLimitsFor,
  type DevicePosture, type Policy, type PolicyDecision, type PolicyRequest, type RateLimitUse,
} from '../../core/protocol/policy.js';
import { kvKeys } from '../bus-contract/streams.js';
import type { ServiceContext } from './context.js';
import { SlidingWindowCounter, type WindowReservation } from './window-counter.js';

/**
 * The facts a policy decision needs that the request does not carry (issue 12): the device's
 * tags, its posture, and the rate-limit counts. The engine is pure; this gathers for it.
 *
 * - Tags: `device_tags` (migration 011).
 * - Posture, only when some rule has a posture condition: online from the presence key, the
 *   risk score of the device's latest telemetry sample, the agent version on the device row,
 *   the compliance state through the DeviceComplianceReader port (`unknown` when no reader is
 *   wired or it knows nothing of the device). A fact not known is left out, and the engine fails
 *   the condition closed.
 * - Rate counts, in the key/value store's sliding-window counters, so control planes sharing
 *   one store share every count. `reserve` counts the command before the decision (so two
 *   control planes admitting at once cannot both take the last place) and the caller releases
 *   the reservation when the command is not admitted; `peek` (the dry run) only reads.
 */
export interface PolicyFactsOptions {
  readonly context: ServiceContext;
  readonly compliance?: DeviceComplianceReader;
}

/** A request with its gathered facts, and the rate-limit reservations made for it. */
export interface GatheredRequest {
  readonly request: PolicyRequest;
  /** Gives the reservations back: call when the command is not stored. */
  release(): Promise<void>;
  /** The reservations' buckets, kept with a command waiting for approvals (releasePlaces gives them back when it ends without running). */
  readonly places: readonly string[];
}

/** Counter scope of the policy's rate limits: `sdc:rl:policy-rate:...` keys. */
const rateScope = 'policy-rate';

export class PolicyFacts {
  readonly #ctx: ServiceContext;
  readonly #compliance: DeviceComplianceReader | undefined;
  readonly #counter: SlidingWindowCounter;

  constructor(options: PolicyFactsOptions) {
    this.#ctx = options.context;
    this.#compliance = options.compliance;
    this.#counter = new SlidingWindowCounter({ kv: options.context.kv, clock: options.context.clock, scope: rateScope });
  }

  /** The request with tags, posture and the current counts, reserving nothing (the dry run). */
  async peek(policy: Policy, base: PolicyRequest): Promise<PolicyRequest> {
    // The dry run shows the device's tags whether or not a rule selects by them.
    const withDevice = await this.#withDevice(policy, base, { tags: 'always' });
    const uses = rateLimitsFor(policy, withDevice);
    const counts = await Promise.all(uses.map((use) => this.#counter.count(use.key, use.limit.windowMs)));
    return { ...withDevice, rateCounts: Object.fromEntries(uses.map((use, index) => [use.key, counts[index]!])) };
  }

  /**
   * The request for a command released after its approvals (approvals.ts): tags and posture as
   * they are now (a device that left the group or fell out of compliance while the command
   * waited does not get it), and the rate counts admission reserved this command's places at,
   * since its place is still held; a rate limit the policy gained since is counted now.
   */
  async atRelease(policy: Policy, base: PolicyRequest, admittedCounts: Readonly<Record<string, number>> | undefined): Promise<PolicyRequest> {
    const withDevice = await this.#withDevice(policy, base);
    const uses = rateLimitsFor(policy, withDevice);
    const counts = await Promise.all(uses.map((use) => (admittedCounts !== undefined && Object.hasOwn(admittedCounts, use.key)
      ? admittedCounts[use.key]! : this.#counter.count(use.key, use.limit.windowMs))));
    return { ...withDevice, rateCounts: Object.fromEntries(uses.map((use, index) => [use.key, counts[index]!])) };
  }

  /** The request with tags, posture and counts, each rate limit's place reserved for this command. */
  async reserve(policy: Policy, base: PolicyRequest): Promise<GatheredRequest> {
    const withDevice = await this.#withDevice(policy, base);
    const uses = rateLimitsFor(policy, withDevice);
    const reservations = await this.#reserveAll(uses);
    return {
      request: { ...withDevice, rateCounts: Object.fromEntries(uses.map((use, index) => [use.key, reservations[index]!.countBefore])) },
      release: async () => {
        await Promise.all(reservations.map((reservation) => reservation.release()));
      },
      places: reservations.map((reservation) => reservation.place),
    };
  }

  /**
   * Gives back the places a command waiting for approvals kept (GatheredRequest.places, stored in
   * its row), when it ends without running: rejected by an approver, expired, or rejected at its
   * device's revocation. The caller calls this once per command, after the change that ended it
   * committed (a compare-and-set on pending_approval, so only one process does).
   */
  async releasePlaces(places: readonly string[]): Promise<void> {
    await Promise.all(places.map((place) => this.#counter.releasePlace(place)));
  }

  async #reserveAll(uses: readonly RateLimitUse[]): Promise<WindowReservation[]> {
    const settled = await Promise.allSettled(uses.map((use) => this.#counter.reserve(use.key, use.limit.windowMs)));
    const made = settled.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
    const failed = settled.find((result): result is PromiseRejectedResult => result.status === 'rejected');
    if (failed !== undefined) {
      // A store failure refuses the command (fail closed); what was reserved is given back.
      await Promise.allSettled(made.map((reservation) => reservation.release()));
      throw failed.reason;
    }
    return made;
  }

  /**
   * The request with the device's facts the policy can use: tags when a rule selects by tag (or
   * `tags: 'always'`), posture when a rule has a posture condition. Admission read the tags for
   * every command before, one SQL round trip each under a policy that never looks at them (issue 17).
   */
  async #withDevice(policy: Policy, base: PolicyRequest, options: { tags?: 'always' | 'when_used' } = {}): Promise<PolicyRequest> {
    const deviceId = base.device.id;
    const wantTags = options.tags === 'always' || policyUsesTags(policy);
    const [tags, posture] = await Promise.all([wantTags ? this.tagsOf(deviceId) : undefined, policyUsesPosture(policy) ? this.postureOf(deviceId) : undefined]);
    return { ...base, device: { ...base.device, ...(tags === undefined ? {} : { tags }), ...(posture === undefined ? {} : { posture }) } };
  }

  async tagsOf(deviceId: string): Promise<string[]> {
    const rows = await this.#ctx.db.query<{ tag: string }>('SELECT tag FROM device_tags WHERE device_id = ? ORDER BY tag', [deviceId]);
    return rows.map((row) => row.tag);
  }

  async postureOf(deviceId: string): Promise<DevicePosture> {
    const [online, [risk], [device], compliance] = await Promise.all([
      this.#ctx.kv.get(kvKeys.presence(deviceId)).then((value) => value !== null),
      this.#ctx.db.query<{ risk_score: number | string | null }>('SELECT risk_score FROM telemetry WHERE device_id = ? ORDER BY ts DESC LIMIT 1', [deviceId]),
      this.#ctx.db.query<{ agent_version: string | null }>('SELECT agent_version FROM devices WHERE id = ?', [deviceId]),
      this.#compliance?.readCompliance(deviceId),
    ]);
    const riskScore = risk?.risk_score === null || risk?.risk_score === undefined ? undefined : Number(risk.risk_score);
    return {
      online, complianceState: compliance?.state ?? 'unknown',
      ...(riskScore === undefined || !Number.isFinite(riskScore) ? {} : { riskScore }),
      ...(device?.agent_version === null || device?.agent_version === undefined ? {} : { agentVersion: device.agent_version }),
    };
  }
}

/** The error code a create is refused with for a policy deny: the condition's own, or COMMAND_POLICY_DENIED. */
export function policyRefusalCode(decision: PolicyDecision): ErrorCode {
  switch (decision.blocked?.kind) {
    case 'rate_limit': return 'COMMAND_RATE_LIMITED';
    case 'reason_required': return 'COMMAND_REASON_REQUIRED';
    case 'quiet_hours': return 'COMMAND_QUIET_HOURS';
    case 'posture': return 'COMMAND_POSTURE_DENIED';
    default: return 'COMMAND_POLICY_DENIED';
  }
}

/** The blocking condition as the refusal's details and the `command.denied` audit entry carry it. */
export function policyBlockRecord(decision: PolicyDecision): JsonObject | undefined {
  const blocked = decision.blocked;
  if (blocked === undefined) return undefined;
  switch (blocked.kind) {
    case 'rate_limit':
      return { kind: blocked.kind, rule_id: blocked.ruleId, per: [...blocked.limit.per], count: blocked.limit.count, window_ms: blocked.limit.windowMs, count_in_window: blocked.countInWindow };
    case 'quiet_hours':
      return { kind: blocked.kind, rule_id: blocked.ruleId, window: JSON.parse(JSON.stringify(blocked.window)) as JsonObject };
    case 'posture':
      return { kind: blocked.kind, rule_id: blocked.ruleId, field: blocked.field };
    default:
      return { kind: blocked.kind, rule_id: blocked.ruleId };
  }
}

/** The blocking condition flattened for an SdcError's details (what the API's error body shows). */
export function policyBlockDetails(decision: PolicyDecision): Record<string, string | number | boolean | null> {
  const blocked = decision.blocked;
  if (blocked === undefined) return {};
  const common = { blocked: blocked.kind, rule_id: blocked.ruleId };
  switch (blocked.kind) {
    case 'rate_limit':
      return {
        ...common, per: blocked.limit.per.join(','), limit: blocked.limit.count, window_ms: blocked.limit.windowMs, count_in_window: blocked.countInWindow,
        // Retry-After: the earliest a place can free up (the oldest of the window's ten buckets leaving it).
        retryAfterS: Math.max(1, Math.ceil(blocked.limit.windowMs / 10 / 1000)),
      };
    case 'quiet_hours':
      return { ...common, start_minute: blocked.window.startMinute, end_minute: blocked.window.endMinute, utc_offset_minutes: blocked.window.utcOffsetMinutes ?? 0 };
    case 'posture':
      return { ...common, field: blocked.field };
    default:
      return common;
  }
}
