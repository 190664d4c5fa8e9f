import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';
import { SdcError } from '../errors/index.js';
import {
  AuditLog, InMemoryAuditStore, appendAuditEntry, auditEntryHash, validAuditInput, auditPayloadJson, auditGenesisHash, auditLimits, verifyAuditChain,
  type AuditEntry, type AuditEntryInput, type AuditStore,
} from './audit-chain.js';
import { canonicalize } from './canonical-json.js';
import type { JsonObject } from './json-value.js';

const sha256 = (bytes: Uint8Array): Uint8Array => new Uint8Array(createHash('sha256').update(bytes).digest());

function input(overrides: Partial<AuditEntryInput> = {}): AuditEntryInput {
  return { ts: 1_700_000_000_000, kind: 'command.sent', actor: 'user:alice', subject: 'device:lab-1', payload: { a: 1 }, ...overrides };
}

function buildChain(inputs: readonly AuditEntryInput[]): AuditEntry[] {
  const chain: AuditEntry[] = [];
  for (const each of inputs) chain.push(appendAuditEntry(chain.at(-1), each, sha256));
  return chain;
}

function flipHex(hex: string): string {
  return (hex[0] === '0' ? '1' : '0') + hex.slice(1);
}

describe('appendAuditEntry', () => {
  it('hashes the domain tag and the canonical entry without its hash (independent vector)', () => {
    const entry = appendAuditEntry(undefined, input({ payload: { b: [true, null], a: 1 } }), sha256);
    const canonical = '{"actor":"user:alice","kind":"command.sent","payload":{"a":1,"b":[true,null]},'
      + `"prev_hash":"${'0'.repeat(64)}","seq":1,"subject":"device:lab-1","ts":1700000000000}`;
    const expected = createHash('sha256').update(`sdc-audit-v1\n${canonical}`, 'utf8').digest('hex');
    assert.equal(entry.hash, expected);
    assert.equal(entry.prev_hash, auditGenesisHash);
    assert.equal(entry.seq, 1);
    // Any SHA-256 implementation gives the same chain.
    assert.equal(appendAuditEntry(undefined, input({ payload: { b: [true, null], a: 1 } }), nobleSha256).hash, expected);
  });

  it('links each entry to the previous hash and counts seq up', () => {
    const [first, second, third] = buildChain([input(), input({ kind: 'command.ack' }), input({ kind: 'command.result' })]);
    assert.ok(first && second && third);
    assert.deepEqual([first.seq, second.seq, third.seq], [1, 2, 3]);
    assert.equal(second.prev_hash, first.hash);
    assert.equal(third.prev_hash, second.hash);
    assert.equal(third.hash, auditEntryHash(third, sha256));
  });

  it('stores a frozen canonical copy of the payload, so later mutation changes nothing', () => {
    const payload: JsonObject = { envelope: { sig: 'abc', body: { n: -0 } } };
    const entry = appendAuditEntry(undefined, input({ payload }), sha256);
    (payload.envelope as JsonObject).sig = 'forged';
    assert.equal((entry.payload.envelope as JsonObject).sig, 'abc');
    assert.ok(Object.isFrozen(entry) && Object.isFrozen(entry.payload) && Object.isFrozen(entry.payload.envelope));
    assert.equal(Object.is((entry.payload.envelope as { body: { n: number } }).body.n, -0), false);
  });

  it('hashes and stores an entry from its payload\'s kept canonical text exactly as from a fresh copy (issue 17)', () => {
    const names = fc.string({ minLength: 1, maxLength: 12 }).filter((name) => /^[\x20-\x7e]+$/.test(name) || /^[\u00a0-\u00ff]+$/.test(name));
    fc.assert(fc.property(
      fc.record({
        ts: fc.nat(),
        kind: fc.constantFrom('command.sent', 'a', 'x9.y-z_w'),
        actor: names,
        subject: names,
        payload: fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 5 }) as fc.Arbitrary<JsonObject>,
      }),
      fc.nat({ max: 1_000 }),
      (each, previousSeq) => {
        const prev = previousSeq === 0 ? undefined : appendAuditEntry(undefined, input(), sha256);
        const entry = appendAuditEntry(prev === undefined ? undefined : { ...prev, seq: previousSeq }, each, sha256);
        // A structurally equal copy has no kept text: the hash and the stored payload are computed afresh.
        const copy = JSON.parse(JSON.stringify(entry)) as AuditEntry;
        assert.equal(auditEntryHash(copy, sha256), entry.hash);
        assert.equal(auditPayloadJson(entry.payload), canonicalize(copy.payload));
        assert.equal(auditPayloadJson(copy.payload), canonicalize(copy.payload));
      },
    ), { numRuns: 300 });
  });

  it('checks an input whose payload it returned before without copying the payload again, and chains it to the same bytes (issue 17)', () => {
    const first = validAuditInput(input({ actor: 'user:"q\\😀é', payload: { b: [1, 'x'], a: { c: null } } }));
    const again = validAuditInput({ ...first, ts: first.ts + 1 });
    assert.equal(again.payload, first.payload);
    assert.equal(again.ts, first.ts + 1);
    const fresh = validAuditInput(JSON.parse(JSON.stringify(first)) as AuditEntryInput);
    assert.notEqual(fresh.payload, first.payload);
    assert.deepEqual(appendAuditEntry(undefined, first, sha256), appendAuditEntry(undefined, fresh, sha256));
    // The scalar members of the hashed text as canonicalize writes them (quotes, backslash, a surrogate pair).
    const entry = appendAuditEntry(undefined, first, sha256);
    assert.equal(auditEntryHash(JSON.parse(JSON.stringify(entry)) as AuditEntry, sha256), entry.hash);
    assert.throws(() => validAuditInput({ ...first, kind: 'Bad Kind' }), (error: unknown) => SdcError.is(error, 'AUDIT_ENTRY_INVALID'));
  });

  it('refuses malformed input with AUDIT_ENTRY_INVALID naming the field', () => {
    const cases: Array<[Partial<AuditEntryInput>, string]> = [
      [{ ts: -1 }, 'ts'],
      [{ ts: 1.5 }, 'ts'],
      [{ kind: 'Command Sent' }, 'kind'],
      [{ kind: 'x'.repeat(auditLimits.kindLengthMax + 1) }, 'kind'],
      [{ actor: '' }, 'actor'],
      [{ subject: 'a\nb' }, 'subject'],
      [{ payload: [] as unknown as JsonObject }, 'payload'],
      [{ payload: { n: Number.NaN } }, 'payload'],
      [{ payload: { u: undefined } as unknown as JsonObject }, 'payload'],
    ];
    for (const [overrides, path] of cases) {
      assert.throws(() => appendAuditEntry(undefined, input(overrides), sha256), (error: unknown) =>
        SdcError.is(error, 'AUDIT_ENTRY_INVALID') && error.details.path === path, path);
    }
  });

  it('refuses a payload over the size limit', () => {
    const payload = { blob: 'x'.repeat(auditLimits.payloadBytesMax) };
    assert.throws(() => appendAuditEntry(undefined, input({ payload }), sha256), (error: unknown) => SdcError.is(error, 'AUDIT_PAYLOAD_TOO_LARGE'));
  });
});

