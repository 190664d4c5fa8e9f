import { createHash } from 'node:crypto';
import { SdcError } from '../../core/errors/index.js';
import { encodeBusEntry } from '../bus-contract/entries.js';
import { gatewayCommandStream, kvKeys, streamMaxLen } from '../bus-contract/streams.js';
import { canonicalize } from '../../core/protocol/canonical-json.js';
import {
  decideCreate, decideCreateAdmission, decideRedispatch, decideTransition, expiryEvent,
  type AfterCommitEffect, type ResultReport, type AckReport, type TransitionRefusalReason,
} from '../../core/protocol/command-decisions.js';
import { commandTable, type CommandEvent, type CommandState } from '../../core/protocol/command-machine.js';
import { isTerminal } from '../../core/protocol/state-machine.js';
import type { JsonObject, JsonValue } from '../../core/protocol/json-value.js';
import type { SignedCommand } from '../../core/protocol/messages/command.js';
import { CommandTtlMsMax, commandRequester } from '../../core/protocol/messages/command.js';
import { validateOpcodeArgs } from '../../core/protocol/messages/validate.js';
import { evaluatePolicy, type PolicyDecision } from '../../core/protocol/policy.js';
import { signCommand } from '../../core/protocol/signed-command.js';
import { approvalSubjectHash, type ApprovalSubject } from '../../core/protocol/approvals.js';
import type { ServiceSigner } from '../materials/materials.js';
import { ApprovalRepository, type PendingApproval } from './approval-repository.js';
import type { OpenEpisode } from './alert-episodes.js';
import {
  CommandRepository, jsonObjectColumn, signedCommandOrNull, recordOf, unfinishedStates,
  type AdmissionFacts, type CommandRow, type RedispatchCandidate, type RedispatchWait, type StoredCommand,
} from './command-repository.js';
import { actors, newId, type ServiceContext } from './context.js';
import { decodeCursor, encodeCursor, pageLimit } from './pagination.js';
import type { PolicyStore } from './policy-store.js';
import { PolicyFacts, policyBlockDetails, policyBlockRecord, policyRefusalCode, type GatheredRequest } from './policy-facts.js';
import type { DeviceComplianceReader } from '../../core/protocol/compliance.js';
import { formatTraceparent, spanLogFields, traceLogFields, type TraceContext } from '../../core/trace/trace-context.js';
import type { Role } from './users.js';

/** Who asks: the authenticated operator. */
export interface Actor {
  readonly name: string;
  readonly role: Role;
}

export interface CreateCommandRequest {
  readonly actor: Actor;
  readonly deviceId: string;
  readonly opcode: string;
  readonly args: JsonObject;
  readonly ttlMs?: number;
  readonly idempotencyKey?: string;
  /** Why the operator sends it (policy `reasonRequired`); recorded in the audit entry. */
  readonly reason?: string;
  /**
   * The span of the API request (core/trace): stored with the command as its traceparent, which
   * every dispatch carries to the gateway and the device, so the whole path logs one trace id.
   */
  readonly trace?: TraceContext;
}

export interface CommandHistoryEntry {
  readonly state: CommandState;
  readonly at_ms: number;
  readonly detail?: JsonValue;
}

export interface CommandView {
  readonly id: string;
  readonly device_id: string;
  readonly opcode: string;
  readonly args: JsonObject;
  readonly state: CommandState;
  /** Null while the command waits for approvals: it takes its seq when released. */
  readonly device_seq: number | null;
  readonly created_by: string;
  readonly created_at_ms: number;
  readonly updated_at_ms: number;
  readonly expires_at_ms: number;
  readonly attempts: number;
  readonly gateway_id: string | null;
  /** Null while the command waits for approvals (it is signed when released, with the approvals embedded). */
  readonly signed: SignedCommand | null;
  /** What a command created `pending_approval` waits for (the rule, count, roles, the subject approvers sign and its hash); absent otherwise. */
  readonly approval?: PendingApproval;
  /**
   * The device's signed COMMAND_RESULT frame, once known, as an object: its RFC 8785 canonical
   * form is the text the device signed (and the audit log holds), so it re-verifies from here.
   */
  readonly result_frame: JsonObject | null;
}

export interface CommandDetail extends CommandView {
  readonly history: readonly CommandHistoryEntry[];
}

/** The states a command is unfinished in; redelivery and the sweeps take only these. */
export const nonTerminalStates: readonly CommandState[] = unfinishedStates;
export const commandLimits = Object.freeze({
  /** Commands redelivered to a device when it comes online; the rest wait for the next presence. */
  redeliverPerPresenceMax: 1_000,
  /** Commands expired per sweep. */
  expirePerSweepMax: 500,
  /** Commands re-dispatched per redelivery sweep; the oldest-dispatched go first, the rest wait for the next sweep. */
  redispatchPerSweepMax: 200,
  /**
   * Devices whose commands the sweep stamped while their presence key was missing but their row
   * named a gateway (a lapsed key), remembered so the next pass that finds the key sends them; past
   * this, such commands wait for their next due send (at most redispatchIntervalMaxMs).
   */
  stampedAwayDevicesMax: 1_024,
  /** Commands read per page when a revoked device's commands are canceled (all of them are, page by page). */
  revokedCancelPageMax: 500,
  /** Earlier never-appended commands of a device dispatched ahead of a new one (keeps device_seq order). */
  waitingPerCreateMax: 100,
  /** History rows returned per command (a command has at most a few dozen transitions). */
  historyEntriesMax: 200,
  idempotencyKeyLengthMax: 128,
  transitionRetriesMax: 3,
});

export interface CommandServiceOptions {
  readonly context: ServiceContext;
  readonly signer: ServiceSigner;
  /** The current policy revision number is read per admission (with the device's status), so a new one applies to the next command. */
  readonly policy: PolicyStore;
  readonly ttlMsDefault: number;
  /** `issuer` field of signed commands. */
  readonly issuer: string;
  /**
   * An unfinished command is re-dispatched by the redelivery sweep at most once per this
   * interval. Default 30 s: a gateway retries a delivery for about ackTimeoutMs x
   * deliveryAttemptsMax (5 s x 5 by default) and ignores a duplicate while it does.
   */
  readonly redispatchIntervalMs?: number;
  /**
   * The longest wait between two re-sends of one command by the sweep (default four times
   * redispatchIntervalMs: 120 s): the wait grows with the time since the command's last state
   * change (RedispatchWait), from redispatchIntervalMs up to this. Never below redispatchIntervalMs.
   */
  readonly redispatchIntervalMaxMs?: number;
  /** The compliance state a policy posture condition reads; without one every device is `unknown`. */
  readonly compliance?: DeviceComplianceReader;
  /** Called once per command when it first reaches a terminal state (the latency metric, /metrics). */
  readonly onFinished?: (finished: { opcode: string; state: CommandState; latencyMs: number }) => void;
}

