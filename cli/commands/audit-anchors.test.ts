// Audit anchors kept automatically (docs/audit.md, "Anchors kept automatically"): sdc serve
// --audit-anchor-file appends the head; sdc audit verify --anchors checks the chain against every
// line, so a history rewritten (hashes recomputed) before an anchored head, or a removed tail, fails
// with anchor_mismatch though the chain alone verifies.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { auditEntryHash, auditGenesisHash } from '../../core/protocol/audit-chain.js';
import { VirtualTime } from '../../core/time/virtual-time.js';
import { AuditAnchorWriter, auditAnchorFile } from '../../server/control-plane/audit-anchor-writer.js';
import { makeHarness, sqlJsTarget, type Harness } from '../../server/control-plane/test-support.js';
import { parseCommandArgs, type CliIo } from '../command.js';
import { main } from '../main.js';
import { auditAnchorOption, serveCommand } from './serve.js';

function io(): CliIo & { out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, stdout: (t) => { out.push(t); }, stderr: (t) => { err.push(t); }, readStdin: async () => '', env: {} };
}

async function verify(h: Harness, extra: string[]): Promise<{ code: number; out: string; err: string }> {
  const run = io();
  const code = await main(['audit', 'verify', '--dir', h.dir, ...extra], run);
  return { code, out: run.out.join(''), err: run.err.join('') };
}

/** Entries 1..4 with an anchor written after entry 2 and after entry 4 (the writer on virtual time, the real file). */
async function anchoredLog(h: Harness, path: string): Promise<void> {
  const time = new VirtualTime(Date.UTC(2026, 11, 5, 18, 0, 0));
  const writer = new AuditAnchorWriter({
    head: () => h.cp.auditStore.head(), sink: auditAnchorFile(path), clock: time, scheduler: time, intervalMs: 60_000,
    onError: (error) => { throw error; },
  });
  await writer.start();
  for (let i = 0; i < 4; i += 1) {
    await h.cp.context.audit.append({ kind: 'test.note', actor: 'system', subject: `n${i}`, payload: {} });
    if (i === 1) await writer.writeIfMoved();
  }
  await writer.stop();
}

/** Recomputes every hash from `fromSeq` on after changing that entry's subject: the chain alone verifies. */
async function rewriteFrom(h: Harness, fromSeq: number): Promise<void> {
  const sha256 = (bytes: Uint8Array) => new Uint8Array(createHash('sha256').update(bytes).digest());
  let prevHash = auditGenesisHash;
  for (const entry of await h.cp.auditStore.scan(1, 100)) {
    if (entry.seq < fromSeq) {
      prevHash = entry.hash;
      continue;
    }
    const changed = { ...entry, subject: entry.seq === fromSeq ? 'forged' : entry.subject, prev_hash: prevHash };
    prevHash = auditEntryHash(changed, sha256);
    await h.db.execute('UPDATE audit_log SET subject = ?, prev_hash = ?, hash = ? WHERE seq = ?', [changed.subject, changed.prev_hash, prevHash, entry.seq]);
  }
}

