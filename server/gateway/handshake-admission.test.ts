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

/**
 * A storm on a gateway short of CPU, in virtual time: `agents` connect at once; the handshakes in
 * flight share the CPU equally (each needs `cpuMsPerHandshake`), one that is not done `timeoutMs`
 * after it started is dropped as Node's handshakeTimeout does, a socket that waited longer than
 * that is dropped at its turn, and a dropped agent connects again after a backoff of 1-8 s (spread
 * by its index). Returns how many agents finished a handshake within `horizonMs`.
 */
function stormFinished(limits: HandshakeAdmissionLimits, o: { agents: number; cpuMsPerHandshake: number; timeoutMs: number; horizonMs: number }): { finished: number; boundAtEnd: number } {
  const admission = new HandshakeAdmission<number>(limits);
  const running = new Map<number, { agent: number; startedMs: number; cpuMs: number }>();
  const waiting = new Map<number, number>(); // socket key -> agent
  const retries: Array<{ atMs: number; agent: number }> = [];
  let nextKey = 0;
  let finished = 0;
  const connect = (agent: number, nowMs: number) => {
    const key = nextKey++;
    const decision = admission.admit(key, `10.0.${agent >> 8}.${agent & 255}`, nowMs);
    if (decision === 'start') running.set(key, { agent, startedMs: nowMs, cpuMs: 0 });
    else if (decision === 'queued') waiting.set(key, agent);
    else retries.push({ atMs: nowMs + 1_000 + ((agent * 7_919) % 7_000), agent });
  };
  const take = (turn: { start: number[]; expired: number[] }, nowMs: number) => {
    for (const key of turn.start) { running.set(key, { agent: waiting.get(key)!, startedMs: nowMs, cpuMs: 0 }); waiting.delete(key); }
    for (const key of turn.expired) { const agent = waiting.get(key)!; waiting.delete(key); retries.push({ atMs: nowMs + 1_000 + ((agent * 7_919) % 7_000), agent }); }
  };
  for (let agent = 0; agent < o.agents; agent++) connect(agent, 0);
  const stepMs = 10;
  for (let nowMs = stepMs; nowMs <= o.horizonMs; nowMs += stepMs) {
    for (let i = retries.length - 1; i >= 0; i--) {
      if (retries[i]!.atMs > nowMs) continue;
      const { agent } = retries[i]!;
      retries.splice(i, 1);
      connect(agent, nowMs);
    }
    const share = stepMs / Math.max(1, running.size);
    for (const [key, handshake] of [...running]) {
      handshake.cpuMs += share;
      const outcome = handshake.cpuMs >= o.cpuMsPerHandshake ? 'finished' : nowMs - handshake.startedMs >= o.timeoutMs ? 'timedOut' : undefined;
      if (outcome === undefined) continue;
      running.delete(key);
      if (outcome === 'finished') finished += 1;
      else retries.push({ atMs: nowMs + 1_000 + ((handshake.agent * 7_919) % 7_000), agent: handshake.agent });
      take(admission.release(key, nowMs, outcome), nowMs);
    }
  }
  return { finished, boundAtEnd: admission.inFlightMax };
}

describe('handshake admission under a storm on a starved gateway (a model on virtual time)', () => {
  // 1,000 sockets; 140 ms of the CPU it gets per handshake (about 7 a second: a gateway with a few
  // per cent of a core, as at load 25 here); Node's handshake timeout of 10 s.
  const storm = { agents: 1_000, cpuMsPerHandshake: 140, timeoutMs: 10_000, horizonMs: 150_000 };
  const fixed = { handshakesInFlightMax: 256, handshakeQueueMax: 8_192, handshakeQueueWaitMsMax: 10_000, pendingHandshakesPerSourceMax: 64 };

  it('a fixed bound of 256 lets every handshake outlast the timeout, so none finishes', () => {
    assert.equal(stormFinished(fixed, storm).finished, 0);
  });

  it('the adaptive bound halves on timeouts and finishes handshakes at the rate the CPU allows', () => {
    const adaptive = stormFinished({ ...fixed, handshakesInFlightMin: 32 }, storm);
    // The CPU allows about 7 a second, 1,000 in 150 s at best; the bound gets there after a few rounds of timeouts.
    assert.ok(adaptive.finished >= 700, `only ${adaptive.finished} finished`);
    assert.ok(adaptive.boundAtEnd >= 32 && adaptive.boundAtEnd <= 256);
  });

  it('a healthy gateway keeps its full bound: nothing times out, so nothing halves it', () => {
    const healthy = stormFinished({ ...fixed, handshakesInFlightMin: 32 }, { ...storm, cpuMsPerHandshake: 2 });
    assert.deepEqual(healthy, { finished: 1_000, boundAtEnd: 256 });
  });
});
