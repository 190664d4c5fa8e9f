import { SdcError, assert } from '../errors/index.js';
import { canonicalize } from './canonical-json.js';
import type { JsonObject } from './json-value.js';
import { defaultProtocolLimits } from './limits.js';
import type { Clock, Sha256 } from '../ports/ports.js';

/**
 * The hash-chained audit log (docs/audit.md). Each entry commits to the one before it:
 *
 *   hash = hex(sha256(utf8("sdc-audit-v1\n" + canonicalize(entry without `hash`))))
 *
 * with RFC 8785 canonical JSON and `prev_hash` of entry 1 = 64 zeros. Changing, removing or
 * reordering any entry breaks a link that `verifyAuditChain` names; cutting off the tail is only
 * visible against a head the caller anchored elsewhere (`expectedHead`). Pure: the hash function
 * is injected and the clock is a port.
 */

/** SHA-256 as a function (the hash port), so the core runs on node:crypto or @noble/hashes alike. */
export type { Sha256 };

export const auditHashDomain = 'sdc-audit-v1\n';
export const auditGenesisHash = '0'.repeat(64);

export const auditLimits = Object.freeze({
  /** `kind` is a short dotted event name such as `command.result`. */
  kindLengthMax: 64,
  /** `actor` and `subject` are ids such as `user:alice` or `command:01HV…`. */
  nameLengthMax: 256,
  /**
   * Canonical payload size. A payload may hold a device's signed RESULT envelope verbatim,
   * and an envelope is bounded by the 64 KiB frame limit; 256 KiB leaves room for a few.
   */
  payloadBytesMax: 262_144,
  /** Envelope nesting limit plus the two levels the entry and payload objects add. */
  depthMax: defaultProtocolLimits.depthMax + 2,
});

export interface AuditEntryInput {
  /** Unix milliseconds when the audited event was recorded. */
  readonly ts: number;
  /** Lower-case dotted event name, e.g. `command.sent`, `policy.denied`. */
  readonly kind: string;
  /** Who caused the event, e.g. `user:alice`, `device:lab-1`, `system`. */
  readonly actor: string;
  /** What the event is about, e.g. `command:01HV…`, `device:lab-1`. */
  readonly subject: string;
  readonly payload: JsonObject;
}

export interface AuditEntry extends AuditEntryInput {
  readonly seq: number;
  readonly prev_hash: string;
  readonly hash: string;
}

const entryKeys = ['seq', 'ts', 'kind', 'actor', 'subject', 'payload', 'prev_hash', 'hash'] as const;
const kindPattern = /^[a-z][a-z0-9_]*(?:[.-][a-z0-9_]+)*$/;
const hashPattern = /^[0-9a-f]{64}$/;
const utf8 = new TextEncoder();

/**
 * The canonical JSON of each payload `validAuditInput` returned, keyed by that deep-frozen object
 * (so an entry goes with its payload). A frozen payload's text cannot change, so the entry's hash,
 * its outbox row and its chain row reuse it: before, one entry's payload was canonicalized five
 * times between record and chain (issue 17: 49 canonicalizations per command round trip, 26 of
 * them the audit's).
 */
const canonicalPayloads = new WeakMap<JsonObject, string>();

/** A payload's canonical JSON: the text `validAuditInput` computed for it, else computed here (audit depth limit). */
export function auditPayloadJson(payload: JsonObject): string {
  return canonicalPayloads.get(payload) ?? canonicalize(payload, { limits: { depthMax: auditLimits.depthMax - 1 } });
}

/**
 * The canonical text of a payload `validAuditInput` returned (deep-frozen, so the text is its own
 * for good), else undefined: a store that keeps such payloads by that text can hand the same
 * object back for a row holding exactly that text (SqlAuditStore's drain, issue 17).
 */
export function validatedAuditPayloadText(payload: JsonObject): string | undefined {
  return canonicalPayloads.get(payload);
}

/** The chain hash of an entry, computed over every field except `hash` itself. */
export function auditEntryHash(entry: Omit<AuditEntry, 'hash'>, sha256: Sha256): string {
  const unsigned = {
    seq: entry.seq, ts: entry.ts, kind: entry.kind, actor: entry.actor,
    subject: entry.subject, payload: entry.payload, prev_hash: entry.prev_hash,
  };
  const payloadText = canonicalPayloads.get(entry.payload);
  const text = payloadText === undefined
    ? canonicalize(unsigned, { limits: { depthMax: auditLimits.depthMax } })
    : canonicalEntryText(unsigned, payloadText);
  const digest = sha256(utf8.encode(auditHashDomain + text));
  assert(digest instanceof Uint8Array && digest.length === 32, 'sha256 must return 32 bytes');
  return toHex(digest);
}

