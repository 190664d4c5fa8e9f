import { beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { SdcError } from '../../../core/errors/index.js';
import type { ErrorCode } from '../../../core/errors/registry.js';
import {
  appendAuditEntry, auditScanLimitMax, validAuditInput, verifyAuditChain, type AuditEntry, type AuditEntryInput, type AuditStore,
} from '../../../core/protocol/audit-chain.js';

const sha256 = (bytes: Uint8Array): Uint8Array => new Uint8Array(createHash('sha256').update(bytes).digest());

export interface AuditStoreContractTarget<Tx> {
  /** A store over an empty log (and an empty outbox). */
  create(): Promise<AuditStore<Tx>>;
  /**
   * Runs `fn` in one of the store's transactions (committed when it resolves, rolled back when it
   * throws), for the outbox checks. Absent for a store without an outbox: the adapter's test
   * file says why.
   */
  readonly transaction?: (fn: (tx: Tx) => Promise<void>) => Promise<void>;
}

/** Inputs whose payloads exercise canonical JSON: key order, astral characters, nesting, -0, big integers. */
function input(i: number, overrides: Partial<AuditEntryInput> = {}): AuditEntryInput {
  return {
    ts: 1_700_000_000_000 + i, kind: 'contract.entry', actor: `user:tester-${i}`, subject: `command:${i}`,
    payload: { z: i, a: { list: [true, null, -0, 9_007_199_254_740_991], text: 'é \ud83d\ude00 "quoted"' } }, ...overrides,
  };
}

/** An input as AuditLog.record hands it to the store: validated, its payload in canonical form. */
function recorded(i: number): AuditEntryInput {
  return validAuditInput(input(i));
}

/** Entries i = first..first+count-1 chained after `head`. */
function chainAfter(head: AuditEntry | undefined, first: number, count: number): AuditEntry[] {
  const entries: AuditEntry[] = [];
  for (let i = first; i < first + count; i += 1) entries.push(appendAuditEntry(entries.at(-1) ?? head, input(i), sha256));
  return entries;
}

async function rejectsWithCode(promise: Promise<unknown>, code: ErrorCode): Promise<void> {
  await assert.rejects(promise, (error: unknown) => SdcError.is(error, code));
}

/** The behaviour every AuditStore adapter has (optional methods when it has them). */
export function runAuditStoreContract<Tx>(name: string, target: AuditStoreContractTarget<Tx>): void {
  describe(`AuditStore contract: ${name}`, () => {
    let store: AuditStore<Tx>;
    beforeEach(async () => {
      store = await target.create();
    });

    it('an empty store has no head and scans nothing', async () => {
      assert.equal(await store.head(), undefined);
      assert.deepEqual(await store.scan(1, 10), []);
    });

    it('stores entries exactly as hashed, scans them in seq order within the limit, and names the last as head', async () => {
      const entries = chainAfter(undefined, 1, 5);
      for (const entry of [entries[0]!, entries[2]!, entries[1]!, entries[4]!, entries[3]!]) await store.append(entry);
      assert.deepEqual(await store.scan(1, 10), entries);
      assert.deepEqual(await store.scan(2, 2), entries.slice(1, 3));
      assert.deepEqual(await store.scan(6, 10), []);
      assert.deepEqual(await store.head(), entries[4]);
      assert.equal((await verifyAuditChain(await store.scan(1, 10), sha256)).ok, true);
    });

    it('refuses a seq it already holds with AUDIT_CONFLICT, keeping the first', async () => {
      const [first] = chainAfter(undefined, 1, 1);
      await store.append(first!);
      const [rival] = chainAfter(undefined, 2, 1);
      await rejectsWithCode(store.append(rival!), 'AUDIT_CONFLICT');
      assert.deepEqual(await store.scan(1, 10), [first]);
    });

    it('refuses a scan limit outside 1..auditScanLimitMax', async () => {
      await assert.rejects(store.scan(1, 0));
      await assert.rejects(store.scan(1, auditScanLimitMax + 1));
    });

    it('appendAtHead, where present, chains on the stored head and passes errors of next through, storing nothing', async (t) => {
      const appendAtHead = store.appendAtHead?.bind(store);
      if (appendAtHead === undefined) return t.skip('this adapter has no appendAtHead');
      const first = await appendAtHead((head) => { assert.equal(head, undefined); return chainAfter(head, 1, 1)[0]!; });
      const second = await appendAtHead((head) => { assert.deepEqual(head, first); return chainAfter(head, 2, 1)[0]!; });
      await assert.rejects(appendAtHead(() => { throw new Error('refused by next'); }), /refused by next/);
      assert.deepEqual(await store.scan(1, 10), [first, second]);
    });

    it('appendBatch, where present, stores a batch on the current head whole, or nothing of it', async (t) => {
      const appendBatch = store.appendBatch?.bind(store);
      if (appendBatch === undefined) return t.skip('this adapter has no appendBatch');
      const first = await appendBatch((head) => chainAfter(head, 1, 3));
      assert.deepEqual(first.map((e) => e.seq), [1, 2, 3]);
      await assert.rejects(appendBatch(() => { throw new Error('refused by next'); }), /refused by next/);
      // A batch that restarts at seq 1 conflicts with what is stored and leaves no part of itself.
      await rejectsWithCode(appendBatch(() => chainAfter(undefined, 10, 5)), 'AUDIT_CONFLICT');
      const second = await appendBatch((head) => { assert.deepEqual(head, first[2]); return chainAfter(head, 4, 100); });
      assert.deepEqual(await store.scan(1, 1000), [...first, ...second]);
      assert.equal((await verifyAuditChain(await store.scan(1, 1000), sha256)).ok, true);
    });

    it('outbox, where present: what a committed transaction recorded is chained once, in order; a rolled-back one leaves nothing', async (t) => {
      const { transaction } = target;
      const record = store.record?.bind(store);
      const appendRecorded = store.appendRecorded?.bind(store);
      if (transaction === undefined || record === undefined || appendRecorded === undefined) return t.skip('this adapter has no outbox');
      await transaction(async (tx) => { await record(tx, recorded(1)); await record(tx, recorded(2)); });
      await assert.rejects(transaction(async (tx) => { await record(tx, recorded(3)); throw new Error('rolled back'); }), /rolled back/);
      await transaction(async (tx) => { await record(tx, recorded(4)); });
      const seen: AuditEntryInput[][] = [];
      const chain = (head: AuditEntry | undefined, inputs: readonly AuditEntryInput[]): AuditEntry[] => {
        seen.push([...inputs]);
        const entries: AuditEntry[] = [];
        for (const each of inputs) entries.push(appendAuditEntry(entries.at(-1) ?? head, each, sha256));
        return entries;
      };
      const firstTwo = await appendRecorded(chain, 2);
      assert.deepEqual(seen[0], [recorded(1), recorded(2)], 'inputs come back exactly as recorded, oldest first, at most limit');
      const rest = await appendRecorded(chain, 10);
      assert.deepEqual(seen[1], [recorded(4)]);
      assert.deepEqual(await appendRecorded(chain, 10), [], 'each input is chained once');
      assert.deepEqual((await store.scan(1, 10)).map((e) => e.subject), ['command:1', 'command:2', 'command:4']);
      assert.deepEqual(await store.scan(1, 10), [...firstTwo, ...rest]);
    });

    it('outbox, where present: an error of next leaves the inputs recorded for the next drain', async (t) => {
      const { transaction } = target;
      const record = store.record?.bind(store);
      const appendRecorded = store.appendRecorded?.bind(store);
      if (transaction === undefined || record === undefined || appendRecorded === undefined) return t.skip('this adapter has no outbox');
      await transaction(async (tx) => { await record(tx, recorded(1)); });
      await assert.rejects(appendRecorded(() => { throw new Error('crashed before the chain append'); }, 10), /crashed/);
      assert.deepEqual(await store.scan(1, 10), []);
      const entries = await appendRecorded((head, inputs) => inputs.map((each) => appendAuditEntry(head, each, sha256)), 10);
      assert.deepEqual(entries.map((e) => e.subject), ['command:1']);
    });

    it('outbox, where present: concurrent drains of one store chain every input exactly once, as one chain', async (t) => {
      const { transaction } = target;
      const record = store.record?.bind(store);
      const appendRecorded = store.appendRecorded?.bind(store);
      if (transaction === undefined || record === undefined || appendRecorded === undefined) return t.skip('this adapter has no outbox');
      const count = 60;
      for (let i = 0; i < count; i += 1) await transaction(async (tx) => { await record(tx, recorded(i)); });
      const chain = (head: AuditEntry | undefined, inputs: readonly AuditEntryInput[]): AuditEntry[] => {
        const entries: AuditEntry[] = [];
        for (const each of inputs) entries.push(appendAuditEntry(entries.at(-1) ?? head, each, sha256));
        return entries;
      };
      const drainer = async (): Promise<void> => {
        for (let round = 0; round < count; round += 1) {
          try {
            if ((await appendRecorded(chain, 7)).length === 0) return;
          } catch (error) {
            // Losing the race for the lock row on first use is AUDIT_CONFLICT, which AuditLog retries.
            if (!SdcError.is(error, 'AUDIT_CONFLICT')) throw error;
          }
        }
      };
      await Promise.all([drainer(), drainer(), drainer()]);
      const stored = await store.scan(1, 1000);
      assert.deepEqual(stored.map((e) => e.subject).sort(), Array.from({ length: count }, (_, i) => `command:${i}`).sort());
      assert.equal((await verifyAuditChain(stored, sha256)).ok, true);
    });
  });
}
