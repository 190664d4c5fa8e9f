// GENERATED from kernel/contract.json by kernel/generate.ts (npm run kernel:generate). Do not edit.

export const CONTRACT_VERSION = 1;
export const REQUEST_MAGIC = 0x51434453;
export const RESPONSE_MAGIC = 0x52434453;
export const HEADER_BYTES = 32;
export const SIGNATURE_BYTES = 64;
export const PAYLOAD_BYTES_MAX = 65536;
export const PROCESS_ENTRIES_MAX = 4096;
export const UPDATE_PATH_BYTES_MAX = 1024;
export const VERSION_LABEL_BYTES = 32;
export const ARTIFACT_BYTES_MAX = 268435456;
export const COMMAND_SIGNED_BYTES_MAX = 16384;
export const COMMAND_KEYS_MAX = 8;
export const COMMAND_REPLAY_WINDOW = 256;
export const COMMAND_EXPIRY_GRACE_MS = 300000;
export const WATCHDOG_WINDOW_MS_MIN = 100;
export const WATCHDOG_WINDOW_MS_MAX = 86400000;
export const WATCHDOG_REARMS_MAX = 3;

/** Opcode values carried in the header. */
export const Opcode = {
  EXEC_PING_KERNEL: 1,
  EXEC_LOCK_SCREEN: 2,
  EXEC_GET_PROCESS_LIST: 3,
  EXEC_STAGE_UPDATE: 4,
  EXEC_COMMIT_UPDATE: 5,
  EXEC_ROLLBACK_UPDATE: 6,
  EXEC_GET_STATUS: 7,
  PROVISION_COMMAND_KEYS: 8,
  EXEC_CONFIRM_UPDATE: 9,
} as const;
export type OpcodeName = keyof typeof Opcode;
export type OpcodeValue = (typeof Opcode)[OpcodeName];

/** CTL_CODE(FILE_DEVICE_UNKNOWN, 0x800 + opcode, METHOD_BUFFERED, FILE_ANY_ACCESS) per opcode. */
export const IoctlCode = {
  EXEC_PING_KERNEL: 0x00222004,
  EXEC_LOCK_SCREEN: 0x00222008,
  EXEC_GET_PROCESS_LIST: 0x0022200c,
  EXEC_STAGE_UPDATE: 0x00222010,
  EXEC_COMMIT_UPDATE: 0x00222014,
  EXEC_ROLLBACK_UPDATE: 0x00222018,
  EXEC_GET_STATUS: 0x0022201c,
  PROVISION_COMMAND_KEYS: 0x00222020,
  EXEC_CONFIRM_UPDATE: 0x00222024,
} as const;

/** Status codes in response headers (and the native call's return value). */
export const KernelStatus = {
  OK: 0,
  NOT_SUPPORTED: 1,
  BAD_LENGTH: 2,
  BAD_MAGIC: 3,
  BAD_VERSION: 4,
  BAD_HEADER: 5,
  BAD_SIGNATURE: 6,
  REPLAY: 7,
  UNKNOWN_CODE: 8,
  BUFFER_TOO_SMALL: 9,
  BAD_PAYLOAD: 10,
  BAD_STATE: 11,
  DIGEST_MISMATCH: 12,
  IO_ERROR: 13,
  BUSY: 14,
  BAD_HANDLE: 15,
  COMMAND_MISSING: 16,
  COMMAND_INVALID: 17,
  COMMAND_FORGED: 18,
  COMMAND_WRONG_DEVICE: 19,
  COMMAND_MISMATCH: 20,
  COMMAND_REPLAY: 21,
  NOT_PROVISIONED: 22,
  PROVISION_DENIED: 23,
  COMMAND_EXPIRED: 24,
} as const;
export type KernelStatusName = keyof typeof KernelStatus;

export const kernelStatusNames: Readonly<Record<number, KernelStatusName>> = {
  0: 'OK',
  1: 'NOT_SUPPORTED',
  2: 'BAD_LENGTH',
  3: 'BAD_MAGIC',
  4: 'BAD_VERSION',
  5: 'BAD_HEADER',
  6: 'BAD_SIGNATURE',
  7: 'REPLAY',
  8: 'UNKNOWN_CODE',
  9: 'BUFFER_TOO_SMALL',
  10: 'BAD_PAYLOAD',
  11: 'BAD_STATE',
  12: 'DIGEST_MISMATCH',
  13: 'IO_ERROR',
  14: 'BUSY',
  15: 'BAD_HANDLE',
  16: 'COMMAND_MISSING',
  17: 'COMMAND_INVALID',
  18: 'COMMAND_FORGED',
  19: 'COMMAND_WRONG_DEVICE',
  20: 'COMMAND_MISMATCH',
  21: 'COMMAND_REPLAY',
  22: 'NOT_PROVISIONED',
  23: 'PROVISION_DENIED',
  24: 'COMMAND_EXPIRED',
};