describe('verifyAuditChain', () => {
  const inputArb: fc.Arbitrary<AuditEntryInput> = fc.record({
    ts: fc.integer({ min: 0, max: 4_102_444_800_000 }),
    kind: fc.constantFrom('command.sent', 'command.ack', 'command.result', 'policy.denied'),
    actor: fc.constantFrom('user:alice', 'device:lab-1', 'system'),
    subject: fc.constantFrom('device:lab-1', 'command:c1'),
    payload: fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 }) as fc.Arbitrary<JsonObject>,
  });
  const chainArb = fc.array(inputArb, { minLength: 1, maxLength: 12 }).map(buildChain);

  it('accepts every honestly built chain and reports its head', async () => {
    await fc.assert(fc.asyncProperty(chainArb, async (chain) => {
      const result = await verifyAuditChain(chain, sha256);
      assert.deepEqual(result, { ok: true, count: chain.length, headSeq: chain.length, headHash: chain.at(-1)!.hash });
      assert.deepEqual(await verifyAuditChain(chain, sha256, { expectedHead: { seq: chain.length, hash: chain.at(-1)!.hash } }), result);
    }), { numRuns: 200 });
  });

  it('accepts an empty chain, whose head is the genesis hash', async () => {
    assert.deepEqual(await verifyAuditChain([], sha256), { ok: true, count: 0, headSeq: 0, headHash: auditGenesisHash });
  });

  type Field = 'seq' | 'ts' | 'kind' | 'actor' | 'subject' | 'payload' | 'prev_hash' | 'hash';
  const fields: Field[] = ['seq', 'ts', 'kind', 'actor', 'subject', 'payload', 'prev_hash', 'hash'];
  function changeField(entry: AuditEntry, field: Field, seqDelta: number): Record<string, unknown> {
    const changed: Record<string, unknown> = { ...entry };
    switch (field) {
      case 'seq': changed.seq = entry.seq + seqDelta; break;
      case 'ts': changed.ts = entry.ts + 1; break;
      case 'kind': case 'actor': case 'subject': changed[field] = `${entry[field]}x`; break;
      case 'payload': changed.payload = { tampered: entry.payload }; break;
      case 'prev_hash': case 'hash': changed[field] = flipHex(entry[field]); break;
    }
    return changed;
  }

  it('names the changed entry when any field of any entry changes', async () => {
    await fc.assert(fc.asyncProperty(
      chainArb.chain((chain) => fc.tuple(fc.constant(chain), fc.nat(chain.length - 1))),
      fc.constantFrom(...fields),
      fc.integer({ min: -3, max: 3 }).filter((d) => d !== 0),
      async ([chain, index], field, seqDelta) => {
        const tampered: unknown[] = [...chain];
        tampered[index] = changeField(chain[index]!, field, seqDelta);
        const result = await verifyAuditChain(tampered, sha256);
        assert.equal(result.ok, false);
        if (!result.ok) assert.equal(result.firstBrokenSeq, index + 1, `${field}: ${result.reason} ${result.detail}`);
      },
    ), { numRuns: 500 });
  });

  it('names the missing seq when an entry other than the last is removed', async () => {
    await fc.assert(fc.asyncProperty(
      chainArb.filter((c) => c.length >= 2).chain((chain) => fc.tuple(fc.constant(chain), fc.nat(chain.length - 2))),
      async ([chain, index]) => {
        const result = await verifyAuditChain(chain.filter((_, i) => i !== index), sha256);
        assert.equal(result.ok, false);
        if (!result.ok) {
          assert.equal(result.firstBrokenSeq, index + 1);
          assert.equal(result.reason, index === 0 ? 'bad_genesis' : 'seq_gap');
        }
      },
    ), { numRuns: 300 });
  });

  it('names the earlier position when two entries are swapped', async () => {
    await fc.assert(fc.asyncProperty(
      chainArb.filter((c) => c.length >= 2).chain((chain) =>
        fc.tuple(fc.constant(chain), fc.uniqueArray(fc.nat(chain.length - 1), { minLength: 2, maxLength: 2 }))),
      async ([chain, [a, b]]) => {
        const [i, j] = [Math.min(a!, b!), Math.max(a!, b!)];
        const swapped = [...chain];
        [swapped[i], swapped[j]] = [chain[j]!, chain[i]!];
        const result = await verifyAuditChain(swapped, sha256);
        assert.equal(result.ok, false);
        if (!result.ok) assert.equal(result.firstBrokenSeq, i + 1);
      },
    ), { numRuns: 300 });
  });

  it('catches a rewritten entry with a recomputed hash at the next link, or at the anchor for the last', async () => {
    await fc.assert(fc.asyncProperty(
      chainArb.chain((chain) => fc.tuple(fc.constant(chain), fc.nat(chain.length - 1))),
      async ([chain, index]) => {
        const original = chain[index]!;
        const forged = { ...original, subject: `${original.subject}-forged` };
        const rewritten = [...chain];
        rewritten[index] = { ...forged, hash: auditEntryHash(forged, sha256) };
        const anchor = { seq: chain.length, hash: chain.at(-1)!.hash };
        const result = await verifyAuditChain(rewritten, sha256, { expectedHead: anchor });
        assert.equal(result.ok, false);
        if (result.ok) return;
        if (index < chain.length - 1) {
          assert.equal(result.reason, 'prev_hash_mismatch');
          assert.equal(result.firstBrokenSeq, index + 2);
        } else {
          assert.equal(result.reason, 'head_mismatch');
          assert.equal(result.firstBrokenSeq, chain.length);
        }
      },
    ), { numRuns: 200 });
  });

  it('sees a cut-off tail only against an anchored head', async () => {
    const chain = buildChain(Array.from({ length: 5 }, (_, i) => input({ ts: i })));
    const truncated = chain.slice(0, 3);
    assert.equal((await verifyAuditChain(truncated, sha256)).ok, true);
    const result = await verifyAuditChain(truncated, sha256, { expectedHead: { seq: 5, hash: chain[4]!.hash } });
    assert.deepEqual({ ...result, detail: undefined }, { ok: false, firstBrokenSeq: 4, reason: 'head_mismatch', detail: undefined });
    const longer = await verifyAuditChain(chain, sha256, { expectedHead: { seq: 3, hash: chain[2]!.hash } });
    assert.equal(!longer.ok && longer.firstBrokenSeq, 4);
  });

  it('flags malformed entries and entries with fields outside the hash', async () => {
    const chain = buildChain([input(), input(), input()]);
    const cases: unknown[] = [null, 'entry', { ...chain[1], note: 'unhashed' }, { ...chain[1], payload: { n: Number.NaN } }];
    for (const bad of cases) {
      const result = await verifyAuditChain([chain[0], bad, chain[2]], sha256);
      assert.equal(result.ok, false);
      if (!result.ok) assert.deepEqual([result.firstBrokenSeq, result.reason], [2, 'malformed']);
    }
    const noSeq: Record<string, unknown> = { ...chain[0] };
    delete noSeq.seq;
    const result = await verifyAuditChain([noSeq], sha256);
    assert.equal(!result.ok && result.reason, 'malformed');
  });

  it('streams an async iterable and verifies a suffix from a trusted checkpoint', async () => {
    const chain = buildChain(Array.from({ length: 6 }, (_, i) => input({ ts: i })));
    async function* stream(entries: AuditEntry[]): AsyncGenerator<AuditEntry> {
      for (const entry of entries) yield entry;
    }
    assert.equal((await verifyAuditChain(stream(chain), sha256)).ok, true);
    const suffix = await verifyAuditChain(stream(chain.slice(3)), sha256, { after: { seq: 3, hash: chain[2]!.hash } });
    assert.deepEqual(suffix, { ok: true, count: 3, headSeq: 6, headHash: chain[5]!.hash });
    const wrongCheckpoint = await verifyAuditChain(chain.slice(3), sha256, { after: { seq: 3, hash: chain[1]!.hash } });
    assert.equal(!wrongCheckpoint.ok && wrongCheckpoint.reason, 'prev_hash_mismatch');
    assert.equal(!wrongCheckpoint.ok && wrongCheckpoint.firstBrokenSeq, 4);
  });
});

