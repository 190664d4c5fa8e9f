/**
 * The kernel service in TypeScript: the same checks in the same order, the same byte layouts and
 * statuses as kernel/native/src/sdc_kernel.c, with the OS replaced by injected state (process
 * table, artifact store, clock). Refusals are byte-identical to the native library's for the same
 * keys; the contract suite and a differential test hold both to that.
 *
 * The commit watchdog runs on the injected `clock` (the kernel's own time; virtual or manual in
 * tests and the simulator) and, as in the native library, is checked at the start of every call
 * that gets past the output-buffer check: an expired watchdog rolls back before the request is
 * looked at. There is no timer: a kernel nobody calls rolls back at its next call.
 */
import { createHash } from 'node:crypto';
import type { Clock, Ed25519Provider, RandomSource, Scheduler } from '../../core/ports/ports.js';
import {
  ARTIFACT_BYTES_MAX, CONTRACT_VERSION, HEADER_BYTES, KernelStatus, Layout, Opcode, PAYLOAD_BYTES_MAX, PROCESS_ENTRIES_MAX,
  REQUEST_MAGIC, RESPONSE_MAGIC, UPDATE_PATH_BYTES_MAX, VERSION_LABEL_BYTES, WATCHDOG_WINDOW_MS_MAX, WATCHDOG_WINDOW_MS_MIN, type OpcodeName,
} from '../generated/contract.js';
import { ENVELOPE_BYTES, opcodeNameOfCode, readHeader, sealEnvelope, view } from '../codec.js';
import type { IoctlDevice, IoctlResult } from '../device.js';
import { decodeLabel, encodeProcessEntry, encodeStatusResponse, labelBytesValid, type ProcessEntry } from '../payloads.js';
import { faultFires, validateFault, type KernelFault } from './faults.js';
import { CommandGate } from '../command/command-gate.js';
import { encodeProvisionRequest, provisionPayloadValid, type CommandKeySet } from '../command/provision.js';

/** Where the mock reads artifacts named in EXEC_STAGE_UPDATE; undefined means "no such file" (IO_ERROR). */
export interface ArtifactSource {
  read(path: string): Uint8Array | undefined;
}

/** An in-memory artifact store for tests and the simulator. */
export class MemoryArtifactStore implements ArtifactSource {
  private readonly files = new Map<string, Uint8Array>();
  constructor(private readonly filesMax = 1024) {}
  put(path: string, bytes: Uint8Array): void {
    if (!this.files.has(path) && this.files.size >= this.filesMax) throw new RangeError(`artifact store holds at most ${this.filesMax} files`);
    this.files.set(path, bytes.slice());
  }
  read(path: string): Uint8Array | undefined {
    return this.files.get(path);
  }
}

export interface MockKernelOptions {
  ed25519: Ed25519Provider;
  /** The service's private seed (32 bytes): signs responses. */
  serviceSeed: Uint8Array;
  /** The provisioned agent public key (32 bytes): verifies requests. */
  agentPublicKey: Uint8Array;
  /** The kernel's own clock: judges command expiry and runs the commit watchdog. */
  clock: Clock;
  processes?: () => readonly ProcessEntry[];
  artifacts?: ArtifactSource;
  lockScreenSupported?: boolean;
  faults?: readonly KernelFault[];
  /** Draws fault ratios; required when a fault has a ratio. */
  random?: RandomSource;
  /**
   * Command keys provisioned at construction, as enrollment would have done through
   * PROVISION_COMMAND_KEYS (the simulator's and test worlds' kernels); omitted means unprovisioned.
   */
  commandKeys?: CommandKeySet;
  /**
   * The version label the device runs at construction (its factory image, no bytes kept), so a
   * first update has something to roll back to; default none (''), as the native library starts.
   */
  installedVersion?: string;
}

