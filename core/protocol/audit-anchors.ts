import { SdcError } from '../errors/index.js';
import type { AuditAnchor, AuditEntry } from './audit-chain.js';

/**
 * Audit anchors (docs/audit.md, "Anchors kept automatically"): the audit head `{seq, hash, at}`
 * written as one JSON line per change by `sdc serve --audit-anchor-file`, and checked by
 * `sdc audit verify --anchors`. A head kept outside the database is what shows a removed tail or a
 * chain rewritten whole with recomputed hashes (audit-kept-head.ts); the file keeps one every
 * interval without an operator copying it by hand. Only the format and the judgement live here
 * (pure); the file writer is server/control-plane/audit-anchor-writer.ts.
 */
export interface AuditAnchorRecord extends AuditAnchor {
  /** When the head was read, ISO 8601 (UTC): for the operator reading a failure, not checked against anything. */
  readonly at: string;
  /** 1-based line of the file it came from; 0 for one not read from a file. */
  readonly line: number;
}

export const auditAnchorLimits = {
  /**
   * The file `sdc audit verify --anchors` reads whole. A line is about 110 bytes, one a minute when
   * the log changes every minute: 64 MiB is more than a year of anchors. Past it, start a new file
   * (keep the old one; verify it on its own).
   */
  fileBytesMax: 64 * 1024 * 1024,
  /** One line: a seq, a 64-digit hash and a timestamp need under 140 bytes; room for spaces. */
  lineBytesMax: 512,
} as const;

const hashPattern = /^[0-9a-f]{64}$/;
const isoPattern = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z$/;

/** One anchor line, newline included: `{"seq":N,"hash":"...","at":"ISO"}`. */
export function formatAuditAnchorLine(anchor: AuditAnchor, atMs: number): string {
  return `${JSON.stringify({ seq: anchor.seq, hash: anchor.hash, at: new Date(atMs).toISOString() })}\n`;
}

function invalid(line: number, reason: string): SdcError {
  return new SdcError('AUDIT_ANCHOR_INVALID', `anchor line ${line}: ${reason}`, { line });
}

function parseLine(text: string, line: number): AuditAnchorRecord {
  if (text.length > auditAnchorLimits.lineBytesMax) throw invalid(line, `longer than ${auditAnchorLimits.lineBytesMax} characters`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw invalid(line, 'not JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalid(line, 'not a JSON object');
  const { seq, hash, at } = value as Record<string, unknown>;
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 1) throw invalid(line, 'seq must be a whole number of at least 1');
  if (typeof hash !== 'string' || !hashPattern.test(hash)) throw invalid(line, 'hash must be 64 lower-case hex digits');
  if (typeof at !== 'string' || !isoPattern.test(at) || Number.isNaN(Date.parse(at))) throw invalid(line, 'at must be an ISO 8601 UTC time');
  return { seq, hash, at, line };
}

/**
 * Every anchor of a file's text, in file order; a malformed line is AUDIT_ANCHOR_INVALID naming
 * it (a file that cannot be read as anchors proves nothing, so it is refused, not skipped). Blank
 * lines are skipped: a crash can leave the last line without its newline, never a half line
 * (each line is one write of under 512 bytes to a file opened for appending).
 */
export function parseAuditAnchorLines(text: string): AuditAnchorRecord[] {
  if (text.length > auditAnchorLimits.fileBytesMax) {
    throw new SdcError('AUDIT_ANCHOR_INVALID', `the anchor file is larger than ${auditAnchorLimits.fileBytesMax} bytes: start a new one and verify the old one on its own`);
  }
  const anchors: AuditAnchorRecord[] = [];
  const lines = text.split('\n');
  for (let index = 0; index < lines.length; index += 1) {
    const line = lines[index]!.trim();
    if (line !== '') anchors.push(parseLine(line, index + 1));
  }
  return anchors;
}

/** The anchors to look up, lowest seq first, each (seq, hash) pair once: the first failure reported is the earliest one. */
export function anchorsInSeqOrder(anchors: readonly AuditAnchorRecord[]): AuditAnchorRecord[] {
  const seen = new Set<string>();
  const unique = anchors.filter((anchor) => {
    const key = `${anchor.seq}:${anchor.hash}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  return unique.sort((a, b) => a.seq - b.seq || a.line - b.line);
}

/** Why the chain (verified whole, ending at `chainHeadSeq`) does not hold `anchor`, or undefined when it does. */
export function anchorMismatch(anchor: AuditAnchorRecord, chainHeadSeq: number, entry: AuditEntry | undefined): { firstBrokenSeq: number; detail: string } | undefined {
  const where = `the anchor of line ${anchor.line} (${anchor.at})`;
  if (chainHeadSeq < anchor.seq) {
    return { firstBrokenSeq: chainHeadSeq + 1, detail: `the chain ends at seq ${chainHeadSeq}, before ${where} at seq ${anchor.seq}: its tail was removed` };
  }
  if (entry === undefined || entry.seq !== anchor.seq) return { firstBrokenSeq: anchor.seq, detail: `entry ${anchor.seq} of ${where} is not in the store` };
  if (entry.hash !== anchor.hash) {
    return { firstBrokenSeq: anchor.seq, detail: `entry ${anchor.seq} hashes to ${entry.hash}, ${where} says ${anchor.hash}: the chain was rewritten at or before it` };
  }
  return undefined;
}