describe('AuditLog', () => {
  function steppingClock(): { nowMs(): number } {
    let now = 1_700_000_000_000;
    return { nowMs: () => (now += 1000) };
  }

  it('serialises concurrent appends into one chain', async () => {
    const store = new InMemoryAuditStore();
    const log = new AuditLog({ store, sha256, clock: steppingClock() });
    const entries = await Promise.all(Array.from({ length: 50 }, (_, i) =>
      log.append({ kind: 'command.sent', actor: 'user:alice', subject: `command:${i}`, payload: { i } })));
    assert.deepEqual(entries.map((e) => e.seq), Array.from({ length: 50 }, (_, i) => i + 1));
    assert.deepEqual(entries.map((e) => e.subject), Array.from({ length: 50 }, (_, i) => `command:${i}`));
    assert.equal(entries[0]!.ts, 1_700_000_001_000);
    const result = await log.verify({ expectedHead: { seq: 50, hash: entries[49]!.hash } });
    assert.deepEqual(result, { ok: true, count: 50, headSeq: 50, headHash: entries[49]!.hash });
  });

  it('keeps appending after one append fails', async () => {
    const log = new AuditLog({ store: new InMemoryAuditStore(), sha256, clock: steppingClock() });
    const [good, bad, after] = await Promise.allSettled([
      log.append({ kind: 'a', actor: 'x', subject: 'y', payload: {} }),
      log.append({ kind: 'BAD KIND', actor: 'x', subject: 'y', payload: {} }),
      log.append({ kind: 'b', actor: 'x', subject: 'y', payload: {} }),
    ]);
    assert.equal(good.status, 'fulfilled');
    assert.ok(bad.status === 'rejected' && SdcError.is(bad.reason, 'AUDIT_ENTRY_INVALID'));
    assert.ok(after.status === 'fulfilled' && after.value.seq === 2);
  });

  it('verifies page by page and names a tampered stored entry', async () => {
    const store = new InMemoryAuditStore();
    const log = new AuditLog({ store, sha256, clock: steppingClock(), verifyPageEntries: 3 });
    for (let i = 0; i < 10; i += 1) await log.append({ kind: 'k', actor: 'x', subject: 'y', payload: { i } });
    assert.deepEqual(await log.verify(), { ok: true, count: 10, headSeq: 10, headHash: (await log.head())!.hash });

    const forgedStore = new InMemoryAuditStore();
    for (const entry of await store.scan(1, 100)) {
      await forgedStore.append(entry.seq === 7 ? { ...entry, payload: { i: 99 } } : entry);
    }
    const result = await new AuditLog({ store: forgedStore, sha256, clock: steppingClock(), verifyPageEntries: 3 }).verify();
    assert.equal(!result.ok && result.firstBrokenSeq, 7);
    assert.equal(!result.ok && result.reason, 'hash_mismatch');
  });

  it('refuses to extend a head that does not verify', async () => {
    const store = new InMemoryAuditStore();
    const first = appendAuditEntry(undefined, input(), sha256);
    await store.append({ ...first, actor: 'user:mallory' });
    const log = new AuditLog({ store, sha256, clock: steppingClock() });
    await assert.rejects(log.append({ kind: 'k', actor: 'x', subject: 'y', payload: {} }), (error: unknown) => SdcError.is(error, 'AUDIT_CHAIN_BROKEN'));
  });

  it('refuses more waiting appends than pendingAppendsMax with AUDIT_BUSY', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => { release = resolve; });
    const inner = new InMemoryAuditStore();
    const slowStore: AuditStore = {
      head: async () => { await gate; return inner.head(); },
      append: (entry) => inner.append(entry),
      scan: (fromSeq, limit) => inner.scan(fromSeq, limit),
    };
    const log = new AuditLog({ store: slowStore, sha256, clock: steppingClock(), pendingAppendsMax: 2 });
    const item = { kind: 'k', actor: 'x', subject: 'y', payload: {} };
    const first = log.append(item);
    const second = log.append(item);
    await assert.rejects(log.append(item), (error: unknown) => SdcError.is(error, 'AUDIT_BUSY'));
    release();
    assert.deepEqual([(await first).seq, (await second).seq], [1, 2]);
    assert.equal((await log.append(item)).seq, 3);
  });
});

