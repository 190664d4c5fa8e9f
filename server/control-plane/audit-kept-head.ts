import { SdcError } from '../../core/errors/index.js';
import type { AuditAnchor, AuditEntry, AuditVerifyResult } from '../../core/protocol/audit-chain.js';
import { anchorMismatch, anchorsInSeqOrder, type AuditAnchorRecord } from '../../core/protocol/audit-anchors.js';

/**
 * The audit check against a head an operator kept (security review 2026-12-05, finding 6;
 * docs/audit.md "Checking against a kept head"). A whole chain that verifies can still have had
 * its tail removed, or have been rewritten from the genesis entry on (the writer has the database
 * and recomputes every hash): only a head recorded outside the log's reach shows that. The
 * operator keeps `{seq, hash}` of the head some day (GET /v1/audit/verify and `sdc audit verify`
 * print it) and passes it later: the chain must still reach that seq, and its entry there must
 * still hash to the same value. Because each hash commits to every entry before it, an equal hash
 * at the kept seq means entries 1..seq are exactly the ones seen then; entries written since are
 * not judged by it (they are checked as links by the whole-chain walk).
 *
 * Unlike `verifyAuditChain`'s `expectedHead` (an exact head: a longer chain is a mismatch), the
 * kept head is a prefix check, because a running control plane keeps appending.
 */
export type KeptHeadVerifyResult = AuditVerifyResult & {
  /** The head the store holds now (null when empty): what the operator records for the next check. */
  readonly head: AuditAnchor | null;
  /** The kept head the chain was checked against, when one was given. */
  readonly keptHead?: AuditAnchor;
  /** Distinct anchors (from an anchor file) the chain was found to hold, when anchors were given. */
  readonly anchorsChecked?: number;
};

const hashPattern = /^[0-9a-f]{64}$/;

/** A kept head from its two parts (query parameters, or a `SEQ:HASH` flag); both or neither. */
export function keptHeadOf(seq: number | undefined, hash: string | undefined, names: { seq: string; hash: string }): AuditAnchor | undefined {
  if (seq === undefined && hash === undefined) return undefined;
  if (seq === undefined || hash === undefined) {
    throw new SdcError('API_VALIDATION', `${names.seq} and ${names.hash} are given together (a kept audit head is both)`, { path: seq === undefined ? names.seq : names.hash });
  }
  if (!Number.isSafeInteger(seq) || seq < 1) throw new SdcError('API_VALIDATION', `${names.seq} must be a sequence number of at least 1`, { path: names.seq });
  if (!hashPattern.test(hash)) throw new SdcError('API_VALIDATION', `${names.hash} must be a lower-case hex SHA-256 (64 characters)`, { path: names.hash });
  return { seq, hash };
}

/**
 * Verifies the whole chain (`verifyChain`), then, when a kept head is given, that the chain still
 * reaches it with the same hash (`entryAt` reads one entry by seq), then the same for every anchor
 * of an anchor file (`anchors`, lowest seq first; the first that fails is `anchor_mismatch`).
 * `storedHead` reads the store's last entry, reported whatever the outcome.
 */
export async function verifyAgainstKeptHead(options: {
  readonly verifyChain: () => Promise<AuditVerifyResult>;
  readonly entryAt: (seq: number) => Promise<AuditEntry | undefined>;
  readonly storedHead: () => Promise<AuditEntry | undefined>;
  readonly keptHead?: AuditAnchor | undefined;
  readonly anchors?: readonly AuditAnchorRecord[] | undefined;
}): Promise<KeptHeadVerifyResult> {
  const { keptHead } = options;
  const chain = await options.verifyChain();
  const stored = await options.storedHead();
  const head = stored === undefined ? null : { seq: stored.seq, hash: stored.hash };
  const kept = keptHead === undefined ? {} : { keptHead };
  if (!chain.ok) return { ...chain, head, ...kept };
  if (keptHead === undefined) return checkAnchors(chain, head, options);
  if (chain.headSeq < keptHead.seq) {
    return {
      ok: false, firstBrokenSeq: chain.headSeq + 1, reason: 'head_mismatch', head, ...kept,
      detail: `the chain ends at seq ${chain.headSeq}, before the kept head ${keptHead.seq}: its tail was removed`,
    };
  }
  const entry = await options.entryAt(keptHead.seq);
  if (entry === undefined || entry.seq !== keptHead.seq) {
    return { ok: false, firstBrokenSeq: keptHead.seq, reason: 'head_mismatch', head, ...kept, detail: `entry ${keptHead.seq} of the kept head is not in the store` };
  }
  if (entry.hash !== keptHead.hash) {
    return {
      ok: false, firstBrokenSeq: keptHead.seq, reason: 'head_mismatch', head, ...kept,
      detail: `entry ${keptHead.seq} hashes to ${entry.hash}, the kept head says ${keptHead.hash}: the chain was rewritten at or before it`,
    };
  }
  return checkAnchors(chain, head, options);
}

/** The anchors against a chain that verified whole: one entry read per distinct anchor. */
async function checkAnchors(
  chain: Extract<AuditVerifyResult, { ok: true }>, head: AuditAnchor | null,
  options: { readonly entryAt: (seq: number) => Promise<AuditEntry | undefined>; readonly keptHead?: AuditAnchor | undefined; readonly anchors?: readonly AuditAnchorRecord[] | undefined },
): Promise<KeptHeadVerifyResult> {
  const kept = options.keptHead === undefined ? {} : { keptHead: options.keptHead };
  if (options.anchors === undefined) return { ...chain, head, ...kept };
  const anchors = anchorsInSeqOrder(options.anchors);
  for (const anchor of anchors) {
    const entry = anchor.seq <= chain.headSeq ? await options.entryAt(anchor.seq) : undefined;
    const mismatch = anchorMismatch(anchor, chain.headSeq, entry);
    if (mismatch !== undefined) return { ok: false, reason: 'anchor_mismatch', ...mismatch, head, ...kept };
  }
  return { ...chain, head, ...kept, anchorsChecked: anchors.length };
}
