import { SdcError } from '../../core/errors/index.js';
import { decodeBusEntry, encodeBusEntry, presenceRestoredReason, type BusEntryData, type DecodedBusEntry } from '../bus-contract/entries.js';
import { groups, streamNames } from '../bus-contract/streams.js';
import { deadFields, deadLetterStream } from '../stores/bus/bus-port.js';
import { commandExecution, commandTerminalStates, type CommandEvent, type CommandState } from '../../core/protocol/command-machine.js';
import type { JsonObject } from '../../core/protocol/json-value.js';
import type { MessageBody } from '../../core/protocol/messages/catalog.js';
import { riskScore, type RiskResult, type RiskTelemetry } from '../../core/protocol/risk-score.js';
import { traceLogFields } from '../../core/trace/trace-context.js';
import type { BusEntry } from '../stores/bus/bus-port.js';
import { AlertEpisodes, type RaiseAlert } from './alert-episodes.js';
import { AlertMonitor, updateOpcodes } from './alert-monitor.js';
import { AlertRateLimiter } from './alert-rate-limit.js';
import { alertRulesDefault, type AlertRules } from './alert-rules.js';
import { canonicalMetricsJson, sampleDigestOf, TelemetryRowWriter, type TelemetryRow } from './telemetry-rows.js';
import { PolicyBundleReports } from './policy-bundle-reports.js';
import type { CommandService, TransitionOutcome } from './commands.js';
import type { CommandRow } from './command-repository.js';
import { actors, type ServiceContext } from './context.js';
import type { DeviceService, TelemetryFrame } from './devices.js';
import type { OpenEpisode } from './alert-episodes.js';
import { carriesAuthFacts, type DeviceReportRead } from './compliance.js';
import type { StoredCommand } from './command-repository.js';
import { pageLimit } from './pagination.js';

/**
 * The device an events/telemetry entry is about, for StreamConsumer.partitionKey: entries of one
 * device are handled in order, different devices concurrently. Only a hint: the handler still
 * validates the entry, and one without a device id is handled on its own.
 */
export function deviceIdOfEntry(entry: BusEntry): string | readonly string[] | undefined {
  let decoded: DecodedBusEntry;
  try {
    // Decoded (strict parse and schema check) here once: the handlers get the same value from decodeBusEntry's memo (issue 17).
    decoded = decodeBusEntry(entry.fields);
  } catch {
    return deviceIdOfMalformed(entry);
  }
  // Several devices' telemetry frames (decision 0023): the entry keeps each device's order.
  if (decoded.kind === 'telemetry_frames') return decoded.data.frames.map((frame) => frame.device_id);
  const data: object = decoded.data;
  return 'device_id' in data && typeof data.device_id === 'string' ? data.device_id : undefined;
}

/**
 * A malformed entry keeps the partition it had before entries were decoded here (its text's
 * device_id, if any), so where its refusal comes in a device's order does not change. Malformed
 * entries are rare; this is the only second parse left, and only for them.
 */
function deviceIdOfMalformed(entry: BusEntry): string | undefined {
  const data = entry.fields['data'];
  if (data === undefined) return undefined;
  const deviceId = (JSON.parse(data) as { device_id?: unknown } | null)?.device_id;
  return typeof deviceId === 'string' ? deviceId : undefined;
}

/**
 * Telemetry entries remembered with the samples whose risk alerts they owe, for their retries in
 * this process (EventHandlers.#alertsOwed); beyond it the oldest is forgotten. Only entries with a
 * sample over the threshold are remembered, each until its handler finishes, so a store outage
 * holds at most the entries in flight (telemetryConsumerOptions.entriesInFlightMax, 1,024).
 */
const alertsOwedEntriesMax = 1024;

/** The compliance service's read that rides with the presence handler's (ComplianceService.reportAndEpisodeOf). */
export interface PresenceComplianceReads {
  reportAndEpisodeOf(deviceId: string, episodeKey: string): Promise<{ report: DeviceReportRead; episode: OpenEpisode | undefined }>;
}

/** What handleEvent read that the compliance record of the same entry needs (ComplianceService.onEventEntry). */
export interface EventReads {
  readonly complianceReport?: DeviceReportRead;
}

/** A sample's metrics as the risk score reads them: one object, not a spread of an optional member into it (per sample, issue 17). */
function riskTelemetryOf(m: MessageBody<'TELEMETRY'>['metrics']): RiskTelemetry {
  const { cpu_pct: cpuPct, mem_pct: memPct, disk_pct: diskPct, net_rx_bytes_per_sec: netRxBytesPerSec, net_tx_bytes_per_sec: netTxBytesPerSec } = m;
  return m.process_count === undefined
    ? { cpuPct, memPct, diskPct, netRxBytesPerSec, netTxBytesPerSec }
    : { cpuPct, memPct, diskPct, netRxBytesPerSec, netTxBytesPerSec, processCount: m.process_count };
}