describe('AuditLog group commit', () => {
  function steppingClock(): { nowMs(): number } {
    let now = 1_700_000_000_000;
    return { nowMs: () => (now += 1000) };
  }
  const item = (i: number): Omit<AuditEntryInput, 'ts'> => ({ kind: 'command.sent', actor: 'user:alice', subject: `command:${i}`, payload: { i } });

  /** An InMemoryAuditStore that records the size of every batch written and can hold or fail a call. */
  function batchingStore(inner = new InMemoryAuditStore()) {
    const calls: number[] = [];
    const hooks: { before?: (call: number) => Promise<void>; fail?: (call: number) => Error | undefined } = {};
    const store: AuditStore = {
      head: () => inner.head(),
      append: (entry) => inner.append(entry),
      scan: (fromSeq, limit) => inner.scan(fromSeq, limit),
      appendBatch: async (next) => {
        const call = calls.length + 1;
        await hooks.before?.(call);
        return inner.appendBatch((head) => {
          const entries = next(head);
          calls.push(entries.length);
          // Fails after the log chained the batch in memory: a log that kept that chain would run ahead of the store.
          const failure = hooks.fail?.(call);
          if (failure !== undefined) throw failure;
          return entries;
        });
      },
    };
    return { store, calls, hooks };
  }

  it('writes 200 concurrent appends in fewer store calls than appends, chained in call order', async () => {
    const { store, calls } = batchingStore();
    const log = new AuditLog({ store, sha256, clock: steppingClock(), batchEntriesMax: 64 });
    const entries = await Promise.all(Array.from({ length: 200 }, (_, i) => log.append(item(i))));
    assert.deepEqual(entries.map((e) => e.seq), Array.from({ length: 200 }, (_, i) => i + 1));
    assert.deepEqual(entries.map((e) => e.subject), Array.from({ length: 200 }, (_, i) => `command:${i}`));
    assert.ok(calls.length < 200, `${calls.length} store writes for 200 appends`);
    assert.ok(Math.max(...calls) <= 64, `batches ${calls.join(',')} exceed batchEntriesMax`);
    assert.equal(calls.reduce((a, b) => a + b, 0), 200);
    assert.deepEqual(await log.verify({ expectedHead: { seq: 200, hash: entries[199]!.hash } }), { ok: true, count: 200, headSeq: 200, headHash: entries[199]!.hash });
  });

  it('batches the appends that queue while a write is in flight', async () => {
    const { store, calls, hooks } = batchingStore();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => { release = resolve; });
    let firstStarted!: () => void;
    const started = new Promise<void>((resolve) => { firstStarted = resolve; });
    hooks.before = async (call) => { if (call === 1) { firstStarted(); await gate; } };
    const log = new AuditLog({ store, sha256, clock: steppingClock() });
    const first = log.append(item(0));
    await started;
    const queued = Array.from({ length: 10 }, (_, i) => log.append(item(i + 1)));
    release();
    const entries = [await first, ...await Promise.all(queued)];
    assert.deepEqual(calls, [1, 10]);
    assert.deepEqual(entries.map((e) => e.seq), Array.from({ length: 11 }, (_, i) => i + 1));
    assert.equal((await log.verify()).ok, true);
  });

  it('rejects exactly the appends of a failing batch, and the next batch continues from the stored head', async () => {
    const { store, calls, hooks } = batchingStore();
    const diskFull = new Error('disk full');
    let release!: () => void;
    const gate = new Promise<void>((resolve) => { release = resolve; });
    let firstStarted!: () => void;
    const started = new Promise<void>((resolve) => { firstStarted = resolve; });
    hooks.before = async (call) => { if (call === 1) { firstStarted(); await gate; } };
    hooks.fail = (call) => (call === 2 ? diskFull : undefined);
    const log = new AuditLog({ store, sha256, clock: steppingClock() });
    const first = log.append(item(0));
    await started;
    const failing = [log.append(item(1)), log.append(item(2)), log.append(item(3))];
    release();
    const stored = await first;
    const outcomes = await Promise.allSettled(failing);
    assert.deepEqual(outcomes.map((o) => o.status === 'rejected' && o.reason === diskFull), [true, true, true]);
    const after = await log.append(item(4));
    assert.deepEqual(calls, [1, 3, 1]);
    assert.deepEqual([after.seq, after.prev_hash, after.subject], [2, stored.hash, 'command:4']);
    assert.deepEqual(await log.verify(), { ok: true, count: 2, headSeq: 2, headHash: after.hash });
  });

  it('retries a batch refused with AUDIT_CONFLICT (the lock row created by another writer) and stores it once', async () => {
    const { store, calls, hooks } = batchingStore();
    hooks.fail = (call) => (call === 1 ? new SdcError('AUDIT_CONFLICT', 'lost the race for the lock row') : undefined);
    const log = new AuditLog({ store, sha256, clock: steppingClock() });
    const entries = await Promise.all([log.append(item(0)), log.append(item(1))]);
    assert.deepEqual(calls, [2, 2]);
    assert.deepEqual(entries.map((e) => e.seq), [1, 2]);
    assert.deepEqual(await log.verify(), { ok: true, count: 2, headSeq: 2, headHash: entries[1]!.hash });
  });

  it('counts the batch being written against pendingAppendsMax', async () => {
    const { store, hooks } = batchingStore();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => { release = resolve; });
    hooks.before = async (call) => { if (call === 1) await gate; };
    const log = new AuditLog({ store, sha256, clock: steppingClock(), pendingAppendsMax: 3 });
    const accepted = [log.append(item(0)), log.append(item(1)), log.append(item(2))];
    await assert.rejects(log.append(item(3)), (error: unknown) => SdcError.is(error, 'AUDIT_BUSY'));
    release();
    assert.deepEqual((await Promise.all(accepted)).map((e) => e.seq), [1, 2, 3]);
    assert.equal((await log.append(item(4))).seq, 4);
  });
});