/**
 * `canonicalize(unsigned)` for an entry whose payload's canonical text is known: the members in
 * RFC 8785 order (UTF-16 code units: actor < kind < payload < prev_hash < seq < subject < ts),
 * every other value canonicalized as it would be inside the object. audit-chain.test.ts holds
 * the two forms to the same bytes.
 */
function canonicalEntryText(unsigned: Omit<AuditEntry, 'hash'>, payloadText: string): string {
  return `{"actor":${canonicalScalar(unsigned.actor)},"kind":${canonicalScalar(unsigned.kind)},"payload":${payloadText},`
    + `"prev_hash":${canonicalScalar(unsigned.prev_hash)},"seq":${canonicalScalar(unsigned.seq)},`
    + `"subject":${canonicalScalar(unsigned.subject)},"ts":${canonicalScalar(unsigned.ts)}}`;
}

/**
 * canonicalize(value) for an entry's scalar members without a writer per call (six per entry
 * chained, issue 17): a safe integer's text, and JSON.stringify of a string without surrogates,
 * are what RFC 8785 (and canonicalize) write for them; anything else goes through canonicalize,
 * which refuses what it must.
 */
function canonicalScalar(value: string | number): string {
  if (typeof value === 'number') return Number.isSafeInteger(value) ? String(value) : canonicalize(value);
  return surrogatePattern.test(value) ? canonicalize(value) : JSON.stringify(value);
}

/** Any UTF-16 surrogate: such strings take canonicalize's path (it refuses lone ones). */
const surrogatePattern = /[\uD800-\uDFFF]/;

/**
 * The entry that follows `prev` (or the first entry when `prev` is undefined). The payload is
 * stored as its canonical JSON parsed back and frozen, so later mutation of the caller's object
 * cannot make the stored entry disagree with its hash.
 */
export function appendAuditEntry(prev: AuditEntry | undefined, input: AuditEntryInput, sha256: Sha256): AuditEntry {
  return linkAuditEntry(prev, validAuditInput(input), sha256);
}

/**
 * `input` checked, with its payload replaced by the frozen canonical copy that will be hashed.
 * Every field of the result has a canonical form (integers, an ASCII kind, well-formed names, a
 * payload canonicalized here), so linking it can no longer fail: an entry that could not be
 * hashed is refused on its own when it is queued, never later inside a batch.
 */
export function validAuditInput(input: AuditEntryInput): AuditEntryInput {
  checkInput(input);
  // A payload this function returned before is deep-frozen with its canonical text known: it
  // passed the checks below and canonicalizing and parsing it again would give an equal frozen
  // copy, so it is taken as it is (the drain re-checks every recorded input, issue 17).
  if (canonicalPayloads.has(input.payload)) return { ts: input.ts, kind: input.kind, actor: input.actor, subject: input.subject, payload: input.payload };
  let payloadText: string;
  try {
    payloadText = canonicalize(input.payload, { limits: { depthMax: auditLimits.depthMax - 1 } });
  } catch (error) {
    const cause = SdcError.is(error) ? error.code : 'unknown';
    throw new SdcError('AUDIT_ENTRY_INVALID', 'audit payload is not representable as canonical JSON', { path: 'payload', cause }, { cause: error });
  }
  const payloadBytes = utf8.encode(payloadText).length;
  if (payloadBytes > auditLimits.payloadBytesMax) {
    throw new SdcError('AUDIT_PAYLOAD_TOO_LARGE', `audit payload is ${payloadBytes} bytes, more than ${auditLimits.payloadBytesMax}`, { payloadBytes });
  }
  const payload = deepFreeze(JSON.parse(payloadText) as JsonObject);
  canonicalPayloads.set(payload, payloadText);
  return { ts: input.ts, kind: input.kind, actor: input.actor, subject: input.subject, payload };
}

/** The entry after `prev` for an input `validAuditInput` returned. */
function linkAuditEntry(prev: AuditEntry | undefined, input: AuditEntryInput, sha256: Sha256): AuditEntry {
  if (prev !== undefined) {
    assert(Number.isSafeInteger(prev.seq) && prev.seq >= 1 && hashPattern.test(prev.hash), 'previous audit entry must have a positive seq and a hex hash');
  }
  const unsigned = {
    seq: prev === undefined ? 1 : prev.seq + 1,
    ts: input.ts,
    kind: input.kind,
    actor: input.actor,
    subject: input.subject,
    payload: input.payload,
    prev_hash: prev === undefined ? auditGenesisHash : prev.hash,
  };
  return Object.freeze({ ...unsigned, hash: auditEntryHash(unsigned, sha256) });
}

