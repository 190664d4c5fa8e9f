import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { VirtualTime } from '../../core/time/virtual-time.js';
import { parseAuditAnchorLines } from '../../core/protocol/audit-anchors.js';
import type { AuditAnchor } from '../../core/protocol/audit-chain.js';
import { AuditAnchorWriter, auditAnchorFile } from './audit-anchor-writer.js';

const hash = (digit: string) => digit.repeat(64);
/** Lets the writer's awaited head read and append settle after a timer fired. */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

function world(options: { failAppends?: number } = {}) {
  const time = new VirtualTime(Date.UTC(2026, 11, 5, 18, 0, 0));
  let head: AuditAnchor | undefined;
  const lines: string[] = [];
  const errors: unknown[] = [];
  let failures = options.failAppends ?? 0;
  const writer = new AuditAnchorWriter({
    head: async () => head, clock: time, scheduler: time, intervalMs: 60_000, onError: (error) => errors.push(error),
    sink: { append: async (line) => { if (failures > 0) { failures -= 1; throw new Error('disk full'); } lines.push(line); } },
  });
  const advance = async (ms: number) => {
    time.advance(ms);
    await settle();
  };
  return { time, writer, lines, errors, advance, setHead: (seq: number, digit: string) => { head = { seq, hash: hash(digit) }; } };
}

test('the writer anchors the head at start, then each interval only when it moved, and once more at a clean stop; never two timers', async () => {
  const w = world();
  await w.writer.start();
  assert.deepEqual(w.lines, [], 'an empty log has no head to anchor');
  w.setHead(3, 'a');
  await w.advance(59_999);
  assert.deepEqual(w.lines, [], 'not before the interval');
  await w.advance(1);
  assert.deepEqual(parseAuditAnchorLines(w.lines.join('')).map(({ seq, at }) => [seq, at]), [[3, '2026-12-05T18:01:00.000Z']]);
  await w.advance(60_000);
  await w.advance(60_000);
  assert.equal(w.lines.length, 1, 'an idle log adds no line');
  w.setHead(9, 'b');
  await w.advance(60_000);
  w.setHead(12, 'c');
  assert.equal(w.time.pendingTimers, 1);
  await w.writer.stop();
  assert.equal(w.time.pendingTimers, 0, 'stopped: no timer left');
  assert.deepEqual(parseAuditAnchorLines(w.lines.join('')).map(({ seq, hash: h, at }) => [seq, h[0], at]), [
    [3, 'a', '2026-12-05T18:01:00.000Z'], [9, 'b', '2026-12-05T18:04:00.000Z'], [12, 'c', '2026-12-05T18:04:00.000Z'],
  ]);
});

test('a failed append is reported and tried again at the next interval; a failure of the first write is thrown by start', async () => {
  const w = world({ failAppends: 1 });
  w.setHead(1, 'a');
  await assert.rejects(w.writer.start(), /disk full/);
  const later = world({ failAppends: 1 });
  await later.writer.start();
  later.setHead(2, 'b');
  await later.advance(60_000);
  assert.equal(later.errors.length, 1);
  assert.deepEqual(later.lines, []);
  await later.advance(60_000);
  assert.deepEqual(parseAuditAnchorLines(later.lines.join('')).map(({ seq }) => seq), [2]);
  await later.writer.stop();
});

test('the anchor file: JSON lines appended, mode 0600 even for a file made before with another mode', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sdc-anchors-'));
  try {
    const path = join(dir, 'anchors.jsonl');
    await writeFile(path, '', { mode: 0o644 });
    const file = auditAnchorFile(path);
    await file.append('{"seq":1,"hash":"' + hash('a') + '","at":"2026-12-05T18:00:00.000Z"}\n');
    await file.append('{"seq":2,"hash":"' + hash('b') + '","at":"2026-12-05T18:01:00.000Z"}\n');
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    assert.deepEqual(parseAuditAnchorLines(await readFile(path, 'utf8')).map(({ seq, line }) => [seq, line]), [[1, 1], [2, 2]]);
    const fresh = join(dir, 'fresh.jsonl');
    await auditAnchorFile(fresh).append('{"seq":1,"hash":"' + hash('a') + '","at":"2026-12-05T18:00:00.000Z"}\n');
    assert.equal((await stat(fresh)).mode & 0o777, 0o600);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('intervals outside 1 s to a day are refused', () => {
  const time = new VirtualTime();
  for (const intervalMs of [999, 86_400_001, 1.5]) {
    assert.throws(() => new AuditAnchorWriter({ head: async () => undefined, sink: { append: async () => undefined }, clock: time, scheduler: time, intervalMs, onError: () => undefined }), RangeError);
  }
});