describe('AuditLog: one entry that cannot be hashed (issue 16.1)', () => {
  const clock = { nowMs: () => 1_700_000_000_000 };

  it('refuses a lone surrogate in actor or subject at queue time, naming the field', () => {
    for (const [field, value] of [['actor', 'user:\ud800x'], ['subject', 'user:x\udc00'], ['subject', '\udbff']] as const) {
      assert.throws(() => appendAuditEntry(undefined, input({ [field]: value }), sha256), (error: unknown) =>
        SdcError.is(error, 'AUDIT_ENTRY_INVALID') && error.details.path === field, `${field} ${JSON.stringify(value)}`);
    }
    // A surrogate pair is a character like any other.
    assert.equal(appendAuditEntry(undefined, input({ subject: 'user:\ud83d\ude00' }), sha256).subject, 'user:\ud83d\ude00');
  });

  it('rejects only the bad append of a batch; the others queued with it are stored in one write', async () => {
    const inner = new InMemoryAuditStore();
    const batches: number[] = [];
    const store: AuditStore = {
      head: () => inner.head(), append: (entry) => inner.append(entry), scan: (fromSeq, limit) => inner.scan(fromSeq, limit),
      appendBatch: (next) => inner.appendBatch((head) => { const entries = next(head); batches.push(entries.length); return entries; }),
    };
    const log = new AuditLog({ store, sha256, clock });
    const outcomes = await Promise.allSettled(Array.from({ length: 9 }, (_, i) => log.append({
      kind: i === 4 ? 'auth.login_failed' : 'command.created', actor: i === 4 ? 'anonymous' : 'user:op', subject: i === 4 ? 'user:\ud800x' : `command:${i}`, payload: {},
    })));
    assert.deepEqual(outcomes.map((o) => o.status), ['fulfilled', 'fulfilled', 'fulfilled', 'fulfilled', 'rejected', 'fulfilled', 'fulfilled', 'fulfilled', 'fulfilled']);
    assert.ok(SdcError.is((outcomes[4] as PromiseRejectedResult).reason, 'AUDIT_ENTRY_INVALID'));
    assert.deepEqual(batches, [8], 'the eight good appends went in one batch');
    assert.deepEqual((await inner.scan(1, 20)).map((e) => e.subject), [0, 1, 2, 3, 5, 6, 7, 8].map((i) => `command:${i}`));
    assert.equal((await log.verify()).ok, true);
  });
});