/** A device's dispatch pass (CommandService.#dispatchWaiting) and the pass queued behind it, shared by the callers that came meanwhile. */
interface DispatchPass {
  done: Promise<Map<string, string>>;
  next: Promise<Map<string, string>> | undefined;
}

/** Default of CommandServiceOptions.redispatchIntervalMs. */
export const redispatchIntervalMsDefault = 30_000;
/**
 * CommandServiceOptions.redispatchIntervalMaxMs by default, in redispatch intervals: a command
 * without progress (a long run, a device that stays silent or away) is re-sent a quarter as often,
 * while a lost answer is still asked for again within four intervals (two minutes by default;
 * a deployment tuned to a 3 s interval, as the end-to-end tests are, waits at most 12 s).
 */
export const redispatchIntervalsMaxDefault = 4;
/** The longest wait with the default interval. */
export const redispatchIntervalMaxMsDefault = redispatchIntervalsMaxDefault * redispatchIntervalMsDefault;

export interface TransitionOptions {
  readonly detail?: JsonObject;
  /** Audit actor of the change (default `system`). */
  readonly actor?: string;
  /** The device's signed COMMAND_RESULT: stored with the command and audited verbatim as `command.result`. */
  readonly result?: ResultReport;
  /** The device's signed COMMAND_ACK: audited verbatim as `command.ack` in the transition's transaction. */
  readonly ack?: AckReport;
  /**
   * The command's row as the caller just read it (ownerOf): decided on instead of reading it
   * again. The update is a compare-and-set on the state, so a row that changed since only costs
   * the retry that reads it afresh.
   */
  readonly current?: CommandRow;
}

/** Result of applying an event: the transition made, or why nothing changed. */
export type TransitionOutcome =
  | { readonly applied: true; readonly from: CommandState; readonly to: CommandState }
  | { readonly applied: false; readonly reason: TransitionRefusalReason; readonly state?: CommandState };


/**
 * Command ingest, state and dispatch. A command is stored (state `queued`, with its event) in
 * one transaction before anything else happens; dispatch to a gateway comes after and may fail
 * without losing it: it stays queued and is sent again on the device's next presence, with the
 * device's next new command, or by the redelivery sweep (`redispatchDue`), whichever comes first.
 *
 * What changes is decided in core/protocol/command-decisions.ts (pure: the record and the event
 * in, the effects out); the CommandRepository performs the effects on SQL. This class reads,
 * asks, applies, and does the I/O the decisions name (the bus, the presence key, the live feed).
 */
export class CommandService {
  readonly #ctx: ServiceContext;
  readonly #options: CommandServiceOptions;
  readonly #repository: CommandRepository;
  readonly #approvals: ApprovalRepository;
  /** The facts admission gathers for the policy (tags, posture, rate counts); the dry run reads the same. */
  readonly policyFacts: PolicyFacts;
  /**
   * Per device with a dispatch pass running (#dispatchWaiting): that pass, and the one after it.
   * At most one entry per device with a create or release in flight; removed when its last pass ends.
   */
  readonly #dispatchPasses = new Map<string, DispatchPass>();
  /**
   * Devices whose commands this process's sweep stamped while their key had lapsed (redispatchDue,
   * #releaseStampedAway): when it last stamped one, and when it last found the key missing.
   */
  readonly #stampedAway = new Map<string, { readonly stampedAtMs: number; readonly absentAtMs: number }>();

  constructor(options: CommandServiceOptions) {
    this.#ctx = options.context;
    this.#options = options;
    this.#repository = new CommandRepository({ db: options.context.db, audit: options.context.audit });
    this.#approvals = new ApprovalRepository({ db: options.context.db, audit: options.context.audit });
    this.policyFacts = new PolicyFacts({ context: options.context, ...(options.compliance === undefined ? {} : { compliance: options.compliance }) });
  }

