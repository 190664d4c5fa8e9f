import { bytesFromBase64url } from '../core/crypto/bytes.js';
import { createNobleEd25519Provider } from '../core/crypto/ed25519-noble.js';
import { nobleSha256 } from '../core/crypto/sha256-noble.js';
import { SdcError } from '../core/errors/index.js';
import { verifyAuditChain, type AuditVerifyResult } from '../core/protocol/audit-chain.js';
import { decodeEnvelope, envelopeMacAlg, verifyEnvelope, type SignedEnvelope } from '../core/protocol/envelope.js';

/**
 * "Verify in this browser": the audit chain and the device-signed frames in it, checked with the
 * core's own pure code (RFC 8785 canonical JSON, SHA-256 and Ed25519 from @noble), bundled into the
 * page. The server's word (`/v1/audit/verify`) is not consulted. The devices' public keys come
 * from the chain itself (`device.enrolled` and `device.renewed` entries), so a key is trusted
 * only as far as the chain before the frame is.
 */

/** Audit kinds whose payload holds a device-signed envelope's text verbatim as `frame` (docs/audit.md). */
export const deviceSignedKinds: ReadonlySet<string> = new Set(['command.result', 'command.ack']);
/** Audit kinds that record a device's public key (base64url raw Ed25519) as `public_key`. */
const deviceKeyKinds: ReadonlySet<string> = new Set(['device.enrolled', 'device.renewed']);

export interface SignatureBreak {
  readonly seq: number;
  readonly code: string;
  readonly detail: string;
}

export interface BrowserAuditReport {
  readonly entries: number;
  readonly chain: AuditVerifyResult;
  readonly signaturesChecked: number;
  /** Frames authenticated by a session MAC instead of a signature: no key outside the session can check them. */
  readonly macFramesSkipped: number;
  /** The first device-signed frame that does not verify, in seq order; undefined when all do. */
  readonly signatureBreak: SignatureBreak | undefined;
  /** The lower of the chain's first broken seq and the first bad signature's, or undefined. */
  readonly firstBrokenSeq: number | undefined;
}

type Entry = { seq: number; kind: string; actor: string; subject: string; payload: Record<string, unknown> };

const provider = createNobleEd25519Provider();

export async function verifyAuditInBrowser(entries: readonly unknown[]): Promise<BrowserAuditReport> {
  const chain = await verifyAuditChain(entries, nobleSha256);
  // Signatures are checked over the part of the log the chain vouches for.
  const trusted = chain.ok ? entries : entries.slice(0, Math.max(0, chain.firstBrokenSeq - 1));
  const { checked, macSkipped, broken } = verifyDeviceFrames(trusted as readonly Entry[]);
  const candidates = [chain.ok ? undefined : chain.firstBrokenSeq, broken?.seq].filter((seq): seq is number => seq !== undefined);
  return {
    entries: entries.length, chain, signaturesChecked: checked, macFramesSkipped: macSkipped, signatureBreak: broken,
    firstBrokenSeq: candidates.length === 0 ? undefined : Math.min(...candidates),
  };
}

/** Walks the entries in order, learning device keys and checking each device-signed frame against them. */
export function verifyDeviceFrames(entries: readonly Entry[]): { checked: number; macSkipped: number; broken: SignatureBreak | undefined } {
  const keys = new Map<string, Uint8Array[]>();
  let checked = 0;
  let macSkipped = 0;
  for (const entry of entries) {
    if (deviceKeyKinds.has(entry.kind)) {
      learnKey(keys, entry);
    } else if (deviceSignedKinds.has(entry.kind)) {
      const decoded = decodeFrame(entry);
      if ('code' in decoded) return { checked, macSkipped, broken: { seq: entry.seq, ...decoded } };
      if (decoded.sig.alg === envelopeMacAlg) {
        macSkipped += 1;
        continue;
      }
      const problem = frameProblem(keys, entry, decoded);
      checked += 1;
      if (problem !== undefined) return { checked, macSkipped, broken: { seq: entry.seq, ...problem } };
    }
  }
  return { checked, macSkipped, broken: undefined };
}

/** The entry's frame, decoded as strictly as the control plane decoded it (it is stored as the text the device sent). */
function decodeFrame(entry: Entry): SignedEnvelope | { code: string; detail: string } {
  const frame = entry.payload.frame;
  if (typeof frame !== 'string') return { code: 'VIEWER_FRAME_MISSING', detail: `entry ${entry.seq} (${entry.kind}) holds no frame text` };
  try {
    return decodeEnvelope(frame);
  } catch (error) {
    return { code: SdcError.is(error) ? error.code : 'VIEWER_FRAME_INVALID', detail: `entry ${entry.seq}: the frame does not decode: ${(error as Error).message}` };
  }
}

function learnKey(keys: Map<string, Uint8Array[]>, entry: Entry): void {
  const deviceId = entry.subject.startsWith('device:') ? entry.subject.slice('device:'.length) : undefined;
  const text = entry.payload.public_key;
  if (deviceId === undefined || typeof text !== 'string') return;
  try {
    const key = bytesFromBase64url(text, { code: 'CRYPTO_BAD_KEY', name: 'public_key', length: 32 });
    // Newest first: a renewal may rotate the key, and a frame signed just before it still verifies with the old one.
    keys.set(deviceId, [key, ...(keys.get(deviceId) ?? [])]);
  } catch {
    // A key that does not decode is not learned; frames that needed it fail below, naming their seq.
  }
}

function frameProblem(keys: Map<string, Uint8Array[]>, entry: Entry, frame: SignedEnvelope): { code: string; detail: string } | undefined {
  if (entry.actor !== `device:${frame.device_id}`) {
    return { code: 'VIEWER_FRAME_ACTOR', detail: `entry ${entry.seq} is by ${entry.actor}, but its frame is from device ${frame.device_id}` };
  }
  const candidates = keys.get(frame.device_id) ?? [];
  if (candidates.length === 0) return { code: 'CRYPTO_UNKNOWN_KID', detail: `entry ${entry.seq}: no enrollment of ${frame.device_id} before it in the chain` };
  let last: { code: string; detail: string } = { code: 'CRYPTO_SIGNATURE_INVALID', detail: '' };
  for (const key of candidates) {
    try {
      verifyEnvelope({ envelope: frame, resolveKey: () => key, provider });
      return undefined;
    } catch (error) {
      last = SdcError.is(error) ? { code: error.code, detail: `entry ${entry.seq}: ${error.message}` } : { code: 'VIEWER_FRAME_INVALID', detail: `entry ${entry.seq}: ${String(error)}` };
    }
  }
  return last;
}