/**
 * An outbox over InMemoryAuditStore for the log's tests: a transaction is a list of inputs that
 * `commit` makes visible to the drain (the SQL store does the same inside a real transaction).
 */
function outboxStore(inner = new InMemoryAuditStore()) {
  const committed: AuditEntryInput[] = [];
  const drains: number[] = [];
  const hooks: { before?: (drain: number) => Promise<void>; fail?: (drain: number) => Error | undefined } = {};
  const store: AuditStore<AuditEntryInput[]> = {
    head: () => inner.head(), append: (entry) => inner.append(entry), scan: (fromSeq, limit) => inner.scan(fromSeq, limit),
    appendBatch: (next) => inner.appendBatch(next),
    record: async (tx, recorded) => { tx.push(recorded); },
    appendRecorded: async (next, limit) => {
      const drain = drains.length + 1;
      drains.push(0);
      // What this drain sees is fixed when it starts, as a transaction's first read would fix it.
      const inputs = committed.slice(0, limit);
      await hooks.before?.(drain);
      const failure = hooks.fail?.(drain);
      if (failure !== undefined) throw failure;
      const entries = await inner.appendBatch((head) => next(head, inputs));
      committed.splice(0, inputs.length);
      drains[drain - 1] = entries.length;
      return entries;
    },
  };
  const transaction = async (fn: (tx: AuditEntryInput[]) => Promise<void>): Promise<void> => {
    const tx: AuditEntryInput[] = [];
    await fn(tx);
    committed.push(...tx);
  };
  return { store, inner, committed, drains, hooks, transaction };
}

