/**
 * The agent's side of the kernel boundary: typed methods per opcode over any IoctlDevice. Each
 * call builds a request signed with the agent key and a strictly increasing counter, and accepts
 * only a response signed by the provisioned service key that answers that opcode and counter.
 * Calls are serialised (one in flight) so counters reach the service in order.
 */
import { SdcError } from '../../core/errors/index.js';
import type { Ed25519Provider, Scheduler } from '../../core/ports/ports.js';
import { traceLogFields } from '../../core/trace/trace-context.js';
import { COUNTER_MAX, ENVELOPE_BYTES, buildRequest, verifyResponse } from '../codec.js';
import { encodeCommandAttachment, type CommandAuthorization } from '../command/attachment.js';
import { decodeProvisionResponse, encodeProvisionRequest, type CommandKeySet, type ProvisionOutcomeName } from '../command/provision.js';
import type { IoctlBackendKind, IoctlDevice } from '../device.js';
import {
  IoctlCode, KernelStatus, Layout, Opcode, PROCESS_ENTRIES_MAX, kernelStatusNames, type OpcodeName,
} from '../generated/contract.js';
import {
  decodePingResponse, decodeProcessListResponse, decodeStageUpdateResponse, decodeStatusResponse, decodeUpdateSlotsResponse,
  encodeCommitUpdateRequest, encodeConfirmUpdateRequest, encodePingRequest, encodeProcessListRequest, encodeStageUpdateRequest,
  type CommitUpdateOptions, type KernelServiceStatus, type PingResult, type ProcessListResult, type StageUpdateArgs, type StageUpdateResult, type UpdateSlots,
} from '../payloads.js';

/**
 * Each operation takes the control plane's signed command that asked for it (`auth`). The kernel
 * refuses privileged operations (lock screen, stage, commit, rollback) without one, and checks
 * any one given: signature under a provisioned command key, this device, same opcode and args,
 * device_seq not run before. Read-only operations may go without (health checks, benches).
 */
export interface KernelBridge {
  readonly backend: IoctlBackendKind;
  pingKernel(nonce?: bigint, auth?: CommandAuthorization): Promise<PingResult>;
  /** Throws KERNEL_NOT_SUPPORTED where the service has no session manager. */
  lockScreen(auth?: CommandAuthorization): Promise<void>;
  getProcessList(maxEntries?: number, auth?: CommandAuthorization): Promise<ProcessListResult>;
  stageUpdate(args: StageUpdateArgs, auth?: CommandAuthorization): Promise<StageUpdateResult>;
  /** `options`: the approved digest (checked against the staged artifact) and the watchdog window; see CommitUpdateOptions. */
  commitUpdate(version: string, auth?: CommandAuthorization, options?: CommitUpdateOptions): Promise<UpdateSlots>;
  rollbackUpdate(auth?: CommandAuthorization): Promise<UpdateSlots>;
  /** Disarms the commit watchdog for the current version (health confirmed); absent on test doubles, which then get no watchdog. */
  confirmUpdate?(version: string, auth?: CommandAuthorization): Promise<UpdateSlots>;
  getStatus(auth?: CommandAuthorization): Promise<KernelServiceStatus>;
  /** Sets the device id and command keys in the kernel (enrollment); absent on test doubles. */
  provisionCommandKeys?(set: CommandKeySet, rotationSignature?: Uint8Array): Promise<{ outcome: ProvisionOutcomeName; keyCount: number }>;
  close(): void;
}

export interface IoctlKernelBridgeOptions {
  device: IoctlDevice;
  ed25519: Ed25519Provider;
  agentSeed: Uint8Array;
  servicePublicKey: Uint8Array;
  /**
   * First counter to send. The service refuses any counter not above the last one it accepted,
   * so a restarted agent must start above its previous run: callers pass wall-clock microseconds
   * (clock.nowMs() * 1000) or a persisted value.
   */
  counterStart: bigint;
  /** Per-call timeout on `scheduler`; omitted means no timeout (a hung device hangs the call). */
  timeoutMs?: number;
  scheduler?: Scheduler;
  /** Calls waiting behind the one in flight; more are refused with KERNEL_QUEUE_FULL. */
  queueMax?: number;
  /** One line per finished call (opcode, counter, status, and the command's trace id when it has one); default none. */
  logger?: KernelCallLogger;
}

/** pino-compatible: the agent passes its own logger. */
export interface KernelCallLogger {
  info(fields: object, message: string): void;
}

