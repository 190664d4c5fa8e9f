import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { describe, it } from 'node:test';
import { SeededRandom } from '../../core/random/prng.js';
import { VirtualTime } from '../../core/time/virtual-time.js';
import { heldPieceOverheadBytes, Link } from './link.js';
import { makeToxicState, type ToxicState } from './toxic-state.js';
import { toxicKinds } from './toxics/index.js';

/**
 * Review h2, finding 2: the held-bytes limit counted payload bytes only, and a held 1-byte piece
 * costs 100+ bytes of heap (slicer {average_size: 1} into latency 600000 held 671 KB in 109 MB).
 * Each held piece now counts heldPieceOverheadBytes against the limit, and the slicer cuts lazily
 * and stops while a later stage is full. On a link with fake sockets, so every read is exactly
 * the chunk the test emits and the counts are exact.
 */

const heldMax = 65_536;
/** 1-byte pieces at the limit: each counts 1 byte plus the overhead. */
const onePiecesAtLimit = Math.ceil(heldMax / (1 + heldPieceOverheadBytes));

class FakeSource extends EventEmitter {
  paused = false;
  pause(): this {
    this.paused = true;
    return this;
  }
  resume(): this {
    this.paused = false;
    return this;
  }
}

class FakeSink extends EventEmitter {
  readonly writes: Buffer[] = [];
  writableNeedDrain = false;
  destroyed = false;
  write(chunk: Buffer): boolean {
    this.writes.push(chunk);
    return true;
  }
  end(): void {}
}

function toxic(name: string, type: string, attributes: Record<string, number>): ToxicState {
  return makeToxicState({ name, kind: toxicKinds.get(type)!, stream: 'upstream', toxicity: 1, attributes });
}

function makeLink(toxics: ToxicState[]) {
  const source = new FakeSource();
  const sink = new FakeSink();
  const time = new VirtualTime(0);
  const link = new Link({
    stream: 'upstream', source: source as unknown as Socket, sink: sink as unknown as Socket, time,
    toxicityRandom: new SeededRandom(1), toxicRandom: new SeededRandom(2), toxicHeldBytesMax: heldMax,
    onCloseRequested: () => {}, onResetRequested: () => {},
  }, toxics);
  return { source, sink, time, link };
}

describe('held pieces count against the held-bytes limit', () => {
  it('latency: 1-byte reads pause the reading socket at the limit counted with the per-piece overhead', () => {
    const { source, link } = makeLink([toxic('lat', 'latency', { latency: 600_000, jitter: 0 })]);
    for (let i = 0; i < onePiecesAtLimit - 1; i++) source.emit('data', Buffer.from([i & 0xff]));
    assert.equal(source.paused, false, 'below the limit');
    assert.equal(link.stats().heldPieces, onePiecesAtLimit - 1);
    source.emit('data', Buffer.from([0]));
    assert.equal(source.paused, true, `paused at ${onePiecesAtLimit} pieces (${onePiecesAtLimit} bytes), not at ${heldMax} bytes`);
    assert.equal(link.stats().heldBytes, onePiecesAtLimit);
    link.dispose();
  });

  it('slicer of 1-byte slices into a timeout: the timeout holds no more pieces than the limit allows; the rest waits uncut and goes on, in order, when the timeout is removed', () => {
    const { source, sink, link } = makeLink([
      toxic('cut', 'slicer', { average_size: 1, size_variation: 0, delay: 0 }),
      toxic('hold', 'timeout', { timeout: 0 }),
    ]);
    const read = Buffer.from(Array.from({ length: 65_536 }, (_, i) => (i * 7) & 0xff));
    source.emit('data', read);
    assert.equal(source.paused, true);
    const stats = link.stats();
    assert.equal(stats.heldBytes, read.length, 'nothing lost');
    // The timeout's pieces up to the limit, and the slicer's one uncut rest of the read.
    assert.equal(stats.heldPieces, onePiecesAtLimit + 1);
    assert.equal(sink.writes.length, 0);

    link.removeToxic('hold');
    assert.equal(source.paused, false);
    assert.equal(link.stats().heldBytes, 0);
    assert.equal(sink.writes.length, read.length, 'every byte its own write');
    assert.ok(Buffer.concat(sink.writes).equals(read), 'in order');
    link.dispose();
  });

  it('a slicer stopped by a full writing socket goes on at its drain', () => {
    const { source, sink, link } = makeLink([toxic('cut', 'slicer', { average_size: 4, size_variation: 0, delay: 0 })]);
    sink.writableNeedDrain = true;
    source.emit('data', Buffer.from('0123456789abcdef'));
    assert.equal(sink.writes.length, 0, 'nothing is cut while the socket is full');
    assert.deepEqual([link.stats().heldPieces, link.stats().heldBytes, source.paused], [1, 16, true]);
    sink.writableNeedDrain = false;
    sink.emit('drain');
    assert.deepEqual(sink.writes.map(String), ['0123', '4567', '89ab', 'cdef']);
    assert.equal(source.paused, false);
    link.dispose();
  });

  // Review h13: a slicer that holds the limit itself while stopped kept the link "full" at the
  // drain, and stages were resumed only when the reading socket went from paused to not paused.
  /** Reads of 4 KiB until the link pauses; returns everything sent, in order. */
  function fillUntilPaused(source: FakeSource): Buffer {
    const reads: Buffer[] = [];
    for (let i = 0; !source.paused; i++) {
      const read = Buffer.alloc(4096, i & 0xff);
      read.writeUInt32BE(i, 0);
      reads.push(read);
      source.emit('data', read);
    }
    return Buffer.concat(reads);
  }

  it('latency that releases into a slicer while the writing socket is full: the slicer, holding the limit itself, goes on at the drain', () => {
    const { source, sink, time, link } = makeLink([
      toxic('lat', 'latency', { latency: 1000, jitter: 0 }),
      toxic('cut', 'slicer', { average_size: 4, size_variation: 0, delay: 0 }),
    ]);
    const sent = fillUntilPaused(source);
    sink.writableNeedDrain = true;
    time.advance(2000);
    assert.equal(sink.writes.length, 0, 'nothing is cut while the socket is full');
    assert.equal(link.stats().heldBytes, sent.length, 'the slicer holds it all');
    sink.writableNeedDrain = false;
    sink.emit('drain');
    assert.ok(Buffer.concat(sink.writes).equals(sent), 'every byte arrives, in order');
    assert.equal(link.stats().heldBytes, 0);
    assert.equal(source.paused, false);
    link.dispose();
  });

  it('latency in front of a slicer removed while the writing socket is full: the slicer goes on at the drain', () => {
    const { source, sink, link } = makeLink([
      toxic('lat', 'latency', { latency: 600_000, jitter: 0 }),
      toxic('cut', 'slicer', { average_size: 4, size_variation: 0, delay: 0 }),
    ]);
    const sent = fillUntilPaused(source);
    sink.writableNeedDrain = true;
    link.removeToxic('lat');
    assert.equal(sink.writes.length, 0, 'nothing is cut while the socket is full');
    assert.equal(link.stats().heldBytes, sent.length, 'the slicer holds it all');
    assert.equal(source.paused, true);
    sink.writableNeedDrain = false;
    sink.emit('drain');
    assert.ok(Buffer.concat(sink.writes).equals(sent), 'every byte arrives, in order');
    assert.equal(link.stats().heldBytes, 0);
    assert.equal(source.paused, false);
    link.dispose();
  });
});