interface UpdateState {
  current: string;
  previous: string;
  staged: string;
  /** version label -> artifact bytes, only for current, previous and staged. */
  versions: Map<string, Uint8Array>;
  commits: number;
  rollbacks: number;
  stageFailures: number;
  lastCommitUnixMs: number;
  commitFailures: number;
  confirms: number;
  watchdogRollbacks: number;
  /** The armed commit watchdog: the version it guards (the current one) and when it rolls back, on the kernel clock. */
  watchdog: { version: string; deadlineMs: number } | null;
}

const S = KernelStatus;
const responsePayloadMin: Readonly<Record<OpcodeName, number>> = {
  EXEC_PING_KERNEL: Layout.PingResponse.bytes,
  EXEC_LOCK_SCREEN: 0,
  EXEC_GET_PROCESS_LIST: Layout.ProcessListResponse.bytes,
  EXEC_STAGE_UPDATE: Layout.StageUpdateResponse.bytes,
  EXEC_COMMIT_UPDATE: Layout.UpdateSlotsResponse.bytes,
  EXEC_ROLLBACK_UPDATE: Layout.UpdateSlotsResponse.bytes,
  EXEC_GET_STATUS: Layout.StatusResponse.bytes,
  PROVISION_COMMAND_KEYS: Layout.ProvisionResponse.bytes,
  EXEC_CONFIRM_UPDATE: Layout.UpdateSlotsResponse.bytes,
};

export class MockKernelService {
  private lastCounter = 0n;
  private requestsAccepted = 0n;
  private requestsRefused = 0n;
  private readonly update: UpdateState = {
    current: '', previous: '', staged: '', versions: new Map(), commits: 0, rollbacks: 0, stageFailures: 0, lastCommitUnixMs: 0,
    commitFailures: 0, confirms: 0, watchdogRollbacks: 0, watchdog: null,
  };
  private readonly statusFaults: KernelFault[];
  /** Provisioned command keys and the replay window: in memory, like the handle state of the native library. */
  private readonly gate: CommandGate;

  constructor(private readonly options: MockKernelOptions) {
    this.update.current = options.installedVersion ?? '';
    this.gate = new CommandGate(options.ed25519, options.clock);
    if (options.commandKeys) this.gate.provision(encodeProvisionRequest(options.commandKeys));
    for (const fault of options.faults ?? []) validateFault(fault);
    this.statusFaults = (options.faults ?? []).filter((f) => f.kind === 'status');
    if ((options.faults ?? []).some((f) => f.ratio) && !options.random) throw new RangeError('faults with a ratio need a RandomSource');
  }

  /** The synchronous DeviceIoControl: never writes more than outLen bytes. */
  deviceIoControl(code: number, input: Uint8Array, outLen: number): IoctlResult {
    if (outLen < ENVELOPE_BYTES) return { status: S.BUFFER_TOO_SMALL, output: new Uint8Array(0) };
    this.checkWatchdog();
    const counter = input.length >= HEADER_BYTES ? readHeader(input).counter : 0n;
    const name = opcodeNameOfCode(code);
    if (name === undefined) return this.respond(0, counter, S.UNKNOWN_CODE);
    const opcode = Opcode[name];
    const refuse = (status: number): IoctlResult => this.respond(opcode, counter, status);
    if (input.length < ENVELOPE_BYTES) return refuse(S.BAD_LENGTH);
    const header = readHeader(input);
    if (header.magic !== REQUEST_MAGIC) return refuse(S.BAD_MAGIC);
    if (header.version !== CONTRACT_VERSION) return refuse(S.BAD_VERSION);
    if (header.payloadLen > PAYLOAD_BYTES_MAX || input.length !== ENVELOPE_BYTES + header.payloadLen ||
        header.commandLen > header.payloadLen) return refuse(S.BAD_LENGTH);
    if (header.flags !== 0 || header.status !== 0 || header.opcode !== opcode) return refuse(S.BAD_HEADER);
    const signedLength = HEADER_BYTES + header.payloadLen;
    if (!this.options.ed25519.verify(this.options.agentPublicKey, input.subarray(0, signedLength), input.subarray(signedLength))) {
      return refuse(S.BAD_SIGNATURE);
    }
    if (counter <= this.lastCounter) return refuse(S.REPLAY);
    this.lastCounter = counter;
    this.requestsAccepted++;

    const request = input.subarray(HEADER_BYTES, signedLength - header.commandLen);
    const attachment = input.subarray(signedLength - header.commandLen, signedLength);
    const payloadStatus = validatePayload(name, request);
    if (payloadStatus !== S.OK) return refuse(payloadStatus);
    const needed = ENVELOPE_BYTES + responsePayloadMin[name];
    if (outLen < needed) {
      if (outLen < ENVELOPE_BYTES + 4) return refuse(S.BUFFER_TOO_SMALL);
      const payload = new Uint8Array(4);
      view(payload).setUint32(0, needed, true);
      return this.respond(opcode, counter, S.BUFFER_TOO_SMALL, payload);
    }
    const commandStatus = this.gate.check(name, attachment, request);
    if (commandStatus !== S.OK) return refuse(commandStatus);
    for (const fault of this.statusFaults) {
      if (fault.kind === 'status' && faultFires(fault, name, this.options.random!)) return refuse(S[fault.status]);
    }
    const { status, payload } = this.execute(name, request, outLen - ENVELOPE_BYTES);
    return this.respond(opcode, counter, status, status === S.OK ? payload : new Uint8Array(0));
  }