  /** Creates (or, for a repeated idempotency key with the same request, returns) a command. */
  async create(request: CreateCommandRequest): Promise<{ command: CommandDetail; created: boolean }> {
    const { actor, deviceId } = request;
    const opcode = validateOpcodeArgs(request.opcode, request.args);
    const ttlMs = request.ttlMs ?? this.#options.ttlMsDefault;
    if (!Number.isSafeInteger(ttlMs) || ttlMs <= 0 || ttlMs > CommandTtlMsMax) {
      throw new SdcError('COMMAND_TTL_INVALID', `ttl_ms must be from 1 to ${CommandTtlMsMax}`);
    }
    const key = request.idempotencyKey;
    if (key !== undefined && (key.length === 0 || key.length > commandLimits.idempotencyKeyLengthMax)) {
      throw new SdcError('API_VALIDATION', `Idempotency-Key must be 1-${commandLimits.idempotencyKeyLengthMax} characters`, { path: 'headers/idempotency-key' });
    }
    const fingerprint = { device_id: deviceId, opcode, args: canonicalize(request.args), ttl_ms: ttlMs };
    // The Idempotency-Key's command and the admission facts in one statement (issue 17); a retry answers before anything is decided.
    const facts = await this.#repository.createFacts(deviceId, key === undefined ? undefined : { createdBy: actor.name, key });
    if (facts.existing !== undefined) return { command: await this.#replay(facts.existing, fingerprint), created: false };
    const nowMs = this.#ctx.clock.nowMs();
    const pendingOut: { approval?: PendingRequirement } = {};
    const { policyRecord, releasePlaces } = await this.#admit(request, { opcode, nowMs, argsBytes: Buffer.byteLength(fingerprint.args, 'utf8'), facts }, pendingOut);
    let stored: { pendingId: string } | { signed: SignedCommand; gatewayId?: string };
    try {
      stored = pendingOut.approval !== undefined
        ? { pendingId: await this.#storePending(request, { opcode, nowMs, ttlMs, argsJson: fingerprint.args, policyRecord, approval: pendingOut.approval }) }
        : await this.#store(request, { opcode, nowMs, ttlMs, argsJson: fingerprint.args, policyRecord });
    } catch (error) {
      // This request stored nothing (unless its COMMIT's outcome is unknown: it may have), so the
      // rate-limit places it reserved go back: a create that lost its Idempotency-Key's race (and is
      // answered with the winner's command) or found the store down must not use up the caller's
      // limit for the window (review h1, finding 3).
      if (!SdcError.is(error, 'STORE_COMMIT_UNKNOWN')) await this.#giveBackPlaces(releasePlaces, error);
      // Two requests with one key raced; the loser answers like a retry.
      if (key !== undefined && SdcError.is(error, 'STORE_UNIQUE_VIOLATION')) {
        const existing = await this.#repository.byIdempotencyKey(actor.name, key);
        if (existing !== undefined) return { command: await this.#replay(existing, fingerprint), created: false };
      }
      throw error;
    }
    // Read outside the try: a failed read of a stored pending command must not give its places back.
    if ('pendingId' in stored) return { command: await this.get(stored.pendingId), created: true };
    // Answered as committed and dispatched, not read back (issue 17: two SQL round trips less per command).
    return { command: createdView(stored.signed, actor.name, fingerprint.args, stored.gatewayId ?? null), created: true };
  }

  /**
   * Gives back the rate-limit places of a create that stored nothing. A failure to (the key/value
   * store down) is logged, not thrown over the create's own error: the places then lapse with
   * their window, erring towards refusing.
   */
  async #giveBackPlaces(releasePlaces: () => Promise<void>, cause: unknown): Promise<void> {
    try {
      await releasePlaces();
    } catch (error) {
      this.#ctx.logger.warn({ err: error, cause }, 'rate-limit places of a create that stored nothing could not be given back; they lapse with their window');
    }
  }

  /**
   * The device's status and the policy decide whether the command may be stored; returns the policy
   * record and how to give back the rate-limit places reserved for it (to call when it is not
   * stored after all), or throws the refusal. `facts` are the device's status and the policy
   * revision number, read by the create in one statement with its Idempotency-Key lookup (createFacts).
   */
  async #admit(
    request: CreateCommandRequest, asked: { opcode: string; nowMs: number; argsBytes: number; facts: AdmissionFacts }, pendingOut: { approval?: PendingRequirement },
  ): Promise<{ policyRecord: JsonObject; releasePlaces: () => Promise<void> }> {
    const { actor, deviceId } = request;
    const { opcode, nowMs, argsBytes, facts: { deviceStatus, policyRevision } } = asked;
    const { policy, revision } = await this.#options.policy.at(policyRevision);
    const base = { actor: { id: actor.name, role: actor.role }, opcode, device: { id: deviceId }, nowMs, argsBytes, ...(request.reason === undefined ? {} : { reason: request.reason }) };
    // Tags, posture and rate-limit places (reserved now, given back below unless admitted); only for a device that may take commands.
    const gathered = deviceStatus === 'enrolled' ? await this.policyFacts.reserve(policy, base) : undefined;
    let decision: PolicyDecision | undefined;
    const admission = decideCreateAdmission({
      deviceId, deviceStatus, opcode, args: request.args, auditActor: actors.user(actor.name),
      policy: () => (decision = evaluatePolicy(policy, gathered?.request ?? base)),
    });
    // The audit names the revision that decided, so a decision can be traced to its policy, and the reason stated.
    const releasePlaces = gathered === undefined ? async () => undefined : gathered.release;
    if (admission.admitted) {
      return { policyRecord: { ...admission.policyRecord, revision, ...(request.reason === undefined ? {} : { stated_reason: request.reason }) }, releasePlaces };
    }
    // Allowed once approvals are in: stored pending_approval instead of refused (approvals.ts); `pendingOut` says so.
    const approval = (decision as PolicyDecision | undefined)?.approval;
    if (approval !== undefined) {
      // The facts release re-evaluates with (approvals.ts): the stated reason, and the rate counts this command's places were reserved at (kept).
      pendingOut.approval = { ...approval, revision, admission: admissionFacts(request.reason, gathered) };
      return { policyRecord: { decision: 'approval_required', reason: (decision as unknown as PolicyDecision).reason, rule_id: approval.ruleId, revision }, releasePlaces };
    }
    await gathered?.release();
    const { refusal } = admission;
    if (refusal.code !== 'COMMAND_POLICY_DENIED') throw new SdcError(refusal.code, refusal.message, { deviceId });
    const blocked = decision === undefined ? undefined : policyBlockRecord(decision);
    const payload = refusal.audit.payload as JsonObject;
    await this.#ctx.audit.append({ ...refusal.audit, payload: { ...payload, policy: { ...(payload['policy'] as JsonObject), revision, ...(blocked === undefined ? {} : { blocked }) } } });
    throw new SdcError(decision === undefined ? refusal.code : policyRefusalCode(decision), refusal.message, { reason: refusal.reason, ...(decision === undefined ? {} : policyBlockDetails(decision)) });
  }

  /**
   * Signs and stores the command with its history entry and audit record in one transaction, then
   * runs the after-commit effects; returns the command and the gateway it was appended for, if any.
   */
  async #store(request: CreateCommandRequest, facts: { opcode: SignedCommand['opcode']; nowMs: number; ttlMs: number; argsJson: string; policyRecord: JsonObject }): Promise<{ signed: SignedCommand; gatewayId?: string }> {
    const { actor, deviceId } = request;
    const { nowMs } = facts;
    const id = newId('c', this.#ctx.random);
    type Decided = ReturnType<typeof decideCreate> & { command: SignedCommand };
    /** What the last attempt built: the one whose COMMIT's outcome may have been lost. */
    let built: Decided | undefined;
    const decided = await this.#repository.create(deviceId, (deviceSeq): Decided => {
      // The requester's role travels signed, so the device's policy bundle judges role-specific rules too.
      const requester = commandRequester(actor.name, actor.role);
      const command = signCommand({
        command: {
          id, device_id: deviceId, opcode: facts.opcode, args: request.args, issued_at: nowMs, expires_at: nowMs + facts.ttlMs, device_seq: deviceSeq, issuer: this.#options.issuer,
          ...(requester === undefined ? {} : { requester }),
        },
        kid: this.#options.signer.kid, seed: this.#options.signer.seed, provider: this.#ctx.ed25519,
      });
      const effects = decideCreate({
        row: {
          command, createdBy: actor.name, idempotencyKey: request.idempotencyKey ?? null, argsJson: facts.argsJson,
          ...(request.trace === undefined ? {} : { traceparent: formatTraceparent(request.trace) }),
        },
        auditActor: actors.user(actor.name), policyRecord: facts.policyRecord,
      });
      built = { ...effects, command };
      return built;
    }).catch((error: unknown) => this.#committedCreate(id, built, error));
    // Committed: from here on nothing turns the answer into an error (issue 18.4), or a client
    // retrying without an Idempotency-Key would make a second command. Each step below either
    // never throws or has a fallback.
    this.#ctx.logger.info({
      commandId: id, deviceId, opcode: facts.opcode, deviceSeq: decided.command.device_seq, ...(request.trace === undefined ? {} : spanLogFields(request.trace)),
    }, 'command created');
    const gatewayId = (await this.#afterCommit(decided.afterCommit)).get(id);
    return { signed: decided.command, ...(gatewayId === undefined ? {} : { gatewayId }) };
  }

  /**
   * A create whose transaction failed: when the connection was lost with its COMMIT in flight
   * (STORE_COMMIT_UNKNOWN) the command may be stored, and answering an error for it would have a
   * client without an Idempotency-Key create it again (and a device run both). So the row is read
   * back under a lock (CommandRepository.isStored): stored, the create goes on as committed;
   * not stored, the refusal is STORE_UNAVAILABLE, and safe to retry. If the read fails too, the
   * refusal stays STORE_COMMIT_UNKNOWN with the command's id, which GET /v1/commands/{id} answers
   * once the store is back. Any other error is rethrown as it is (nothing was committed).
   */
  async #committedCreate<T>(commandId: string, built: T | undefined, error: unknown): Promise<T> {
    if (!SdcError.is(error, 'STORE_COMMIT_UNKNOWN') || built === undefined) throw error;
    let stored: boolean;
    try {
      stored = await this.#repository.isStored(commandId);
    } catch (readError) {
      this.#ctx.logger.error({ commandId, err: readError }, 'a create\'s COMMIT outcome is unknown and its row could not be read back');
      throw new SdcError('STORE_COMMIT_UNKNOWN', `command ${commandId} may have been stored: the store connection was lost during its commit and the row could not be read back; GET /v1/commands/${commandId} tells once the store answers`, { commandId }, { cause: error });
    }
    this.#ctx.logger.warn({ commandId, stored }, 'a create\'s COMMIT outcome was lost with its connection; read back');
    if (stored) return built;
    throw new SdcError('STORE_UNAVAILABLE', `command ${commandId} was not stored: the store connection was lost during its commit, which did not take effect`, { commandId }, { cause: error });
  }

  /**
   * Stores a command that waits for approvals: not signed and no seq yet (both come at release, so
   * a late release never carries a seq below one the device has run), with the subject approvers
   * sign and its hash. Returns its id.
   */
  async #storePending(request: CreateCommandRequest, facts: { opcode: string; nowMs: number; ttlMs: number; argsJson: string; policyRecord: JsonObject; approval: PendingRequirement }): Promise<string> {
    const { actor, deviceId } = request;
    const subject: ApprovalSubject = {
      id: newId('c', this.#ctx.random), device_id: deviceId, opcode: facts.opcode, args: request.args, expires_at: facts.nowMs + facts.ttlMs,
      issuer: this.#options.issuer, requested_by: actor.name,
    };
    const pending: PendingApproval = {
      rule_id: facts.approval.ruleId, count: facts.approval.count, roles: facts.approval.roles, requester_role: actor.role,
      policy_revision: facts.approval.revision, subject, command_sha256: approvalSubjectHash(subject, sha256),
      ...(facts.approval.admission === undefined ? {} : { admission: facts.approval.admission }),
    };
    await this.#approvals.insertPending({
      subject, pending, createdBy: actor.name, idempotencyKey: request.idempotencyKey ?? null, argsJson: facts.argsJson, atMs: facts.nowMs,
      ...(request.trace === undefined ? {} : { traceparent: formatTraceparent(request.trace) }),
      audit: {
        kind: 'command.approval_requested', actor: actors.user(actor.name), subject: `command:${subject.id}`,
        payload: {
          command: subject as unknown as JsonObject, command_sha256: pending.command_sha256, policy: facts.policyRecord, approval: { rule_id: pending.rule_id, count: pending.count, roles: [...pending.roles] },
          ...(request.trace === undefined ? {} : { traceparent: formatTraceparent(request.trace) }),
        },
      },
    });
    await this.#ctx.settleAudit();
    this.#ctx.publishLive({ type: 'command', command_id: subject.id, device_id: deviceId, state: 'pending_approval', at_ms: facts.nowMs });
    return subject.id;
  }

  /** Dispatches the device's queued commands no gateway holds, in seq order (a released command, ApprovalService). Never throws. */
  async dispatchWaiting(deviceId: string): Promise<void> {
    await this.#dispatchWaiting(deviceId);
  }

  /**
   * Publishes and dispatches beside the command's audit drain (or its request for one within the
   * control plane's window), and resolves when both are done; none of these throws. Returns the
   * commands appended, with their gateway. The drain does not go first (issue 17: it was three
   * round trips to MySQL between a command's commit and its dispatch, on every command's path to
   * its device). Nothing here reads the chain, and the chain's order does not depend on when it is
   * drained: a later change of the same command records its input after this commit, so the
   * outbox hands it to the same drain or a later one, after this one.
   */
  async #afterCommit(effects: readonly AfterCommitEffect[]): Promise<ReadonlyMap<string, string>> {
    const settled = this.#ctx.settleCommandAudit();
    const appended = new Map<string, string>();
    for (const effect of effects) {
      if (effect.type === 'publish_live') this.#ctx.publishLive(effect.event);
      else for (const [commandId, gatewayId] of await this.#dispatchWaiting(effect.deviceId)) appended.set(commandId, gatewayId);
    }
    await settled;
    return appended;
  }

  async #replay(row: CommandRow, want: { device_id: string; opcode: string; args: string; ttl_ms: number }): Promise<CommandDetail> {
    const same = row.device_id === want.device_id && row.opcode === want.opcode && row.args_json === want.args
      && row.expires_at - row.created_at === want.ttl_ms;
    if (!same) throw new SdcError('COMMAND_IDEMPOTENCY_CONFLICT', 'Idempotency-Key was already used for a different request');
    return this.get(row.id);
  }

  /**
   * Appends a `deliver` entry to the stream of the gateway holding the device, if any. Never
   * throws: a failure leaves the command queued for the next presence or the redelivery sweep.
   */
  async dispatch(command: SignedCommand, gatewayId?: string, traceparent?: string): Promise<boolean> {
    try {
      const gateway = gatewayId ?? (await this.presenceGateway(command.device_id));
      if (gateway === undefined) return false;
      return await this.#append(command, gateway, traceparent);
    } catch (error) {
      this.#ctx.logger.warn({ err: error, commandId: command.id, ...traceLogFields(traceparent) }, 'dispatch failed; the command stays queued for redelivery');
      return false;
    }
  }

  /**
   * Appends the command to the gateway's stream; false (nothing appended) when it is finished
   * already. It is marked as leaving the control plane first (CommandRepository.markLeaving), so
   * the expiry sweep times it out rather than expiring it once a device may have it.
   */
  async #append(command: SignedCommand, gateway: string, traceparent: string | undefined): Promise<boolean> {
    if (!(await this.#repository.markLeaving(command.id, this.#ctx.clock.nowMs()))) return false;
    const entry = encodeBusEntry('deliver', { command, ...(traceparent === undefined ? {} : { traceparent }) });
    await this.#ctx.bus.append(gatewayCommandStream(gateway), entry, { maxLen: streamMaxLen.gatewayCommands });
    // After the append, never before: a concurrent dispatch for the device must still see it waiting (markLeaving).
    await this.#repository.recordDispatch(command.id, gateway, this.#ctx.clock.nowMs());
    this.#ctx.logger.info({ commandId: command.id, gatewayId: gateway, ...traceLogFields(traceparent) }, 'command dispatched to its gateway');
    return true;
  }

  /**
   * Dispatches the device's queued commands that no gateway holds (a new one, and any an earlier
   * dispatch failed to append), in device_seq order, stopping at the first failure so a later
   * command never overtakes an earlier one (the agent refuses a device_seq below one it ran).
   */
  #dispatchWaiting(deviceId: string): Promise<Map<string, string>> {
    // One pass per device at a time. A pass's read may predate the caller's commit, so a caller
    // that finds one running waits for the next pass, which every caller meanwhile shares (and
    // gets the running pass's appends with its own). Before, each of N concurrent creates appended
    // every command it saw waiting (up to N x N `deliver` entries), each re-asking the device, whose
    // answers the device's serial event partition then worked through (minutes for 24 at once on
    // a busy machine; dispatch-coalesce.test.ts).
    const running = this.#dispatchPasses.get(deviceId);
    if (running === undefined) return this.#runDispatchPass(deviceId);
    // A pass logs its failures and never rejects; were one to, the next pass must still run, or the
    // device's entry (which keeps `next`) would hand every later caller the same rejection.
    running.next ??= running.done.catch(() => new Map<string, string>())
      .then((earlier) => this.#runDispatchPass(deviceId).then((own) => new Map([...earlier, ...own])));
    return running.next;
  }

  /** Runs one pass, registered as the device's running one until it ends (or the next replaces it). */
  #runDispatchPass(deviceId: string): Promise<Map<string, string>> {
    const pass: DispatchPass = { done: undefined!, next: undefined };
    pass.done = this.#dispatchWaitingPass(deviceId).finally(() => {
      if (pass.next === undefined && this.#dispatchPasses.get(deviceId) === pass) this.#dispatchPasses.delete(deviceId);
    });
    this.#dispatchPasses.set(deviceId, pass);
    return pass.done;
  }

  async #dispatchWaitingPass(deviceId: string): Promise<Map<string, string>> {
    const appended = new Map<string, string>();
    try {
      const gateway = await this.presenceGateway(deviceId);
      if (gateway === undefined) return appended;
      const waiting = await this.#repository.waitingOf(deviceId, this.#ctx.clock.nowMs(), commandLimits.waitingPerCreateMax);
      for (const { id, command, traceparent } of waiting) {
        if (await this.#append(readable(command), gateway, traceparent)) appended.set(id, gateway);
      }
    } catch (error) {
      this.#ctx.logger.warn({ err: error, deviceId }, 'dispatch failed; the commands stay queued for redelivery');
    }
    return appended;
  }

  /**
   * The redelivery sweep: re-dispatches every unexpired, unfinished command (`queued`, `sent`,
   * `ack_received`, `executing`) that was never dispatched or whose last dispatch is at least its
   * wait ago, to the gateway named by the device's presence key. The wait is the time since the
   * command's last state change, at least the redispatch interval (30 s) and at most
   * redispatchIntervalMaxMs (120 s): re-sends of a command that brings no progress thin out (30,
   * 30, 60, 120, 120 s ...), and any transition brings the wait back to 30 s. It covers what no
   * presence event will: a dispatch that failed while the device stays connected, a hand-back
   * (`requeue`) while it stays connected, a gateway that died holding the command without
   * handing it back, and an ACK or RESULT the device sent that never reached us (lost in a store
   * outage at the gateway, or in transit). A duplicate is harmless: a gateway still waiting for
   * the device's ACK ignores it, one holding an acknowledged delivery asks the device again (at
   * most once per ACK timeout), and the agent answers a known command id from its journal (the
   * stored result, or an ACK of where it is), never running it twice. So a command the device
   * executed reaches a terminal state within about one wait plus one sweep period after the
   * stores and the link are healthy again (at most `redispatchPerSweepMax` commands per sweep,
   * oldest dispatch first). Commands of a device without a gateway are stamped too, so they do
   * not fill every batch; its next presence redelivers them. When the device's row still names a
   * gateway (its key lapsed: a store that lost its keys while the session lived on), the device is
   * remembered here and the first pass that finds the key again sends its unfinished commands in
   * device_seq order (#releaseStampedAway), since that key's 'presence key restored' online
   * redelivers nothing (EventHandlers, cd440bf): they no longer wait out their next due send (up to 120 s).
   *
   * Each send is claimed first (CommandRepository.claimRedispatch: a compare-and-set of the
   * row's dispatch time on the same due condition), so control planes sweeping one database at
   * once append each due command once, not once each; a claim whose append fails is given back
   * for the next sweep. Returns how many `deliver` entries were appended. `batchMax` lowers the
   * batch (never above the limit).
   */
  async redispatchDue(options: { batchMax?: number } = {}): Promise<number> {
    const batchMax = Math.min(options.batchMax ?? commandLimits.redispatchPerSweepMax, commandLimits.redispatchPerSweepMax);
    const nowMs = this.#ctx.clock.nowMs();
    const wait = this.#redispatchWait();
    const due = await this.#repository.dueForRedispatch(nowMs, wait, Math.max(1, batchMax));
    const gateways = new Map<string, string | undefined>();
    // Devices whose commands this pass leaves alone from here: a lost claim or a failure (their later
    // commands must not overtake it), or released below (the release was their send, in order).
    const heldDevices = new Set<string>();
    // First the devices whose commands earlier passes stamped while their key had lapsed, if the key is back.
    let sent = await this.#releaseStampedAway(nowMs, wait, gateways, heldDevices);
    const stamped: RedispatchCandidate[] = [];
    for (const row of due) {
      if (heldDevices.has(row.deviceId)) continue;
      try {
        if (!gateways.has(row.deviceId)) gateways.set(row.deviceId, await this.presenceGateway(row.deviceId));
        const decision = decideRedispatch(row.id, gateways.get(row.deviceId), nowMs);
        // Lost: another control plane (or a presence redelivery, or a transition) came first.
        if (!(await this.#repository.claimRedispatch(row.id, nowMs, wait))) {
          // Its later commands wait too: appended before the winner appends this one, they would reach the device first.
          heldDevices.add(row.deviceId);
          continue;
        }
        // stamp_dispatched: the claim was the stamp.
        if (decision.type === 'deliver' && await this.#appendClaimed(row, decision.gatewayId, nowMs)) sent += 1;
        if (decision.type === 'stamp_dispatched') stamped.push(row);
      } catch (error) {
        // Not claimed, or the claim given back: retried at the next sweep. Later commands of the device wait so they cannot overtake it.
        heldDevices.add(row.deviceId);
        this.#ctx.logger.warn({ err: error, commandId: row.id }, 'redelivery sweep could not dispatch; retried at the next sweep');
      }
    }
    await this.#rememberStampedAway(stamped, nowMs);
    return sent;
  }

  /**
   * Remembers the devices whose commands this pass stamped without a presence key while their row
   * names a gateway (believed connected: the key lapsed, the session did not end). A device that
   * went offline is not remembered: its next presence is a whole online, which redelivers
   * everything. Device ids and two times only, at most stampedAwayDevicesMax devices; a store
   * failure here only loses the shortcut.
   */
  async #rememberStampedAway(stamped: readonly RedispatchCandidate[], nowMs: number): Promise<void> {
    if (stamped.length === 0) return;
    let lapsed: Set<string>;
    try {
      lapsed = await this.#repository.namingGateway([...new Set(stamped.map((row) => row.deviceId))]);
    } catch (error) {
      this.#ctx.logger.warn({ err: error }, 'redelivery sweep could not read which devices lapsed; their commands wait for their next due send');
      return;
    }
    for (const deviceId of lapsed) {
      if (this.#stampedAway.has(deviceId) || this.#stampedAway.size < commandLimits.stampedAwayDevicesMax) {
        this.#stampedAway.set(deviceId, { stampedAtMs: nowMs, absentAtMs: nowMs });
      }
    }
  }

  /**
   * For each remembered device (#rememberStampedAway) whose presence key is back: reads its
   * unfinished commands and sends them in device_seq order, each claimed by a compare-and-set of
   * the dispatch time read (CommandRepository.claimAsRead), whoever stamped it (this process,
   * another control plane, or a stamp this process no longer counts). It stops at the first command
   * dispatched after this process last found the key missing (sent since the key came back, or
   * stamped later by another control plane, whose release sends it), at a lost claim or at a
   * failure: what follows waits, never overtaking it. The device's due commands are then left out
   * of this pass. A device whose last stamp here is the longest wait old is forgotten: all it
   * stamped is due, and the sweep sends it. At most redispatchPerSweepMax commands are read per
   * pass; devices past that keep their turn for the next pass.
   */
  async #releaseStampedAway(nowMs: number, wait: RedispatchWait, gateways: Map<string, string | undefined>, heldDevices: Set<string>): Promise<number> {
    let sent = 0;
    let budget = commandLimits.redispatchPerSweepMax;
    for (const [deviceId, away] of [...this.#stampedAway]) {
      if (nowMs - away.stampedAtMs >= wait.maxMs) {
        this.#stampedAway.delete(deviceId);
        continue;
      }
      if (budget <= 0) continue;
      let gateway: string | undefined;
      try {
        gateway = await this.presenceGateway(deviceId);
      } catch (error) {
        this.#ctx.logger.warn({ err: error, deviceId }, 'redelivery sweep could not read a presence key; retried at the next sweep');
        continue;
      }
      gateways.set(deviceId, gateway);
      if (gateway === undefined) {
        this.#stampedAway.set(deviceId, { stampedAtMs: away.stampedAtMs, absentAtMs: nowMs });
        continue;
      }
      this.#stampedAway.delete(deviceId);
      heldDevices.add(deviceId);
      let commandId: string | undefined;
      try {
        const rows = await this.#repository.unfinishedWithDispatchOf(deviceId, nowMs, budget);
        budget -= rows.length;
        for (const row of rows) {
          commandId = row.id;
          if (row.dispatchedAtMs !== null && row.dispatchedAtMs > away.absentAtMs) break;
          if (!(await this.#repository.claimAsRead(row.id, row.dispatchedAtMs, nowMs))) break;
          if (await this.#appendClaimed(row, gateway, nowMs)) sent += 1;
        }
      } catch (error) {
        this.#ctx.logger.warn({ err: error, deviceId, commandId }, 'redelivery sweep could not dispatch; retried at the next sweep');
      }
    }
    return sent;
  }

  #redispatchWait(): RedispatchWait {
    const baseMs = this.#options.redispatchIntervalMs ?? redispatchIntervalMsDefault;
    return { baseMs, maxMs: Math.max(baseMs, this.#options.redispatchIntervalMaxMs ?? redispatchIntervalsMaxDefault * baseMs) };
  }

  /** Appends a command the sweep claimed; a failed append gives the claim back (the previous dispatch time) and rethrows. */
  async #appendClaimed(row: RedispatchCandidate, gatewayId: string, claimedAtMs: number): Promise<boolean> {
    try {
      return await this.#append(readable(row.command), gatewayId, row.traceparent);
    } catch (error) {
      await this.#repository.releaseRedispatch(row.id, claimedAtMs, row.dispatchedAtMs);
      throw error;
    }
  }

  /**
   * The gateway named by the device's presence key. The value is the gateway id, or a JSON object
   * with a `gateway_id` member (both spellings are accepted so the gateway may add fields).
   */
  async presenceGateway(deviceId: string): Promise<string | undefined> {
    const value = await this.#ctx.kv.get(kvKeys.presence(deviceId));
    if (value === null) return undefined;
    let gateway: unknown = value;
    if (value.startsWith('{')) {
      try {
        gateway = (JSON.parse(value) as { gateway_id?: unknown }).gateway_id;
      } catch {
        gateway = undefined;
      }
    }
    return typeof gateway === 'string' && /^[A-Za-z0-9_.-]{1,64}$/.test(gateway) ? gateway : undefined;
  }

  /**
   * Sends every unfinished, unexpired command of the device to `gatewayId`, in device_seq order.
   * Nothing is skipped on the strength of `last_command_seq`: a command still unfinished here
   * whose seq the agent has passed was executed but its result never reached us, and the agent
   * answers a redelivered id from its record, which is how that result is recovered. Commands with
   * a known result are terminal and never redelivered. `read`: those commands as
   * `unfinishedAndEpisodeOf` just read them (the presence handler's read), instead of a read here.
   */
  async redeliver(deviceId: string, gatewayId: string, read?: readonly StoredCommand[]): Promise<number> {
    const commands = read ?? await this.#repository.unfinishedOf(deviceId, this.#ctx.clock.nowMs(), commandLimits.redeliverPerPresenceMax);
    let sent = 0;
    for (const { id, command, traceparent } of commands) {
      // A damaged row cannot be delivered by anyone; the others still are (it expires by its expires_at column).
      if (command instanceof SdcError) this.#ctx.logger.error({ err: command, commandId: id }, 'stored command is not readable; not redelivered');
      else if (await this.dispatch(command, gatewayId, traceparent)) sent += 1;
    }
    return sent;
  }

  /** The device's unfinished, unexpired commands, as redeliver reads them (for a presence whose episode was read with another read). */
  // Not async: the repository's promise as it is.
  unfinishedOf(deviceId: string): Promise<StoredCommand[]> {
    return this.#repository.unfinishedOf(deviceId, this.#ctx.clock.nowMs(), commandLimits.redeliverPerPresenceMax);
  }

  /**
   * What a device's presence online needs read: its unfinished, unexpired commands (as redeliver
   * reads them) and the alert open under `episodeKey` (AlertMonitor.presenceEpisodeKey), in one
   * statement on MySQL (CommandRepository.unfinishedAndEpisodeOf).
   */
  // Not async: the repository's promise as it is, no second one per presence.
  unfinishedAndEpisodeOf(deviceId: string, episodeKey: string): Promise<{ commands: StoredCommand[]; episode: OpenEpisode | undefined }> {
    return this.#repository.unfinishedAndEpisodeOf(deviceId, this.#ctx.clock.nowMs(), commandLimits.redeliverPerPresenceMax, episodeKey);
  }

  /**
   * A gateway handed the command back: no state change, forget the assignment; redelivered on the
   * next presence or by the redelivery sweep once the redispatch interval since its last dispatch
   * has passed (the interval is kept, so a gateway handing a command straight back cannot make it loop).
   */
  async requeue(commandId: string): Promise<void> {
    await this.#repository.clearGateway(commandId);
  }

  /** The command's device, seq, that device's status and its stored traceparent, for checking and logging an event that names it. */
  async ownerOf(commandId: string): Promise<{ deviceId: string; deviceSeq: number; deviceStatus: string | null; traceparent?: string; row: CommandRow } | undefined> {
    return this.#repository.ownerOf(commandId);
  }

  /**
   * Applies a machine event at `atMs`. Illegal transitions and events for finished commands
   * change nothing and are reported, never thrown: the bus delivers at least once, so duplicates
   * and late events are normal (decideTransition says which). The update is a compare-and-set on
   * the state, so two processes applying events to one command cannot both win; the loser reads
   * again and decides again. A terminal state changes only when the table lets a late result
   * refine it (timed_out, dead_lettered). `expire` applies only to a command that never left the
   * control plane (checked in the same compare-and-set); one that left is refused as illegal and
   * times out instead (expireDue).
   */
  async transition(commandId: string, event: CommandEvent, atMs: number, options: TransitionOptions = {}): Promise<TransitionOutcome> {
    const input = {
      event, atMs, actor: options.actor ?? actors.system,
      ...(options.detail === undefined ? {} : { detail: options.detail }), ...(options.result === undefined ? {} : { result: options.result }),
      ...(options.ack === undefined ? {} : { ack: options.ack }),
    };
    for (let attempt = 0; attempt < commandLimits.transitionRetriesMax; attempt += 1) {
      const row = attempt === 0 && options.current?.id === commandId ? options.current : await this.#repository.byId(commandId);
      const decision = decideTransition(row === undefined ? undefined : recordOf(row), input);
      if (!decision.applied) {
        if (decision.unexpected) this.#ctx.logger.warn({ commandId, from: decision.state, event }, 'illegal command transition ignored');
        return { applied: false, reason: decision.reason, ...(decision.state === undefined ? {} : { state: decision.state }) };
      }
      // The first attempt joins a group commit with the transitions applied meanwhile; a loser retries in a transaction of its own.
      if (!(await this.#repository.apply(decision.effects.transaction, { alone: attempt > 0 }))) continue;
      // No read-back of the command: the consumer applies several events per command and uses only from/to.
      await this.#afterCommit(decision.effects.afterCommit);
      // Rejected at its device's revocation while it waited for approvals: it never ran. Not on
      // expiry: the requester chose the TTL (givePendingPlacesBack says why).
      if (decision.from === 'pending_approval' && decision.to === 'rejected') await this.givePendingPlacesBack(commandId, () => pendingApprovalOf(row));
      if (row !== undefined && !isTerminal(commandTable, decision.from) && isTerminal(commandTable, decision.to)) {
        this.#options.onFinished?.({ opcode: row.opcode, state: decision.to, latencyMs: Math.max(0, atMs - Number(row.created_at)) });
      }
      return { applied: true, from: decision.from, to: decision.to };
    }
    throw new SdcError('STORE_CONFLICT', `command ${commandId} kept changing under concurrent updates`);
  }

  /**
   * Gives back the rate-limit places a command that waited for approvals kept
   * (PendingApproval.admission.rate_places), once it ended without running: rejected by an
   * approver (ApprovalService) or at its device's revocation (transition). Not for a requester's
   * own cancel, nor for its expiry (the requester chooses `ttl_ms`, as low as 1): the place stays
   * until its window passes, or a requester could ask, cancel or let expire, and ask again without
   * bound, each request in the approvers' inbox and the audit. Called once per
   * command, by the process whose compare-and-set on pending_approval ended it. Never throws: a
   * failure is logged and the places lapse with their window (erring towards refusing).
   */
  async givePendingPlacesBack(commandId: string, pendingOf: () => PendingApproval | undefined): Promise<void> {
    try {
      const places = pendingOf()?.admission?.rate_places;
      if (places !== undefined && places.length > 0) await this.policyFacts.releasePlaces(places);
    } catch (error) {
      this.#ctx.logger.warn({ err: error, commandId }, 'rate-limit places of a command that ended without running could not be given back; they lapse with their window');
    }
  }

  /**
   * Ends unfinished commands past their expiry; returns how many. One that never left the control
   * plane is `expired` (no device can have it); one that did is `timed_out` (it may have run; a
   * late result refines it). A dispatch racing the sweep makes `expire` illegal: it times out.
   */
  async expireDue(): Promise<number> {
    const nowMs = this.#ctx.clock.nowMs();
    const rows = await this.#repository.expiredUnfinished(nowMs, commandLimits.expirePerSweepMax);
    let ended = 0;
    for (const row of rows) {
      try {
        let outcome = await this.transition(row.id, expiryEvent(row), nowMs);
        if (!outcome.applied && outcome.reason === 'illegal') outcome = await this.transition(row.id, 'time_out', nowMs);
        if (outcome.applied) ended += 1;
      } catch (error) {
        // One row that cannot be ended (damaged, or lost to concurrent updates) must not hold up the
        // rest; it is retried next sweep. Anything else (a store outage) ends the sweep as before.
        if (!SdcError.is(error, 'STORE_CORRUPT') && !SdcError.is(error, 'STORE_CONFLICT')) throw error;
        this.#ctx.logger.warn({ err: error, commandId: row.id }, 'expiry sweep could not end a command; retried at the next sweep');
      }
    }
    return ended;
  }

  /**
   * Ends, at its device's revocation, every unfinished command of the device, with the code
   * API_DEVICE_REVOKED in its history and audit entry, and the live event, each as any transition:
   * one `pending_approval` was never signed, so it ends `rejected` as an approver's rejection does;
   * the others (`queued`, `sent`, `ack_received`, `executing`) end `canceled`. No session will
   * deliver them again (the gateways refuse the device) and no result of the device is accepted any
   * more (verifyDeviceFrame), so they need not wait for their TTL. Pages of `revokedCancelPageMax`
   * per state until none is left; a row another process moved on meanwhile is decided again by the
   * transition (a terminal one is left). Returns how many were ended.
   */
  async cancelForRevokedDevice(options: { deviceId: string; actor: string }): Promise<number> {
    let ended = 0;
    const steps = [['pending_approval', 'approval_reject'], ['queued', 'cancel'], ['sent', 'cancel'], ['ack_received', 'cancel'], ['executing', 'cancel']] as const;
    for (const [state, event] of steps) {
      for (;;) {
        const rows = await this.#repository.page({ deviceId: options.deviceId, state, limit: commandLimits.revokedCancelPageMax });
        let applied = 0;
        for (const row of rows) {
          const outcome = await this.transition(row.id, event, this.#ctx.clock.nowMs(), {
            actor: actors.user(options.actor), detail: { code: 'API_DEVICE_REVOKED' }, current: row,
          });
          if (outcome.applied) applied += 1;
        }
        ended += applied;
        // A short page is the last; a page of which none applied would only be read again.
        if (rows.length < commandLimits.revokedCancelPageMax || applied === 0) break;
      }
    }
    return ended;
  }

  async get(commandId: string): Promise<CommandDetail> {
    const row = await this.#repository.byId(commandId);
    if (row === undefined) throw new SdcError('COMMAND_NOT_FOUND', `no command ${commandId}`);
    const history = await this.#repository.history(commandId, commandLimits.historyEntriesMax);
    return { ...viewOf(row), history };
  }

  async list(query: { deviceId?: string; state?: string; limit?: number; cursor?: string }): Promise<{ items: CommandView[]; next_cursor: string | null }> {
    const limit = pageLimit(query.limit);
    let before: { createdAtMs: number; id: string } | undefined;
    if (query.cursor !== undefined) {
      const [createdAt, id] = decodeCursor(query.cursor);
      before = { createdAtMs: Number(createdAt), id: id! };
    }
    const rows = await this.#repository.page({
      ...(query.deviceId === undefined ? {} : { deviceId: query.deviceId }), ...(query.state === undefined ? {} : { state: query.state }),
      ...(before === undefined ? {} : { before }), limit: limit + 1,
    });
    const page = rows.slice(0, limit);
    const last = page.at(-1);
    return { items: page.map(viewOf), next_cursor: rows.length > limit && last !== undefined ? encodeCursor([String(last.created_at), last.id]) : null };
  }
}

/** The signed command of a stored row, or its STORE_CORRUPT error thrown (inside the caller's per-row error handling). */
function readable(command: SignedCommand | SdcError): SignedCommand {
  if (command instanceof SdcError) throw command;
  return command;
}

/** A command just created, as its create transaction committed it (state queued), with the gateway it was appended for (null: none yet). */
function createdView(signed: SignedCommand, createdBy: string, argsJson: string, gatewayId: string | null): CommandDetail {
  const atMs = signed.issued_at;
  return {
    id: signed.id, device_id: signed.device_id, opcode: signed.opcode, args: JSON.parse(argsJson) as JsonObject, state: 'queued',
    device_seq: signed.device_seq, created_by: createdBy, created_at_ms: atMs, updated_at_ms: atMs, expires_at_ms: signed.expires_at,
    attempts: 0, gateway_id: gatewayId, signed, result_frame: null, history: [{ state: 'queued', at_ms: atMs, detail: { by: createdBy, event: 'create' } }],
  };
}

/** The API view of a validated row; its JSON columns are parsed and checked (STORE_CORRUPT when they do not hold). */
function viewOf(row: CommandRow): CommandView {
  return {
    id: row.id, device_id: row.device_id, opcode: row.opcode, args: jsonObjectColumn(row.args_json, `commands row ${row.id} args_json`),
    state: row.state, device_seq: row.device_seq, created_by: row.created_by,
    created_at_ms: row.created_at, updated_at_ms: row.updated_at, expires_at_ms: row.expires_at,
    attempts: row.attempts, gateway_id: row.gateway_id, signed: signedCommandOrNull(row),
    result_frame: row.result_json === null ? null : jsonObjectColumn(row.result_json, `commands row ${row.id} result_json`),
    ...(row.approval_json === undefined || row.approval_json === null
      ? {} : { approval: jsonObjectColumn(row.approval_json, `commands row ${row.id} approval_json`) as unknown as PendingApproval }),
  };
}

/** A policy's call for approvals, with the revision that made it. */
interface PendingRequirement {
  readonly ruleId: string;
  readonly count: number;
  readonly roles: PendingApproval['roles'];
  readonly revision: number;
  readonly admission?: PendingApproval['admission'];
}

/** A stored row's approval_json (a command that waits or waited for approvals), undefined for other commands. */
function pendingApprovalOf(row: CommandRow | undefined): PendingApproval | undefined {
  if (row?.approval_json === undefined || row.approval_json === null) return undefined;
  return jsonObjectColumn(row.approval_json, `commands row ${row.id} approval_json`) as unknown as PendingApproval;
}

function admissionFacts(reason: string | undefined, gathered: GatheredRequest | undefined): PendingApproval['admission'] {
  const rateCounts = gathered?.request.rateCounts;
  return {
    ...(reason === undefined ? {} : { reason }), ...(rateCounts === undefined ? {} : { rate_counts: { ...rateCounts } }),
    ...(gathered === undefined || gathered.places.length === 0 ? {} : { rate_places: [...gathered.places] }),
  };
}

const sha256 = (bytes: Uint8Array): Uint8Array => new Uint8Array(createHash('sha256').update(bytes).digest());
