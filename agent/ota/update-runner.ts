import { createHash } from 'node:crypto';
import { dirname, join, resolve } from 'node:path';
import { SdcError, errorRegistry } from '../../core/errors/index.js';
import type { Clock, Ed25519Provider, RandomSource, Scheduler, TimerHandle } from '../../core/ports/ports.js';
import { hexFromBytes } from '../../core/crypto/bytes.js';
import { checkUpdate, verifyDirectorEnvelope, type DirectorDocument, type DirectorKey } from '../../core/ota/director.js';
import { checkNoticeState, verifyNoticeState, type NoticeState } from '../../core/ota/notice-state.js';
import { decideDeviceStep, type DeviceStep } from '../../core/ota/execution-decisions.js';
import { executionTable, type ExecutionState } from '../../core/ota/execution-machine.js';
import { nextState, isTerminal } from '../../core/protocol/state-machine.js';
import type { MessageBody } from '../../core/protocol/messages/catalog.js';
import type { OtaReportEvent } from '../../core/protocol/messages/ota.js';
import type { SignedCommand } from '../../core/protocol/messages/command.js';
import { verifyCommand } from '../../core/protocol/signed-command.js';
import type { TufCrypto } from '../../core/tuf/crypto-port.js';
import { quoteRoleName, Updater } from '../../core/tuf/updater.js';
import { commandAuthorization } from '../../kernel/command/authorization.js';
import type { KernelBridge } from '../../kernel/bridge/kernel-bridge.js';
import type { AgentLogger } from '../agent-core.js';
import { defaultTufTimeouts, runTufWorkflow, type TufFileStore } from '../tuf/driver.js';
import type { TufFetcher } from '../tuf/http-fetcher.js';
import type { ArtifactFetcher, StagingStore } from './download-ports.js';
import { nodeStagingStore } from './node-download-adapters.js';
import { presignedUrlExpiresAtMs } from './presigned-url-expiry.js';
import { downloadResumable, type ResumableDownloadOptions } from './resumable-download.js';
import { updateCommandOpcodes, updateJournalLimits, type UpdateJournal, type UpdateJournalEntry, type UpdateJournalState } from './update-journal.js';

type Notice = MessageBody<'OTA_NOTICE'>;
type Report = MessageBody<'OTA_REPORT'>;

/**
 * Where the agent gets signed metadata and artifacts: the control plane's image repository for
 * metadata, and for the artifact the presigned URL of the notice, fetched by the resumable
 * downloader (`download`); without either, the TUF targets route through `fetcher`.
 */
export interface UpdateSource {
  readonly metadataBaseUrl: string;
  readonly targetBaseUrl: string;
  readonly fetcher: TufFetcher;
  /** The trusted metadata (root.json, ...) and the verified artifacts, each a directory store. */
  readonly metadata: TufFileStore;
  readonly targets: TufFileStore;
  /** The directory behind `targets`, where the kernel reads a staged artifact from. */
  readonly targetsDir: string;
  /** Where presigned downloads are staged and the kernel reads them (download-ports.ts); default files under targetsDir. */
  readonly staging?: StagingStore;
  /**
   * The resumable downloader's I/O and limits (agent/ota/resumable-download.ts), for notices with
   * an artifact URL: `fetcher` defaults to HTTPS with `caPem` pinned.
   */
  readonly download?: {
    readonly scheduler: Scheduler; readonly caPem?: string; readonly fetcher?: ArtifactFetcher;
    readonly limits?: ResumableDownloadOptions['limits']; readonly retryDelayMs?: number;
    /**
     * The origins (`scheme://host[:port]`, compared exactly) a notice's `artifact_url` may name.
     * The URL is not signed (the control plane mints a new one per notice), so a hostile gateway
     * could point the device anywhere, and the outcome of the request would come back in the
     * report: the device as a port scanner of its own network (docs/security/threat-model.md).
     * Default: the origin of `metadataBaseUrl`, i.e. the control plane's URL from enrollment
     * (https, the CA pinned), where the embedded blob store serves its presigned URLs.
     */
    readonly artifactOrigins?: readonly string[];
  };
}

export const updateDownloadDefaults = {
  /** Per download: 30 s without a byte is a stall (retried from where it stopped), an hour in all, twenty requests. */
  limits: { idleTimeoutMs: 30_000, totalTimeoutMs: 60 * 60_000, attemptsWithoutProgressMax: 20 },
  /** New artifact URLs asked for in one execution (a refused URL: expired, or signed for a moment ago); then the download fails. */
  urlRenewalsMax: 8,
  /** A URL this close to its expiry (by the device's clock) is not worth a request: it could die before the first byte. */
  urlExpiryMarginMs: 5_000,
} as const;

export const updateNoticeLimits = {
  /**
   * Notices held while a step runs (a download may take an hour). The gateway is not trusted
   * with availability alone: a flood must not grow the agent's memory. The control plane sends a
   * handful per execution (first, nonce, cancel, up to 8 URL renewals) and the gateway one per
   * AUTH; a dropped one comes again at the next AUTH or re-push.
   */
  pendingMax: 32,
} as const;

/** What the runner refused or dropped of what the gateway sent (counters, for tests and diagnostics). */
export interface UpdateNoticeCounts {
  /**
   * New executions refused before they were journaled: a director document that did not verify
   * (or named another execution), not answered; kernel commands that did not (OTA_KERNEL_COMMAND_INVALID)
   * or a journal that did not load (AGENT_OTA_JOURNAL_UNUSABLE), answered `refuse`.
   */
  readonly refused: number;
  /** Notices dropped because `updateNoticeLimits.pendingMax` were already waiting. */
  readonly dropped: number;
  /** The most notices that waited at once. */
  readonly pendingHighWater: number;
  /** Artifact URLs not fetched for want of a trusted origin (AGENT_OTA_URL_REFUSED): the TUF targets route was taken instead. */
  readonly urlsRefused: number;
  /**
   * Copies of the current execution's notice that did not send its reports again, because a copy
   * had done so less than the re-send interval before (#takeNotice): such notices are not
   * authenticated, so each copy is not allowed to cost up to reportsMax signed frames.
   */
  readonly reportResendsSkipped: number;
  /**
   * Notices refused because their cancel or health nonce was not the control plane's signed word
   * (OTA_NOTICE_STATE_*: unsigned, badly signed, bound to something else, or older than one taken).
   */
  readonly stateRefused: number;
}