function checkInput(input: AuditEntryInput): void {
  const bad = (path: string, problem: string): never => {
    throw new SdcError('AUDIT_ENTRY_INVALID', `audit entry ${path} ${problem}`, { path });
  };
  if (!isPlainObject(input)) bad('$', 'must be an object');
  if (!Number.isSafeInteger(input.ts) || input.ts < 0) bad('ts', 'must be a non-negative integer of Unix milliseconds');
  if (!isKind(input.kind)) bad('kind', `must be a lower-case dotted name of at most ${auditLimits.kindLengthMax} characters`);
  if (!isName(input.actor)) bad('actor', `must be a non-empty printable, well-formed string of at most ${auditLimits.nameLengthMax} characters`);
  if (!isName(input.subject)) bad('subject', `must be a non-empty printable, well-formed string of at most ${auditLimits.nameLengthMax} characters`);
  if (!isPlainObject(input.payload)) bad('payload', 'must be a JSON object');
}

// ---------------------------------------------------------------------------------------------
// Verification

/** `anchor_mismatch`: the chain does not hold a head from an anchor file (audit-anchors.ts); `head_mismatch`: one given alone. */
export type AuditBreak = 'hash_mismatch' | 'prev_hash_mismatch' | 'seq_gap' | 'seq_out_of_order' | 'bad_genesis' | 'malformed' | 'head_mismatch' | 'anchor_mismatch';

export type AuditVerifyResult =
  | { readonly ok: true; readonly count: number; readonly headSeq: number; readonly headHash: string }
  | { readonly ok: false; readonly firstBrokenSeq: number; readonly reason: AuditBreak; readonly detail: string };

export interface AuditAnchor {
  readonly seq: number;
  readonly hash: string;
}

export interface VerifyAuditChainOptions {
  /**
   * The head recorded somewhere the log's writer cannot rewrite (a signed checkpoint, another
   * system). Without it a chain with its tail cut off verifies as a shorter, valid chain.
   */
  readonly expectedHead?: AuditAnchor;
  /**
   * A trusted entry just before the first one given, to verify a suffix of the log from a
   * checkpoint instead of from the genesis entry.
   */
  readonly after?: AuditAnchor;
}

/**
 * Walks the entries in order, keeping only the previous hash and seq (O(1) memory, so it can
 * stream a log of any length), and stops at the first broken link. `firstBrokenSeq` is the seq
 * the chain should have had at that position: for a changed entry its own seq, for a removed
 * entry the missing seq, for two swapped entries the earlier position.
 */
export async function verifyAuditChain(
  entries: Iterable<unknown> | AsyncIterable<unknown>,
  sha256: Sha256,
  options: VerifyAuditChainOptions = {},
): Promise<AuditVerifyResult> {
  const { after, expectedHead } = options;
  for (const [name, anchor] of [['after', after], ['expectedHead', expectedHead]] as const) {
    if (anchor !== undefined) {
      assert(Number.isSafeInteger(anchor.seq) && anchor.seq >= (name === 'after' ? 1 : 0) && (hashPattern.test(anchor.hash)), `${name} must be a seq and a lower-case hex sha256`);
    }
  }
  let expectedSeq = after === undefined ? 1 : after.seq + 1;
  let prevHash = after === undefined ? auditGenesisHash : after.hash;
  let count = 0;
  const broken = (reason: AuditBreak, detail: string): AuditVerifyResult => ({ ok: false, firstBrokenSeq: expectedSeq, reason, detail });

  for await (const candidate of entries) {
    const problem = malformation(candidate);
    if (problem !== undefined) return broken('malformed', problem);
    const entry = candidate as AuditEntry;
    const genesis = expectedSeq === 1;
    if (entry.seq !== expectedSeq) {
      if (genesis) return broken('bad_genesis', `the first entry has seq ${entry.seq}, not 1`);
      return entry.seq > expectedSeq
        ? broken('seq_gap', `expected seq ${expectedSeq}, found ${entry.seq}`)
        : broken('seq_out_of_order', `expected seq ${expectedSeq}, found ${entry.seq}`);
    }
    const computed = hashOrUndefined(entry, sha256);
    if (computed === undefined) return broken('malformed', `entry ${entry.seq} is not representable as canonical JSON`);
    if (computed !== entry.hash) return broken('hash_mismatch', `entry ${entry.seq} hashes to ${computed}, but records ${entry.hash}`);
    if (entry.prev_hash !== prevHash) {
      return genesis
        ? broken('bad_genesis', `the first entry has prev_hash ${entry.prev_hash}, not 64 zeros`)
        : broken('prev_hash_mismatch', `entry ${entry.seq} has prev_hash ${entry.prev_hash}, but entry ${entry.seq - 1} hashes to ${prevHash}`);
    }
    prevHash = entry.hash;
    expectedSeq += 1;
    count += 1;
  }

  const headSeq = expectedSeq - 1;
  if (expectedHead !== undefined) {
    if (headSeq < expectedHead.seq) {
      return broken('head_mismatch', `the chain ends at seq ${headSeq}, before the anchored head ${expectedHead.seq}: its tail was removed`);
    }
    if (headSeq > expectedHead.seq) {
      return { ok: false, firstBrokenSeq: expectedHead.seq + 1, reason: 'head_mismatch', detail: `the chain continues past the anchored head ${expectedHead.seq} to seq ${headSeq}` };
    }
    if (prevHash !== expectedHead.hash) {
      return { ok: false, firstBrokenSeq: headSeq, reason: 'head_mismatch', detail: `entry ${headSeq} hashes to ${prevHash}, the anchor says ${expectedHead.hash}: the chain was rewritten at or before it` };
    }
  }
  return { ok: true, count, headSeq, headHash: prevHash };
}

