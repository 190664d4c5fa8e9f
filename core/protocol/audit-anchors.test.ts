import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SdcError } from '../errors/index.js';
import { anchorMismatch, anchorsInSeqOrder, formatAuditAnchorLine, parseAuditAnchorLines } from './audit-anchors.js';
import type { AuditEntry } from './audit-chain.js';

const hashA = 'a'.repeat(64);
const hashB = 'b'.repeat(64);

test('anchor lines: formatted as {seq, hash, at} JSON lines and read back with their line numbers; blank lines skipped', () => {
  const text = formatAuditAnchorLine({ seq: 3, hash: hashA }, Date.UTC(2026, 11, 5, 18, 0, 0)) + '\n' + formatAuditAnchorLine({ seq: 7, hash: hashB }, Date.UTC(2026, 11, 5, 18, 1, 0));
  assert.equal(text.split('\n')[0], `{"seq":3,"hash":"${hashA}","at":"2026-12-05T18:00:00.000Z"}`);
  assert.deepEqual(parseAuditAnchorLines(text), [
    { seq: 3, hash: hashA, at: '2026-12-05T18:00:00.000Z', line: 1 },
    { seq: 7, hash: hashB, at: '2026-12-05T18:01:00.000Z', line: 3 },
  ]);
});

test('a malformed line is AUDIT_ANCHOR_INVALID naming the line (never skipped: a file read as fewer anchors proves less)', () => {
  const good = formatAuditAnchorLine({ seq: 1, hash: hashA }, 0);
  for (const [bad, reason] of [
    ['not json', /not JSON/], ['[1]', /not a JSON object/], [`{"seq":0,"hash":"${hashA}","at":"2026-12-05T18:00:00Z"}`, /seq/],
    [`{"seq":1.5,"hash":"${hashA}","at":"2026-12-05T18:00:00Z"}`, /seq/], [`{"seq":2,"hash":"${hashA.toUpperCase()}","at":"2026-12-05T18:00:00Z"}`, /hash/],
    [`{"seq":2,"hash":"${hashA}","at":"yesterday"}`, /at must/], [`{"seq":2,"hash":"${hashA}"}`, /at must/], [`{"seq":2,"hash":"${hashA}","at":"${'9'.repeat(600)}"}`, /longer/],
  ] as const) {
    assert.throws(() => parseAuditAnchorLines(`${good}${bad}\n`), (error: unknown) => SdcError.is(error, 'AUDIT_ANCHOR_INVALID') && error.details['line'] === 2 && reason.test(error.message), bad);
  }
});

test('anchors are judged lowest seq first, each pair once; a missing tail, a missing entry and a different hash are each named', () => {
  const [a1, a2, a3] = parseAuditAnchorLines([
    `{"seq":5,"hash":"${hashA}","at":"2026-12-05T18:02:00Z"}`, `{"seq":2,"hash":"${hashB}","at":"2026-12-05T18:01:00Z"}`, `{"seq":5,"hash":"${hashA}","at":"2026-12-05T18:03:00Z"}`,
  ].join('\n'));
  assert.deepEqual(anchorsInSeqOrder([a1!, a2!, a3!]).map((a) => a.line), [2, 1]);
  const entry = (seq: number, hash: string) => ({ seq, hash } as AuditEntry);
  assert.equal(anchorMismatch(a1!, 9, entry(5, hashA)), undefined);
  assert.deepEqual(anchorMismatch(a1!, 4, undefined)?.firstBrokenSeq, 5);
  assert.match(anchorMismatch(a1!, 4, undefined)!.detail, /ends at seq 4, before the anchor of line 1 .* tail was removed/);
  assert.match(anchorMismatch(a1!, 9, undefined)!.detail, /entry 5 of the anchor of line 1 .* not in the store/);
  const rewritten = anchorMismatch(a1!, 9, entry(5, hashB))!;
  assert.equal(rewritten.firstBrokenSeq, 5);
  assert.match(rewritten.detail, /entry 5 hashes to b+, the anchor of line 1 \(2026-12-05T18:02:00Z\) says a+: the chain was rewritten at or before it/);
});
