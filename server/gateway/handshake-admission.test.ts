import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { HandshakeAdmission, type HandshakeAdmissionLimits } from './handshake-admission.js';

const limits = (overrides: Partial<HandshakeAdmissionLimits> = {}): HandshakeAdmissionLimits => ({
  handshakesInFlightMax: 2, handshakeQueueMax: 3, handshakeQueueWaitMsMax: 1_000, pendingHandshakesPerSourceMax: 10, ...overrides,
});

describe('handshake admission: a bounded number of TLS handshakes at once, the rest in arrival order', () => {
  it('starts up to handshakesInFlightMax, queues the next ones, and starts them in arrival order as slots free', () => {
    const admission = new HandshakeAdmission<string>(limits());
    assert.deepEqual(['a', 'b', 'c', 'd'].map((key, index) => admission.admit(key, `10.0.0.${index}`, 0)), ['start', 'start', 'queued', 'queued']);
    assert.deepEqual(admission.release('b', 10), { start: ['c'], expired: [] });
    assert.deepEqual(admission.release('a', 20), { start: ['d'], expired: [] });
    assert.deepEqual(admission.release('c', 30), { start: [], expired: [] });
    assert.deepEqual([admission.inFlight, admission.queued], [1, 0]);
  });

  it('keeps arrival order: a newcomer waits behind the queue even when a slot is free for a moment', () => {
    const admission = new HandshakeAdmission<string>(limits({ handshakesInFlightMax: 1 }));
    assert.equal(admission.admit('a', 's', 0), 'start');
    assert.equal(admission.admit('b', 's', 0), 'queued');
    assert.deepEqual(admission.release('a', 1).start, ['b']);
    assert.equal(admission.admit('c', 's', 2), 'queued');
  });

  it('drops a socket when the queue is full, and counts waiting sockets against their source', () => {
    const full = new HandshakeAdmission<string>(limits({ handshakesInFlightMax: 1, handshakeQueueMax: 1 }));
    assert.deepEqual(['a', 'b', 'c'].map((key) => full.admit(key, key, 0)), ['start', 'queued', 'GATEWAY_HANDSHAKE_QUEUE_FULL']);

    const perSource = new HandshakeAdmission<string>(limits({ handshakesInFlightMax: 1, pendingHandshakesPerSourceMax: 2 }));
    assert.deepEqual(['a', 'b', 'c'].map((key) => perSource.admit(key, 'nat', 0)), ['start', 'queued', 'GATEWAY_SOURCE_LIMIT']);
    assert.equal(perSource.admit('d', 'other', 0), 'queued', 'another address still gets in');
    perSource.release('b', 1); // closed while it waited: its source has room again
    assert.equal(perSource.admit('e', 'nat', 1), 'queued');
  });

  it('drops at its turn a socket that waited longer than handshakeQueueWaitMsMax, and starts the next one instead', () => {
    const admission = new HandshakeAdmission<string>(limits({ handshakesInFlightMax: 1 }));
    admission.admit('a', 's', 0);
    admission.admit('old', 's', 0);
    admission.admit('young', 's', 900);
    assert.deepEqual(admission.release('a', 1_500), { start: ['young'], expired: ['old'] });
    // The expired one no longer counts against its source.
    const tight = new HandshakeAdmission<string>(limits({ handshakesInFlightMax: 1, pendingHandshakesPerSourceMax: 2 }));
    tight.admit('a', 's', 0);
    tight.admit('old', 's', 0);
    tight.release('a', 5_000);
    assert.equal(tight.admit('new', 's', 5_000), 'start');
  });

  it('skips a socket released while it waited, even when its key (address and port) comes back later', () => {
    const admission = new HandshakeAdmission<string>(limits({ handshakesInFlightMax: 1 }));
    admission.admit('a', 's', 0);
    admission.admit('k', 's', 0);
    admission.release('k', 1); // closed while waiting
    admission.admit('x', 's', 2);
    admission.admit('k', 's', 3); // the same address and port again, behind x
    assert.deepEqual(admission.release('a', 4).start, ['x']);
    assert.deepEqual(admission.release('x', 5).start, ['k']);
    assert.deepEqual([admission.inFlight, admission.queued], [1, 0]);
  });

  it('refuses limits that are not positive integers', () => {
    assert.throws(() => new HandshakeAdmission(limits({ handshakesInFlightMax: 0 })), RangeError);
    assert.throws(() => new HandshakeAdmission(limits({ handshakeQueueWaitMsMax: 1.5 })), RangeError);
  });

  // A model: the admission must agree with a plain list-based one on every decision and every turn.
  it('agrees with a simple model over random sequences of arrivals, closes and finished handshakes', () => {
    type Op = { kind: 'admit'; source: number; atMs: number } | { kind: 'release'; pick: number; atMs: number };
    const op = fc.oneof(
      fc.record({ kind: fc.constant('admit' as const), source: fc.integer({ min: 0, max: 3 }), atMs: fc.integer({ min: 0, max: 50 }) }),
      fc.record({ kind: fc.constant('release' as const), pick: fc.nat(), atMs: fc.integer({ min: 0, max: 50 }) }),
    );
    fc.assert(fc.property(fc.array(op, { maxLength: 200 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 0, max: 5 }), fc.integer({ min: 1, max: 6 }), (ops, inFlightMax, queueMax, perSourceMax) => {
      const waitMax = 100;
      const admission = new HandshakeAdmission<number>({ handshakesInFlightMax: inFlightMax, handshakeQueueMax: queueMax, handshakeQueueWaitMsMax: waitMax, pendingHandshakesPerSourceMax: perSourceMax });
      const running: Array<{ key: number; source: number }> = [];
      const waiting: Array<{ key: number; source: number; arrivedMs: number }> = [];
      let nowMs = 0;
      let nextKey = 0;
      const held = (source: number) => running.filter((r) => r.source === source).length + waiting.filter((w) => w.source === source).length;
      const modelFill = () => {
        const turn = { start: [] as number[], expired: [] as number[] };
        while (running.length < inFlightMax && waiting.length > 0) {
          const next = waiting.shift()!;
          if (nowMs - next.arrivedMs > waitMax) turn.expired.push(next.key);
          else { running.push(next); turn.start.push(next.key); }
        }
        return turn;
      };
      for (const step of ops) {
        nowMs += step.atMs;
        if (step.kind === 'admit') {
          const key = nextKey++;
          let expected: string;
          if (held(step.source) >= perSourceMax) expected = 'GATEWAY_SOURCE_LIMIT';
          else if (running.length < inFlightMax && waiting.length === 0) { running.push({ key, source: step.source }); expected = 'start'; }
          else if (waiting.length >= queueMax) expected = 'GATEWAY_HANDSHAKE_QUEUE_FULL';
          else { waiting.push({ key, source: step.source, arrivedMs: nowMs }); expected = 'queued'; }
          assert.equal(admission.admit(key, `src-${step.source}`, nowMs), expected);
        } else {
          const all = [...running.map((r) => r.key), ...waiting.map((w) => w.key), nextKey]; // nextKey: never admitted, ignored
          const key = all[step.pick % all.length]!;
          const ran = running.findIndex((r) => r.key === key);
          if (ran >= 0) running.splice(ran, 1);
          const waited = waiting.findIndex((w) => w.key === key);
          if (waited >= 0) waiting.splice(waited, 1);
          assert.deepEqual(admission.release(key, nowMs), modelFill());
        }
        assert.ok(admission.inFlight <= inFlightMax && admission.queued <= queueMax);
        assert.deepEqual([admission.inFlight, admission.queued], [running.length, waiting.length]);
      }
    }), { numRuns: 300 });
  });
});
