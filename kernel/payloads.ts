/**
 * Per-opcode payload layouts (kernel/contract.json "payloads"): encoders for what the agent sends,
 * decoders for what it receives, and the version-label rules both sides enforce.
 */
import { SdcError } from '../core/errors/index.js';
import { isVersionLabel } from '../core/protocol/version-label.js';
import {
  Layout, PROCESS_ENTRIES_MAX, UPDATE_PATH_BYTES_MAX, VERSION_LABEL_BYTES, WATCHDOG_WINDOW_MS_MAX, WATCHDOG_WINDOW_MS_MIN,
} from './generated/contract.js';
import { view } from './codec.js';

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: false });

/** A sandbox file name: 1..31 bytes of [A-Za-z0-9._-], not '.' or '..' (the one rule, core/protocol/version-label.ts). */
export { isVersionLabel };

/** Validates the 32-byte NUL-padded form exactly as the native service does. */
export function labelBytesValid(bytes: Uint8Array): boolean {
  if (bytes.length !== VERSION_LABEL_BYTES) return false;
  const nul = bytes.indexOf(0);
  if (nul <= 0) return false;
  for (let i = nul; i < bytes.length; i++) if (bytes[i] !== 0) return false;
  return isVersionLabel(String.fromCharCode(...bytes.subarray(0, nul)));
}

export function encodeLabel(label: string): Uint8Array {
  if (!isVersionLabel(label)) throw new SdcError('KERNEL_BAD_ARGUMENT', `version label '${label}' must be 1..31 characters of [A-Za-z0-9._-], not '.' or '..'`);
  const out = new Uint8Array(VERSION_LABEL_BYTES);
  out.set(utf8.encode(label));
  return out;
}

/** Decodes a NUL-padded label; '' for none. */
export function decodeLabel(bytes: Uint8Array): string {
  const nul = bytes.indexOf(0);
  return String.fromCharCode(...bytes.subarray(0, nul < 0 ? bytes.length : nul));
}

function requireLength(payload: Uint8Array, bytes: number, what: string): DataView {
  if (payload.length !== bytes) throw new SdcError('KERNEL_RESPONSE_INVALID', `${what} payload has ${payload.length} bytes, expected ${bytes}`);
  return view(payload);
}

// ---- EXEC_PING_KERNEL ----

export function encodePingRequest(nonce: bigint): Uint8Array {
  const out = new Uint8Array(Layout.PingRequest.bytes);
  view(out).setBigUint64(Layout.PingRequest.nonce.offset, BigInt.asUintN(64, nonce), true);
  return out;
}

export interface PingResult {
  nonce: bigint;
  contractVersion: number;
  lockScreenSupported: boolean;
}

export function decodePingResponse(payload: Uint8Array): PingResult {
  const v = requireLength(payload, Layout.PingResponse.bytes, 'ping');
  return {
    nonce: v.getBigUint64(Layout.PingResponse.nonce.offset, true),
    contractVersion: v.getUint32(Layout.PingResponse.contractVersion.offset, true),
    lockScreenSupported: (v.getUint32(Layout.PingResponse.capabilities.offset, true) & 1) === 1,
  };
}

// ---- EXEC_GET_PROCESS_LIST ----

export interface ProcessEntry {
  pid: number;
  ppid: number;
  rssKib: bigint;
  name: string;
}

export interface ProcessListResult {
  totalCount: number;
  entries: ProcessEntry[];
}

export function encodeProcessListRequest(maxEntries: number): Uint8Array {
  if (!Number.isInteger(maxEntries) || maxEntries < 1 || maxEntries > PROCESS_ENTRIES_MAX) {
    throw new SdcError('KERNEL_BAD_ARGUMENT', `maxEntries must be an integer from 1 to ${PROCESS_ENTRIES_MAX}`);
  }
  const out = new Uint8Array(Layout.ProcessListRequest.bytes);
  view(out).setUint32(Layout.ProcessListRequest.maxEntries.offset, maxEntries, true);
  return out;
}

export function encodeProcessEntry(entry: ProcessEntry, target: Uint8Array): void {
  const v = view(target);
  const E = Layout.ProcessEntry;
  v.setUint32(E.pid.offset, entry.pid >>> 0, true);
  v.setUint32(E.ppid.offset, entry.ppid >>> 0, true);
  v.setBigUint64(E.rssKib.offset, BigInt.asUintN(64, entry.rssKib), true);
  const name = target.subarray(E.name.offset, E.name.offset + E.name.bytes);
  name.fill(0);
  name.set(utf8.encode(entry.name).subarray(0, E.name.bytes - 1));
}