/** The entry's chain hash, or undefined when a stored payload has no canonical JSON form. */
function hashOrUndefined(entry: AuditEntry, sha256: Sha256): string | undefined {
  try {
    return auditEntryHash(entry, sha256);
  } catch (error) {
    if (SdcError.is(error) && (error.code.startsWith('PROTO_JCS_') || error.code === 'PROTO_JSON_TOO_DEEP')) return undefined;
    throw error;
  }
}

/** Why `value` is not a well-formed entry, or undefined. A field outside the hash is malformed too. */
function malformation(value: unknown): string | undefined {
  if (!isPlainObject(value)) return 'entry is not an object';
  const keys = Object.keys(value);
  const extra = keys.find((key) => !(entryKeys as readonly string[]).includes(key));
  if (extra !== undefined) return `entry has a field outside the chain hash: ${extra}`;
  const missing = entryKeys.find((key) => !keys.includes(key));
  if (missing !== undefined) return `entry lacks ${missing}`;
  if (!Number.isSafeInteger(value.seq) || (value.seq as number) < 1) return 'seq is not a positive integer';
  if (!Number.isSafeInteger(value.ts) || (value.ts as number) < 0) return 'ts is not a non-negative integer';
  if (!isKind(value.kind)) return 'kind is not a dotted event name';
  if (!isName(value.actor)) return 'actor is not a printable name';
  if (!isName(value.subject)) return 'subject is not a printable name';
  if (!isPlainObject(value.payload)) return 'payload is not an object';
  if (typeof value.prev_hash !== 'string' || !hashPattern.test(value.prev_hash)) return 'prev_hash is not lower-case hex sha256';
  if (typeof value.hash !== 'string' || !hashPattern.test(value.hash)) return 'hash is not lower-case hex sha256';
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// The log over a store

/**
 * Where audit entries live. Adapters: InMemoryAuditStore here; SQL adapters elsewhere. `Tx` is
 * the adapter's transaction handle (opaque here), for the optional outbox.
 */
export interface AuditStore<Tx = unknown> {
  /** The entry with the highest seq, or undefined for an empty log. */
  head(): Promise<AuditEntry | undefined>;
  /** Stores `entry`; must refuse a seq that already exists with AUDIT_CONFLICT (a unique key). */
  append(entry: AuditEntry): Promise<void>;
  /**
   * Optional, for stores shared by several processes: reads the head and stores the entry
   * `next(head)` builds on it atomically, under a lock every writer of the store waits for, so
   * writers queue instead of racing for the next seq. Refuses like `append`; errors of `next`
   * pass through and store nothing.
   */
  appendAtHead?(next: (head: AuditEntry | undefined) => AuditEntry): Promise<AuditEntry>;
  /**
   * Optional group commit: `appendAtHead` for several entries. Reads the head under the same
   * lock, stores all the entries `next(head)` returns (consecutive seqs after the head) in one
   * atomic write and returns them: all are stored or none. Refuses like `append`; errors of
   * `next` pass through and store nothing. `next` builds on the head it is given, so a writer
   * never chains from a head another process has since moved past.
   */
  appendBatch?(next: (head: AuditEntry | undefined) => readonly AuditEntry[]): Promise<readonly AuditEntry[]>;
  /**
   * Optional transactional outbox, part one: keeps a validated input inside the caller's
   * transaction `tx`, so it commits or rolls back with the change it records. It takes no seq.
   */
  record?(tx: Tx, input: AuditEntryInput): Promise<void>;
  /** Optional: `record` for several inputs at once, kept in this order (one statement on SQL); a store without it gets `record` per input. */
  recordMany?(tx: Tx, inputs: readonly AuditEntryInput[]): Promise<void>;
  /**
   * Optional transactional outbox, part two: under the `appendBatch` lock, reads up to `limit`
   * recorded inputs (oldest first) and the head, stores the entries `next(head, inputs)` returns
   * (one per input, in order) and removes those inputs, in one atomic write; returns the
   * entries ([] when nothing is recorded). Each recorded input is chained exactly once, also
   * when several processes drain one store. Refuses like `appendBatch`.
   */
  appendRecorded?(next: (head: AuditEntry | undefined, inputs: readonly AuditEntryInput[]) => readonly AuditEntry[], limit: number): Promise<readonly AuditEntry[]>;
  /** Up to `limit` entries with seq >= fromSeq, in ascending seq order. */
  scan(fromSeq: number, limit: number): Promise<AuditEntry[]>;
}

export const auditScanLimitMax = 10_000;

/** An AuditStore in memory, for tests, the simulator and single-process demos. */
export class InMemoryAuditStore implements AuditStore {
  private readonly entries: AuditEntry[] = [];
  private readonly entriesMax: number;

  constructor(options: { entriesMax?: number } = {}) {
    this.entriesMax = options.entriesMax ?? 1_000_000;
    assert(Number.isSafeInteger(this.entriesMax) && this.entriesMax > 0, 'entriesMax must be a positive integer');
  }

  async head(): Promise<AuditEntry | undefined> {
    return this.entries.at(-1);
  }

  async append(entry: AuditEntry): Promise<void> {
    assert(Number.isSafeInteger(entry.seq) && entry.seq >= 1, 'audit entry seq must be a positive integer');
    const index = this.lowerBound(entry.seq);
    if (this.entries[index]?.seq === entry.seq) {
      throw new SdcError('AUDIT_CONFLICT', `audit entry ${entry.seq} already exists`, { seq: entry.seq });
    }
    if (this.entries.length >= this.entriesMax) {
      throw new SdcError('AUDIT_STORE_FULL', `the in-memory audit store holds its maximum of ${this.entriesMax} entries`, { entriesMax: this.entriesMax });
    }
    this.entries.splice(index, 0, entry);
  }

  async appendBatch(next: (head: AuditEntry | undefined) => readonly AuditEntry[]): Promise<readonly AuditEntry[]> {
    const head = this.entries.at(-1);
    const batch = next(head);
    // Checked before the first insert, so a refused batch stores nothing.
    let expectedSeq = head === undefined ? 1 : head.seq + 1;
    for (const entry of batch) {
      if (entry.seq !== expectedSeq) {
        throw new SdcError('AUDIT_CONFLICT', `audit batch entry has seq ${entry.seq}, the store expects ${expectedSeq}`, { seq: entry.seq });
      }
      expectedSeq += 1;
    }
    if (this.entries.length + batch.length > this.entriesMax) {
      throw new SdcError('AUDIT_STORE_FULL', `the in-memory audit store holds its maximum of ${this.entriesMax} entries`, { entriesMax: this.entriesMax });
    }
    this.entries.push(...batch);
    return batch;
  }

  async scan(fromSeq: number, limit: number): Promise<AuditEntry[]> {
    assert(Number.isSafeInteger(fromSeq) && Number.isSafeInteger(limit) && limit >= 1 && limit <= auditScanLimitMax,
      `scan needs an integer fromSeq and a limit in 1..${auditScanLimitMax}`);
    const start = this.lowerBound(fromSeq);
    return this.entries.slice(start, start + limit);
  }

  /** Index of the first entry whose seq is >= `seq`. */
  private lowerBound(seq: number): number {
    let low = 0;
    let high = this.entries.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.entries[middle]!.seq < seq) low = middle + 1;
      else high = middle;
    }
    return low;
  }
}