export interface UpdateRunnerOptions {
  readonly deviceId: string;
  /** The device's platform, as releases name it (e.g. linux-x64). */
  readonly platform: string;
  /** major.minor.patch of this agent. */
  readonly agentVersion: string;
  /** The director's key: the control plane's pinned command keys, by kid. */
  readonly resolveDirectorKey: (kid: string) => Uint8Array | undefined;
  readonly kernel: KernelBridge;
  readonly journal: UpdateJournal;
  readonly source: UpdateSource;
  readonly tufCrypto: TufCrypto;
  readonly ed25519: Ed25519Provider;
  readonly clock: Clock;
  readonly random: RandomSource;
  /** Sends an OTA_REPORT on the current session; false when there is none (it is sent again when the notice comes again). */
  readonly send: (report: Report) => boolean;
  /**
   * The post-update health check beyond the kernel's (the kernel must run the target version):
   * default none. Tests and the simulator make a device unhealthy here.
   */
  readonly healthProbe?: (context: { version: string }) => Promise<boolean>;
  /** The reboot into the committed image; simulated (default: nothing happens, the agent goes on). */
  readonly reboot?: () => Promise<void>;
  /**
   * The kernel's commit watchdog window (docs/kernel-contract.md, "Commit watchdog") for COMMIT
   * commands that name none (the control plane's rollout commands sign theirs, which wins):
   * unless the health check passes and the agent confirms within it, the kernel rolls back by
   * itself (an agent that died or hangs after COMMIT). Default updateRunnerDefaults.commitWatchdogMs;
   * armed only when the kernel bridge can confirm and the device has a version to fall back to.
   */
  readonly commitWatchdogMs?: number;
  /**
   * Waits before each step the device takes (default: none, a real device's steps take the time
   * their I/O takes). The simulator's devices pace their steps on virtual time here, since their
   * in-process ports answer at once; never a real timer.
   */
  readonly pace?: (step: DeviceStep) => Promise<void>;
  /**
   * Sends the journaled reports again while the runner waits (default: only when a notice comes
   * again, i.e. at each AUTH). An OTA_REPORT has no acknowledgement: one lost on a session that
   * stays up (the simulator's lossy links; a gateway that failed to pass it on) would leave the
   * control plane a step behind until the step times out. Each execution gets at most
   * `resendsMax`, `intervalMs` after the runner last acted; an ended one re-sends only its last report.
   */
  readonly reportResend?: { readonly scheduler: Scheduler; readonly intervalMs: number; readonly resendsMax: number };
  /**
   * The device's held policy bundle's check of a signed command (AgentCore.checkPolicyBundle), as
   * every command delivered to the agent gets: the refusal, or undefined when the bundle allows it
   * (or none is held). STAGE and COMMIT are checked when the notice is taken (before any download)
   * and again just before each kernel call; a refusal ends the execution with its code
   * (POLICY_BUNDLE_DENIED) and the kernel is not called. ROLLBACK is not checked: it only undoes
   * this execution's own update, which the kernel's watchdog would undo anyway (docs/ota.md).
   * Default: none, as before the first bundle.
   */
  readonly checkCommand?: (command: SignedCommand) => SdcError | undefined;
  readonly logger: AgentLogger;
}

export const updateRunnerDefaults = {
  /** Reboot, health check and the control plane's nonce all fit in it; a device that stays silent longer is rolled back by its kernel. */
  commitWatchdogMs: 15 * 60_000,
  /** Half the control plane's default step timeout (60 s): a lost report is sent again before its step times out. */
  reportResendIntervalMs: 30_000,
  /** Re-sends per execution: a dozen reports each at most, four times. */
  reportResendsMax: 4,
} as const;

/**
 * The agent's update path (docs/ota.md, "The agent's update path"). On an OTA_NOTICE it takes
 * the execution (one at a time), and steps through it as core/ota decideDeviceStep says, checking
 * cancellation before every step (mender #1815):
 * TUF refresh against the image repository and the director's document checked against it
 * (checkUpdate: device, rollout, wave, execution, path, length, hashes, counter, platform), the
 * artifact downloaded and verified by the TUF client (length and every hash), kernel STAGE (which
 * re-checks the digest the control plane signed), COMMIT (the version the control plane signed),
 * the reboot, the health check, and the signed version report with the control plane's nonce;
 * ROLLBACK when the health check fails or a cancel comes after the commit. Every step is
 * journaled, and the kernel call it is about to make before it is made, so `recover` after a
 * crash asks the kernel where it stands and resumes or rolls back; no half-applied update stays.
 */
export class UpdateRunner {
  readonly #o: UpdateRunnerOptions;
  #state: UpdateJournalState = { current: null, installedReleaseCounter: 0 };
  /** One step sequence at a time; notices arriving meanwhile wait in #pending and are taken when it is done. */
  #running: Promise<void> = Promise.resolve();
  /** Notices not yet taken, in arrival order (bounded by updateNoticeLimits.pendingMax); drained one by one on #running. */
  readonly #pending: Notice[] = [];
  #draining = false;
  #noticeCounts = { refused: 0, dropped: 0, pendingHighWater: 0, urlsRefused: 0, reportResendsSkipped: 0, stateRefused: 0 };
  /** When a notice for the current execution last sent its reports again (on options.clock), and for which execution. */
  #noticeResend: { readonly executionId: string; readonly atMs: number } | undefined;
  #reportSeq = 0;
  /** Cancels seen but maybe not yet journaled: a step sequence in progress sees them before its next step. */
  readonly #cancelIds = new Set<string>();
  /** The highest signed notice state taken per execution (#authenticState), so an older one replayed is told apart; at most 16. */
  readonly #statesTaken = new Map<string, NoticeState>();
  /** The download in progress: a cancel for its execution stops it at once (the partial file is kept). */
  #downloading: { readonly executionId: string; readonly abort: AbortController } | undefined;
  /** New artifact URLs asked for, per execution (bounded by updateDownloadDefaults.urlRenewalsMax). */
  readonly #urlRenewals = new Map<string, number>();
  /** The pending re-send of the current execution's reports (options.reportResend), and how many it had. */
  #resend: { readonly executionId: string; count: number; timer: TimerHandle | undefined } | undefined;
  /** The journal's load failure at recover: while set, nothing is journaled and no execution is taken. */
  #journalFailure: SdcError | undefined;

  constructor(options: UpdateRunnerOptions) {
    this.#o = options;
  }

  get current(): UpdateJournalEntry | null {
    return this.#state.current;
  }

  get installedReleaseCounter(): number {
    return this.#state.installedReleaseCounter;
  }