  private respond(opcode: number, counter: bigint, status: number, payload: Uint8Array = new Uint8Array(0)): IoctlResult {
    if (status !== S.OK) this.requestsRefused++;
    const output = sealEnvelope({
      ed25519: this.options.ed25519,
      seed: this.options.serviceSeed,
      header: { magic: RESPONSE_MAGIC, version: CONTRACT_VERSION, opcode, flags: 0, counter, status, commandLen: 0 },
      payload,
    });
    return { status, output };
  }

  private execute(name: OpcodeName, request: Uint8Array, capacity: number): { status: number; payload: Uint8Array } {
    switch (name) {
      case 'EXEC_PING_KERNEL': {
        const payload = new Uint8Array(Layout.PingResponse.bytes);
        payload.set(request.subarray(0, 8), Layout.PingResponse.nonce.offset);
        view(payload).setUint32(Layout.PingResponse.contractVersion.offset, CONTRACT_VERSION, true);
        view(payload).setUint32(Layout.PingResponse.capabilities.offset, this.options.lockScreenSupported ? 1 : 0, true);
        return { status: S.OK, payload };
      }
      case 'EXEC_LOCK_SCREEN':
        return { status: this.options.lockScreenSupported ? S.OK : S.NOT_SUPPORTED, payload: new Uint8Array(0) };
      case 'EXEC_GET_PROCESS_LIST':
        return { status: S.OK, payload: this.processList(view(request).getUint32(0, true), capacity) };
      case 'EXEC_STAGE_UPDATE':
        return this.stage(request);
      case 'EXEC_COMMIT_UPDATE': {
        const result = this.commit(request);
        if (result.status !== S.OK) this.update.commitFailures++;
        return result;
      }
      case 'EXEC_ROLLBACK_UPDATE':
        return this.rollback(false);
      case 'EXEC_CONFIRM_UPDATE':
        return this.confirm(decodeLabel(request));
      case 'EXEC_GET_STATUS':
        return { status: S.OK, payload: this.statusPayload() };
      case 'PROVISION_COMMAND_KEYS':
        return this.gate.provision(request);
    }
  }

  private processList(maxEntries: number, capacity: number): Uint8Array {
    const R = Layout.ProcessListResponse;
    const all = (this.options.processes?.() ?? []).slice(0, PROCESS_ENTRIES_MAX);
    const fit = Math.floor((capacity - R.bytes) / Layout.ProcessEntry.bytes);
    const count = Math.min(all.length, maxEntries, fit);
    const payload = new Uint8Array(R.bytes + count * Layout.ProcessEntry.bytes);
    view(payload).setUint32(R.totalCount.offset, all.length, true);
    view(payload).setUint32(R.entryCount.offset, count, true);
    for (let i = 0; i < count; i++) {
      const at = R.bytes + i * Layout.ProcessEntry.bytes;
      encodeProcessEntry(all[i]!, payload.subarray(at, at + Layout.ProcessEntry.bytes));
    }
    return payload;
  }