/** Attempts of one append (or batch) that keeps losing its seq to other writers before AUDIT_CONFLICT is returned. */
const appendConflictRetriesMax = 16;

export interface AuditLogOptions<Tx = unknown> {
  readonly store: AuditStore<Tx>;
  readonly sha256: Sha256;
  readonly clock: Clock;
  /** Appends queued or being written before new ones are refused with AUDIT_BUSY. */
  readonly pendingAppendsMax?: number;
  /** Entries written in one store call when the store has `appendBatch` (and per outbox batch). */
  readonly batchEntriesMax?: number;
  /**
   * Outbox batches one drain pass chains before queued appends get their turn (a backlog left by
   * a crash is chained in several passes instead of starving every other audit write).
   */
  readonly drainBatchesPerPassMax?: number;
  /** Entries read per store call while verifying. */
  readonly verifyPageEntries?: number;
}

interface QueuedAppend {
  /** Validated, stamped with the clock when `append` was called. */
  readonly input: AuditEntryInput;
  readonly resolve: (entry: AuditEntry) => void;
  readonly reject: (error: unknown) => void;
}

/** Everyone waiting for the next drain of the outbox: one promise, however many callers. */
interface DrainWaiters {
  readonly done: Promise<number>;
  resolve(chained: number): void;
  reject(error: unknown): void;
}

