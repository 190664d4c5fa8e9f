import { SdcError } from '../../core/errors/index.js';
import type { JsonObject } from '../../core/protocol/json-value.js';
import { gatewayCommandStream, groups, kvKeys, streamNames } from '../bus-contract/streams.js';
import { deadLetterStream } from '../stores/bus/bus-port.js';
import { pendingEntriesReadMax } from '../observability/metrics.js';
import type { AlertRateLimiter } from './alert-rate-limit.js';
import { AlertEpisodes, episodeKeyOf, type OpenEpisode, type RaiseAlert } from './alert-episodes.js';
import type { AlertRules } from './alert-rules.js';
import type { PostureReport } from './compliance.js';
import { tamperSignalsOf } from './compliance-tamper.js';
import { actors, type ServiceContext } from './context.js';

/** Update opcodes (the kernel's STAGE/COMMIT/ROLLBACK): their failed results count toward `update_failed`. */
export const updateOpcodes: readonly string[] = ['EXEC_STAGE_UPDATE', 'EXEC_COMMIT_UPDATE', 'EXEC_ROLLBACK_UPDATE'];

/**
 * The hook for update failures. Today it is fired from signed COMMAND_RESULTs of the update
 * opcodes; the OTA director (core/ota, not wired to the control plane yet) is to fire the same.
 */
export interface UpdateOutcome {
  readonly deviceId: string;
  readonly commandId: string;
  readonly opcode: string;
  readonly succeeded: boolean;
  readonly atMs: number;
}

/** Rows one sampling pass looks at per query: the pass stays bounded however large the fleet. */
const samplePassRowsMax = 500;
/** Gateway command streams sampled for backpressure (the gateway id list may hold up to 1,024). */
const gatewayStreamsSampledMax = 64;

/**
 * Evaluates the alert rules (alert-rules.ts) and raises each alert once per episode. Events
 * (presence, risk scores, update results, tamper frames) are judged as they are handled; offline
 * devices, stream backlogs and the end of risk episodes are sampled every sampleIntervalMs by
 * `sample()` on the control plane's scheduler, so the clock is injected and tests run it by hand.
 */
export class AlertMonitor {
  readonly #ctx: ServiceContext;
  readonly #episodes: AlertEpisodes;
  readonly #limiter: AlertRateLimiter;
  readonly rules: AlertRules;

  constructor(options: { context: ServiceContext; episodes: AlertEpisodes; rateLimiter: AlertRateLimiter; rules: AlertRules }) {
    this.#ctx = options.context;
    this.#episodes = options.episodes;
    this.#limiter = options.rateLimiter;
    this.rules = options.rules;
  }

  /**
   * A device came online: its offline episode, if any, is over. `open`: that episode's alert as
   * the caller read it just now (presenceEpisodeKey; undefined inside: none open), so no read here.
   */
  async onPresence(deviceId: string, online: boolean, atMs: number, open?: { readonly row: OpenEpisode | undefined }): Promise<void> {
    if (online) await this.#episodes.clear(this.presenceEpisodeKey(deviceId), atMs, actors.system, open);
  }

  /** The episode a device's presence online ends (its offline alert's). */
  presenceEpisodeKey(deviceId: string): string {
    return episodeKeyOf('device_offline', deviceId);
  }