export function decodeProcessListResponse(payload: Uint8Array): ProcessListResult {
  const R = Layout.ProcessListResponse;
  const E = Layout.ProcessEntry;
  if (payload.length < R.bytes) throw new SdcError('KERNEL_RESPONSE_INVALID', 'process list payload is shorter than its header');
  const v = view(payload);
  const totalCount = v.getUint32(R.totalCount.offset, true);
  const entryCount = v.getUint32(R.entryCount.offset, true);
  if (entryCount > PROCESS_ENTRIES_MAX || entryCount > totalCount || payload.length !== R.bytes + entryCount * E.bytes) {
    throw new SdcError('KERNEL_RESPONSE_INVALID', `process list payload of ${payload.length} bytes does not hold ${entryCount} entries`);
  }
  const entries: ProcessEntry[] = [];
  for (let i = 0; i < entryCount; i++) {
    const at = R.bytes + i * E.bytes;
    const name = payload.subarray(at + E.name.offset, at + E.name.offset + E.name.bytes);
    const nul = name.indexOf(0);
    entries.push({
      pid: v.getUint32(at + E.pid.offset, true),
      ppid: v.getUint32(at + E.ppid.offset, true),
      rssKib: v.getBigUint64(at + E.rssKib.offset, true),
      name: utf8Decoder.decode(name.subarray(0, nul < 0 ? name.length : nul)),
    });
  }
  return { totalCount, entries };
}

// ---- EXEC_STAGE_UPDATE ----

export interface StageUpdateArgs {
  /** Artifact path on the device, as the kernel service sees it. */
  path: string;
  version: string;
  sha256: Uint8Array;
}

export interface StageUpdateResult {
  version: string;
  sizeBytes: bigint;
  sha256: Uint8Array;
}

export function encodeStageUpdateRequest(args: StageUpdateArgs): Uint8Array {
  const S = Layout.StageUpdateRequest;
  const path = utf8.encode(args.path);
  if (path.length < 1 || path.length > UPDATE_PATH_BYTES_MAX || path.includes(0)) {
    throw new SdcError('KERNEL_BAD_ARGUMENT', `update path must be 1..${UPDATE_PATH_BYTES_MAX} UTF-8 bytes without NUL`);
  }
  if (!(args.sha256 instanceof Uint8Array) || args.sha256.length !== S.sha256.bytes) {
    throw new SdcError('KERNEL_BAD_ARGUMENT', 'sha256 must be 32 bytes');
  }
  const out = new Uint8Array(S.bytes + path.length);
  out.set(args.sha256, S.sha256.offset);
  out.set(encodeLabel(args.version), S.version.offset);
  view(out).setUint16(S.pathLen.offset, path.length, true);
  out.set(path, S.bytes);
  return out;
}

export function decodeStageUpdateResponse(payload: Uint8Array): StageUpdateResult {
  const S = Layout.StageUpdateResponse;
  const v = requireLength(payload, S.bytes, 'stage update');
  return {
    version: decodeLabel(payload.subarray(S.version.offset, S.version.offset + S.version.bytes)),
    sizeBytes: v.getBigUint64(S.sizeBytes.offset, true),
    sha256: payload.slice(S.sha256.offset, S.sha256.offset + S.sha256.bytes),
  };
}

// ---- EXEC_COMMIT_UPDATE / EXEC_ROLLBACK_UPDATE / EXEC_CONFIRM_UPDATE ----

export interface UpdateSlots {
  currentVersion: string;
  previousVersion: string;
}

export interface CommitUpdateOptions {
  /** The approved SHA-256 (32 bytes): the kernel hashes the staged artifact again and refuses DIGEST_MISMATCH when it differs. Omitted: no digest named. */
  sha256?: Uint8Array;
  /** Arms the commit watchdog: WATCHDOG_WINDOW_MS_MIN..MAX ms for EXEC_CONFIRM_UPDATE to arrive, else the kernel rolls back. Omitted or 0: none. */
  watchdogMs?: number;
}

export function encodeCommitUpdateRequest(version: string, options: CommitUpdateOptions = {}): Uint8Array {
  const C = Layout.CommitUpdateRequest;
  const out = new Uint8Array(C.bytes);
  out.set(encodeLabel(version), C.version.offset);
  if (options.sha256 !== undefined) {
    if (!(options.sha256 instanceof Uint8Array) || options.sha256.length !== C.sha256.bytes) throw new SdcError('KERNEL_BAD_ARGUMENT', 'sha256 must be 32 bytes');
    out.set(options.sha256, C.sha256.offset);
  }
  const watchdogMs = options.watchdogMs ?? 0;
  if (!Number.isInteger(watchdogMs) || (watchdogMs !== 0 && (watchdogMs < WATCHDOG_WINDOW_MS_MIN || watchdogMs > WATCHDOG_WINDOW_MS_MAX))) {
    throw new SdcError('KERNEL_BAD_ARGUMENT', `watchdogMs must be 0 or an integer from ${WATCHDOG_WINDOW_MS_MIN} to ${WATCHDOG_WINDOW_MS_MAX}`);
  }
  view(out).setUint32(C.watchdogMs.offset, watchdogMs, true);
  return out;
}