function newDrainWaiters(): DrainWaiters {
  let resolve!: (chained: number) => void;
  let reject!: (error: unknown) => void;
  const done = new Promise<number>((res, rej) => { resolve = res; reject = rej; });
  // Callers get the rejection from their own await; a drain nobody awaits must not crash the process.
  done.catch(() => undefined);
  return { done, resolve, reject };
}

/**
 * Appends to and verifies one audit chain in a store. Appends are queued in call order and
 * written by one writer loop: two writers reading the same head would otherwise both write seq
 * n+1 and fork the chain. When the store has `appendBatch`, the appends that queued while a
 * write was in flight are chained together on the head the store reads under its lock and
 * written in one store call (group commit): one transaction and one save for many entries.
 * Across processes the store's lock (`appendBatch`, `appendAtHead`) or its unique seq
 * (AUDIT_CONFLICT, retried) is the guard.
 *
 * With a store that has an outbox (`record`, `appendRecorded`), a change and its audit entry
 * commit together: `record(tx, input)` keeps the input in the caller's transaction, and
 * `drainRecorded()` (after the commit, at start, and periodically) moves recorded inputs into
 * the chain through the same writer. A crash between the two leaves the input recorded, and the
 * next drain, in this process or another, chains it.
 */
export class AuditLog<Tx = unknown> {
  private readonly store: AuditStore<Tx>;
  private readonly sha256: Sha256;
  private readonly clock: Clock;
  private readonly pendingAppendsMax: number;
  private readonly batchEntriesMax: number;
  private readonly drainBatchesPerPassMax: number;
  private readonly verifyPageEntries: number;
  private readonly queue: QueuedAppend[] = [];
  /** Queued plus being written; bounded by pendingAppendsMax. */
  private pending = 0;
  private writing = false;
  /** Callers of drainRecorded() not yet served by a drain pass that started after their call. */
  private drainWanted: DrainWaiters | undefined;

  constructor(options: AuditLogOptions<Tx>) {
    this.store = options.store;
    this.sha256 = options.sha256;
    this.clock = options.clock;
    this.pendingAppendsMax = options.pendingAppendsMax ?? 1_024;
    this.batchEntriesMax = options.batchEntriesMax ?? 256;
    this.drainBatchesPerPassMax = options.drainBatchesPerPassMax ?? 16;
    this.verifyPageEntries = options.verifyPageEntries ?? 1_000;
    assert(Number.isSafeInteger(this.pendingAppendsMax) && this.pendingAppendsMax >= 1, 'pendingAppendsMax must be a positive integer');
    assert(Number.isSafeInteger(this.batchEntriesMax) && this.batchEntriesMax >= 1, 'batchEntriesMax must be a positive integer');
    assert(Number.isSafeInteger(this.drainBatchesPerPassMax) && this.drainBatchesPerPassMax >= 1, 'drainBatchesPerPassMax must be a positive integer');
    assert(Number.isSafeInteger(this.verifyPageEntries) && this.verifyPageEntries >= 1 && this.verifyPageEntries <= auditScanLimitMax,
      `verifyPageEntries must be an integer in 1..${auditScanLimitMax}`);
  }

  /**
   * Appends an entry stamped with the clock's time; resolves to the entry once the store holds
   * it. Entries chain in call order. An invalid input (one that could not be hashed, such as a
   * name with a lone surrogate) is refused here and takes no seq, so it never fails the batch
   * it would have joined.
   */
  append(input: Omit<AuditEntryInput, 'ts'>): Promise<AuditEntry> {
    if (this.pending >= this.pendingAppendsMax) {
      return Promise.reject(new SdcError('AUDIT_BUSY', `${this.pending} audit appends are already waiting`, { pending: this.pending }));
    }
    let valid: AuditEntryInput;
    try {
      valid = validAuditInput({ ...input, ts: this.clock.nowMs() });
    } catch (error) {
      return Promise.reject(error);
    }
    this.pending += 1;
    const settled = new Promise<AuditEntry>((resolve, reject) => { this.queue.push({ input: valid, resolve, reject }); });
    this.startWriter();
    return settled;
  }