const resultEvents: Record<'succeeded' | 'failed' | 'rejected', CommandEvent> = { succeeded: 'succeed', failed: 'fail', rejected: 'reject' };

/** The decoder's refusal of an ack or start without the device's frame (checkDeviceWord), with the same code: the consumer dead-letters it. */
function unsignedAck(data: BusEntryData<'command_progress'>): SdcError {
  return new SdcError('COMMAND_ACK_UNSIGNED', `command_progress ${data.event} for command ${data.command_id} from gateway ${data.gateway_id} carries no device frame`, {
    commandId: data.command_id, deviceId: data.device_id, gatewayId: data.gateway_id,
  });
}

/**
 * Handlers for the gateways' streams. Each handler finishes its SQL writes before it resolves, and
 * the StreamConsumer acks only then. Entries are validated on read (decodeBusEntry); frames
 * signed by devices are verified again against the enrolled key.
 */
export class EventHandlers {
  readonly #ctx: ServiceContext;
  readonly #commands: CommandService;
  readonly #devices: DeviceService;
  /** Per-device limit on the alerts a device causes (alert-rate-limit.ts); `droppedTotal` is the metric. */
  readonly alertRateLimiter: AlertRateLimiter;
  /** The alert rules (alert-rules.ts), judged as events arrive and by its periodic `sample()`. */
  readonly alertMonitor: AlertMonitor;
  readonly #episodes: AlertEpisodes;
  /** Many samples per INSERT (group commit across the concurrent telemetry handlers). */
  readonly #telemetryRows: TelemetryRowWriter;
  readonly #bundleReports: PolicyBundleReports;
  readonly #compliance: PresenceComplianceReads | undefined;

  /** Called for each telemetry sample stored (the ingest counter, /metrics). */
  readonly #onTelemetryStored: () => void;
  /**
   * Telemetry entries (by id) whose samples over the risk threshold were judged new before their
   * rows were written, and the indexes of those samples: an entry handled again (a retry in place
   * after its INSERT's outcome was unknown or after an alert could not be raised) raises those
   * samples' alerts although its rows are now duplicates. At most alertsOwedEntriesMax.
   */
  readonly #alertsOwed = new Map<string, readonly number[]>();

