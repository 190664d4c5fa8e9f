/**
 * The signed envelope shared by requests and responses: a 32-byte little-endian header, the
 * payload, then a 64-byte Ed25519 signature over header + payload (kernel/contract.json).
 */
import { SdcError } from '../core/errors/index.js';
import type { Ed25519Provider } from '../core/ports/ports.js';
import {
  CONTRACT_VERSION, HEADER_BYTES, IoctlCode, Layout, PAYLOAD_BYTES_MAX, REQUEST_MAGIC, RESPONSE_MAGIC, SIGNATURE_BYTES,
  type OpcodeName,
} from './generated/contract.js';

export const ENVELOPE_BYTES = HEADER_BYTES + SIGNATURE_BYTES;
export const COUNTER_MAX = (1n << 64n) - 1n;
const H = Layout.Header;

export interface EnvelopeHeader {
  magic: number;
  version: number;
  opcode: number;
  flags: number;
  payloadLen: number;
  counter: bigint;
  status: number;
  /** Request: bytes at the end of the payload that are a command attachment (0 = none). Response: 0. */
  commandLen: number;
}

export function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export function writeHeader(target: Uint8Array, header: EnvelopeHeader): void {
  const v = view(target);
  v.setUint32(H.magic.offset, header.magic, true);
  v.setUint16(H.version.offset, header.version, true);
  v.setUint16(H.opcode.offset, header.opcode, true);
  v.setUint32(H.flags.offset, header.flags, true);
  v.setUint32(H.payloadLen.offset, header.payloadLen, true);
  v.setBigUint64(H.counter.offset, header.counter, true);
  v.setUint32(H.status.offset, header.status, true);
  v.setUint32(H.commandLen.offset, header.commandLen, true);
}

/** Reads the header fields; the caller has checked that at least HEADER_BYTES are present. */
export function readHeader(bytes: Uint8Array): EnvelopeHeader {
  const v = view(bytes);
  return {
    magic: v.getUint32(H.magic.offset, true),
    version: v.getUint16(H.version.offset, true),
    opcode: v.getUint16(H.opcode.offset, true),
    flags: v.getUint32(H.flags.offset, true),
    payloadLen: v.getUint32(H.payloadLen.offset, true),
    counter: v.getBigUint64(H.counter.offset, true),
    status: v.getUint32(H.status.offset, true),
    commandLen: v.getUint32(H.commandLen.offset, true),
  };
}

/** Header + payload + signature; the signature covers bytes [0, HEADER_BYTES + payload.length). */
export function sealEnvelope(options: {
  ed25519: Ed25519Provider;
  seed: Uint8Array;
  header: Omit<EnvelopeHeader, 'payloadLen'>;
  payload: Uint8Array;
}): Uint8Array {
  const { payload } = options;
  const out = new Uint8Array(ENVELOPE_BYTES + payload.length);
  writeHeader(out, { ...options.header, payloadLen: payload.length });
  out.set(payload, HEADER_BYTES);
  const signed = out.subarray(0, HEADER_BYTES + payload.length);
  out.set(options.ed25519.sign(options.seed, signed), HEADER_BYTES + payload.length);
  return out;
}

/**
 * A request signed with the agent key. `attachment` (kernel/command/attachment.ts) is appended to
 * the payload and its length put in command_len, so the agent signature covers it as well.
 */
export function buildRequest(options: {
  ed25519: Ed25519Provider;
  agentSeed: Uint8Array;
  opcode: number;
  counter: bigint;
  payload: Uint8Array;
  attachment?: Uint8Array;
}): Uint8Array {
  const attachment = options.attachment ?? new Uint8Array(0);
  const payload = attachment.length === 0 ? options.payload : concat(options.payload, attachment);
  if (payload.length > PAYLOAD_BYTES_MAX) throw new SdcError('KERNEL_BAD_ARGUMENT', `payload of ${payload.length} bytes exceeds ${PAYLOAD_BYTES_MAX}`);
  if (options.counter < 1n || options.counter > COUNTER_MAX) throw new SdcError('KERNEL_BAD_ARGUMENT', 'counter must be in [1, 2^64 - 1]');
  return sealEnvelope({
    ed25519: options.ed25519,
    seed: options.agentSeed,
    header: { magic: REQUEST_MAGIC, version: CONTRACT_VERSION, opcode: options.opcode, flags: 0, counter: options.counter, status: 0, commandLen: attachment.length },
    payload,
  });
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

export interface VerifiedResponse {
  header: EnvelopeHeader;
  payload: Uint8Array;
}

/**
 * Checks a response the way the agent must: exact length, magic, version, flags and command_len, the
 * opcode and counter of the request it answers, then the service signature. Any failure throws;
 * the status is returned for the caller to interpret.
 */
export function verifyResponse(options: {
  ed25519: Ed25519Provider;
  servicePublicKey: Uint8Array;
  response: Uint8Array;
  expectedOpcode: number;
  expectedCounter: bigint;
}): VerifiedResponse {
  const { response } = options;
  const invalid = (why: string): SdcError => new SdcError('KERNEL_RESPONSE_INVALID', `kernel response ${why}`);
  if (response.length < ENVELOPE_BYTES) throw invalid(`has ${response.length} bytes, fewer than ${ENVELOPE_BYTES}`);
  const header = readHeader(response);
  if (header.magic !== RESPONSE_MAGIC) throw invalid('magic is not SDCR');
  if (header.version !== CONTRACT_VERSION) throw invalid(`version ${header.version} is not ${CONTRACT_VERSION}`);
  if (header.payloadLen > PAYLOAD_BYTES_MAX * 4 || response.length !== ENVELOPE_BYTES + header.payloadLen) {
    throw invalid(`length ${response.length} does not match payload_len ${header.payloadLen}`);
  }
  if (header.flags !== 0 || header.commandLen !== 0) throw invalid('has non-zero flags or command_len');
  const signedLength = HEADER_BYTES + header.payloadLen;
  const signature = response.subarray(signedLength);
  if (!options.ed25519.verify(options.servicePublicKey, response.subarray(0, signedLength), signature)) {
    throw new SdcError('KERNEL_RESPONSE_SIGNATURE', 'kernel response signature does not verify');
  }
  // Checked after the signature so a forged opcode/counter is reported as forged, not as a mismatch.
  if (header.opcode !== options.expectedOpcode) throw invalid(`answers opcode ${header.opcode}, not ${options.expectedOpcode}`);
  if (header.counter !== options.expectedCounter) throw invalid(`answers counter ${header.counter}, not ${options.expectedCounter}`);
  return { header, payload: response.subarray(HEADER_BYTES, signedLength) };
}

const opcodeByCode = new Map<number, OpcodeName>(Object.entries(IoctlCode).map(([name, code]) => [code, name as OpcodeName]));

export function opcodeNameOfCode(code: number): OpcodeName | undefined {
  return opcodeByCode.get(code);
}