export function encodeConfirmUpdateRequest(version: string): Uint8Array {
  return encodeLabel(version);
}

export function decodeUpdateSlotsResponse(payload: Uint8Array): UpdateSlots {
  const U = Layout.UpdateSlotsResponse;
  requireLength(payload, U.bytes, 'update slots');
  return {
    currentVersion: decodeLabel(payload.subarray(U.currentVersion.offset, U.currentVersion.offset + U.currentVersion.bytes)),
    previousVersion: decodeLabel(payload.subarray(U.previousVersion.offset, U.previousVersion.offset + U.previousVersion.bytes)),
  };
}

// ---- EXEC_GET_STATUS ----

export interface KernelServiceStatus extends UpdateSlots {
  stagedVersion: string;
  lastCounter: bigint;
  requestsAccepted: bigint;
  requestsRefused: bigint;
  commits: number;
  rollbacks: number;
  stageFailures: number;
  currentSizeBytes: bigint;
  lastCommitUnixMs: bigint;
  /** A commit awaits EXEC_CONFIRM_UPDATE; the kernel rolls back when watchdogRemainingMs runs out. */
  watchdogArmed: boolean;
  watchdogRemainingMs: bigint;
  /** Rollbacks by the watchdog; `rollbacks` counts them too. */
  watchdogRollbacks: number;
  commitFailures: number;
  confirms: number;
}

export function encodeStatusResponse(status: KernelServiceStatus): Uint8Array {
  const S = Layout.StatusResponse;
  const out = new Uint8Array(S.bytes);
  const v = view(out);
  const label = (text: string): Uint8Array => (text === '' ? new Uint8Array(VERSION_LABEL_BYTES) : encodeLabel(text));
  out.set(label(status.currentVersion), S.currentVersion.offset);
  out.set(label(status.previousVersion), S.previousVersion.offset);
  out.set(label(status.stagedVersion), S.stagedVersion.offset);
  v.setBigUint64(S.lastCounter.offset, status.lastCounter, true);
  v.setBigUint64(S.requestsAccepted.offset, status.requestsAccepted, true);
  v.setBigUint64(S.requestsRefused.offset, status.requestsRefused, true);
  v.setUint32(S.commits.offset, status.commits, true);
  v.setUint32(S.rollbacks.offset, status.rollbacks, true);
  v.setUint32(S.stageFailures.offset, status.stageFailures, true);
  v.setBigUint64(S.currentSizeBytes.offset, status.currentSizeBytes, true);
  v.setBigUint64(S.lastCommitUnixMs.offset, status.lastCommitUnixMs, true);
  v.setUint32(S.watchdogState.offset, status.watchdogArmed ? 1 : 0, true);
  v.setBigUint64(S.watchdogRemainingMs.offset, status.watchdogRemainingMs, true);
  v.setUint32(S.watchdogRollbacks.offset, status.watchdogRollbacks, true);
  v.setUint32(S.commitFailures.offset, status.commitFailures, true);
  v.setUint32(S.confirms.offset, status.confirms, true);
  return out;
}

export function decodeStatusResponse(payload: Uint8Array): KernelServiceStatus {
  const S = Layout.StatusResponse;
  const v = requireLength(payload, S.bytes, 'status');
  const label = (field: { offset: number; bytes: number }): string => decodeLabel(payload.subarray(field.offset, field.offset + field.bytes));
  return {
    currentVersion: label(S.currentVersion),
    previousVersion: label(S.previousVersion),
    stagedVersion: label(S.stagedVersion),
    lastCounter: v.getBigUint64(S.lastCounter.offset, true),
    requestsAccepted: v.getBigUint64(S.requestsAccepted.offset, true),
    requestsRefused: v.getBigUint64(S.requestsRefused.offset, true),
    commits: v.getUint32(S.commits.offset, true),
    rollbacks: v.getUint32(S.rollbacks.offset, true),
    stageFailures: v.getUint32(S.stageFailures.offset, true),
    currentSizeBytes: v.getBigUint64(S.currentSizeBytes.offset, true),
    lastCommitUnixMs: v.getBigUint64(S.lastCommitUnixMs.offset, true),
    watchdogArmed: v.getUint32(S.watchdogState.offset, true) === 1,
    watchdogRemainingMs: v.getBigUint64(S.watchdogRemainingMs.offset, true),
    watchdogRollbacks: v.getUint32(S.watchdogRollbacks.offset, true),
    commitFailures: v.getUint32(S.commitFailures.offset, true),
    confirms: v.getUint32(S.confirms.offset, true),
  };
}
