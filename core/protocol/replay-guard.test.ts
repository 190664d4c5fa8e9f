import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { queryObjects } from 'node:v8';
import { SdcError } from '../errors/index.js';
import { ReplayGuard } from './replay-guard.js';

const nowMs = 1_700_000_000_000;
const codeOf = (fn: () => void): string | undefined => {
  try { fn(); return undefined; } catch (e) { assert.ok(SdcError.is(e)); return e.code; }
};

test('fresh in-order frames are accepted; every replay is refused as a replay', () => {
  fc.assert(fc.property(fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 1, maxLength: 100 }), fc.nat(), (gaps, pick) => {
    const guard = new ReplayGuard({ windowSize: 64 });
    guard.open('s', 0);
    let seq = -1;
    const accepted: number[] = [];
    for (const gap of gaps) {
      seq += gap;
      guard.accept({ sessionId: 's', seq, ts: nowMs }, nowMs);
      accepted.push(seq);
    }
    const replayed = accepted[pick % accepted.length]!;
    const code = codeOf(() => guard.accept({ sessionId: 's', seq: replayed, ts: nowMs }, nowMs));
    const withinWindow = seq - replayed < 64;
    assert.equal(code, withinWindow ? 'PROTO_REPLAY' : 'PROTO_SEQ_OUT_OF_ORDER');
  }), { numRuns: 500 });
});

test('any frame whose seq is not above the highest is refused, and refusals change nothing', () => {
  fc.assert(fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 300 }), fc.integer({ min: -120_000, max: 120_000 })), { maxLength: 120 }), (frames) => {
    const guard = new ReplayGuard({ skewMs: 30_000, ttlMs: 60_000 });
    guard.open('s', 0);
    let highest = -1;
    const seen = new Set<number>();
    for (const [seq, offsetMs] of frames) {
      const ts = nowMs + offsetMs;
      const code = codeOf(() => guard.accept({ sessionId: 's', seq, ts }, nowMs));
      if (offsetMs > 30_000) assert.equal(code, 'PROTO_TS_IN_FUTURE');
      else if (offsetMs < -60_000) assert.equal(code, 'PROTO_TS_TOO_OLD');
      else if (seq > highest) { assert.equal(code, undefined); highest = seq; seen.add(seq); }
      else if (seen.has(seq) && highest - seq < 64) assert.equal(code, 'PROTO_REPLAY');
      else assert.equal(code, 'PROTO_SEQ_OUT_OF_ORDER');
    }
  }), { numRuns: 500 });
});

test('the first frame must be at or above the starting seq', () => {
  const guard = new ReplayGuard();
  guard.open('s', 10);
  assert.equal(codeOf(() => guard.accept({ sessionId: 's', seq: 9, ts: nowMs }, nowMs)), 'PROTO_SEQ_OUT_OF_ORDER');
  assert.equal(codeOf(() => guard.accept({ sessionId: 's', seq: 10, ts: nowMs }, nowMs)), undefined);
});

test('frames for unknown or closed sessions are refused', () => {
  const guard = new ReplayGuard();
  assert.equal(codeOf(() => guard.accept({ sessionId: 'x', seq: 0, ts: nowMs }, nowMs)), 'PROTO_SESSION_MISMATCH');
  guard.open('x', 0);
  guard.close('x');
  assert.equal(codeOf(() => guard.accept({ sessionId: 'x', seq: 0, ts: nowMs }, nowMs)), 'PROTO_SESSION_MISMATCH');
});

test('memory is bounded: opening beyond sessionsMax is refused, not evicted', () => {
  const guard = new ReplayGuard({ sessionsMax: 2 });
  guard.open('a', 0);
  guard.open('b', 0);
  assert.equal(codeOf(() => guard.open('c', 0)), 'PROTO_REPLAY_CAPACITY');
  guard.open('a', 5); // re-opening a tracked session restarts it and needs no new slot
  guard.close('b');
  guard.open('c', 0);
  assert.equal(guard.sessionCount, 2);
});

test('sessions tracked at once keep their own windows, whichever was opened first or closed', () => {
  const guard = new ReplayGuard({ sessionsMax: 3 });
  guard.open('a', 0);
  guard.open('b', 10);
  guard.accept({ sessionId: 'a', seq: 0, ts: nowMs }, nowMs);
  guard.accept({ sessionId: 'b', seq: 10, ts: nowMs }, nowMs);
  guard.close('a');
  assert.equal(codeOf(() => guard.accept({ sessionId: 'a', seq: 1, ts: nowMs }, nowMs)), 'PROTO_SESSION_MISMATCH');
  guard.open('c', 0);
  guard.open('d', 0);
  assert.equal(guard.sessionCount, 3);
  assert.equal(codeOf(() => guard.open('e', 0)), 'PROTO_REPLAY_CAPACITY');
  guard.accept({ sessionId: 'c', seq: 0, ts: nowMs }, nowMs);
  assert.equal(codeOf(() => guard.accept({ sessionId: 'c', seq: 0, ts: nowMs }, nowMs)), 'PROTO_REPLAY');
  assert.equal(codeOf(() => guard.accept({ sessionId: 'b', seq: 10, ts: nowMs }, nowMs)), 'PROTO_REPLAY');
  guard.accept({ sessionId: 'd', seq: 0, ts: nowMs }, nowMs);
  guard.open('b', 20); // re-opened: restarted, seq 10 is now simply too low
  assert.equal(codeOf(() => guard.accept({ sessionId: 'b', seq: 10, ts: nowMs }, nowMs)), 'PROTO_SEQ_OUT_OF_ORDER');
  guard.accept({ sessionId: 'b', seq: 20, ts: nowMs }, nowMs);
  for (const id of ['b', 'c', 'd']) guard.close(id);
  assert.equal(guard.sessionCount, 0);
});

test('bad seq or ts values are typed refusals', () => {
  const guard = new ReplayGuard();
  guard.open('s', 0);
  for (const [seq, ts] of [[-1, nowMs], [1.5, nowMs], [0, Number.NaN], [2 ** 53, nowMs]] as const) {
    assert.equal(codeOf(() => guard.accept({ sessionId: 's', seq, ts }, nowMs)), 'PROTO_SCHEMA_INVALID');
  }
});

test('a guard tracking one session keeps no object for it beside the guard (a gateway holds one per session)', () => {
  const objectsNow = () => queryObjects(Object, { format: 'count' }) as number;
  const guardsCount = 2_000;
  const before = objectsNow();
  const guards: ReplayGuard[] = [];
  for (let i = 0; i < guardsCount; i++) {
    const guard = new ReplayGuard({ sessionsMax: 1 });
    guard.open(`s${i}`, 0);
    guard.accept({ sessionId: `s${i}`, seq: 0, ts: nowMs }, nowMs);
    guards.push(guard);
  }
  const perGuard = (objectsNow() - before) / guardsCount;
  // The guard itself (the array holding them is one more in all); its session's window was a second object each.
  assert.ok(perGuard < 1.5, `${perGuard} objects per guard`);
  assert.equal(guards.length, guardsCount);
  assert.equal(codeOf(() => guards[7]!.accept({ sessionId: 's7', seq: 0, ts: nowMs }, nowMs)), 'PROTO_REPLAY');
});