describe('audit anchors: sdc audit verify --anchors against the file sdc serve --audit-anchor-file writes', () => {
  it('every anchor held: ok with the count; a history rewritten before an anchored head is anchor_mismatch at the earliest anchor it breaks', async () => {
    const h = await makeHarness(sqlJsTarget);
    const dir = await mkdtemp(join(tmpdir(), 'sdc-anchors-cli-'));
    try {
      const path = join(dir, 'anchors.jsonl');
      await anchoredLog(h, path);
      await h.cp.stop();
      assert.deepEqual((await readFile(path, 'utf8')).trim().split('\n').map((line) => (JSON.parse(line) as { seq: number }).seq), [2, 4]);
      const ok = await verify(h, ['--anchors', path]);
      assert.equal(ok.code, 0, ok.err);
      assert.match(ok.out, new RegExp(`^ok: 4 entries, head 4:[0-9a-f]{64}; all 2 anchors of ${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} are in it\n$`));
      const json = await verify(h, ['--anchors', path, '--json']);
      assert.equal((JSON.parse(json.out) as { anchors_checked: number }).anchors_checked, 2);

      await rewriteFrom(h, 3);
      assert.equal((await verify(h, [])).code, 0, 'the chain alone still verifies');
      const after2 = await verify(h, ['--anchors', path, '--json']);
      assert.equal(after2.code, 1);
      const report = JSON.parse(after2.out) as Record<string, unknown>;
      assert.deepEqual([report['ok'], report['reason'], report['first_broken_seq']], [false, 'anchor_mismatch', 4]);
      assert.match(String(report['detail']), /entry 4 hashes to [0-9a-f]{64}, the anchor of line 2 \(2026-12-05T18:00:00.000Z\) says [0-9a-f]{64}: the chain was rewritten at or before it/);

      await rewriteFrom(h, 1);
      const whole = await verify(h, ['--anchors', path]);
      assert.equal(whole.code, 1);
      assert.match(whole.out, /^broken: entry 2: anchor_mismatch: entry 2 hashes to .* the anchor of line 1 /);
    } finally {
      await h.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a removed tail is anchor_mismatch; an unreadable, empty or malformed anchor file is refused with its code, the line named', async () => {
    const h = await makeHarness(sqlJsTarget);
    const dir = await mkdtemp(join(tmpdir(), 'sdc-anchors-cli-'));
    try {
      const path = join(dir, 'anchors.jsonl');
      await anchoredLog(h, path);
      await h.cp.stop();
      await h.db.execute('DELETE FROM audit_log WHERE seq > 3');
      const cut = await verify(h, ['--anchors', path]);
      assert.equal(cut.code, 1);
      assert.match(cut.out, /^broken: entry 4: anchor_mismatch: the chain ends at seq 3, before the anchor of line 2 .* at seq 4: its tail was removed/);

      const malformed = join(dir, 'malformed.jsonl');
      await writeFile(malformed, `${(await readFile(path, 'utf8')).split('\n')[0]}\n{"seq":"4"}\n`);
      const refused = await verify(h, ['--anchors', malformed]);
      assert.equal(refused.code, 1);
      assert.match(refused.err, /^sdc: AUDIT_ANCHOR_INVALID: anchor line 2: seq must be/);
      const empty = join(dir, 'empty.jsonl');
      await writeFile(empty, '\n');
      assert.match((await verify(h, ['--anchors', empty])).err, /AUDIT_ANCHOR_INVALID: .* holds no anchor/);
      assert.match((await verify(h, ['--anchors', join(dir, 'missing.jsonl')])).err, /CLI_INPUT: --anchors .* cannot be read/);
    } finally {
      await h.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('sdc serve --audit-anchor-file / --audit-anchor-interval-ms: default 60 s, bounds, an interval alone and an unwritable directory refused', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sdc-anchors-serve-'));
    try {
      const option = (argv: string[]) => auditAnchorOption(parseCommandArgs(serveCommand, argv));
      assert.equal(await option([]), undefined);
      assert.deepEqual(await option(['--audit-anchor-file', join(dir, 'a.jsonl')]), { path: join(dir, 'a.jsonl'), intervalMs: 60_000 });
      assert.deepEqual(await option(['--audit-anchor-file', join(dir, 'a.jsonl'), '--audit-anchor-interval-ms', '5000']), { path: join(dir, 'a.jsonl'), intervalMs: 5_000 });
      for (const [argv, pattern] of [
        [['--audit-anchor-interval-ms', '5000'], /CLI_USAGE|goes with --audit-anchor-file/],
        [['--audit-anchor-file', join(dir, 'a.jsonl'), '--audit-anchor-interval-ms', '999'], /from 1000 to 86400000/],
        [['--audit-anchor-file', join(dir, 'no', 'such', 'a.jsonl')], /its directory cannot be written/],
      ] as const) {
        await assert.rejects(option([...argv]), (error: unknown) => pattern.test((error as Error).message), argv.join(' '));
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('sdc serve --audit-anchor-file anchors the head (at start, each interval it moved, at a clean stop); the file verifies', async () => {
    const parent = await mkdtemp(join(tmpdir(), 'sdc-anchors-run-'));
    // A data directory whose log holds two entries, closed before serve opens it.
    const h = await makeHarness(sqlJsTarget);
    try {
      const dir = h.dir;
      const path = join(parent, 'anchors.jsonl');
      for (const subject of ['a', 'b']) await h.cp.context.audit.append({ kind: 'test.note', actor: 'system', subject, payload: {} });
      await h.cp.stop();
      await h.db.close();
      let stop: (reason: string) => void = () => undefined;
      const run = { ...io(), env: { SDC_LOG_LEVEL: 'silent' }, untilStopped: () => new Promise<string>((resolve) => { stop = resolve; }) };
      const exit = main(['serve', '--dir', dir, '--api-port', '0', '--gateway-port', '0', '--audit-anchor-file', path], run);
      // Polls stdout for the ready line (no timing asserted: it waits as long as the start takes).
      while (!run.out.join('').includes('ready\n')) {
        const exited = await Promise.race([exit, delay(50).then(() => undefined)]);
        if (exited !== undefined) assert.fail(`serve exited ${exited}: ${run.err.join('')}`);
      }
      assert.match(run.out.join(''), /^audit anchors {2}.*anchors\.jsonl \(the head every 60000 ms when it moved; sdc audit verify --anchors\)$/m);
      stop('test');
      assert.equal(await exit, 0, run.err.join(''));
      // One line: the head anchored at start, not again at the stop (it did not move).
      assert.equal((await readFile(path, 'utf8')).trim().split('\n').length, 1);
      const checked = io();
      assert.equal(await main(['audit', 'verify', '--dir', dir, '--anchors', path], checked), 0, checked.err.join('') + checked.out.join(''));
      assert.match(checked.out.join(''), /^ok: 2 entries, head 2:[0-9a-f]{64}; all 1 anchors of .* are in it\n$/);
    } finally {
      await h.bus.close();
      await rm(h.dir, { recursive: true, force: true });
      await rm(parent, { recursive: true, force: true });
    }
  });
});