/** The bridge's defaults; callers override them per bridge (queueMax) or per call (maxEntries). */
export const kernelBridgeLimits = Object.freeze({
  /**
   * Process entries asked for when the caller names no limit. The agent's default too: a
   * COMMAND_RESULT must fit one 64 KiB frame, and one entry takes about 70 bytes of JSON.
   */
  processEntriesDefault: 256,
  /** Calls waiting behind the one in flight (more get KERNEL_QUEUE_FULL): a queue this long means a stuck device, not load. */
  queueMax: 64,
});
const responseBytes: Readonly<Record<Exclude<OpcodeName, 'EXEC_GET_PROCESS_LIST'>, number>> = {
  EXEC_PING_KERNEL: Layout.PingResponse.bytes,
  EXEC_LOCK_SCREEN: 0,
  EXEC_STAGE_UPDATE: Layout.StageUpdateResponse.bytes,
  EXEC_COMMIT_UPDATE: Layout.UpdateSlotsResponse.bytes,
  EXEC_ROLLBACK_UPDATE: Layout.UpdateSlotsResponse.bytes,
  EXEC_GET_STATUS: Layout.StatusResponse.bytes,
  PROVISION_COMMAND_KEYS: Layout.ProvisionResponse.bytes,
  EXEC_CONFIRM_UPDATE: Layout.UpdateSlotsResponse.bytes,
};

export class IoctlKernelBridge implements KernelBridge {
  readonly backend: IoctlBackendKind;
  private nextCounter: bigint;
  private tail: Promise<unknown> = Promise.resolve();
  private waiting = 0;
  private closed = false;
  private readonly inFlight = new Set<AbortController>();

  constructor(private readonly options: IoctlKernelBridgeOptions) {
    if (options.counterStart < 1n || options.counterStart > COUNTER_MAX) throw new SdcError('KERNEL_BAD_ARGUMENT', 'counterStart must be in [1, 2^64 - 1]');
    if (options.timeoutMs !== undefined && !options.scheduler) throw new SdcError('KERNEL_BAD_ARGUMENT', 'timeoutMs needs a scheduler');
    this.backend = options.device.kind;
    this.nextCounter = options.counterStart;
  }

  async pingKernel(nonce: bigint = this.nextCounter, auth?: CommandAuthorization): Promise<PingResult> {
    const result = decodePingResponse(await this.call('EXEC_PING_KERNEL', encodePingRequest(nonce), responseBytes.EXEC_PING_KERNEL, auth));
    if (result.nonce !== BigInt.asUintN(64, nonce)) throw new SdcError('KERNEL_RESPONSE_INVALID', 'ping response echoes a different nonce');
    return result;
  }

  async lockScreen(auth?: CommandAuthorization): Promise<void> {
    await this.call('EXEC_LOCK_SCREEN', new Uint8Array(0), 0, auth);
  }

  async getProcessList(maxEntries: number = kernelBridgeLimits.processEntriesDefault, auth?: CommandAuthorization): Promise<ProcessListResult> {
    const request = encodeProcessListRequest(maxEntries);
    const capacity = Layout.ProcessListResponse.bytes + Math.min(maxEntries, PROCESS_ENTRIES_MAX) * Layout.ProcessEntry.bytes;
    const result = decodeProcessListResponse(await this.call('EXEC_GET_PROCESS_LIST', request, capacity, auth));
    if (result.entries.length > maxEntries) throw new SdcError('KERNEL_RESPONSE_INVALID', 'process list has more entries than asked for');
    return result;
  }

  async stageUpdate(args: StageUpdateArgs, auth?: CommandAuthorization): Promise<StageUpdateResult> {
    return decodeStageUpdateResponse(await this.call('EXEC_STAGE_UPDATE', encodeStageUpdateRequest(args), responseBytes.EXEC_STAGE_UPDATE, auth));
  }

  async commitUpdate(version: string, auth?: CommandAuthorization, options?: CommitUpdateOptions): Promise<UpdateSlots> {
    return decodeUpdateSlotsResponse(await this.call('EXEC_COMMIT_UPDATE', encodeCommitUpdateRequest(version, options), responseBytes.EXEC_COMMIT_UPDATE, auth));
  }

  async confirmUpdate(version: string, auth?: CommandAuthorization): Promise<UpdateSlots> {
    return decodeUpdateSlotsResponse(await this.call('EXEC_CONFIRM_UPDATE', encodeConfirmUpdateRequest(version), responseBytes.EXEC_CONFIRM_UPDATE, auth));
  }

  async rollbackUpdate(auth?: CommandAuthorization): Promise<UpdateSlots> {
    return decodeUpdateSlotsResponse(await this.call('EXEC_ROLLBACK_UPDATE', new Uint8Array(0), responseBytes.EXEC_ROLLBACK_UPDATE, auth));
  }

