import { createHash } from 'node:crypto';
import type { Ed25519Provider } from '../../core/ports/ports.js';
import { verifyDirectorEnvelope, type DirectorDocument, type DirectorKey } from '../../core/ota/director.js';
import type { MessageBody } from '../../core/protocol/messages/catalog.js';
import type { OtaReportEvent } from '../../core/protocol/messages/ota.js';
import type { SeededRandom } from '../../core/random/prng.js';
import type { VirtualTime } from '../../core/time/virtual-time.js';
import type { ScenarioOta } from '../scenario.js';
import type { ArtifactResponse, SimArtifactServer } from './artifact-server.js';
import type { OtaObserver } from './ota-observer.js';

type Notice = MessageBody<'OTA_NOTICE'>;
type Report = MessageBody<'OTA_REPORT'>;

/**
 * A simulated device's update path: what agent/ota/update-runner.ts does, reduced to what the
 * rollout sees, on virtual time. It checks the director's document with the real core check
 * (verifyDirectorEnvelope: signed by the control plane's key, for this device and execution),
 * reports each step as a device-signed OTA_REPORT through the real agent core, downloads the
 * artifact from the simulated server with resumable ranges (the rules of
 * agent/ota/resumable-download.ts: `Range: bytes=N-` with If-Range; 206 only with exactly
 * `bytes N-(L-1)/L` and the same ETag, 200 restarts from zero, 416 drops the partial) and checks
 * the whole artifact's SHA-256 against the digest the control plane signed into the kernel's STAGE
 * command. The real update runner is not used: it needs the TUF client over HTTP and files on
 * disk, neither of which runs on virtual time. No kernel call is made (STAGE/COMMIT are reported,
 * not performed). A bricked device fails its post-reboot health check (its version report says
 * unhealthy, then it rolls back) or stays silent after the reboot.
 */
export interface SimUpdaterOptions {
  readonly deviceId: string;
  readonly time: VirtualTime;
  readonly random: SeededRandom;
  readonly server: SimArtifactServer;
  readonly device: ScenarioOta['device'];
  readonly directorKey: DirectorKey;
  readonly provider: Ed25519Provider;
  /** Sends on the agent's session; false when it has none (sent again when the notice comes again). */
  readonly send: (report: Report) => boolean;
  /** Asked once per execution, when the device takes it. */
  readonly bricks: () => BrickMode | null;
  readonly observer: OtaObserver;
  readonly trace: (kind: string, detail: string) => void;
}

export type BrickMode = NonNullable<ScenarioOta['bricks']>['mode'];

type Phase = 'running' | 'awaiting_health' | 'silent' | 'canceled' | 'done';

interface Execution {
  readonly notice: Notice;
  readonly document: DirectorDocument;
  readonly expectedSha256: string;
  readonly brick: BrickMode | null;
  phase: Phase;
  canceled: boolean;
  /** Reports not yet handed to a session, oldest first. */
  readonly unsent: Report[];
  /** Every report handed to a session: sent again when the notice comes again, as the update runner does (at most a dozen per execution). */
  readonly sent: Report[];
  reportSeq: number;
  held: Uint8Array;
  etag: string | undefined;
  attempts: number;
  retryDelayMs: number;
}

const retryDelayMsMax = 30_000;

export class SimUpdater {
  readonly #o: SimUpdaterOptions;
  #current: Execution | undefined;

  constructor(options: SimUpdaterOptions) {
    this.#o = options;
  }

  /** An OTA_NOTICE from the agent core. */
  onNotice(notice: Notice): void {
    const current = this.#current;
    if (current !== undefined && current.notice.execution_id === notice.execution_id) {
      this.#again(current, notice);
      return;
    }
    if (current !== undefined && current.phase === 'running') return; // one update at a time, as the update runner
    this.#take(notice);
  }