  /**
   * Keeps `input`, stamped with the clock's time, in the store's outbox inside the caller's
   * transaction `tx`: the entry will exist if and only if that transaction commits. An invalid
   * input is refused here (AUDIT_ENTRY_INVALID, AUDIT_PAYLOAD_TOO_LARGE), failing the caller's
   * transaction, so nothing is changed without its entry. Call `drainRecorded()` after the commit.
   */
  async record(tx: Tx, input: Omit<AuditEntryInput, 'ts'>): Promise<void> {
    assert(this.store.record !== undefined && this.store.appendRecorded !== undefined, 'record() needs an audit store with an outbox');
    await this.store.record(tx, validAuditInput({ ...input, ts: this.clock.nowMs() }));
  }

  /**
   * `record` for several inputs in the caller's one transaction, kept in this order (a group
   * commit of changes, each with its entry). Every input is validated first: one invalid input
   * refuses them all, failing the caller's transaction.
   */
  async recordMany(tx: Tx, inputs: ReadonlyArray<Omit<AuditEntryInput, 'ts'>>): Promise<void> {
    assert(this.store.record !== undefined && this.store.appendRecorded !== undefined, 'recordMany() needs an audit store with an outbox');
    if (inputs.length === 0) return;
    const ts = this.clock.nowMs();
    const valid = inputs.map((input) => validAuditInput({ ...input, ts }));
    if (this.store.recordMany !== undefined) {
      await this.store.recordMany(tx, valid);
      return;
    }
    for (const input of valid) await this.store.record(tx, input);
  }

  /**
   * Chains every input recorded (committed) before this call, oldest first, through the one
   * writer; resolves with how many entries the serving drain pass chained. Calls made while a
   * pass runs share the next pass (one store transaction per batch, however many callers).
   * Rejects when the store fails: the inputs stay recorded and a later drain chains them.
   * Resolves at once with 0 for a store without an outbox.
   */
  drainRecorded(): Promise<number> {
    if (this.store.appendRecorded === undefined) return Promise.resolve(0);
    this.drainWanted ??= newDrainWaiters();
    const { done } = this.drainWanted;
    this.startWriter();
    return done;
  }

  private startWriter(): void {
    if (this.writing) return;
    this.writing = true;
    void this.writeQueued();
  }

  /** The one writer: alternates append batches and drain passes; settles every caller and never throws. */
  private async writeQueued(): Promise<void> {
    try {
      // The appends made in the caller's turn join the first batch.
      await Promise.resolve();
      while (this.queue.length > 0 || this.drainWanted !== undefined) {
        if (this.queue.length > 0) await this.writeNextBatch();
        if (this.drainWanted !== undefined) await this.drainPass();
      }
    } finally {
      this.writing = false;
    }
  }

  private async writeNextBatch(): Promise<void> {
    const batch = this.queue.splice(0, this.store.appendBatch === undefined ? 1 : this.batchEntriesMax);
    try {
      const entries = await this.retryingConflicts(() => this.writeOnce(batch.map((queued) => queued.input)));
      assert(entries.length === batch.length, `the audit store wrote ${entries.length} entries for a batch of ${batch.length}`);
      batch.forEach((queued, index) => queued.resolve(entries[index]!));
    } catch (error) {
      // Nothing of the batch was stored (a store failure: every input was valid when queued);
      // the next batch chains on the head the store reads.
      for (const queued of batch) queued.reject(error);
    } finally {
      this.pending -= batch.length;
    }
  }

  /**
   * One drain for the callers waiting when it starts: outbox batches until a short one (all
   * recorded inputs chained) or the per-pass bound, after which queued appends go first and the
   * same callers wait for the next pass.
   */
  private async drainPass(): Promise<void> {
    const waiters = this.drainWanted!;
    this.drainWanted = undefined;
    const appendRecorded = this.store.appendRecorded!.bind(this.store);
    const chain = (head: AuditEntry | undefined, inputs: readonly AuditEntryInput[]): AuditEntry[] =>
      this.chainOn(head, inputs.map((input) => this.recordedInput(input)));
    let chained = 0;
    try {
      for (let batches = 0; batches < this.drainBatchesPerPassMax; batches += 1) {
        const entries = await this.retryingConflicts(() => appendRecorded(chain, this.batchEntriesMax));
        chained += entries.length;
        if (entries.length < this.batchEntriesMax) {
          waiters.resolve(chained);
          return;
        }
      }
    } catch (error) {
      waiters.reject(error);
      return;
    }
    // Reassigned by drainRecorded() calls during the awaits above (the compiler cannot see that).
    const later = this.drainWanted as DrainWaiters | undefined;
    if (later === undefined) this.drainWanted = waiters;
    else later.done.then(waiters.resolve, waiters.reject);
  }