  async getStatus(auth?: CommandAuthorization): Promise<KernelServiceStatus> {
    return decodeStatusResponse(await this.call('EXEC_GET_STATUS', new Uint8Array(0), responseBytes.EXEC_GET_STATUS, auth));
  }

  async provisionCommandKeys(set: CommandKeySet, rotationSignature?: Uint8Array): Promise<{ outcome: ProvisionOutcomeName; keyCount: number }> {
    const payload = encodeProvisionRequest(set, rotationSignature);
    return decodeProvisionResponse(await this.call('PROVISION_COMMAND_KEYS', payload, responseBytes.PROVISION_COMMAND_KEYS));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const controller of this.inFlight) controller.abort(new SdcError('KERNEL_CLOSED', 'kernel bridge closed during the call'));
    this.options.device.close();
  }

  /** Queues one call; returns the verified OK payload or throws the mapped refusal. */
  private call(name: OpcodeName, payload: Uint8Array, responsePayloadBytes: number, auth?: CommandAuthorization): Promise<Uint8Array> {
    if (this.closed) return Promise.reject(new SdcError('KERNEL_CLOSED', 'kernel bridge is closed'));
    // Encoded before queueing so a malformed authorization fails here, not inside the queue.
    let attachment: Uint8Array | undefined;
    try {
      attachment = auth ? encodeCommandAttachment(auth) : undefined;
    } catch (error) {
      return Promise.reject(error);
    }
    const queueMax = this.options.queueMax ?? kernelBridgeLimits.queueMax;
    if (this.waiting >= queueMax) return Promise.reject(new SdcError('KERNEL_QUEUE_FULL', `more than ${queueMax} kernel calls waiting`));
    this.waiting++;
    const run = this.tail.then(() => {
      this.waiting--;
      return this.callNow(name, payload, responsePayloadBytes, attachment, auth?.traceparent);
    });
    this.tail = run.catch(() => undefined);
    return run;
  }

  private async callNow(name: OpcodeName, payload: Uint8Array, responsePayloadBytes: number, attachment?: Uint8Array, traceparent?: string): Promise<Uint8Array> {
    if (this.closed) throw new SdcError('KERNEL_CLOSED', 'kernel bridge is closed');
    const counter = this.takeCounter();
    const request = buildRequest({ ed25519: this.options.ed25519, agentSeed: this.options.agentSeed, opcode: Opcode[name], counter, payload, attachment });
    const controller = new AbortController();
    this.inFlight.add(controller);
    const { timeoutMs, scheduler } = this.options;
    const timer = timeoutMs !== undefined && scheduler
      ? scheduler.schedule(timeoutMs, () => controller.abort(new SdcError('KERNEL_TIMEOUT', `${name} did not complete within ${timeoutMs} ms`)))
      : undefined;
    let result;
    try {
      result = await this.options.device.call(IoctlCode[name], request, ENVELOPE_BYTES + responsePayloadBytes, controller.signal);
    } catch (error) {
      if (SdcError.is(error)) throw error;
      throw new SdcError('KERNEL_CANCELLED', `${name} was cancelled: ${(error as Error)?.message ?? String(error)}`);
    } finally {
      if (timer) scheduler!.cancel(timer);
      this.inFlight.delete(controller);
    }
    const statusName = kernelStatusNames[result.status] ?? `UNDEFINED_${result.status}`;
    // Logged before the response is judged: a refused or forged answer is a call that happened too.
    this.options.logger?.info({ opcode: name, counter: counter.toString(), status: statusName, ...traceLogFields(traceparent) }, 'kernel call');
    if (result.output.length === 0) {
      throw new SdcError('KERNEL_REFUSED', `${name} refused with ${statusName} (no response written)`, { status: statusName, authenticated: false });
    }
    const verified = verifyResponse({
      ed25519: this.options.ed25519, servicePublicKey: this.options.servicePublicKey,
      response: result.output, expectedOpcode: Opcode[name], expectedCounter: counter,
    });
    if (verified.header.status !== result.status) throw new SdcError('KERNEL_RESPONSE_INVALID', 'call status differs from the signed response status');
    if (result.status === KernelStatus.OK) return verified.payload;
    if (result.status === KernelStatus.NOT_SUPPORTED) throw new SdcError('KERNEL_NOT_SUPPORTED', `${name} is not supported by the kernel service`, { status: statusName });
    throw new SdcError('KERNEL_REFUSED', `${name} refused with ${statusName}`, { status: statusName, authenticated: true });
  }

  private takeCounter(): bigint {
    if (this.nextCounter > COUNTER_MAX) throw new SdcError('KERNEL_COUNTER_EXHAUSTED');
    const counter = this.nextCounter;
    this.nextCounter += 1n;
    return counter;
  }
}