describe('AuditLog outbox (record in the change\'s transaction, drain into the chain)', () => {
  const clock = { nowMs: () => 1_700_000_000_000 };
  const note = (i: number): Omit<AuditEntryInput, 'ts'> => ({ kind: 'command.created', actor: 'user:op', subject: `command:${i}`, payload: { i } });

  it('chains what committed transactions recorded, in order, and nothing a rolled-back one recorded', async () => {
    const { store, inner, transaction } = outboxStore();
    const log = new AuditLog({ store, sha256, clock });
    await transaction(async (tx) => { await log.record(tx, note(1)); });
    await assert.rejects(transaction(async (tx) => { await log.record(tx, note(2)); throw new Error('rolled back'); }));
    await transaction(async (tx) => { await log.record(tx, note(3)); await log.record(tx, note(4)); });
    assert.equal(await log.drainRecorded(), 3);
    assert.deepEqual((await inner.scan(1, 10)).map((e) => e.subject), ['command:1', 'command:3', 'command:4']);
    assert.equal(await log.drainRecorded(), 0);
    assert.equal((await log.verify()).ok, true);
  });

  it('refuses an input that cannot be hashed inside the transaction, so the change fails with it', async () => {
    const { store, committed, transaction } = outboxStore();
    const log = new AuditLog({ store, sha256, clock });
    await assert.rejects(transaction(async (tx) => { await log.record(tx, { ...note(1), subject: 'user:\ud800' }); }),
      (error: unknown) => SdcError.is(error, 'AUDIT_ENTRY_INVALID') && error.details.path === 'subject');
    assert.equal(committed.length, 0);
  });

  it('keeps recorded inputs when a drain fails (the crash between commit and chain), and the next drain chains each once', async () => {
    const { store, inner, hooks, transaction } = outboxStore();
    hooks.fail = (drain) => (drain === 1 ? new Error('store down') : undefined);
    const log = new AuditLog({ store, sha256, clock });
    for (let i = 0; i < 5; i += 1) await transaction(async (tx) => { await log.record(tx, note(i)); });
    await assert.rejects(log.drainRecorded(), /store down/);
    assert.equal((await inner.scan(1, 10)).length, 0);
    // A new log on the same store, as after a restart.
    const restarted = new AuditLog({ store, sha256, clock });
    assert.equal(await restarted.drainRecorded(), 5);
    assert.deepEqual((await inner.scan(1, 10)).map((e) => e.subject), [0, 1, 2, 3, 4].map((i) => `command:${i}`));
  });

  it('serves the drain calls made during a drain with one more pass, not one each', async () => {
    const { store, inner, drains, hooks, transaction } = outboxStore();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => { release = resolve; });
    let firstStarted!: () => void;
    const started = new Promise<void>((resolve) => { firstStarted = resolve; });
    hooks.before = async (drain) => { if (drain === 1) { firstStarted(); await gate; } };
    const log = new AuditLog({ store, sha256, clock });
    await transaction(async (tx) => { await log.record(tx, note(0)); });
    const first = log.drainRecorded();
    await started;
    const later: Promise<number>[] = [];
    for (let i = 1; i <= 20; i += 1) {
      await transaction(async (tx) => { await log.record(tx, note(i)); });
      later.push(log.drainRecorded());
    }
    release();
    assert.equal(await first, 1);
    assert.deepEqual(await Promise.all(later), Array.from({ length: 20 }, () => 20));
    assert.deepEqual(drains, [1, 20]);
    assert.equal((await inner.scan(1, 100)).length, 21);
  });

  it('drains a backlog in bounded passes and lets queued appends in between', async () => {
    const { store, inner, hooks, transaction } = outboxStore();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => { release = resolve; });
    let firstStarted!: () => void;
    const started = new Promise<void>((resolve) => { firstStarted = resolve; });
    hooks.before = async (drain) => { if (drain === 1) { firstStarted(); await gate; } };
    const log = new AuditLog({ store, sha256, clock, batchEntriesMax: 2, drainBatchesPerPassMax: 2 });
    await transaction(async (tx) => { for (let i = 0; i < 9; i += 1) await log.record(tx, note(i)); });
    const drained = log.drainRecorded();
    await started;
    const appended = log.append({ kind: 'auth.login', actor: 'user:op', subject: 'user:op', payload: {} });
    release();
    await drained;
    const entry = await appended;
    const subjects = (await inner.scan(1, 100)).map((e) => e.subject);
    assert.equal(subjects.length, 10);
    assert.equal(entry.seq, 5, `the append goes right after the first pass (two batches of two): ${subjects.join(',')}`);
    assert.deepEqual(subjects.filter((s) => s.startsWith('command:')), Array.from({ length: 9 }, (_, i) => `command:${i}`));
  });

  it('chains an altered recorded row that cannot be hashed as audit.record_invalid, and the rows around it normally', async () => {
    const { store, inner, committed } = outboxStore();
    const log = new AuditLog({ store, sha256, clock });
    committed.push({ ts: 1, ...note(1) }, { ts: 2, ...note(2), actor: 'user:\udfff' }, { ts: 3, ...note(3) });
    assert.equal(await log.drainRecorded(), 3);
    const entries = await inner.scan(1, 10);
    assert.deepEqual(entries.map((e) => [e.kind, e.subject]), [['command.created', 'command:1'], ['audit.record_invalid', 'audit:outbox'], ['command.created', 'command:3']]);
    assert.equal(entries[1]!.payload.code, 'AUDIT_ENTRY_INVALID');
    assert.equal((await log.verify()).ok, true);
  });
});