  private stage(request: Uint8Array): { status: number; payload: Uint8Array } {
    const R = Layout.StageUpdateRequest;
    const label = decodeLabel(request.subarray(R.version.offset, R.version.offset + R.version.bytes));
    const fail = (status: number): { status: number; payload: Uint8Array } => {
      this.update.stageFailures++;
      return { status, payload: new Uint8Array(0) };
    };
    if (label === this.update.current || label === this.update.previous) return fail(S.BAD_STATE);
    const path = new TextDecoder().decode(request.subarray(R.bytes));
    const artifact = this.options.artifacts?.read(path);
    if (artifact === undefined) return fail(S.IO_ERROR);
    if (artifact.length > ARTIFACT_BYTES_MAX) return fail(S.BAD_PAYLOAD);
    const digest = new Uint8Array(createHash('sha256').update(artifact).digest());
    const expected = request.subarray(R.sha256.offset, R.sha256.offset + R.sha256.bytes);
    if (!digest.every((b, i) => b === expected[i])) return fail(S.DIGEST_MISMATCH);
    if (this.update.staged !== '' && this.update.staged !== label) this.update.versions.delete(this.update.staged);
    this.update.versions.set(label, artifact.slice());
    this.update.staged = label;
    const O = Layout.StageUpdateResponse;
    const payload = new Uint8Array(O.bytes);
    payload.set(request.subarray(R.version.offset, R.version.offset + R.version.bytes), O.version.offset);
    view(payload).setBigUint64(O.sizeBytes.offset, BigInt(artifact.length), true);
    payload.set(digest, O.sha256.offset);
    return { status: S.OK, payload };
  }

  /** Rolls back when the armed watchdog's deadline has passed on the kernel clock; called at the start of every call. */
  private checkWatchdog(): void {
    const watchdog = this.update.watchdog;
    if (watchdog === null || this.options.clock.nowMs() < watchdog.deadlineMs) return;
    if (this.update.current !== watchdog.version || this.update.previous === '') {
      this.update.watchdog = null; // cannot happen (commit and rollback keep them in step); never roll back something else
      return;
    }
    this.rollback(true);
  }

  private commit(request: Uint8Array): { status: number; payload: Uint8Array } {
    const C = Layout.CommitUpdateRequest;
    const u = this.update;
    const label = decodeLabel(request.subarray(C.version.offset, C.version.offset + C.version.bytes));
    const refused = (status: number): { status: number; payload: Uint8Array } => ({ status, payload: new Uint8Array(0) });
    if (u.staged === '' || u.staged !== label) return refused(S.BAD_STATE);
    // An unconfirmed commit is still on trial: committing over it would make it the fallback.
    if (u.watchdog !== null) return refused(S.BAD_STATE);
    const approved = request.subarray(C.sha256.offset, C.sha256.offset + C.sha256.bytes);
    if (approved.some((b) => b !== 0)) {
      // Recomputed over the staged bytes, not remembered from STAGE.
      const digest = createHash('sha256').update(u.versions.get(u.staged) ?? new Uint8Array(0)).digest();
      if (!digest.every((b, i) => b === approved[i])) return refused(S.DIGEST_MISMATCH);
    }
    // The first install has nothing to fall back to, so it cannot be on trial: a window (which the
    // control plane signs without knowing what the device runs) is then ignored, not refused.
    const watchdogMs = u.current === '' ? 0 : view(request).getUint32(C.watchdogMs.offset, true);
    const oldPrevious = u.previous;
    u.previous = u.current;
    u.current = u.staged;
    u.staged = '';
    if (oldPrevious !== u.previous && oldPrevious !== u.current) u.versions.delete(oldPrevious);
    u.commits++;
    u.lastCommitUnixMs = this.options.clock.nowMs();
    if (watchdogMs !== 0) u.watchdog = { version: u.current, deadlineMs: this.options.clock.nowMs() + watchdogMs };
    return { status: S.OK, payload: this.slotsPayload() };
  }