/** Byte offsets and sizes of every fixed layout, plus each opcode's payload layouts. */
export const Layout = {
  Header: {
    bytes: 32,
    magic: { offset: 0, bytes: 4 },
    version: { offset: 4, bytes: 2 },
    opcode: { offset: 6, bytes: 2 },
    flags: { offset: 8, bytes: 4 },
    payloadLen: { offset: 12, bytes: 4 },
    counter: { offset: 16, bytes: 8 },
    status: { offset: 24, bytes: 4 },
    commandLen: { offset: 28, bytes: 4 },
  },
  Empty: {
    bytes: 0,
  },
  PingRequest: {
    bytes: 8,
    nonce: { offset: 0, bytes: 8 },
  },
  PingResponse: {
    bytes: 16,
    nonce: { offset: 0, bytes: 8 },
    contractVersion: { offset: 8, bytes: 4 },
    capabilities: { offset: 12, bytes: 4 },
  },
  ProcessListRequest: {
    bytes: 8,
    maxEntries: { offset: 0, bytes: 4 },
    reserved: { offset: 4, bytes: 4 },
  },
  ProcessListResponse: {
    bytes: 8,
    totalCount: { offset: 0, bytes: 4 },
    entryCount: { offset: 4, bytes: 4 },
  },
  ProcessEntry: {
    bytes: 48,
    pid: { offset: 0, bytes: 4 },
    ppid: { offset: 4, bytes: 4 },
    rssKib: { offset: 8, bytes: 8 },
    name: { offset: 16, bytes: 32 },
  },
  StageUpdateRequest: {
    bytes: 68,
    sha256: { offset: 0, bytes: 32 },
    version: { offset: 32, bytes: 32 },
    pathLen: { offset: 64, bytes: 2 },
    reserved: { offset: 66, bytes: 2 },
  },
  StageUpdateResponse: {
    bytes: 72,
    version: { offset: 0, bytes: 32 },
    sizeBytes: { offset: 32, bytes: 8 },
    sha256: { offset: 40, bytes: 32 },
  },
  CommitUpdateRequest: {
    bytes: 72,
    version: { offset: 0, bytes: 32 },
    sha256: { offset: 32, bytes: 32 },
    watchdogMs: { offset: 64, bytes: 4 },
    reserved: { offset: 68, bytes: 4 },
  },
  ConfirmUpdateRequest: {
    bytes: 32,
    version: { offset: 0, bytes: 32 },
  },
  UpdateSlotsResponse: {
    bytes: 64,
    currentVersion: { offset: 0, bytes: 32 },
    previousVersion: { offset: 32, bytes: 32 },
  },
  StatusResponse: {
    bytes: 176,
    currentVersion: { offset: 0, bytes: 32 },
    previousVersion: { offset: 32, bytes: 32 },
    stagedVersion: { offset: 64, bytes: 32 },
    lastCounter: { offset: 96, bytes: 8 },
    requestsAccepted: { offset: 104, bytes: 8 },
    requestsRefused: { offset: 112, bytes: 8 },
    commits: { offset: 120, bytes: 4 },
    rollbacks: { offset: 124, bytes: 4 },
    stageFailures: { offset: 128, bytes: 4 },
    watchdogState: { offset: 132, bytes: 4 },
    currentSizeBytes: { offset: 136, bytes: 8 },
    lastCommitUnixMs: { offset: 144, bytes: 8 },
    watchdogRemainingMs: { offset: 152, bytes: 8 },
    watchdogRollbacks: { offset: 160, bytes: 4 },
    commitFailures: { offset: 164, bytes: 4 },
    confirms: { offset: 168, bytes: 4 },
    reserved: { offset: 172, bytes: 4 },
  },
  CommandAttachment: {
    bytes: 68,
    signature: { offset: 0, bytes: 64 },
    signedLen: { offset: 64, bytes: 4 },
  },
  ProvisionRequest: {
    bytes: 392,
    deviceId: { offset: 0, bytes: 64 },
    keyCount: { offset: 64, bytes: 4 },
    reserved: { offset: 68, bytes: 4 },
    keys: { offset: 72, bytes: 256 },
    rotationSignature: { offset: 328, bytes: 64 },
  },
  ProvisionResponse: {
    bytes: 8,
    outcome: { offset: 0, bytes: 4 },
    keyCount: { offset: 4, bytes: 4 },
  },
} as const;

/** Opcodes the kernel runs only with a control-plane signed command attached (command_len > 0). */
export const PRIVILEGED_OPCODES: ReadonlySet<OpcodeName> = new Set(['EXEC_LOCK_SCREEN', 'EXEC_STAGE_UPDATE', 'EXEC_COMMIT_UPDATE', 'EXEC_ROLLBACK_UPDATE']);

export const opcodePayloads = {
  EXEC_PING_KERNEL: { request: 'PingRequest', response: 'PingResponse' },
  EXEC_LOCK_SCREEN: { request: 'Empty', response: 'Empty' },
  EXEC_GET_PROCESS_LIST: { request: 'ProcessListRequest', response: 'ProcessListResponse' },
  EXEC_STAGE_UPDATE: { request: 'StageUpdateRequest', response: 'StageUpdateResponse' },
  EXEC_COMMIT_UPDATE: { request: 'CommitUpdateRequest', response: 'UpdateSlotsResponse' },
  EXEC_ROLLBACK_UPDATE: { request: 'Empty', response: 'UpdateSlotsResponse' },
  EXEC_GET_STATUS: { request: 'Empty', response: 'StatusResponse' },
  PROVISION_COMMAND_KEYS: { request: 'ProvisionRequest', response: 'ProvisionResponse' },
  EXEC_CONFIRM_UPDATE: { request: 'ConfirmUpdateRequest', response: 'UpdateSlotsResponse' },
} as const;
