/**
 * Whether a parsed signed command authorizes this IOCTL: the same opcode, and args that say what
 * the request does (the version and digest staged, the version committed with the digest and watchdog
 * window when the command names them, the version confirmed, no more process entries
 * than the limit). The artifact path is the agent's local choice and is not in the command; the
 * digest the command names is what binds the bytes staged. Mirrored in sdc_command.c.
 */
import { Layout, type OpcodeName } from '../generated/contract.js';
import { decodeLabel } from '../payloads.js';
import { view } from '../codec.js';
import type { CommandArg, ParsedCommand } from './parse.js';

const allowedArgs: Readonly<Record<OpcodeName, readonly string[]>> = {
  EXEC_PING_KERNEL: [],
  EXEC_LOCK_SCREEN: [],
  EXEC_GET_PROCESS_LIST: ['limit'],
  EXEC_STAGE_UPDATE: ['version', 'sha256', 'size_bytes', 'url'],
  EXEC_COMMIT_UPDATE: ['version', 'sha256', 'watchdog_ms'],
  EXEC_ROLLBACK_UPDATE: [],
  EXEC_GET_STATUS: [],
  PROVISION_COMMAND_KEYS: [],
  EXEC_CONFIRM_UPDATE: ['version'],
};

function rawEquals(arg: CommandArg | undefined, expected: string): boolean {
  if (arg?.kind !== 'string' || arg.raw.length !== expected.length) return false;
  return arg.raw.every((b, i) => b === expected.charCodeAt(i));
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** `request` is the opcode's payload (attachment removed), already validated. */
export function commandMatches(name: OpcodeName, command: ParsedCommand, request: Uint8Array): boolean {
  if (command.opcode !== name) return false;
  const allowed = allowedArgs[name];
  for (const key of command.args.keys()) if (!allowed.includes(key)) return false;
  const { args } = command;
  switch (name) {
    case 'EXEC_GET_PROCESS_LIST': {
      const limit = args.get('limit');
      if (limit === undefined) return true;
      return limit.kind === 'integer' && BigInt(view(request).getUint32(Layout.ProcessListRequest.maxEntries.offset, true)) <= limit.value;
    }
    case 'EXEC_STAGE_UPDATE': {
      const R = Layout.StageUpdateRequest;
      const sizeBytes = args.get('size_bytes');
      const url = args.get('url');
      return rawEquals(args.get('version'), decodeLabel(request.subarray(R.version.offset, R.version.offset + R.version.bytes))) &&
        rawEquals(args.get('sha256'), hex(request.subarray(R.sha256.offset, R.sha256.offset + R.sha256.bytes))) &&
        sizeBytes?.kind === 'integer' && (url === undefined || url.kind === 'string');
    }
    case 'EXEC_COMMIT_UPDATE': {
      // version always; the digest and the watchdog window when the command names them.
      const C = Layout.CommitUpdateRequest;
      const sha = args.get('sha256');
      const watchdog = args.get('watchdog_ms');
      return rawEquals(args.get('version'), decodeLabel(request.subarray(C.version.offset, C.version.offset + C.version.bytes))) &&
        (sha === undefined || rawEquals(sha, hex(request.subarray(C.sha256.offset, C.sha256.offset + C.sha256.bytes)))) &&
        (watchdog === undefined || (watchdog.kind === 'integer' && watchdog.value === BigInt(view(request).getUint32(C.watchdogMs.offset, true))));
    }
    case 'EXEC_CONFIRM_UPDATE':
      return rawEquals(args.get('version'), decodeLabel(request.subarray(0, Layout.ConfirmUpdateRequest.version.bytes)));
    default:
      return true;
  }
}