  #take(notice: Notice): void {
    const { deviceId, observer } = this.#o;
    let document: DirectorDocument;
    try {
      document = verifyDirectorEnvelope(notice.director, this.#o.directorKey, this.#o.provider);
      if (document.deviceId !== deviceId || document.executionId !== notice.execution_id) throw new Error('the director document is for another device or execution');
    } catch (error) {
      observer.refused(deviceId, notice.execution_id, (error as Error).message);
      return;
    }
    const stage = notice.kernel_commands.stage.args as { sha256: string; size_bytes: number };
    const brick = this.#o.bricks();
    const execution: Execution = {
      notice, document, expectedSha256: stage.sha256, brick, phase: 'running', canceled: notice.cancel, unsent: [], sent: [], reportSeq: 0,
      held: new Uint8Array(0), etag: undefined, attempts: 0, retryDelayMs: this.#o.device.retryDelayMs,
    };
    this.#current = execution;
    observer.taken(deviceId, { executionId: notice.execution_id, wave: notice.wave, brick, length: document.target.length });
    this.#o.trace('ota.take', `${deviceId} ${notice.execution_id} wave ${notice.wave}${brick === null ? '' : ` brick ${brick}`}`);
    this.#report(execution, 'accept');
    this.#after(execution, () => {
      this.#report(execution, 'precheck_pass');
      this.#after(execution, () => this.#attempt(execution));
    });
  }

  /** The same execution again: a cancel, the health check's nonce, or a new session (send what is unsent). */
  #again(execution: Execution, notice: Notice): void {
    if (notice.cancel && !execution.canceled) {
      execution.canceled = true;
      this.#o.trace('ota.cancel', `${this.#o.deviceId} ${notice.execution_id}`);
    }
    // A report may have been lost with a session: the control plane takes a repeat as a repeat.
    for (const report of execution.sent) this.#o.send(report);
    this.#flush(execution);
    if (execution.phase === 'awaiting_health' && notice.health_nonce !== undefined) this.#versionReport(execution, notice.health_nonce);
  }

  /** The next step after a seeded delay, unless canceled meanwhile (checked before every step, mender #1815). */
  #after(execution: Execution, step: () => void, delayMs?: number): void {
    const { stepDelayMsMin, stepDelayMsMax } = this.#o.device;
    this.#o.time.schedule(delayMs ?? this.#o.random.intBetween(stepDelayMsMin, stepDelayMsMax), () => {
      if (this.#current !== execution || execution.canceled) {
        if (execution.phase === 'running') this.#end(execution, 'canceled');
        return;
      }
      step();
    });
  }

  // --- the download -----------------------------------------------------------------------------

  #attempt(execution: Execution): void {
    const { deviceId, server, observer, time, device } = this.#o;
    if (execution.attempts >= device.attemptsMax) {
      this.#report(execution, 'download_fail', { code: 'OTA_DOWNLOAD_FAILED', message: `no whole artifact in ${device.attemptsMax} attempts` });
      this.#end(execution, 'done');
      return;
    }
    execution.attempts += 1;
    const offset = execution.held.length;
    const headers = offset > 0 && execution.etag !== undefined ? { range: `bytes=${offset}-`, ifRange: execution.etag } : {};
    const response = server.get(time.nowMs(), headers);
    observer.attempt(deviceId, { startOffset: offset, status: response.status, atMs: time.nowMs() });
    this.#o.trace('ota.get', `${deviceId} from ${offset} ${response.status}`);
    const from = this.#resumeFrom(execution, offset, response);
    if (from === undefined) {
      this.#retry(execution);
      return;
    }
    this.#receive(execution, from);
  }

  /** Where the response's bytes go, by resumable-download's rules; undefined: nothing usable (retry). */
  #resumeFrom(execution: Execution, offset: number, response: ArtifactResponse): number | undefined {
    const length = this.#o.server.length;
    if (response.status === 'unreachable') return undefined;
    if (response.status === 416) {
      execution.held = new Uint8Array(0);
      return undefined;
    }
    if (response.status === 200) {
      execution.held = new Uint8Array(0);
      execution.etag = response.etag;
      return 0;
    }
    if (offset === 0 || response.first !== offset || response.contentRange !== `bytes ${offset}-${length - 1}/${length}` || response.etag !== execution.etag) {
      // A range that does not continue our bytes is never spliced in.
      execution.held = new Uint8Array(0);
      execution.etag = undefined;
      return undefined;
    }
    return offset;
  }

  /** Chunk by chunk at the scenario's rate; a cut keeps what arrived and tries again. */
  #receive(execution: Execution, from: number): void {
    const { server, device, time, deviceId, observer } = this.#o;
    const chunkMs = Math.max(1, Math.ceil((device.downloadChunkBytes * 1_000) / device.downloadBytesPerSecond));
    let position = from;
    const next = (): void => {
      time.schedule(chunkMs, () => {
        if (this.#current !== execution || execution.canceled) {
          if (execution.phase === 'running') this.#end(execution, 'canceled');
          return;
        }
        if (server.cutsAt(time.nowMs(), position)) {
          observer.cut(deviceId, position);
          this.#o.trace('ota.cut', `${deviceId} at ${position}`);
          this.#retry(execution);
          return;
        }
        const end = Math.min(server.length, position + device.downloadChunkBytes);
        const held = new Uint8Array(end);
        held.set(execution.held.subarray(0, position));
        held.set(server.bytes.subarray(position, end), position);
        execution.held = held;
        position = end;
        if (position < server.length) next();
        else this.#downloaded(execution);
      });
    };
    next();
  }

  #retry(execution: Execution): void {
    const delayMs = execution.retryDelayMs;
    execution.retryDelayMs = Math.min(retryDelayMsMax, delayMs * 2);
    this.#after(execution, () => this.#attempt(execution), delayMs);
  }

  #downloaded(execution: Execution): void {
    const sha256 = createHash('sha256').update(execution.held).digest('hex');
    const matched = sha256 === execution.expectedSha256 && execution.held.length === execution.document.target.length;
    this.#o.observer.downloaded(this.#o.deviceId, { sha256, matched });
    this.#o.trace('ota.downloaded', `${this.#o.deviceId} ${sha256.slice(0, 16)} ${matched ? 'match' : 'mismatch'}`);
    if (!matched) {
      this.#report(execution, 'download_complete');
      this.#report(execution, 'verify_fail', { code: 'OTA_DOWNLOAD_DIGEST_MISMATCH', message: 'the artifact differs from the signed target' });
      this.#end(execution, 'done');
      return;
    }
    this.#report(execution, 'download_complete');
    this.#after(execution, () => {
      this.#report(execution, 'stage');
      this.#after(execution, () => {
        this.#report(execution, 'commit');
        this.#o.observer.committed(this.#o.deviceId);
        this.#after(execution, () => this.#reboot(execution));
      });
    });
  }

  // --- after the commit -----------------------------------------------------------------------

  #reboot(execution: Execution): void {
    this.#report(execution, 'reboot');
    if (execution.brick === 'silent') {
      // Never comes back from the reboot: only the control plane's timeouts end the execution.
      this.#end(execution, 'silent');
      return;
    }
    this.#after(execution, () => {
      execution.phase = 'awaiting_health';
      this.#report(execution, 'rebooted');
    });
  }

  #versionReport(execution: Execution, nonce: string): void {
    execution.phase = 'running';
    const healthy = execution.brick === null;
    this.#o.observer.healthReported(this.#o.deviceId, healthy);
    this.#report(execution, 'version_report', undefined, { nonce, release_counter: execution.document.target.releaseCounter, healthy });
    if (healthy) {
      this.#end(execution, 'done');
      return;
    }
    this.#after(execution, () => {
      this.#report(execution, 'rollback_complete');
      this.#end(execution, 'done');
    });
  }

  // --- reports ----------------------------------------------------------------------------------

  #report(execution: Execution, event: OtaReportEvent, error?: { code: string; message: string }, extra?: Pick<Report, 'nonce' | 'release_counter' | 'healthy'>): void {
    execution.reportSeq += 1;
    const report: Report = {
      execution_id: execution.notice.execution_id, event, report_id: `${execution.notice.execution_id}-${execution.reportSeq}`.slice(-64),
      ...(error === undefined ? {} : { error }), ...(extra ?? {}),
    };
    execution.unsent.push(report);
    this.#o.observer.reported(this.#o.deviceId, event);
    this.#o.trace('ota.report', `${this.#o.deviceId} ${event}`);
    this.#flush(execution);
  }

  #flush(execution: Execution): void {
    while (execution.unsent.length > 0) {
      if (!this.#o.send(execution.unsent[0]!)) return;
      execution.sent.push(execution.unsent.shift()!);
    }
  }

  #end(execution: Execution, phase: Exclude<Phase, 'running' | 'awaiting_health'>): void {
    if (execution.phase !== 'running' && execution.phase !== 'awaiting_health') return;
    execution.phase = phase;
    this.#o.observer.ended(this.#o.deviceId, phase);
    // The device confirms it stopped (the control plane applied the cancel when it was asked).
    if (phase === 'canceled') this.#report(execution, 'canceled');
  }
}