  get noticeCounts(): UpdateNoticeCounts {
    return { ...this.#noticeCounts };
  }

  /**
   * After a restart: loads the journal and finishes or rolls back what a crash interrupted. A
   * journal that does not load (AGENT_OTA_JOURNAL_CORRUPT, rethrown) leaves the runner refusing
   * every new execution (AGENT_OTA_JOURNAL_UNUSABLE, reported `refuse`) and writing nothing, so
   * the file, the execution it held and the anti-rollback floor stay for an operator to repair
   * (docs/ota.md); before, the runner went on with no execution and a floor of 0, and its next
   * save overwrote the journal (review h1 (OTA), finding 1).
   */
  async recover(): Promise<void> {
    try {
      this.#state = await this.#o.journal.load();
      this.#journalFailure = undefined;
    } catch (error) {
      this.#journalFailure = SdcError.is(error) ? error : new SdcError('AGENT_OTA_JOURNAL_CORRUPT', `OTA journal does not load: ${String((error as Error)?.message ?? error)}`);
      this.#state = { current: null, installedReleaseCounter: this.#state.installedReleaseCounter };
      this.#o.logger.error({ code: this.#journalFailure.code, details: this.#journalFailure.details }, `OTA journal not loaded; no update is taken until it is repaired or removed: ${this.#journalFailure.message}`);
      throw this.#journalFailure;
    }
    if (this.#state.current?.state === 'rebooting') await this.#rebooted(this.#state.current);
    const entry = this.#state.current;
    if (entry === null || isTerminal(executionTable, entry.state)) return;
    if (entry.intent !== null) await this.#settleIntent(entry);
    this.#kick();
  }

  /** Why the journal did not load at recover (AGENT_OTA_JOURNAL_CORRUPT), or undefined: while set, no execution is taken. */
  get journalFailure(): SdcError | undefined {
    return this.#journalFailure;
  }

  /** Resolves when no step is running (tests). */
  async idle(): Promise<void> {
    for (;;) {
      const running = this.#running;
      await running;
      if (running === this.#running) return;
    }
  }

  /** An OTA_NOTICE from the gateway. Never throws. */
  onNotice(received: Notice): void {
    // Before anything else, cancel included: the gateway relays notices, and its word on cancel
    // and the nonce is worth nothing (core/ota/notice-state.ts).
    if (!this.#authenticState(received)) return;
    // A statement that vouches for nothing is not kept: only a checked one may be journaled (#heldState reads it back).
    const notice = assertsState(received) ? received : withoutState(received);
    // At once, not behind the running sequence: cancellation is checked before every step (mender #1815).
    if (notice.cancel) {
      this.#cancelIds.add(notice.execution_id);
      // Bounded: only the execution in progress matters; older ids are journaled or moot.
      if (this.#cancelIds.size > 16) this.#cancelIds.delete(this.#cancelIds.values().next().value!);
      if (this.#downloading?.executionId === notice.execution_id) this.#downloading.abort.abort();
    }
    if (!this.#enqueue(notice)) return;
    if (this.#draining) return;
    this.#draining = true;
    this.#running = this.#running.then(() => this.#drain());
  }

  /**
   * Whether the notice's cancel and health nonce are the control plane's signed word for this
   * device and execution, and not older than what was taken for it (checkNoticeState). A refused
   * notice is dropped whole (its URL too: it comes again with the next honest push), counted,
   * logged and, when it is for the execution in progress, reported (`notice_refused`, not
   * journaled); the log and the report at the 1st, 2nd, 4th ... refusal, so a flood costs no more
   * than a few signed frames. The rest of the runner goes on as if the notice never came.
   */
  #authenticState(notice: Notice): boolean {
    // Neither cancel nor a nonce: nothing a gateway could forge (withholding news is what dropping
    // frames does anyway), and the director's checks decide the rest as before.
    if (!assertsState(notice)) return true;
    try {
      const state = notice.notice_state === undefined ? undefined : verifyNoticeState(notice.notice_state, this.#o.resolveDirectorKey, this.#o.ed25519);
      checkNoticeState(state, {
        deviceId: this.#o.deviceId,
        notice: { executionId: notice.execution_id, rolloutId: notice.rollout_id, cancel: notice.cancel, healthNonce: notice.health_nonce ?? null },
        held: this.#heldState(notice.execution_id),
      });
      this.#rememberState(state);
      return true;
    } catch (error) {
      const code = SdcError.is(error) ? error.code : 'OTA_NOTICE_STATE_SIGNATURE';
      this.#noticeCounts.stateRefused += 1;
      if (!isPowerOfTwo(this.#noticeCounts.stateRefused)) return false;
      this.#o.logger.warn({ executionId: notice.execution_id, code, refused: this.#noticeCounts.stateRefused }, `OTA notice refused: ${(error as Error).message}`);
      const current = this.#state.current;
      if (current !== null && current.executionId === notice.execution_id) {
        this.#o.send(this.#report(current.executionId, 'notice_refused', { error: errorOf(error) }));
      }
      return false;
    }
  }

  /**
   * The highest signed state taken for an execution in this process, or else the journaled
   * notice's (after a restart; verified again, as everything read back is).
   */
  #heldState(executionId: string): NoticeState | undefined {
    const taken = this.#statesTaken.get(executionId);
    if (taken !== undefined) return taken;
    const current = this.#state.current;
    if (current === null || current.executionId !== executionId || current.notice.notice_state === undefined) return undefined;
    try {
      return verifyNoticeState(current.notice.notice_state, this.#o.resolveDirectorKey, this.#o.ed25519);
    } catch {
      // Its key is no longer pinned (rotated since): nothing it signed verifies now either, so no older statement can come back.
      return undefined;
    }
  }

  #rememberState(state: NoticeState | undefined): void {
    if (state === undefined) return;
    const held = this.#statesTaken.get(state.executionId);
    if (held !== undefined && held.seq >= state.seq) return;
    this.#statesTaken.delete(state.executionId);
    this.#statesTaken.set(state.executionId, state);
    // Bounded: only the execution in progress matters; an older one's notices are ignored anyway.
    if (this.#statesTaken.size > 16) this.#statesTaken.delete(this.#statesTaken.keys().next().value!);
  }

  /**
   * Holds the notice for the step chain; false when it was dropped. When full, a newer copy of a
   * waiting execution's notice replaces the oldest one of that execution (the newest URL and nonce
   * win); a notice for any other execution is dropped and counted (AGENT_OTA_NOTICES_FULL).
   */
  #enqueue(notice: Notice): boolean {
    if (this.#pending.length >= updateNoticeLimits.pendingMax) {
      const older = this.#pending.findIndex((waiting) => waiting.execution_id === notice.execution_id);
      this.#noticeCounts.dropped += 1;
      if (older < 0) {
        if (isPowerOfTwo(this.#noticeCounts.dropped)) this.#o.logger.warn({ executionId: notice.execution_id, code: 'AGENT_OTA_NOTICES_FULL', dropped: this.#noticeCounts.dropped }, 'OTA notice dropped: too many are waiting');
        return false;
      }
      this.#pending.splice(older, 1);
    }
    this.#pending.push(notice);
    this.#noticeCounts.pendingHighWater = Math.max(this.#noticeCounts.pendingHighWater, this.#pending.length);
    return true;
  }

  /** Takes the waiting notices in order, each after the previous one's steps, as the chain did one by one before. */
  async #drain(): Promise<void> {
    for (let notice = this.#pending.shift(); notice !== undefined; notice = this.#pending.shift()) {
      try {
        await this.#takeNotice(notice);
      } catch (error) {
        this.#o.logger.error({ err: error, executionId: notice.execution_id }, 'OTA notice handling failed');
      }
    }
    this.#draining = false;
  }

  async #takeNotice(notice: Notice): Promise<void> {
    if (this.#journalFailure !== undefined) {
      // The director's check first, as for any new execution: a made-up notice costs no report.
      if (notice.cancel || this.#authenticNewExecution(notice) === undefined) return;
      this.#refuseUnjournaled(notice, new SdcError('AGENT_OTA_JOURNAL_UNUSABLE', `this device's OTA journal did not load (${String(this.#journalFailure.details?.['cause'] ?? this.#journalFailure.code)}): it takes no update until an operator repairs or removes ota/journal.json`));
      return;
    }
    const entry = this.#state.current;
    if (entry !== null && entry.executionId === notice.execution_id) {
      // The same execution again (after an AUTH, a new nonce, or a cancel): take what is new, send our reports again.
      // Only the fields the control plane changes per push: the director's document, the signed
      // commands, the rollout and the wave stay those of the notice this execution was taken with
      // (its director signature was checked before it was journaled, #authenticNewExecution).
      const updated: UpdateJournalEntry = { ...entry, notice: withLaterFields(entry.notice, notice), cancelRequested: entry.cancelRequested || notice.cancel };
      // Written only when it matters: an ended execution uses none of these fields, and the same
      // fields again change nothing, so a flood of copies (anyone can copy the id) costs no write.
      if (!isTerminal(executionTable, entry.state) && !sameLaterFields(entry, updated)) await this.#save(updated);
      // The reports again (one may have been lost with the session this notice follows), at most once
      // per re-send interval: these notices are not authenticated, and each copy would otherwise send
      // up to reportsMax signed frames. A later loss is the timed re-send's (#armResend).
      const nowMs = this.#o.clock.nowMs();
      const intervalMs = this.#o.reportResend?.intervalMs ?? updateRunnerDefaults.reportResendIntervalMs;
      const last = this.#noticeResend;
      if (last === undefined || last.executionId !== entry.executionId || nowMs - last.atMs >= intervalMs || nowMs < last.atMs) {
        this.#noticeResend = { executionId: entry.executionId, atMs: nowMs };
        for (const report of updated.reports) this.#o.send(report);
      } else {
        this.#noticeCounts.reportResendsSkipped += 1;
      }
      if (!isTerminal(executionTable, updated.state)) await this.#run();
      return;
    }
    if (entry !== null && !isTerminal(executionTable, entry.state)) {
      this.#o.logger.warn({ executionId: notice.execution_id, busyWith: entry.executionId }, 'OTA notice ignored: another update is in progress');
      return;
    }
    if (notice.cancel) return; // canceled before we ever started it
    // Before the journal: a notice that does not authenticate its execution costs no write and no report.
    const director = this.#authenticNewExecution(notice);
    if (director === undefined) return;
    // The kernel commands before the journal too: a gateway's edit of one of them (a ROLLBACK
    // that would fail when it is needed, arguments nested deep enough to make the journal
    // unreadable) is refused now, and the journal only ever holds commands the control plane signed.
    const commandRefusal = this.#kernelCommandsRefusal(notice, director);
    if (commandRefusal !== undefined) {
      this.#refuseUnjournaled(notice, commandRefusal);
      return;
    }
    await this.#save({ executionId: notice.execution_id, notice: journaledNotice(notice), state: 'notified', intent: null, cancelRequested: false, approved: null, reports: [] });
    await this.#run();
  }

  /**
   * Whether a notice for a new execution carries a director document signed by a pinned key that
   * names this execution. Only that, cheaply (no I/O): the rest (device, rollout, wave, target,
   * times) is check_director's, which journals and reports its refusal. Without this, every
   * notice a hostile gateway made up for a new execution id cost two journal writes (fsync'd)
   * and a signed report.
   */
  #authenticNewExecution(notice: Notice): DirectorDocument | undefined {
    try {
      const kid = directorKeyId(notice);
      const publicKey = this.#o.resolveDirectorKey(kid);
      if (publicKey === undefined) throw new SdcError('OTA_DIRECTOR_SIGNATURE', `director key ${kid} is not one this device trusts`);
      const director = verifyDirectorEnvelope(notice.director, { keyId: kid, publicKey }, this.#o.ed25519);
      if (director.executionId !== notice.execution_id) throw new SdcError('OTA_DIRECTOR_WRONG_BINDING', 'the director\'s document names another execution');
      return director;
    } catch (error) {
      this.#noticeCounts.refused += 1;
      if (isPowerOfTwo(this.#noticeCounts.refused)) {
        this.#o.logger.warn({ executionId: notice.execution_id, code: 'AGENT_OTA_NOTICE_REFUSED', cause: SdcError.is(error) ? error.code : undefined, refused: this.#noticeCounts.refused }, 'OTA notice refused before it was journaled');
      }
      return undefined;
    }
  }

  /**
   * Why the notice's kernel commands may not be taken (OTA_KERNEL_COMMAND_INVALID), or undefined.
   * Each is checked as a delivered command is (verifyCommand: this device, a pinned command key,
   * the signature, its opcode's argument schema), and for its step: STAGE, COMMIT and ROLLBACK
   * by opcode, STAGE naming the director's SHA-256 and length, COMMIT STAGE's version and digest.
   * Not the deadline: the kernel judges it at each call on its own clock, and a ROLLBACK is
   * needed until the execution ends. The director's document was verified just before
   * (#authenticNewExecution); check_director checks the rest of its binding and compares the
   * version with the image repository.
   */
  #kernelCommandsRefusal(notice: Notice, director: DirectorDocument): SdcError | undefined {
    // A notice for another device names that device in its commands too: said as the director's binding, the clearer word.
    if (director.deviceId !== this.#o.deviceId) return new SdcError('OTA_DIRECTOR_WRONG_BINDING', `the director's document is for ${director.deviceId.slice(0, 128)}, not this device`);
    const { target } = director;
    const commands = notice.kernel_commands;
    const expected = updateCommandOpcodes;
    for (const step of ['stage', 'commit', 'rollback'] as const) {
      const command = commands[step];
      const name = step.toUpperCase();
      if (command.opcode !== expected[step]) return new SdcError('OTA_KERNEL_COMMAND_INVALID', `the notice's ${name} command is ${command.opcode}, not ${expected[step]}`, { step });
      try {
        verifyCommand({ command, deviceId: this.#o.deviceId, resolveKey: this.#o.resolveDirectorKey, provider: this.#o.ed25519, nowMs: Number.NEGATIVE_INFINITY });
      } catch (error) {
        const cause = SdcError.is(error) ? error.code : 'CRYPTO_SIGNATURE_INVALID';
        return new SdcError('OTA_KERNEL_COMMAND_INVALID', `the notice's ${name} command does not verify (${cause})`, { step, cause });
      }
    }
    const stage = commands.stage.args as { version?: unknown; sha256?: unknown; size_bytes?: unknown };
    const commit = commands.commit.args as { version?: unknown; sha256?: unknown };
    if (stage.sha256 !== target.hashes['sha256'] || stage.size_bytes !== target.length) {
      return new SdcError('OTA_KERNEL_COMMAND_INVALID', 'the notice\'s STAGE command names another digest or length than the director\'s target', { step: 'stage' });
    }
    if (commit.version !== stage.version || (commit.sha256 !== undefined && commit.sha256 !== stage.sha256)) {
      return new SdcError('OTA_KERNEL_COMMAND_INVALID', 'the notice\'s COMMIT command names another version or digest than its STAGE command', { step: 'commit' });
    }
    return undefined;
  }

  /**
   * A new execution refused before anything was journaled: the refusal goes to the control plane
   * (`refuse`: the execution ends rejected with the code) without a journal write. The log and the
   * report at the 1st, 2nd, 4th ... refusal (copies of one notice cost a signed frame each), and a
   * notice that comes again is refused again.
   */
  #refuseUnjournaled(notice: Notice, refusal: SdcError): void {
    this.#noticeCounts.refused += 1;
    if (!isPowerOfTwo(this.#noticeCounts.refused)) return;
    this.#o.logger.warn({ executionId: notice.execution_id, code: refusal.code, refused: this.#noticeCounts.refused }, `OTA notice refused: ${refusal.message}`);
    this.#o.send(this.#report(notice.execution_id, 'refuse', { error: errorOf(refusal) }));
  }

  #kick(): void {
    this.#running = this.#running.then(() => this.#run()).catch((error: unknown) => this.#o.logger.error({ err: error }, 'OTA update run failed'));
  }

  /** Steps until the execution ends or waits for something from outside (the health nonce); then arms the reports' re-send. */
  async #run(): Promise<void> {
    try {
      await this.#steps();
    } finally {
      this.#armResend();
    }
  }

  /**
   * `intervalMs` after the runner last acted, the current execution's reports go again (all of
   * them while it runs, the last one once it ended), through the step chain so never beside a step.
   */
  #armResend(): void {
    const option = this.#o.reportResend;
    const entry = this.#state.current;
    if (option === undefined || entry === null || entry.reports.length === 0) return;
    if (this.#resend?.executionId !== entry.executionId) {
      if (this.#resend?.timer !== undefined) option.scheduler.cancel(this.#resend.timer);
      this.#resend = { executionId: entry.executionId, count: 0, timer: undefined };
    }
    const resend = this.#resend;
    if (resend.timer !== undefined) option.scheduler.cancel(resend.timer);
    resend.timer = undefined;
    if (resend.count >= option.resendsMax) return;
    resend.timer = option.scheduler.schedule(option.intervalMs, () => {
      resend.timer = undefined;
      this.#running = this.#running.then(() => {
        const current = this.#state.current;
        if (current === null || current.executionId !== resend.executionId || resend.timer !== undefined) return;
        resend.count += 1;
        const reports = isTerminal(executionTable, current.state) ? current.reports.slice(-1) : current.reports;
        for (const report of reports) this.#o.send(report);
        this.#armResend();
      }).catch((error: unknown) => this.#o.logger.error({ err: error }, 'OTA report re-send failed'));
    });
  }

  async #steps(): Promise<void> {
    for (let steps = 0; steps < 32; steps++) {
      let entry = this.#state.current;
      if (entry === null) return;
      let decision = this.#decide(entry);
      if (decision.type === 'step' && decision.step !== 'none' && this.#o.pace !== undefined) {
        await this.#o.pace(decision.step);
        // Decided again: a cancel may have come during the pause (cancellation is checked before every step).
        entry = this.#state.current;
        if (entry === null) return;
        decision = this.#decide(entry);
      }
      if (decision.type === 'done') return;
      if (decision.type === 'cancel') {
        const to = nextState(executionTable, entry.state, 'cancel')!;
        await this.#move(entry, to, to === 'canceled' ? 'canceled' : null);
        continue;
      }
      const progressed = await this.#step(entry, decision.step);
      if (!progressed) return;
    }
  }

  #decide(entry: UpdateJournalEntry): ReturnType<typeof decideDeviceStep> {
    const cancelRequested = entry.cancelRequested || this.#cancelIds.has(entry.executionId);
    return decideDeviceStep({ state: entry.state, cancelRequested, rebootRequired: entry.approved?.rebootRequired ?? true });
  }

  /** One step; false when it waits for something from outside. Failures end the execution with a typed report. */
  async #step(entry: UpdateJournalEntry, step: string): Promise<boolean> {
    switch (step) {
      case 'check_director': return this.#checkDirector(entry);
      case 'precheck': await this.#move(entry, 'downloading', 'precheck_pass'); return true;
      case 'download': return this.#download(entry);
      case 'verify_and_stage': return this.#kernelStep(entry, 'stage');
      case 'commit': return this.#kernelStep(entry, 'commit');
      case 'reboot': {
        await this.#move(entry, 'rebooting', 'reboot');
        await (this.#o.reboot?.() ?? Promise.resolve());
        await this.#rebooted(this.#state.current!);
        return true;
      }
      case 'health_check': await this.#move(entry, 'health_checking', 'health_check_start'); return true;
      case 'report_version': return this.#healthCheck(entry);
      case 'rollback': return this.#kernelStep(entry, 'rollback');
      default: return false; // queued or rebooting: nothing the device does
    }
  }

  async #checkDirector(entry: UpdateJournalEntry): Promise<boolean> {
    try {
      const signature = (entry.notice.director as { signature?: { key_id?: unknown } }).signature;
      const kid = typeof signature?.key_id === 'string' ? signature.key_id : '';
      const publicKey = this.#o.resolveDirectorKey(kid);
      if (publicKey === undefined) throw new SdcError('OTA_DIRECTOR_SIGNATURE', `director key ${kid} is not one this device trusts`);
      const key: DirectorKey = { keyId: kid, publicKey };
      const director = verifyDirectorEnvelope(entry.notice.director, key, this.#o.ed25519);
      const updater = await this.#updater();
      const imageTarget = await runTufWorkflow(updater.targetInfo(director.target.path), this.#tufIo());
      const approved = checkUpdate({
        director, imageTarget,
        binding: { deviceId: this.#o.deviceId, rolloutId: entry.notice.rollout_id, wave: entry.notice.wave, executionId: entry.executionId },
        device: { platform: this.#o.platform, agentVersion: this.#o.agentVersion, installedReleaseCounter: this.#state.installedReleaseCounter },
        nowMs: this.#o.clock.nowMs(),
      });
      const stage = entry.notice.kernel_commands.stage.args as { version?: unknown; sha256?: unknown };
      // The kernel's commands must name what the director and the repository agreed on, or STAGE would approve other bytes.
      if (stage.sha256 !== approved.hashes['sha256'] || stage.version !== approved.release.version) {
        throw new SdcError('OTA_TARGET_MISMATCH', 'the signed STAGE command names another digest or version than the director');
      }
      const commit = entry.notice.kernel_commands.commit.args as { version?: unknown; sha256?: unknown };
      if (commit.version !== approved.release.version || (commit.sha256 !== undefined && commit.sha256 !== approved.hashes['sha256'])) {
        throw new SdcError('OTA_TARGET_MISMATCH', 'the signed COMMIT command names another digest or version than the director');
      }
      // The held policy bundle before anything is downloaded: a device its bundle bars from updates fetches nothing.
      const refusal = this.#bundleRefusal(entry, 'stage') ?? this.#bundleRefusal(entry, 'commit');
      if (refusal !== undefined) throw refusal;
      const file = targetFileIn(this.#o.source.targetsDir, approved.path);
      await this.#save({ ...entry, approved: { version: approved.release.version, file, releaseCounter: approved.release.releaseCounter, rebootRequired: approved.release.rebootRequired } });
      await this.#move(this.#state.current!, 'prechecking', 'accept');
      return true;
    } catch (error) {
      await this.#move(entry, 'rejected', 'refuse', error);
      return false;
    }
  }

  async #download(entry: UpdateJournalEntry): Promise<boolean> {
    const url = entry.notice.artifact_url;
    const { download } = this.#o.source;
    try {
      const urlRefusal = url !== undefined && download !== undefined && entry.approved !== null ? this.#artifactUrlRefusal(entry, url, download) : undefined;
      if (url !== undefined && download !== undefined && entry.approved !== null && urlRefusal === undefined) {
        const outcome = await this.#downloadPresigned(entry, url, download, entry.approved.file);
        if (outcome !== 'done') return outcome === 'canceled';
      } else {
        // The director's target, its signature checked again, not looked up afresh in the notice.
        const target = this.#directorTarget(entry);
        // The TUF client checks the length and every listed hash before the file is written.
        const { fileName } = await runTufWorkflow((await this.#updater()).downloadTarget(target.path), this.#tufIo());
        // And the file as kept is checked against the director's target, as the presigned route's
        // is (review h1 (OTA), finding 7): what the kernel stages is the approved bytes, whichever
        // way they came and however the TUF route writes them.
        if (!(await this.#targetsFileMatches(fileName, target))) {
          await this.#o.source.targets.delete(fileName);
          throw new SdcError('OTA_DOWNLOAD_DIGEST_MISMATCH', `the artifact does not have every hash the signed target lists (${Object.keys(target.hashes).join(', ')})`);
        }
      }
      // A refused URL rides on the step's report (its error, though the step succeeded), so the
      // control plane keeps its code on the execution and in the audit: a gateway that rewrites
      // URLs, or a --public-url the devices do not trust, shows there and not only in device logs.
      // A download that then fails reports its own failure instead (the refusal stays in the log).
      await this.#move(entry, 'verifying', 'download_complete', urlRefusal, { stepFailed: false });
      return true;
    } catch (error) {
      // Bytes refused (length, a hash) are a failed download: the table's verify_fail is for after it.
      // The report names the code and at most the HTTP status: the transport's own words
      // ("connect ECONNREFUSED 10.0.0.5:8080") would tell whoever reads the report what the
      // device's network answered. The local log keeps them.
      this.#o.logger.warn({ executionId: entry.executionId, code: SdcError.is(error) ? error.code : undefined }, `artifact download failed: ${(error as Error)?.message ?? String(error)}`);
      await this.#move(entry, 'failed', 'download_fail', downloadFailure(error));
      return false;
    }
  }

  /**
   * Whether the notice's artifact URL may be fetched (checkArtifactUrl). A refused one is never
   * asked; the artifact then comes by the TUF targets route from the control plane, as for a notice
   * without a URL: a hostile gateway's URL gets no request and no answer, and a control plane whose
   * blob URLs name another host than the devices enrolled with (a `--public-url` left at its
   * default) still updates its devices, without resuming. Logged and counted here; reported with
   * the download's step (artifactUrlRefusalReported: the code and the origin, nothing more).
   */
  #artifactUrlRefusal(entry: UpdateJournalEntry, url: string, download: NonNullable<UpdateSource['download']>): SdcError | undefined {
    try {
      checkArtifactUrl(url, this.#artifactOrigins(download));
      return undefined;
    } catch (error) {
      this.#noticeCounts.urlsRefused += 1;
      this.#o.logger.warn({ executionId: entry.executionId, code: SdcError.is(error) ? error.code : undefined }, `artifact URL not fetched, taking the TUF targets route: ${(error as Error).message}`);
      return artifactUrlRefusalReported(error);
    }
  }

  #artifactOrigins(download: NonNullable<UpdateSource['download']>): readonly string[] {
    return download.artifactOrigins ?? [new URL(this.#o.source.metadataBaseUrl).origin];
  }

  /**
   * The artifact from the notice's presigned URL, resumable (Range + If-Range, agent/ota/resumable-download.ts),
   * capped at the signed length and checked against every hash the director and the image repository
   * agreed on before it is kept (checkUpdate compared them at check_director). A refused URL (expired:
   * 403) is not the end: the device asks for a new one and waits for the notice that brings it, keeping
   * its partial file. 'canceled' when a cancel stopped it (the step loop then cancels).
   */
  async #downloadPresigned(entry: UpdateJournalEntry, url: string, download: NonNullable<UpdateSource['download']>, file: string): Promise<'done' | 'waiting' | 'canceled'> {
    // Checked again (#artifactUrlRefusal did), before anything else: the URL is the one field a gateway can set freely.
    checkArtifactUrl(url, this.#artifactOrigins(download));
    const target = this.#directorTarget(entry);
    const staging = this.#o.source.staging ?? nodeStagingStore;
    if (await fileMatches(staging, file, target)) return 'done'; // downloaded before a restart
    // A stored notice re-sent after a reconnect may carry a URL that expired meanwhile: ask for a new
    // one without first making a request that can only be refused. Only while no new URL was asked
    // in this execution: a device whose clock runs ahead would otherwise never try any URL (after
    // that, a 403 is what says a URL expired).
    const expiresAtMs = presignedUrlExpiresAtMs(url);
    if (!this.#urlRenewals.has(entry.executionId) && expiresAtMs !== undefined && expiresAtMs <= this.#o.clock.nowMs() + updateDownloadDefaults.urlExpiryMarginMs) {
      return this.#askNewUrl(entry, 'artifact URL expired before use: asking for a new one');
    }
    await staging.ensureDirectory(dirname(file));
    const abort = new AbortController();
    this.#downloading = { executionId: entry.executionId, abort };
    try {
      const result = await downloadResumable({
        url, destination: file, expected: { length: target.length, sha256: target.hashes['sha256']! },
        limits: download.limits ?? updateDownloadDefaults.limits, scheduler: download.scheduler, clock: this.#o.clock, signal: abort.signal, staging,
        ...(download.fetcher === undefined ? {} : { fetcher: download.fetcher }), ...(download.caPem === undefined ? {} : { caPem: download.caPem }), ...(download.retryDelayMs === undefined ? {} : { retryDelayMs: download.retryDelayMs }),
      });
      this.#o.logger.info({ executionId: entry.executionId, attempts: result.attempts, startOffsets: result.startOffsets, length: result.length }, 'artifact downloaded from its presigned URL');
    } catch (error) {
      if (abort.signal.aborted) return 'canceled';
      const status = SdcError.is(error, 'OTA_DOWNLOAD_FAILED') ? error.details?.['status'] : undefined;
      const renewals = this.#urlRenewals.get(entry.executionId) ?? 0;
      if (status !== 403 || renewals >= updateDownloadDefaults.urlRenewalsMax) throw error;
      return this.#askNewUrl(entry, 'artifact URL refused (expired?): asking for a new one');
    } finally {
      this.#downloading = undefined;
    }
    if (!(await fileMatches(staging, file, target))) {
      await staging.remove(file);
      throw new SdcError('OTA_DOWNLOAD_DIGEST_MISMATCH', `the artifact does not have every hash the signed target lists (${Object.keys(target.hashes).join(', ')})`);
    }
    return 'done';
  }

  /** Whether the TUF route's file has the target's length and every hash: through the staging store when there is one, else the targets store. */
  async #targetsFileMatches(fileName: string, target: DirectorTarget): Promise<boolean> {
    const { source } = this.#o;
    if (source.staging !== undefined) return fileMatches(source.staging, join(source.targetsDir, fileName), target);
    const bytes = await source.targets.read(fileName);
    return bytes !== undefined && fileMatches(oneChunkStaging(bytes), fileName, target);
  }

  /** Asks the control plane for a new artifact URL (counted against urlRenewalsMax); the next notice resumes the download. */
  #askNewUrl(entry: UpdateJournalEntry, message: string): 'waiting' {
    const renewals = (this.#urlRenewals.get(entry.executionId) ?? 0) + 1;
    this.#urlRenewals.set(entry.executionId, renewals);
    this.#o.logger.info({ executionId: entry.executionId, renewals }, message);
    // Not journaled: it is no step, and the control plane answers it with the notice, which resumes this one.
    this.#o.send(this.#report(entry.executionId, 'artifact_url_expired', {}));
    return 'waiting';
  }

  /** The director's target of this execution, its signature checked again (the journaled notice may have been replaced by a later one). */
  #directorTarget(entry: UpdateJournalEntry): DirectorTarget {
    if (entry.notice.execution_id !== entry.executionId) throw new SdcError('OTA_TARGET_MISMATCH', 'the journaled notice is not for this execution');
    return verifiedDirectorTarget(entry.notice, this.#o.resolveDirectorKey, this.#o.ed25519);
  }

  /** A kernel call: journaled as an intent first, so a crash in it is settled by asking the kernel (#settleIntent). */
  async #kernelStep(entry: UpdateJournalEntry, intent: 'stage' | 'commit' | 'rollback'): Promise<boolean> {
    const approved = entry.approved;
    if (approved === null) {
      await this.#move(entry, 'failed', intent === 'rollback' ? 'rollback_fail' : `${intent}_fail`, new SdcError('OTA_UPDATE_STEP_FAILED', `${intent} without an approved target`));
      return false;
    }
    // Again just before the kernel call, as a delivered command is checked again at its start: a bundle taken meanwhile decides.
    const refusal = intent === 'rollback' ? undefined : this.#bundleRefusal(entry, intent);
    if (refusal !== undefined) {
      await this.#move(entry, 'failed', `${intent}_fail`, refusal);
      return false;
    }
    await this.#save({ ...entry, intent });
    const commands = entry.notice.kernel_commands;
    try {
      if (intent === 'stage') {
        await this.#o.kernel.stageUpdate({ path: approved.file, version: approved.version, sha256: hexToBytes(String(commands.stage.args['sha256'])) }, commandAuthorization(commands.stage));
        await this.#move(this.#state.current!, 'staged', 'stage');
      } else if (intent === 'commit') {
        await this.#o.kernel.commitUpdate(approved.version, commandAuthorization(commands.commit), await this.#commitOptions(commands));
        await this.#move(this.#state.current!, 'committed', 'commit');
      } else {
        // The kernel's watchdog may have rolled back already (this agent did not confirm in time): then there is nothing to undo.
        if ((await this.#o.kernel.getStatus()).currentVersion === approved.version) await this.#o.kernel.rollbackUpdate(commandAuthorization(commands.rollback));
        await this.#move(this.#state.current!, 'rolled_back', 'rollback_complete');
      }
      return true;
    } catch (error) {
      const failure = { stage: ['failed', 'stage_fail'], commit: ['failed', 'commit_fail'], rollback: ['rollback_failed', 'rollback_fail'] } as const;
      const [to, event] = failure[intent];
      await this.#move(this.#state.current!, to, event, error);
      return false;
    }
  }

  /** The held policy bundle's refusal of this execution's signed STAGE or COMMIT command, if any. */
  #bundleRefusal(entry: UpdateJournalEntry, step: 'stage' | 'commit'): SdcError | undefined {
    return this.#o.checkCommand?.(entry.notice.kernel_commands[step]);
  }

  /**
   * The digest and watchdog window sent with COMMIT. When the control plane signed them (its
   * rollout commands do) the kernel requires exactly those, so they are taken from the command;
   * otherwise the digest is STAGE's (checked equal to the director's at check_director) and the
   * window this agent's option, armed only where there is a version to fall back to.
   */
  async #commitOptions(commands: Notice['kernel_commands']): Promise<{ sha256: Uint8Array; watchdogMs?: number }> {
    const args = commands.commit.args;
    const sha256 = hexToBytes(String(args['sha256'] ?? commands.stage.args['sha256']));
    if (typeof args['watchdog_ms'] === 'number') return { sha256, watchdogMs: args['watchdog_ms'] };
    const { kernel } = this.#o;
    const fallback = kernel.confirmUpdate !== undefined && (await kernel.getStatus()).currentVersion !== '';
    return fallback ? { sha256, watchdogMs: this.#o.commitWatchdogMs ?? updateRunnerDefaults.commitWatchdogMs } : { sha256 };
  }

  /**
   * The reboot step's second half: 'rebooting' is journaled before the reboot and 'health_checking'
   * after it, so a journal read back at 'rebooting' is a reboot that happened (the process that
   * rebooted is the one that stopped; a real reboot ends it there every time). The state table has
   * no step for the device in 'rebooting' (core/ota/execution-decisions.ts), and the runner stayed
   * there for good (review h1 (OTA), finding 3): now it goes on to the health check, as after a
   * reboot that returned.
   */
  async #rebooted(entry: UpdateJournalEntry): Promise<void> {
    await this.#move(entry, 'health_checking', 'rebooted');
  }

  /** After a crash during a kernel call: the kernel's status says whether the call happened. */
  async #settleIntent(entry: UpdateJournalEntry): Promise<void> {
    const status = await this.#o.kernel.getStatus();
    const version = entry.approved?.version;
    if (entry.intent === 'stage') {
      if (status.stagedVersion === version) await this.#move(entry, 'staged', 'stage');
      else await this.#save({ ...entry, intent: null });
    } else if (entry.intent === 'commit') {
      if (status.currentVersion === version) await this.#move(entry, 'committed', 'commit');
      else await this.#save({ ...entry, intent: null });
    } else if (entry.intent === 'rollback') {
      if (status.currentVersion !== version) await this.#move(entry, 'rolled_back', 'rollback_complete');
      else await this.#save({ ...entry, intent: null });
    }
  }

  /** The health check, then the signed version report with the control plane's nonce; waits when no nonce came yet. */
  async #healthCheck(entry: UpdateJournalEntry): Promise<boolean> {
    const nonce = entry.notice.health_nonce;
    if (nonce === undefined || entry.approved === null) return false;
    const { version, releaseCounter } = entry.approved;
    let healthy: boolean;
    // The kernel runs another image than the committed target: its watchdog restored the previous one.
    let restored = false;
    try {
      const status = await this.#o.kernel.getStatus();
      restored = status.currentVersion !== version;
      healthy = !restored && (await (this.#o.healthProbe?.({ version }) ?? Promise.resolve(true)));
      // Healthy: disarm the kernel's commit watchdog. Too late (it rolled back) throws, and counts as unhealthy.
      if (healthy && status.watchdogArmed) await this.#o.kernel.confirmUpdate?.(version);
    } catch (error) {
      this.#o.logger.warn({ err: error, executionId: entry.executionId }, 'health check failed to run');
      healthy = false;
    }
    // The release the device runs: the target, or, restored by the watchdog, the one before it (the
    // floor, not raised before a healthy check; the control plane's previous counter is the same
    // highest release that succeeded), so the control plane records watchdog_rollback rather than
    // health_check_fail (core/ota/execution-decisions.ts reportEvent; review h1 (OTA), finding 9).
    const report = this.#report(entry.executionId, 'version_report', { nonce, release_counter: restored ? this.#state.installedReleaseCounter : releaseCounter, healthy });
    if (healthy) {
      this.#state = { ...this.#state, installedReleaseCounter: Math.max(this.#state.installedReleaseCounter, releaseCounter) };
      await this.#save({ ...entry, state: 'succeeded', reports: appendReport(entry.reports, report) });
      this.#o.send(report);
      this.#o.logger.info({ executionId: entry.executionId, version }, 'update installed and healthy');
      return false;
    }
    await this.#save({ ...entry, state: 'rolling_back', reports: appendReport(entry.reports, report) });
    this.#o.send(report);
    this.#o.logger.warn({ executionId: entry.executionId, version, code: 'OTA_HEALTH_CHECK_FAILED' }, 'health check failed; rolling back');
    return true;
  }

  /** Journals the new state with its report, then sends the report. */
  /** `error` goes into the report; it is the step's failure unless `stepFailed` is false (a note on a step that went on: logged where it arose). */
  async #move(entry: UpdateJournalEntry, to: ExecutionState, event: OtaReportEvent | null, error?: unknown, options: { readonly stepFailed: boolean } = { stepFailed: true }): Promise<void> {
    const report = event === null ? undefined : this.#report(entry.executionId, event, error === undefined ? {} : { error: errorOf(error) });
    await this.#save({ ...entry, state: to, intent: null, reports: report === undefined ? entry.reports : appendReport(entry.reports, report) });
    if (report !== undefined) this.#o.send(report);
    if (error !== undefined && options.stepFailed) this.#o.logger.warn({ executionId: entry.executionId, event, code: errorOf(error).code }, `update step failed: ${errorOf(error).message}`);
  }

  #report(executionId: string, event: OtaReportEvent, extra: Partial<Report>): Report {
    return { execution_id: executionId, event, report_id: `or-${hexFromBytes(this.#o.random.bytes(8))}-${++this.#reportSeq}`, ...extra };
  }

  async #save(entry: UpdateJournalEntry): Promise<void> {
    // Never over a journal that did not load (#takeNotice takes nothing then; this is the last guard).
    if (this.#journalFailure !== undefined) throw this.#journalFailure;
    this.#state = { ...this.#state, current: entry };
    await this.#o.journal.save(this.#state);
  }

  /** A fresh TUF client per step ("now" from the clock); the trusted root is fetched once, trust on first use over the pinned TLS connection. */
  async #updater(): Promise<Updater> {
    const { source } = this.#o;
    if ((await source.metadata.read('root.json')) === undefined) {
      const outcome = await source.fetcher.fetch(`${withSlash(source.metadataBaseUrl)}1.root.json`, { bytesMax: 512_000, ...defaultTufTimeouts }, 'initial root');
      if (!outcome.ok) throw outcome.error;
      await source.metadata.write('root.json', outcome.bytes);
    }
    return new Updater({ metadataBaseUrl: source.metadataBaseUrl, targetBaseUrl: source.targetBaseUrl, nowMs: this.#o.clock.nowMs(), crypto: this.#o.tufCrypto });
  }

  #tufIo() {
    const { source } = this.#o;
    return { metadata: source.metadata, targets: source.targets, fetcher: source.fetcher, timeouts: defaultTufTimeouts };
  }
}

/**
 * The file a signed target is kept in: its path quoted as the TUF client names the file it writes
 * (quoteRoleName), so the TUF route and a presigned download name the same file the kernel
 * stages. Quoting leaves `.` and `..` as they are, and joined those name the directory itself or
 * its parent: refused OTA_TARGET_PATH_INVALID, as is any name that would not land directly in
 * `targetsDir`. Signed paths are the image repository's word, still not a licence to pick the file.
 */
export function targetFileIn(targetsDir: string, targetPath: string): string {
  const name = quoteRoleName(targetPath);
  const file = join(targetsDir, name);
  if (name === '.' || name === '..' || dirname(resolve(file)) !== resolve(targetsDir)) {
    throw new SdcError('OTA_TARGET_PATH_INVALID', `target path ${JSON.stringify(targetPath.slice(0, 64))} names no file of its own in the download directory`);
  }
  return file;
}

/**
 * Refuses (AGENT_OTA_URL_REFUSED) an artifact URL that is not https on one of `origins`, or that
 * carries credentials. https only: the pinned CA is what makes the connection the control plane's
 * (an http URL would skip it); an http origin passes only when one is trusted explicitly (tests'
 * plain servers; the agent's configuration accepts https origins only).
 */
export function checkArtifactUrl(raw: string, origins: readonly string[]): void {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new SdcError('AGENT_OTA_URL_REFUSED', 'the artifact URL does not parse');
  }
  const trusted = origins.some((origin) => origin === url.origin);
  const schemeOk = url.protocol === 'https:' || (url.protocol === 'http:' && trusted);
  if (!schemeOk || !trusted || url.username !== '' || url.password !== '') {
    // The origin only, never the path or query (a presigned signature): enough to see what was refused.
    throw new SdcError('AGENT_OTA_URL_REFUSED', `the artifact URL's origin ${url.protocol === 'https:' || url.protocol === 'http:' ? url.origin : url.protocol} is not one this agent trusts for artifacts (${origins.join(', ')})`, { origin: url.origin });
  }
}

/** The longest origin a reported URL refusal names; past it the origin is cut (an origin's host may be most of a 4 KiB URL). */
export const reportedOriginCharsMax = 200;

/**
 * A refused artifact URL as the device reports it: the code, and the URL's origin (bounded by
 * reportedOriginCharsMax), never its path or query (a presigned signature, or whatever a hostile
 * gateway put there) nor the origins this agent trusts (its configuration).
 */
export function artifactUrlRefusalReported(error: unknown): SdcError {
  const origin = SdcError.is(error) ? error.details?.['origin'] : undefined;
  const shown = typeof origin !== 'string' || origin === 'null' ? undefined
    : origin.length > reportedOriginCharsMax ? `${origin.slice(0, reportedOriginCharsMax)}...` : origin;
  return new SdcError('AGENT_OTA_URL_REFUSED', shown === undefined
    ? 'the artifact URL was not fetched (it does not parse, or is not http(s)); the artifact came by the TUF targets route'
    : `the artifact URL's origin ${shown} is not trusted for artifacts; the artifact came by the TUF targets route`, shown === undefined ? {} : { origin: shown });
}

/** A download failure as reported: its code, the code's registered summary, and an HTTP status if there was one. */
function downloadFailure(error: unknown): SdcError {
  const code = SdcError.is(error) ? error.code : 'OTA_DOWNLOAD_FAILED';
  const status = SdcError.is(error) ? error.details?.['status'] : undefined;
  const httpStatus = typeof status === 'number' && Number.isInteger(status) && status >= 100 && status <= 599 ? status : undefined;
  return new SdcError(code, `${errorRegistry[code].summary}${httpStatus === undefined ? '' : ` (HTTP ${httpStatus})`}`, httpStatus === undefined ? {} : { status: httpStatus });
}

/** The notice's director key id, as the envelope names it ('' when it names none). */
function directorKeyId(notice: Pick<Notice, 'director'>): string {
  const signature = (notice.director as { signature?: { key_id?: unknown } }).signature;
  return typeof signature?.key_id === 'string' ? signature.key_id : '';
}

/** The director's target of a notice, its signature checked (a pinned key, this execution); throws OTA_DIRECTOR_*, OTA_TARGET_MISMATCH. */
type DirectorTarget = { readonly path: string; readonly length: number; readonly hashes: Readonly<Record<string, string>> };

function verifiedDirectorTarget(notice: Notice, resolveKey: (kid: string) => Uint8Array | undefined, ed25519: Ed25519Provider): DirectorTarget {
  const kid = directorKeyId(notice);
  const publicKey = resolveKey(kid);
  if (publicKey === undefined) throw new SdcError('OTA_DIRECTOR_SIGNATURE', `director key ${kid} is not one this device trusts`);
  const director = verifyDirectorEnvelope(notice.director, { keyId: kid, publicKey }, ed25519);
  if (director.executionId !== notice.execution_id || director.target.hashes['sha256'] === undefined) {
    throw new SdcError('OTA_TARGET_MISMATCH', 'the director\'s document is not for this execution or lists no SHA-256');
  }
  return director.target;
}

/**
 * The notice as journaled: its schema's fields by name, nothing else (a notice reaches here
 * checked against the OTA_NOTICE schema, whose objects admit no other members; named anyway, so
 * the journal holds what the runner verified and uses, whatever the schema admits later).
 */
function journaledNotice(notice: Notice): Notice {
  return {
    execution_id: notice.execution_id, rollout_id: notice.rollout_id, wave: notice.wave,
    director: notice.director, kernel_commands: { stage: notice.kernel_commands.stage, commit: notice.kernel_commands.commit, rollback: notice.kernel_commands.rollback },
    cancel: notice.cancel,
    ...(notice.health_nonce === undefined ? {} : { health_nonce: notice.health_nonce }),
    ...(notice.artifact_url === undefined ? {} : { artifact_url: notice.artifact_url }),
    ...(notice.notice_state === undefined ? {} : { notice_state: notice.notice_state }),
  };
}

/** Whether a notice says anything only the control plane's signed state may say: cancel, or a health nonce. */
function assertsState(notice: Notice): boolean {
  return notice.cancel || notice.health_nonce !== undefined;
}

function withoutState(notice: Notice): Notice {
  if (notice.notice_state === undefined) return notice;
  const { notice_state: _state, ...rest } = notice;
  return rest;
}

/**
 * A journaled notice with what a later push of the same execution may change: its URL, and with
 * the signed state that vouches for them (checked in onNotice), its nonce and its cancel. The
 * cancel only forward: once journaled canceled, the execution stays canceled in the journal, as
 * the signed state's seq and the runner's cancelRequested do. A later notice without cancel
 * asserts nothing and needs no signature (an unsigned copy any gateway can relay), so it must
 * not write cancel back to false.
 */
function withLaterFields(taken: Notice, later: Notice): Notice {
  return {
    ...taken, cancel: taken.cancel || later.cancel,
    ...(later.artifact_url === undefined ? {} : { artifact_url: later.artifact_url }),
    ...(later.health_nonce === undefined ? {} : { health_nonce: later.health_nonce }),
    // The state taken last is the one a replay is measured against (#heldState): never replaced by none.
    ...(later.notice_state === undefined ? {} : { notice_state: later.notice_state }),
  };
}

function sameLaterFields(before: UpdateJournalEntry, after: UpdateJournalEntry): boolean {
  return before.cancelRequested === after.cancelRequested && before.notice.cancel === after.notice.cancel
    && before.notice.artifact_url === after.notice.artifact_url && before.notice.health_nonce === after.notice.health_nonce
    && before.notice.notice_state?.signature.sig === after.notice.notice_state?.signature.sig;
}

function isPowerOfTwo(count: number): boolean {
  return count > 0 && (count & (count - 1)) === 0;
}

function appendReport(reports: readonly Report[], report: Report): Report[] {
  return [...reports, report].slice(-updateJournalLimits.reportsMax);
}

function errorOf(error: unknown): { code: string; message: string } {
  if (SdcError.is(error)) return { code: error.code, message: error.message.slice(0, 512) };
  return { code: 'OTA_UPDATE_STEP_FAILED', message: String((error as Error)?.message ?? error).slice(0, 512) };
}

function hexToBytes(hex: string): Uint8Array {
  if (!/^[0-9a-f]{64}$/.test(hex)) throw new SdcError('OTA_TARGET_MISMATCH', 'the STAGE command names no SHA-256');
  return Uint8Array.from(hex.match(/../g)!.map((byte) => parseInt(byte, 16)));
}

/** The bytes read from a targets store, as the one chunk of a staging store's file (fileMatches reads only chunks). */
function oneChunkStaging(bytes: Uint8Array): StagingStore {
  return { chunks: async () => (async function* () { yield bytes; })() } as unknown as StagingStore;
}

/** Whether `file` exists with exactly the target's length and every listed hash (sha224..sha512). */
async function fileMatches(staging: StagingStore, file: string, target: { length: number; hashes: Readonly<Record<string, string>> }): Promise<boolean> {
  const hashes = Object.entries(target.hashes).map(([algorithm, digest]) => ({ digest, hash: createHash(algorithm) }));
  let length = 0;
  try {
    const chunks = await staging.chunks(file);
    if (chunks === undefined) return false;
    for await (const chunk of chunks) {
      length += chunk.length;
      if (length > target.length) return false;
      for (const { hash } of hashes) hash.update(chunk);
    }
  } catch {
    return false;
  }
  return length === target.length && hashes.every(({ digest, hash }) => hash.digest('hex') === digest);
}

function withSlash(url: string): string {
  return url.endsWith('/') ? url : `${url}/`;
}