  private confirm(label: string): { status: number; payload: Uint8Array } {
    const u = this.update;
    if (u.watchdog === null || u.current !== label) return { status: S.BAD_STATE, payload: new Uint8Array(0) };
    u.watchdog = null;
    u.confirms++;
    return { status: S.OK, payload: this.slotsPayload() };
  }

  private rollback(byWatchdog: boolean): { status: number; payload: Uint8Array } {
    const u = this.update;
    if (u.previous === '') return { status: S.BAD_STATE, payload: new Uint8Array(0) };
    u.watchdog = null;
    const oldCurrent = u.current;
    u.current = u.previous;
    u.previous = '';
    if (oldCurrent !== u.current && oldCurrent !== u.staged) u.versions.delete(oldCurrent);
    u.rollbacks++;
    if (byWatchdog) u.watchdogRollbacks++;
    u.lastCommitUnixMs = this.options.clock.nowMs();
    return { status: S.OK, payload: this.slotsPayload() };
  }

  private slotsPayload(): Uint8Array {
    const U = Layout.UpdateSlotsResponse;
    const payload = new Uint8Array(U.bytes);
    payload.set(labelField(this.update.current), U.currentVersion.offset);
    payload.set(labelField(this.update.previous), U.previousVersion.offset);
    return payload;
  }

  private statusPayload(): Uint8Array {
    const u = this.update;
    return encodeStatusResponse({
      currentVersion: u.current,
      previousVersion: u.previous,
      stagedVersion: u.staged,
      lastCounter: this.lastCounter,
      requestsAccepted: this.requestsAccepted,
      requestsRefused: this.requestsRefused,
      commits: u.commits,
      rollbacks: u.rollbacks,
      stageFailures: u.stageFailures,
      currentSizeBytes: BigInt(u.versions.get(u.current)?.length ?? 0),
      lastCommitUnixMs: BigInt(Math.max(0, Math.floor(u.lastCommitUnixMs))),
      watchdogArmed: u.watchdog !== null,
      watchdogRemainingMs: BigInt(u.watchdog === null ? 0 : Math.max(0, Math.ceil(u.watchdog.deadlineMs - this.options.clock.nowMs()))),
      watchdogRollbacks: u.watchdogRollbacks,
      commitFailures: u.commitFailures,
      confirms: u.confirms,
    });
  }
}

function labelField(label: string): Uint8Array {
  const out = new Uint8Array(VERSION_LABEL_BYTES);
  for (let i = 0; i < label.length && i < VERSION_LABEL_BYTES - 1; i++) out[i] = label.charCodeAt(i);
  return out;
}