  constructor(options: {
    context: ServiceContext; commands: CommandService; devices: DeviceService; onTelemetryStored?: () => void;
    /** Called with the samples an INSERT skipped as stored already (the duplicates counter, /metrics). */
    onTelemetryDuplicates?: (duplicates: number) => void;
    /** Default alertRulesDefault. */
    alertRules?: AlertRules;
    /** Called once per alert stored (the alerts counter, /metrics). */
    onAlertRaised?: (kind: string) => void;
    /** The compliance read a presence with AUTH facts takes with its episode read, for onEventEntry (issue 17). */
    compliance?: PresenceComplianceReads;
  }) {
    this.#ctx = options.context;
    this.#compliance = options.compliance;
    this.#onTelemetryStored = options.onTelemetryStored ?? (() => undefined);
    this.#commands = options.commands;
    this.#devices = options.devices;
    const onTelemetryDuplicates = options.onTelemetryDuplicates ?? (() => undefined);
    this.#telemetryRows = new TelemetryRowWriter(this.#ctx.db, {
      onDuplicates: (duplicates, rows) => {
        onTelemetryDuplicates(duplicates);
        this.#ctx.logger.info({ duplicates, rows }, 'telemetry samples stored already (delivered again), skipped');
      },
    });
    this.#bundleReports = new PolicyBundleReports(this.#ctx);
    this.alertRateLimiter = new AlertRateLimiter({ kv: this.#ctx.kv, clock: this.#ctx.clock, logger: this.#ctx.logger });
    this.#episodes = new AlertEpisodes({ context: this.#ctx, ...(options.onAlertRaised === undefined ? {} : { onRaised: options.onAlertRaised }) });
    this.alertMonitor = new AlertMonitor({ context: this.#ctx, episodes: this.#episodes, rateLimiter: this.alertRateLimiter, rules: options.alertRules ?? alertRulesDefault });
  }

  /** A device's OTA_REPORT (server/ota/rollouts.ts), set when the control plane has an image repository. */
  otaReports: ((data: BusEntryData<'ota_report'>) => Promise<void>) | undefined;

  /**
   * Checks a device's succeeded result against what it claims, before it is recorded (set by the
   * control plane: an artifact upload's length and digest in the blob store, artifact-routes.ts).
   * A refusal records the command failed, with the refusal's code in its history; a throw retries the entry.
   */
  resultCheck: ((command: { id: string; deviceId: string; opcode: string }, output: Readonly<Record<string, unknown>>) => Promise<SdcError | undefined>) | undefined;

  /**
   * One entry of `sdc:events`. A presence resolves with what it read that the compliance record of
   * the same entry needs (EventReads), if anything.
   */
  async handleEvent(entry: BusEntry): Promise<EventReads | void> {
    return this.handleDecodedEvent(decodeBusEntry(entry.fields));
  }

  /** One events entry as decodeBusEntry gave it (handleEvent's second half; tests give one the decoder would refuse). */
  async handleDecodedEvent(decoded: DecodedBusEntry): Promise<EventReads | void> {
    switch (decoded.kind) {
      case 'presence': return this.#presence(decoded.data);
      case 'command_progress': return this.#progress(decoded.data);
      case 'command_result': return this.#result(decoded.data);
      case 'alert': return this.#alert(decoded.data);
      case 'ota_report': {
        if (this.otaReports === undefined) throw new SdcError('OTA_REPOSITORY_NOT_INITIALISED', `OTA report from ${decoded.data.device_id}, but this control plane has no image repository`);
        return this.otaReports(decoded.data);
      }
      case 'policy_bundle_report': return this.#policyBundleReport(decoded.data);
      default: throw new SdcError('PROTO_UNKNOWN_TYPE', `${decoded.kind} entries do not belong on the events stream`);
    }
  }

  async #presence(data: BusEntryData<'presence'>): Promise<EventReads | undefined> {
    if (await this.#restoredUnchanged(data)) {
      // Published all the same: a view read while the key was missing shows the device offline.
      this.#ctx.publishLive({ type: 'presence', device_id: data.device_id, online: true, gateway_id: data.gateway_id, at_ms: data.at_ms });
      return undefined;
    }
    const known = await this.#devices.recordPresence({
      deviceId: data.device_id, gatewayId: data.gateway_id, online: data.online, atMs: data.at_ms, lastCommandSeq: data.last_command_seq,
      clockOffsetMs: data.clock_offset_ms, agentVersion: data.agent_version,
    });
    if (!known) throw new SdcError('API_DEVICE_NOT_FOUND', `presence for unknown device ${data.device_id}`);
    this.#ctx.publishLive({ type: 'presence', device_id: data.device_id, online: data.online, gateway_id: data.gateway_id, at_ms: data.at_ms });
    if (!data.online) {
      await this.alertMonitor.onPresence(data.device_id, false, data.at_ms);
      return undefined;
    }
    // The offline episode the device ends and its commands to send again, read after the presence
    // write (in one statement on MySQL, issue 15); the clear comes first, then the redelivery, as before.
    const read = await this.#onlineReads(data);
    await this.alertMonitor.onPresence(data.device_id, true, data.at_ms, { row: read.episode });
    await this.#commands.redeliver(data.device_id, data.gateway_id, read.commands);
    return read.complianceReport === undefined ? undefined : { complianceReport: read.complianceReport };
  }

  /**
   * A presence online's reads: its offline episode and unfinished commands, and, for one with AUTH
   * facts on sql.js, the compliance record's read of the device (onEventEntry, after this handler)
   * in the episode's statement: one statement less per AUTH (issue 17). On MySQL the episode and
   * the commands are one statement already (CommandRepository.unfinishedAndEpisodeOf) and the
   * compliance read stays its own: a third part there needs a row shape of its own.
   */
  async #onlineReads(data: BusEntryData<'presence'>): Promise<{ commands: StoredCommand[]; episode: OpenEpisode | undefined; complianceReport?: DeviceReportRead }> {
    const episodeKey = this.alertMonitor.presenceEpisodeKey(data.device_id);
    if (this.#compliance === undefined || this.#ctx.db.dialect === 'mysql' || !carriesAuthFacts(data)) {
      return this.#commands.unfinishedAndEpisodeOf(data.device_id, episodeKey);
    }
    const { report, episode } = await this.#compliance.reportAndEpisodeOf(data.device_id, episodeKey);
    return { commands: await this.#commands.unfinishedOf(data.device_id), episode, complianceReport: report };
  }

  /**
   * A restored online (its session never ended; a refresh wrote the lapsed key again) for a device
   * whose row names that gateway already and has no offline episode open: nothing was routed
   * elsewhere and nothing is to clear, so no writes, no episode read and no redelivery (the
   * gateway still holds what it was sent; a command whose dispatch failed while the key was missing
   * is never-dispatched, which the redelivery sweep sends within its period). Why: a store outage
   * longer than the TTL, or a restart that loses the keys, lapses every key at once, and each
   * session's next refresh reports one of these: a whole-fleet online storm at recovery.
   */
  async #restoredUnchanged(data: BusEntryData<'presence'>): Promise<boolean> {
    if (!data.online || data.reason !== presenceRestoredReason) return false;
    const holds = await this.#devices.holdsPresence(data.device_id, data.gateway_id, this.alertMonitor.presenceEpisodeKey(data.device_id));
    if (holds === undefined) throw new SdcError('API_DEVICE_NOT_FOUND', `presence for unknown device ${data.device_id}`);
    return holds;
  }

  async #progress(data: BusEntryData<'command_progress'>): Promise<void> {
    const command = await this.#requireCommandOf(data.command_id, data.device_id);
    // ack and start are the device's word (deliver, requeue and dead_letter the gateway's): not taken from a revoked device.
    if ((data.event === 'ack' || data.event === 'start') && command.deviceStatus === 'revoked') {
      throw new SdcError('API_DEVICE_REVOKED', `device ${data.device_id} is revoked; its ${data.event} is refused`, { deviceId: data.device_id });
    }
    if (data.event === 'requeue') {
      await this.#commands.requeue(data.command_id);
      return;
    }
    const detail: JsonObject = { gateway_id: data.gateway_id, attempt: data.attempt, ...(data.detail === undefined ? {} : { detail: data.detail }) };
    let outcome: TransitionOutcome;
    if (data.event === 'ack' || data.event === 'start') {
      // The decoder refuses these already (checkDeviceWord, server/bus-contract/entries.ts); refused
      // here too, so no path to this handler records the gateway's word as the device's.
      if (data.frame === undefined) throw unsignedAck(data);
      await this.#verifyAck(data, data.frame, command.device_seq);
      // Audited as `command.ack` with the device-signed frame, in the transition's own transaction (command-decisions.ts).
      outcome = await this.#commands.transition(data.command_id, data.event, data.at_ms, {
        detail, actor: actors.device(data.device_id), ack: { frame: data.frame, gatewayId: data.gateway_id }, current: command.row,
      });
    } else {
      // deliver and dead_letter: the gateway's own events, which carry no device frame.
      outcome = await this.#commands.transition(data.command_id, data.event, data.at_ms, { detail, actor: actors.gateway(data.gateway_id), current: command.row });
    }
    this.#ctx.logger.debug({
      commandId: data.command_id, event: data.event, gatewayId: data.gateway_id, applied: outcome.applied, ...traceLogFields(command.traceparent ?? data.traceparent),
    }, 'command progress recorded');
  }

  /** The ACK frame must be the device's, about this command and seq, at the stage the gateway reported. */
  async #verifyAck(data: BusEntryData<'command_progress'>, frame: string, deviceSeq: number): Promise<void> {
    const { body } = await this.#devices.verifyDeviceFrame(data.device_id, frame, 'COMMAND_ACK');
    const stage = data.event === 'ack' ? 'received' : 'executing';
    if (body.command_id !== data.command_id || body.device_seq !== deviceSeq || body.stage !== stage) {
      throw new SdcError('COMMAND_DEVICE_MISMATCH', `ACK frame names command ${body.command_id} seq ${body.device_seq} stage ${body.stage}`);
    }
  }

  async #result(data: BusEntryData<'command_result'>): Promise<void> {
    const command = await this.#requireCommandOf(data.command_id, data.device_id);
    const { body } = await this.#devices.verifyDeviceFrame(data.device_id, data.frame, 'COMMAND_RESULT');
    if (body.command_id !== data.command_id || body.device_seq !== command.device_seq) {
      throw new SdcError('COMMAND_DEVICE_MISMATCH', `result frame names command ${body.command_id} seq ${body.device_seq}`);
    }
    // Before the transition, so a retry after a failure here still records it (it only moves up).
    await this.#devices.recordCommandFinished({ deviceId: data.device_id, deviceSeq: command.device_seq, atMs: data.at_ms });
    // Only a result that would be recorded is checked (a duplicate or late one changes nothing).
    const refusal = body.status === 'succeeded' && !commandTerminalStates.includes(command.row.state)
      ? await this.resultCheck?.({ id: data.command_id, deviceId: data.device_id, opcode: command.row.opcode }, body.output) : undefined;
    // Stored with the command and audited as `command.result` with the device-signed frame, verbatim (command-decisions.ts).
    const outcome = await this.#commands.transition(data.command_id, resultEvents[refusal === undefined ? body.status : 'failed'], data.at_ms, {
      detail: { gateway_id: data.gateway_id, status: body.status, ...(refusal === undefined ? {} : { refused: { code: refusal.code, message: refusal.message } }) },
      actor: actors.device(data.device_id),
      result: { frame: data.frame, gatewayId: data.gateway_id }, current: command.row,
    });
    // The trace the command was created under (ours), else the one the gateway and the device passed back.
    this.#ctx.logger.info({
      commandId: data.command_id, deviceId: data.device_id, status: body.status, applied: outcome.applied, ...(outcome.applied ? { state: outcome.to } : {}),
      ...traceLogFields(command.traceparent ?? data.traceparent ?? body.traceparent),
    }, 'command result recorded');
    if (outcome.applied) await this.#updateOutcome(data, command.row.opcode, body.status === 'succeeded');
    if (!outcome.applied) {
      this.#ctx.logger.info({ commandId: data.command_id, reason: outcome.reason }, 'command result not applied (duplicate or late)');
      if (outcome.state !== undefined && body.status !== 'rejected') await this.#contradiction(data, body.status, outcome.state);
    }
  }

  /** A finished update command (STAGE/COMMIT/ROLLBACK) feeds the update_failed rule (the opcode from the row the handler read). */
  async #updateOutcome(data: BusEntryData<'command_result'>, opcode: string, succeeded: boolean): Promise<void> {
    if (this.alertMonitor.rules.updateFailures === null) return;
    if (!updateOpcodes.includes(opcode)) return;
    await this.alertMonitor.onUpdateOutcome({ deviceId: data.device_id, commandId: data.command_id, opcode, succeeded, atMs: data.at_ms });
  }

  /**
   * A signed result saying the device ran a command recorded in a state that guarantees it never
   * ran (docs/protocol.md): the guarantee is broken, so an operator must see it (critical alert).
   */
  async #contradiction(data: BusEntryData<'command_result'>, status: string, state: CommandState): Promise<void> {
    if (commandExecution[state] !== 'not_executed') return;
    this.#ctx.logger.error({ commandId: data.command_id, state, status }, 'a device reports running a command recorded as never run');
    await this.raiseAlert({
      deviceId: data.device_id, kind: 'command_state_contradicted', severity: 'critical', atMs: data.at_ms, actor: actors.device(data.device_id),
      message: `device reports command ${data.command_id} ${status}, but it is recorded ${state}, which guarantees it never ran`,
      detail: { command_id: data.command_id, state, status, frame: data.frame },
    });
  }

  async #alert(data: BusEntryData<'alert'>): Promise<void> {
    if (data.frame !== undefined) await this.#devices.verifyDeviceFrame(data.device_id, data.frame, 'ALERT');
    // A clock_skew alert for a device whose AUTH was refused: there is no presence to carry the offset.
    if (data.clock_offset_ms !== undefined) await this.#devices.recordClockOffset(data.device_id, data.clock_offset_ms);
    const detail = { gateway_id: data.gateway_id, ...(data.frame === undefined ? {} : { frame: data.frame }) };
    // A device's tamper signal is the tamper rule's: one critical alert per episode.
    if (data.kind === 'tamper' && await this.alertMonitor.onTamper({ deviceId: data.device_id, message: data.message, atMs: data.at_ms, detail, actor: actors.gateway(data.gateway_id) })) return;
    await this.#raiseDeviceAlert({
      deviceId: data.device_id, kind: data.kind, severity: data.severity, message: data.message, atMs: data.at_ms, detail, actor: actors.gateway(data.gateway_id),
    });
  }

  /**
   * A device's signed word on its policy bundle: audited once per (device, version, outcome)
   * (policy-bundle-reports.ts); a refusal, the first time, is also a warning alert.
   */
  async #policyBundleReport(data: BusEntryData<'policy_bundle_report'>): Promise<void> {
    const { body } = await this.#devices.verifyDeviceFrame(data.device_id, data.frame, 'POLICY_BUNDLE_REPORT');
    const recorded = await this.#bundleReports.record({ deviceId: data.device_id, gatewayId: data.gateway_id, atMs: data.at_ms, report: body, frame: data.frame });
    if (!recorded || body.status !== 'refused') return;
    const code = body.error?.code ?? 'POLICY_BUNDLE_INVALID';
    await this.#raiseDeviceAlert({
      deviceId: data.device_id, kind: 'policy_bundle_refused', severity: 'warning', atMs: data.at_ms, actor: actors.gateway(data.gateway_id),
      message: `device refused policy bundle version ${body.version} with ${code}: ${body.error?.message ?? ''}; it enforces ${body.held_version === undefined ? 'no bundle' : `version ${body.held_version}`}`,
      detail: { gateway_id: data.gateway_id, frame: data.frame },
    });
  }

  async #requireCommandOf(commandId: string, deviceId: string): Promise<{ device_seq: number; deviceStatus: string | null; traceparent: string | undefined; row: CommandRow }> {
    const owner = await this.#commands.ownerOf(commandId);
    if (owner === undefined) throw new SdcError('COMMAND_NOT_FOUND', `no command ${commandId}`);
    if (owner.deviceId !== deviceId) throw new SdcError('COMMAND_DEVICE_MISMATCH', `command ${commandId} is not for ${deviceId}`);
    return { device_seq: owner.deviceSeq, deviceStatus: owner.deviceStatus, traceparent: owner.traceparent, row: owner.row };
  }

  /**
   * Stores an alert and its audit entry in one transaction, then publishes it live (AlertEpisodes).
   * Without an episode key every call is a new alert; with one, the id of the new alert or
   * undefined when that episode is open already.
   */
  async raiseAlert(options: RaiseAlert & { episodeKey?: undefined }): Promise<string>;
  async raiseAlert(options: RaiseAlert): Promise<string | undefined>;
  async raiseAlert(options: RaiseAlert): Promise<string | undefined> {
    const outcome = await this.#episodes.raise(options);
    return outcome.raised ? outcome.id : undefined;
  }

  /** An alert the device caused, within its rate limit: raised, replaced by the one summary, or dropped. */
  async #raiseDeviceAlert(options: RaiseAlert & { deviceId: string; episodeKey?: undefined }): Promise<void> {
    const admission = await this.alertRateLimiter.admit(options.deviceId);
    if (admission === 'raise') await this.raiseAlert(options);
    else if (admission === 'summarise') await this.raiseAlert(this.alertRateLimiter.summaryAlert(options.deviceId, options.atMs));
  }

  /**
   * One entry of `sdc:telemetry`: verify, validate, score, store; alert above the threshold. The
   * entry's frame is one sample (TELEMETRY) or several (TELEMETRY_BATCH, decision 0004
   * "Batches"): decoded and checked once, each sample scored and stored as its own row with its
   * own sampled_at (all of a frame's rows in one INSERT), the device's last-seen once per entry.
   * A sample stored already (same device, sampled_at and metrics: docs/decisions/0012-telemetry-sample-identity.md)
   * is not stored again, and its risk alert is not raised again (#alertsOwedBy).
   *
   * Not async: an entry with no sample over the risk threshold (nearly all) waits on its INSERT's
   * promise through one `then`, not an async function's promise and its await (issue 17: two
   * promises per sample, each paying the process's AsyncLocalStorage hooks). A refusal still
   * comes as a rejected promise, never a throw.
   */
  handleTelemetry(entry: BusEntry): Promise<void> {
    try {
      const decoded = decodeBusEntry(entry.fields);
      if (decoded.kind === 'telemetry_frames') return this.#handleTelemetryFrames(entry, decoded.data);
      if (decoded.kind !== 'telemetry') throw new SdcError('PROTO_UNKNOWN_TYPE', `${decoded.kind} entries do not belong on the telemetry stream`);
      const data = decoded.data;
      // The gateway named in the entry checked the session MAC (ADR 0004); a signed frame is verified again.
      // Answered without a promise when the device's row is cached (DeviceService.telemetryFrame).
      const checked = this.#devices.telemetryFrame(data.device_id, data.frame);
      return checked instanceof Promise ? checked.then((frame) => this.#storeTelemetry(entry, data, frame)) : this.#storeTelemetry(entry, data, checked);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * A telemetry_frames entry (decision 0023): each frame checked, scored and stored exactly as if
   * it had come in a `telemetry` entry of its own (#storeTelemetry: all their rows join the same
   * INSERTs), and the entry resolved once every frame's rows are stored, so its ack comes after
   * all its samples are. A frame refused for itself (a remote fault: revoked or unknown device, a
   * malformed frame) does not refuse the others: it is dead-lettered alone, as the `telemetry`
   * entry it would have been, once the others are stored (a retry of that dead letter takes the
   * one-frame path). Any other failure (a store outage) fails the entry, which is retried whole:
   * its rows stored already are skipped (decision 0012), and a dead letter written already may be
   * written once more (kept twice, never lost). So a local failure of one frame holds every device
   * of the entry until the entry's retries and deliveries run out (then it is dead-lettered whole):
   * a trade-off kept, decision 0023 "A trade-off kept". An entry that names one device twice (a
   * gateway forwards a session's next frame only after its previous one's append, so this is rare)
   * has all its frames handled one after another, as separate entries would be; otherwise together.
   */
  async #handleTelemetryFrames(entry: BusEntry, data: BusEntryData<'telemetry_frames'>): Promise<void> {
    const items: BusEntryData<'telemetry'>[] = data.frames.map((f) => ({ device_id: f.device_id, gateway_id: data.gateway_id, received_at_ms: f.received_at_ms, frame: f.frame }));
    const refused: Array<{ item: BusEntryData<'telemetry'>; error: SdcError }> = [];
    const refusal = (index: number, error: unknown): void => {
      if (!SdcError.is(error) || error.fault !== 'remote') throw error;
      refused.push({ item: items[index]!, error });
    };
    const deviceIds = new Set(items.map((item) => item.device_id));
    const oneByOne = deviceIds.size < items.length;
    const stores: Array<Promise<void>> = [];
    for (let index = 0; index < items.length; index += 1) {
      const item = items[index]!;
      // The frame's own entry, for #storeTelemetry's alert bookkeeping (keyed by entry id; a redelivery keeps its count).
      const frameEntry: BusEntry = { id: `${entry.id}/${index}`, fields: entry.fields, deliveryCount: entry.deliveryCount };
      let stored: Promise<void>;
      try {
        const checked = this.#devices.telemetryFrame(item.device_id, item.frame);
        stored = checked instanceof Promise ? checked.then((frame) => this.#storeTelemetry(frameEntry, item, frame)) : this.#storeTelemetry(frameEntry, item, checked);
      } catch (error) {
        stored = Promise.reject(error);
      }
      const judged = stored.catch((error: unknown) => refusal(index, error));
      if (oneByOne) await judged;
      else stores.push(judged);
    }
    const failed = (await Promise.allSettled(stores)).find((result): result is PromiseRejectedResult => result.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
    for (const { item, error } of refused) await this.#deadLetterFrame(entry, item, error);
  }

  /** One frame of a telemetry_frames entry, dead-lettered as the `telemetry` entry it would have been (StreamConsumer's reason and dead.* fields). */
  async #deadLetterFrame(entry: BusEntry, item: BusEntryData<'telemetry'>, error: SdcError): Promise<void> {
    const reason = `${error.code}: ${error.message}`.slice(0, 512);
    this.#ctx.logger.warn({ stream: streamNames.telemetry, entryId: entry.id, device_id: item.device_id, reason }, 'telemetry frame dead-lettered; the other frames of its entry were stored');
    // Bounded as the bus's own deadLetter bounds it (StreamBus.deadMaxLen), so these appends never trim it shorter.
    await this.#ctx.bus.append(deadLetterStream(streamNames.telemetry), {
      ...encodeBusEntry('telemetry', item),
      [deadFields.reason]: reason, [deadFields.sourceId]: entry.id, [deadFields.group]: groups.telemetry, [deadFields.deliveryCount]: String(entry.deliveryCount),
    }, { maxLen: this.#ctx.bus.deadMaxLen });
  }

  /** The frame's samples scored and stored (handleTelemetry); throws what refuses them, called where a throw becomes the entry's rejection. */
  #storeTelemetry(entry: BusEntry, data: BusEntryData<'telemetry'>, frame: TelemetryFrame): Promise<void> {
    const samples = frame.type === 'TELEMETRY' ? [frame.body] : frame.body.samples;
    // Below the rule's threshold (most samples) nothing is owed: no query, no promise.
    const threshold = this.alertMonitor.rules.riskScoreAbove;
    const risks = new Array<RiskResult>(samples.length);
    const rows = new Array<TelemetryRow>(samples.length);
    let alerting: number[] | undefined;
    for (let index = 0; index < samples.length; index += 1) {
      const { metrics, sampled_at: sampledAtMs } = samples[index]!;
      const risk = riskScore(riskTelemetryOf(metrics));
      risks[index] = risk;
      // Canonical, so the same metrics are the same text and digest however a resend orders them.
      rows[index] = { deviceId: data.device_id, sampledAtMs, metricsJson: canonicalMetricsJson(metrics), riskScore: risk.score };
      if (threshold !== null && risk.score >= threshold) (alerting ??= []).push(index);
    }
    if (alerting !== undefined) return this.#storeAlertingTelemetry(entry, data, samples, rows, risks, alerting);
    // The INSERT's one promise for all its rows, and this entry's own outcome in it (TelemetryRowWriter.addFrame).
    const stored = this.#telemetryRows.addFrame(rows);
    return stored.failures.then((failures) => {
      if (failures !== undefined && failures.has(stored.index)) throw failures.get(stored.index);
      return this.#telemetryStored(data, rows.length);
    });
  }

  /** The same with samples over the threshold: whether their alerts are owed is judged before the INSERT, and they are raised after it. */
  async #storeAlertingTelemetry(entry: BusEntry, data: BusEntryData<'telemetry'>, samples: readonly { sampled_at: number }[], rows: readonly TelemetryRow[],
    risks: readonly RiskResult[], alerting: readonly number[]): Promise<void> {
    const owed = await this.#alertsOwedBy(entry, data.device_id, samples, rows, alerting);
    const stored = this.#telemetryRows.addFrame(rows);
    const failures = await stored.failures;
    if (failures !== undefined && failures.has(stored.index)) throw failures.get(stored.index);
    await this.#telemetryStored(data, rows.length);
    for (const index of owed) {
      const risk = risks[index]!;
      await this.alertMonitor.onRiskScore({
        deviceId: data.device_id, score: risk.score, factors: risk.factors.map((f) => f.name), atMs: data.received_at_ms,
        detail: { score: risk.score, factors: risk.factors.map((f) => ({ name: f.name, contribution: f.contribution })) },
      });
    }
    this.#alertsOwed.delete(entry.id);
  }

  /**
   * After an entry's rows are stored: the stored counter, and the device's last-seen. Not allowed
   * to fail the entry once its rows are stored: its rows would be skipped as stored already on the
   * retry, but nothing is gained by it; the next sample writes last-seen anyway. No promise when
   * last-seen needs no write (most samples).
   */
  #telemetryStored(data: BusEntryData<'telemetry'>, rowCount: number): Promise<void> | undefined {
    for (let count = 0; count < rowCount; count += 1) this.#onTelemetryStored();
    // The gateway's receive time, not the device's sample time: a device clock may be off.
    const seen = this.#devices.recordSeen(data.device_id, data.received_at_ms);
    return seen?.catch((error: unknown) => {
      this.#ctx.logger.warn({ err: error, device_id: data.device_id }, 'last-seen not written for a stored telemetry entry; the next sample writes it');
    });
  }

  /**
   * The samples over the risk threshold (`alerting`, indexes) whose alerts this entry owes: those
   * not stored before it, so a sample delivered again (a retried append, an agent's resend) does
   * not raise its alert again, e.g. after its episode ended. Judged once per entry, before its
   * INSERT, by one query for the device's rows at those times (a device's entries are handled one
   * after another, so none of its rows is written meanwhile) and remembered until the handler
   * finishes: a retry in place, after an INSERT whose outcome was unknown or an alert that could
   * not be raised, finds its rows stored and still owes the alerts (the open episode keeps them
   * to one alert). An entry claimed again (deliveryCount above 1: its consumer crashed or gave
   * up) owes them all, since whether its first delivery raised them is not known.
   */
  async #alertsOwedBy(entry: BusEntry, deviceId: string, samples: readonly { sampled_at: number }[], sampleRows: readonly TelemetryRow[], alerting: readonly number[]): Promise<readonly number[]> {
    const remembered = this.#alertsOwed.get(entry.id);
    if (remembered !== undefined) return remembered;
    let owed = alerting;
    if (entry.deliveryCount <= 1) {
      const times = [...new Set(alerting.map((index) => samples[index]!.sampled_at))];
      const rows = await this.#ctx.db.query<{ ts: number; sample_digest: number | null }>(
        `SELECT ts, sample_digest FROM telemetry WHERE device_id = ? AND ts IN (${times.map(() => '?').join(', ')})`, [deviceId, ...times]);
      if (rows.length > 0) {
        const storedKeys = new Set(rows.map((row) => `${Number(row.ts)} ${row.sample_digest === null ? null : Number(row.sample_digest)}`));
        owed = alerting.filter((index) => !storedKeys.has(`${samples[index]!.sampled_at} ${sampleDigestOf(sampleRows[index]!.metricsJson)}`));
        if (owed.length < alerting.length) {
          this.#ctx.logger.info({ device_id: deviceId, samples: alerting.length - owed.length }, 'telemetry samples over the risk threshold stored already: their alerts are not raised again');
        }
      }
    }
    if (this.#alertsOwed.size >= alertsOwedEntriesMax) this.#alertsOwed.delete(this.#alertsOwed.keys().next().value!);
    this.#alertsOwed.set(entry.id, owed);
    return owed;
  }

  async telemetry(query: { deviceId: string; fromMs?: number; toMs?: number; limit?: number }): Promise<Array<{ ts_ms: number; metrics: JsonObject; risk_score: number | null }>> {
    const limit = pageLimit(query.limit);
    const rows = await this.#ctx.db.query<{ ts: number; metrics_json: string; risk_score: number | null }>(
      'SELECT ts, metrics_json, risk_score FROM telemetry WHERE device_id = ? AND ts >= ? AND ts <= ? ORDER BY ts DESC LIMIT ?',
      [query.deviceId, query.fromMs ?? 0, query.toMs ?? Number.MAX_SAFE_INTEGER, limit],
    );
    return rows.map((r) => ({ ts_ms: Number(r.ts), metrics: JSON.parse(r.metrics_json) as JsonObject, risk_score: r.risk_score === null ? null : Number(r.risk_score) }));
  }
}