  /** One scored telemetry sample; only a sample at or over the threshold costs a query. */
  async onRiskScore(sample: { deviceId: string; score: number; factors: readonly string[]; detail: JsonObject; atMs: number }): Promise<void> {
    const threshold = this.rules.riskScoreAbove;
    if (threshold === null || sample.score < threshold) return;
    await this.#raiseForDevice({
      deviceId: sample.deviceId, kind: 'risk_score', severity: 'warning', atMs: sample.atMs, actor: actors.system, detail: sample.detail,
      message: `risk score ${sample.score.toFixed(1)} >= ${threshold} (${sample.factors.join(', ')})`, episodeKey: episodeKeyOf('risk_score', sample.deviceId),
    });
  }

  /** A device ALERT frame of kind tamper: true if the rule took it (raised or already open), false to raise it as a plain device alert. */
  async onTamper(alert: { deviceId: string; message: string; atMs: number; detail: JsonObject; actor: string }): Promise<boolean> {
    if (!this.rules.tamper) return false;
    await this.#raiseForDevice({
      deviceId: alert.deviceId, kind: 'tamper', severity: 'critical', atMs: alert.atMs, actor: alert.actor, detail: alert.detail,
      message: `tamper signal: ${alert.message}`, episodeKey: episodeKeyOf('tamper', alert.deviceId),
    });
    return true;
  }

  /**
   * A device's posture report (compliance.ts): new tamper signals in it (a configured compliance
   * reason, a hash change, compliance-tamper.ts) raise the same `tamper` alert as an ALERT frame.
   */
  async onPostureReport(report: PostureReport): Promise<void> {
    if (!this.rules.tamper) return;
    const signals = tamperSignalsOf({ previous: report.previous, reported: report.reported, result: report.result, rules: this.rules.tamperSignals });
    if (signals.length === 0) return;
    await this.onTamper({
      deviceId: report.deviceId, atMs: report.atMs, actor: actors.system, message: `compliance: ${signals.map((s) => s.message).join('; ')}`,
      detail: { source: 'compliance', signals: signals.map((s) => s.code) },
    });
  }

  /** An update command finished: a success ends the device's update_failed episode; enough failures in a row raise it. */
  async onUpdateOutcome(outcome: UpdateOutcome): Promise<void> {
    const failuresMax = this.rules.updateFailures;
    if (failuresMax === null) return;
    const episodeKey = episodeKeyOf('update_failed', outcome.deviceId);
    if (outcome.succeeded) {
      await this.#episodes.clear(episodeKey, outcome.atMs);
      return;
    }
    // The device's last failuresMax finished update commands, newest first: all failed is a run of failures.
    const recent = await this.#ctx.db.query<{ state: string }>(
      `SELECT state FROM commands WHERE device_id = ? AND opcode IN (${updateOpcodes.map(() => '?').join(', ')}) AND state IN ('succeeded', 'failed')
       ORDER BY updated_at DESC, id DESC LIMIT ?`,
      [outcome.deviceId, ...updateOpcodes, failuresMax],
    );
    if (recent.length < failuresMax || recent.some((row) => row.state !== 'failed')) return;
    await this.#raiseForDevice({
      deviceId: outcome.deviceId, kind: 'update_failed', severity: 'critical', atMs: outcome.atMs, actor: actors.device(outcome.deviceId),
      message: `${failuresMax} update command(s) in a row failed on ${outcome.deviceId}; the last: ${outcome.opcode} ${outcome.commandId}`,
      detail: { command_id: outcome.commandId, opcode: outcome.opcode, failures_in_a_row: failuresMax }, episodeKey,
    });
  }

  /** One sampling pass: offline devices, stream backlogs, risk episodes that are over. */
  async sample(): Promise<void> {
    const nowMs = this.#ctx.clock.nowMs();
    // Each step on its own: a store failure in one still lets the others run this pass.
    for (const [name, step] of [['offline', () => this.#sampleOffline(nowMs)], ['backpressure', () => this.#sampleBackpressure(nowMs)], ['risk clear', () => this.#clearCalmRisk(nowMs)]] as const) {
      try {
        await step();
      } catch (error) {
        this.#ctx.logger.error({ err: error, step: name }, 'alert rules sampling step failed; retried at the next pass');
      }
    }
  }

  async #sampleOffline(nowMs: number): Promise<void> {
    const afterMs = this.rules.offlineAfterMs;
    if (afterMs === null) return;
    // Devices seen once, held by no gateway since at least afterMs ago, without an open offline episode.
    const rows = await this.#ctx.db.query<{ id: string; last_seen_at: number }>(
      `SELECT d.id, d.last_seen_at FROM devices d
       WHERE d.status = 'enrolled' AND d.gateway_id IS NULL AND d.last_seen_at IS NOT NULL AND d.last_seen_at <= ?
         AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.device_id = d.id AND a.kind = 'device_offline' AND a.episode_key IS NOT NULL)
       ORDER BY d.last_seen_at, d.id LIMIT ?`,
      [nowMs - afterMs, samplePassRowsMax],
    );
    for (const row of rows) {
      const lastSeenMs = Number(row.last_seen_at);
      await this.#episodes.raise({
        deviceId: row.id, kind: 'device_offline', severity: 'warning', atMs: nowMs, actor: actors.system,
        message: `device ${row.id} offline since ${new Date(lastSeenMs).toISOString()} (rule: ${afterMs} ms)`,
        detail: { last_seen_at_ms: lastSeenMs, offline_after_ms: afterMs }, episodeKey: episodeKeyOf('device_offline', row.id),
      });
    }
  }

  async #sampleBackpressure(nowMs: number): Promise<void> {
    const { busPendingAbove, deadLettersAbove } = this.rules.backpressure;
    if (busPendingAbove === null && deadLettersAbove === null) return;
    for (const [stream, group] of await this.#sampledStreams()) {
      if (busPendingAbove !== null) {
        const pending = await this.#pendingCount(stream, group);
        await this.#threshold({ what: 'pending', stream, value: pending, above: busPendingAbove, nowMs, detail: { group } });
      }
      if (deadLettersAbove !== null) {
        const dead = await this.#ctx.bus.length(deadLetterStream(stream));
        await this.#threshold({ what: 'dead_letters', stream, value: dead, above: deadLettersAbove, nowMs, detail: {} });
      }
    }
  }

  /** A stream or group not created yet (nothing consumed it so far) has nothing pending. */
  async #pendingCount(stream: string, group: string): Promise<number> {
    try {
      return (await this.#ctx.bus.pending(stream, group, { count: pendingEntriesReadMax })).length;
    } catch (error) {
      if (SdcError.is(error, 'STORE_NO_GROUP')) return 0;
      throw error;
    }
  }

  /** Raises the stream's episode above the threshold, clears it at or below. */
  async #threshold(o: { what: 'pending' | 'dead_letters'; stream: string; value: number; above: number; nowMs: number; detail: JsonObject }): Promise<void> {
    const episodeKey = episodeKeyOf('backpressure', `${o.what}:${o.stream}`);
    if (o.value <= o.above) {
      await this.#episodes.clear(episodeKey, o.nowMs);
      return;
    }
    const label = o.what === 'pending' ? 'entries pending (read, not acknowledged)' : 'dead letters';
    await this.#episodes.raise({
      deviceId: null, kind: 'backpressure', severity: 'warning', atMs: o.nowMs, actor: actors.system, episodeKey,
      message: `${o.stream}: ${o.value} ${label}, above ${o.above}`,
      detail: { stream: o.stream, measure: o.what, value: o.value, above: o.above, ...o.detail },
    });
  }

  /** The control plane's two streams, and the command streams of the gateways listed in the key/value store. */
  async #sampledStreams(): Promise<Array<readonly [string, string]>> {
    const streams: Array<readonly [string, string]> = [[streamNames.events, groups.controlPlane], [streamNames.telemetry, groups.telemetry]];
    let ids: unknown = [];
    try {
      ids = JSON.parse((await this.#ctx.kv.get(kvKeys.gatewayIds)) ?? '[]');
    } catch {
      ids = [];
    }
    if (!Array.isArray(ids)) return streams;
    for (const id of ids.slice(0, gatewayStreamsSampledMax)) {
      if (typeof id === 'string' && /^[A-Za-z0-9_.-]{1,64}$/.test(id)) streams.push([gatewayCommandStream(id), groups.gateway]);
    }
    return streams;
  }

  /** A risk episode ends when the device's newest sample scores under the threshold (or the rule is off). */
  async #clearCalmRisk(nowMs: number): Promise<void> {
    const threshold = this.rules.riskScoreAbove;
    const open = await this.#ctx.db.query<{ device_id: string; episode_key: string }>(
      "SELECT device_id, episode_key FROM alerts WHERE kind = 'risk_score' AND episode_key IS NOT NULL ORDER BY created_at LIMIT ?", [samplePassRowsMax],
    );
    for (const row of open) {
      const [latest] = await this.#ctx.db.query<{ risk_score: number | null }>('SELECT risk_score FROM telemetry WHERE device_id = ? ORDER BY ts DESC LIMIT 1', [row.device_id]);
      const score = latest?.risk_score === null || latest === undefined ? undefined : Number(latest.risk_score);
      if (threshold === null || (score !== undefined && score < threshold)) await this.#episodes.clear(row.episode_key, nowMs);
    }
  }

  /**
   * A device-caused alert: nothing when its episode is open (checked first, so a device stuck
   * above a threshold does not use up its rate limit), else within the device's rate limit.
   */
  async #raiseForDevice(alert: RaiseAlert & { deviceId: string; episodeKey: string }): Promise<void> {
    if (await this.#episodes.isOpen(alert.episodeKey)) return;
    const admission = await this.#limiter.admit(alert.deviceId);
    if (admission === 'raise') await this.#episodes.raise(alert);
    else if (admission === 'summarise') await this.#episodes.raise(this.#limiter.summaryAlert(alert.deviceId, alert.atMs));
  }
}