/** Request payload checks in the native order: exact sizes -> BAD_LENGTH, field ranges -> BAD_PAYLOAD. */
function validatePayload(name: OpcodeName, p: Uint8Array): number {
  const v = view(p);
  switch (name) {
    case 'EXEC_PING_KERNEL':
      return p.length === Layout.PingRequest.bytes ? S.OK : S.BAD_LENGTH;
    case 'EXEC_LOCK_SCREEN':
    case 'EXEC_ROLLBACK_UPDATE':
    case 'EXEC_GET_STATUS':
      return p.length === 0 ? S.OK : S.BAD_LENGTH;
    case 'EXEC_GET_PROCESS_LIST': {
      if (p.length !== Layout.ProcessListRequest.bytes) return S.BAD_LENGTH;
      const maxEntries = v.getUint32(Layout.ProcessListRequest.maxEntries.offset, true);
      const reserved = v.getUint32(Layout.ProcessListRequest.reserved.offset, true);
      return maxEntries === 0 || maxEntries > PROCESS_ENTRIES_MAX || reserved !== 0 ? S.BAD_PAYLOAD : S.OK;
    }
    case 'EXEC_STAGE_UPDATE': {
      const R = Layout.StageUpdateRequest;
      if (p.length < R.bytes) return S.BAD_LENGTH;
      const pathLen = v.getUint16(R.pathLen.offset, true);
      if (pathLen === 0 || pathLen > UPDATE_PATH_BYTES_MAX || p.length !== R.bytes + pathLen) return S.BAD_LENGTH;
      if (v.getUint16(R.reserved.offset, true) !== 0 || !labelBytesValid(p.subarray(R.version.offset, R.version.offset + R.version.bytes)) ||
          p.subarray(R.bytes).includes(0)) return S.BAD_PAYLOAD;
      return S.OK;
    }
    case 'EXEC_COMMIT_UPDATE': {
      const C = Layout.CommitUpdateRequest;
      if (p.length !== C.bytes) return S.BAD_LENGTH;
      const watchdogMs = v.getUint32(C.watchdogMs.offset, true);
      if (!labelBytesValid(p.subarray(C.version.offset, C.version.offset + C.version.bytes)) || v.getUint32(C.reserved.offset, true) !== 0 ||
          (watchdogMs !== 0 && (watchdogMs < WATCHDOG_WINDOW_MS_MIN || watchdogMs > WATCHDOG_WINDOW_MS_MAX))) return S.BAD_PAYLOAD;
      return S.OK;
    }
    case 'EXEC_CONFIRM_UPDATE':
      if (p.length !== Layout.ConfirmUpdateRequest.bytes) return S.BAD_LENGTH;
      return labelBytesValid(p) ? S.OK : S.BAD_PAYLOAD;
    case 'PROVISION_COMMAND_KEYS':
      if (p.length !== Layout.ProvisionRequest.bytes) return S.BAD_LENGTH;
      return provisionPayloadValid(p) ? S.OK : S.BAD_PAYLOAD;
  }
}

export interface MockIoctlDeviceOptions extends MockKernelOptions {
  /** Runs latency faults; required when a latency fault is configured. */
  scheduler?: Scheduler;
}

/**
 * The mock as an IoctlDevice: the service plus the timing faults (latency on the injected
 * scheduler, hang until the caller's signal aborts). No real timers, no randomness of its own.
 */
export class MockIoctlDevice implements IoctlDevice {
  readonly kind = 'mock' as const;
  readonly service: MockKernelService;
  private readonly timingFaults: KernelFault[];
  private closed = false;

  constructor(private readonly options: MockIoctlDeviceOptions) {
    this.service = new MockKernelService(options);
    this.timingFaults = (options.faults ?? []).filter((f) => f.kind !== 'status');
    if (this.timingFaults.some((f) => f.kind === 'latency') && !options.scheduler) throw new RangeError('latency faults need a Scheduler');
  }

  async call(code: number, input: Uint8Array, outLen: number, signal?: AbortSignal): Promise<IoctlResult> {
    if (this.closed) return { status: S.BAD_HANDLE, output: new Uint8Array(0) };
    const name = opcodeNameOfCode(code);
    let delayMs = 0;
    for (const fault of this.timingFaults) {
      if (!faultFires(fault, name, this.options.random!)) continue;
      if (fault.kind === 'hang') return hangUntilAborted(signal);
      if (fault.kind === 'latency') delayMs += fault.delayMs;
    }
    if (delayMs > 0) await delay(this.options.scheduler!, delayMs, signal);
    return this.service.deviceIoControl(code, input, outLen);
  }

  close(): void {
    this.closed = true;
  }
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new Error('aborted');
}

function hangUntilAborted(signal?: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (!signal) return; // a hang without a signal never settles: the caller asked for no timeout
    if (signal.aborted) return reject(abortReason(signal));
    signal.addEventListener('abort', () => reject(abortReason(signal)), { once: true });
  });
}

function delay(scheduler: Scheduler, delayMs: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortReason(signal));
    const handle = scheduler.schedule(delayMs, () => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    });
    const onAbort = (): void => {
      scheduler.cancel(handle);
      reject(abortReason(signal!));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