  /**
   * A recorded input as it is chained: itself, checked again (a row in the outbox table is
   * outside this process's control), or, when it cannot be hashed, an `audit.record_invalid`
   * entry in its place that names the problem, so one altered row neither blocks the outbox nor
   * fails the inputs batched with it, and the chain shows that something was lost.
   */
  private recordedInput(input: AuditEntryInput): AuditEntryInput {
    try {
      return validAuditInput(input);
    } catch (error) {
      const ts = Number.isSafeInteger(input.ts) && input.ts >= 0 ? input.ts : this.clock.nowMs();
      const problem: JsonObject = SdcError.is(error) ? { code: error.code, message: error.message } : { code: 'unknown' };
      return validAuditInput({ ts, kind: 'audit.record_invalid', actor: 'system', subject: 'audit:outbox', payload: problem });
    }
  }

  /**
   * Another process sharing the store (a second control plane on one MySQL) may take the seq
   * between our head read and our write: the loser reads the new head and links to it, a
   * bounded number of times, instead of failing the operations being audited. A store with
   * `appendBatch` or `appendAtHead` makes such races impossible (writers queue on its lock); the
   * retry remains for stores without them and for a lock row created concurrently on first use.
   */
  private async retryingConflicts<T>(write: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await write();
      } catch (error) {
        if (!SdcError.is(error, 'AUDIT_CONFLICT') || attempt >= appendConflictRetriesMax) throw error;
      }
    }
  }

  /** `inputs` linked after `head`, refusing to extend a head that does not verify. */
  private chainOn(head: AuditEntry | undefined, inputs: readonly AuditEntryInput[]): AuditEntry[] {
    if (head !== undefined) {
      // Extending a tampered head would bury the tampering under a valid-looking link.
      const problem = malformation(head);
      if (problem !== undefined || hashOrUndefined(head, this.sha256) !== head.hash) {
        throw new SdcError('AUDIT_CHAIN_BROKEN', `the audit head does not verify: ${problem ?? 'hash mismatch'}`, { seq: head.seq });
      }
    }
    const entries: AuditEntry[] = [];
    for (const input of inputs) entries.push(linkAuditEntry(entries.at(-1) ?? head, input, this.sha256));
    return entries;
  }

  private async writeOnce(inputs: readonly AuditEntryInput[]): Promise<readonly AuditEntry[]> {
    const chain = (head: AuditEntry | undefined): AuditEntry[] => this.chainOn(head, inputs);
    if (this.store.appendBatch !== undefined) return this.store.appendBatch(chain);
    assert(inputs.length === 1, 'a store without appendBatch is written one entry at a time');
    if (this.store.appendAtHead !== undefined) return [await this.store.appendAtHead((head) => chain(head)[0]!)];
    const entries = chain(await this.store.head());
    await this.store.append(entries[0]!);
    return entries;
  }

  async head(): Promise<AuditEntry | undefined> {
    return this.store.head();
  }

  /** Verifies the whole stored chain page by page (memory bounded by one page). */
  async verify(options: Pick<VerifyAuditChainOptions, 'expectedHead'> = {}): Promise<AuditVerifyResult> {
    return verifyAuditChain(this.scanAll(), this.sha256, options);
  }

  private async *scanAll(): AsyncGenerator<AuditEntry> {
    let fromSeq = 1;
    for (;;) {
      const page = await this.store.scan(fromSeq, this.verifyPageEntries);
      yield* page;
      const last = page.at(-1);
      // A page that does not advance would loop forever; the verifier has already flagged it.
      if (page.length < this.verifyPageEntries || last === undefined || !Number.isSafeInteger(last.seq) || last.seq < fromSeq) return;
      fromSeq = last.seq + 1;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Small helpers

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const prototype = Object.getPrototypeOf(value) as unknown;
  return prototype === Object.prototype || prototype === null;
}

function isKind(value: unknown): value is string {
  return typeof value === 'string' && value.length <= auditLimits.kindLengthMax && kindPattern.test(value);
}

function isName(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= auditLimits.nameLengthMax && !/[\u0000-\u001f\u007f]/.test(value)
    && !hasLoneSurrogate(value);
}

const loneSurrogatePattern = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/**
 * True when `text` holds a UTF-16 surrogate without its partner: RFC 8785 (and UTF-8) cannot
 * encode it, so an entry holding one could never be hashed.
 */
export function hasLoneSurrogate(text: string): boolean {
  return loneSurrogatePattern.test(text);
}

const hexDigits = '0123456789abcdef';

function toHex(bytes: Uint8Array): string {
  let out = '';
  for (const byte of bytes) out += hexDigits[byte >> 4]! + hexDigits[byte & 15]!;
  return out;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const member of Object.values(value)) deepFreeze(member);
    Object.freeze(value);
  }
  return value;
}