describe('InMemoryAuditStore', () => {
  it('refuses a seq that already exists and scans in seq order', async () => {
    const store = new InMemoryAuditStore();
    const chain = buildChain([input(), input(), input()]);
    await store.append(chain[2]!);
    await store.append(chain[0]!);
    await store.append(chain[1]!);
    await assert.rejects(store.append(chain[1]!), (error: unknown) => SdcError.is(error, 'AUDIT_CONFLICT') && error.details.seq === 2);
    assert.deepEqual((await store.scan(1, 10)).map((e) => e.seq), [1, 2, 3]);
    assert.deepEqual((await store.scan(2, 1)).map((e) => e.seq), [2]);
    assert.equal((await store.head())?.seq, 3);
  });

  it('stores a batch whole or not at all', async () => {
    const store = new InMemoryAuditStore({ entriesMax: 3 });
    const chain = buildChain([input(), input(), input(), input()]);
    assert.deepEqual(await store.appendBatch(() => chain.slice(0, 2)), chain.slice(0, 2));
    await assert.rejects(store.appendBatch(() => chain.slice(2, 4)), (error: unknown) => SdcError.is(error, 'AUDIT_STORE_FULL'));
    await assert.rejects(store.appendBatch(() => [chain[0]!]), (error: unknown) => SdcError.is(error, 'AUDIT_CONFLICT'));
    assert.deepEqual((await store.scan(1, 10)).map((e) => e.seq), [1, 2]);
  });

  it('refuses entries beyond its capacity', async () => {
    const store = new InMemoryAuditStore({ entriesMax: 1 });
    const [first, second] = buildChain([input(), input()]);
    await store.append(first!);
    await assert.rejects(store.append(second!), (error: unknown) => SdcError.is(error, 'AUDIT_STORE_FULL'));
  });
});
