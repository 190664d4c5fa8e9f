import { describe, it } from 'node:test';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { auditEntryHash, auditGenesisHash } from '../../core/protocol/audit-chain.js';
import { main } from '../main.js';
import type { CliIo } from '../command.js';
import { makeHarness, sqlJsTarget } from '../../server/control-plane/test-support.js';

function io(options: { stdin?: string; env?: Record<string, string> } = {}): CliIo & { out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return {
    out, err, stdout: (t) => out.push(t), stderr: (t) => err.push(t),
    readStdin: async () => options.stdin ?? '', env: options.env ?? {},
  };
}

describe('sdc user add and sdc audit verify', () => {
  it('bootstraps an admin who can log in; verify passes, then names the seq of a tampered row', async () => {
    const h = await makeHarness(sqlJsTarget);
    try {
      const noPassword = io();
      assert.equal(await main(['user', 'add', '--dir', h.dir, '--name', 'boss', '--role', 'admin'], noPassword), 2);
      assert.match(noPassword.err.join(''), /CLI_USAGE.*SDC_PASSWORD/);
      const badRole = io({ env: { SDC_PASSWORD: 'a long enough password' } });
      assert.equal(await main(['user', 'add', '--dir', h.dir, '--name', 'boss', '--role', 'king'], badRole), 1);
      assert.match(badRole.err.join(''), /CLI_INPUT/);
      const added = io({ stdin: 'a long enough password\n' });
      assert.equal(await main(['user', 'add', '--dir', h.dir, '--name', 'boss', '--role', 'admin', '--password-stdin'], added), 0, added.err.join(''));
      assert.equal(added.out.join(''), 'added boss (admin)\n');

      // The running control plane has its own connection to the file; a fresh one sees the new user.
      await h.cp.stop();
      await h.db.close();
      const h2 = await makeHarness({ ...sqlJsTarget, open: () => sqlJsTarget.open(h.dir) });
      try {
        await h2.cp.auth.login('boss', 'a long enough password');
        await h2.cp.auth.login('boss', 'a long enough password');
        await h2.cp.context.audit.append({ kind: 'test.note', actor: 'system', subject: 'x', payload: {} });
        const ok = io();
        assert.equal(await main(['audit', 'verify', '--dir', h.dir], ok), 0, ok.err.join(''));
        assert.match(ok.out.join(''), /^ok: 3 entries, head 3:[0-9a-f]{64}\n$/);
        // The head as printed is what --expect-head takes (security review 2026-12-05, finding 6).
        const keptHead = /head (3:[0-9a-f]{64})/.exec(ok.out.join(''))![1]!;
        const against = io();
        assert.equal(await main(['audit', 'verify', '--dir', h.dir, '--expect-head', keptHead], against), 0, against.err.join(''));
        assert.equal(against.out.join(''), `ok: 3 entries, head ${keptHead}; the kept head ${keptHead} is in it\n`);
        // A change committed with its audit input, the process gone before the chain append: counted, left for the next start.
        await h2.db.transaction((tx) => h2.cp.context.audit.record(tx, { kind: 'test.note', actor: 'system', subject: 'y', payload: {} }));
        const pending = io();
        assert.equal(await main(['audit', 'verify', '--dir', h.dir], pending), 0, pending.err.join(''));
        assert.match(pending.out.join(''), /^ok: 3 entries, head 3:[0-9a-f]{64}\n1 recorded entries not yet chained; the next start of the control plane chains them\n$/);
        const pendingJson = io();
        assert.equal(await main(['audit', 'verify', '--dir', h.dir, '--json'], pendingJson), 0);
        const okReport = JSON.parse(pendingJson.out.join('')) as { ok: boolean; count: number; head_seq: number; head_hash: string; recorded_not_chained: number };
        assert.deepEqual({ ...okReport, head_hash: okReport.head_hash.length }, { ok: true, count: 3, head_seq: 3, head_hash: 64, recorded_not_chained: 1 });
        await h2.db.execute("UPDATE audit_log SET payload_json = '{\"role\":\"viewer\"}' WHERE seq = 2");
        const broken = io();
        assert.equal(await main(['audit', 'verify', '--dir', h.dir], broken), 1);
        assert.match(broken.out.join(''), /^broken: entry 2: hash_mismatch/);
        const brokenJson = io();
        assert.equal(await main(['audit', 'verify', '--dir', h.dir, '--json'], brokenJson), 1);
        assert.deepEqual(Object.entries(JSON.parse(brokenJson.out.join('')) as Record<string, unknown>).filter(([k]) => k !== 'detail'),
          [['ok', false], ['first_broken_seq', 2], ['reason', 'hash_mismatch'], ['recorded_not_chained', 1]]);
      } finally {
        await h2.close();
      }
    } finally {
      await h.bus.close();
      await rm(h.dir, { recursive: true, force: true });
    }
  });

  // Security review 2026-12-05, finding 6: a removed tail and a chain rewritten whole verify alone; --expect-head shows them.
  it('--expect-head: a removed tail and a rewritten chain are head_mismatch against the kept head; a malformed one is CLI_USAGE', async () => {
    const h = await makeHarness(sqlJsTarget);
    try {
      for (let i = 0; i < 4; i += 1) await h.cp.context.audit.append({ kind: 'test.note', actor: 'system', subject: `n${i}`, payload: {} });
      await h.cp.stop();
      const first = io();
      assert.equal(await main(['audit', 'verify', '--dir', h.dir, '--json'], first), 0, first.err.join(''));
      const report = JSON.parse(first.out.join('')) as { head_seq: number; head_hash: string };
      const kept = `${report.head_seq}:${report.head_hash}`;
      assert.equal(report.head_seq, 4);

      // Rewritten whole: entry 1 changed and every hash recomputed, so the chain alone is valid.
      const sha256 = (bytes: Uint8Array) => new Uint8Array(createHash('sha256').update(bytes).digest());
      let prevHash = auditGenesisHash;
      for (const entry of await h.cp.auditStore.scan(1, 100)) {
        const changed = { ...entry, subject: entry.seq === 1 ? 'forged' : entry.subject, prev_hash: prevHash };
        prevHash = auditEntryHash(changed, sha256);
        await h.db.execute('UPDATE audit_log SET subject = ?, prev_hash = ?, hash = ? WHERE seq = ?', [changed.subject, changed.prev_hash, prevHash, entry.seq]);
      }
      const alone = io();
      assert.equal(await main(['audit', 'verify', '--dir', h.dir], alone), 0, alone.err.join(''));
      const rewritten = io();
      assert.equal(await main(['audit', 'verify', '--dir', h.dir, '--expect-head', kept], rewritten), 1);
      assert.match(rewritten.out.join(''), /^broken: entry 4: head_mismatch: .*rewritten/);

      // The tail removed: the chain alone is valid and shorter.
      await h.db.execute('DELETE FROM audit_log WHERE seq > 2');
      const shorter = io();
      assert.equal(await main(['audit', 'verify', '--dir', h.dir, '--json'], shorter), 0);
      assert.equal((JSON.parse(shorter.out.join('')) as { head_seq: number }).head_seq, 2);
      const cut = io();
      assert.equal(await main(['audit', 'verify', '--dir', h.dir, '--expect-head', kept, '--json'], cut), 1);
      const cutReport = JSON.parse(cut.out.join('')) as Record<string, unknown>;
      assert.deepEqual([cutReport.ok, cutReport.first_broken_seq, cutReport.reason, cutReport.expected_head], [false, 3, 'head_mismatch', kept]);

      for (const bad of ['4', `0:${report.head_hash}`, `4:${report.head_hash.toUpperCase()}`, '4:abc']) {
        const refused = io();
        assert.equal(await main(['audit', 'verify', '--dir', h.dir, '--expect-head', bad], refused), 2, bad);
        assert.match(refused.err.join(''), /CLI_USAGE.*--expect-head/, bad);
      }
    } finally {
      await h.close();
    }
  });

  it('refuses a data directory that does not exist or was never initialised, and creates nothing there', async () => {
    const parent = await mkdtemp(join(tmpdir(), 'sdc-cli-dir-'));
    try {
      const missing = join(parent, 'nonexistent');
      const verify = io();
      assert.equal(await main(['audit', 'verify', '--dir', missing], verify), 1);
      assert.equal(verify.out.join(''), '');
      assert.equal(verify.err.join(''), `sdc: TRUST_PKI_MISSING: data directory ${missing} does not exist (create it with sdc pki init --dir ${missing})\n`);
      const add = io({ stdin: 'a long enough password\n' });
      assert.equal(await main(['user', 'add', '--dir', missing, '--name', 'boss', '--role', 'admin', '--password-stdin'], add), 1);
      assert.match(add.err.join(''), /^sdc: TRUST_PKI_MISSING: data directory .* does not exist/);
      assert.deepEqual(await readdir(parent), [], 'no directory was created');

      const emptyDir = join(parent, 'empty');
      await mkdir(emptyDir);
      for (const argv of [['audit', 'verify', '--dir', emptyDir], ['user', 'add', '--dir', emptyDir, '--name', 'boss', '--role', 'admin', '--password-stdin']]) {
        const run = io({ stdin: 'a long enough password\n' });
        assert.equal(await main(argv, run), 1, argv.join(' '));
        assert.match(run.err.join(''), /^sdc: TRUST_PKI_MISSING: .* is not an initialised data directory: .*intermediate-ca.pem does not exist \(run sdc pki init --dir /);
      }
      assert.deepEqual(await readdir(emptyDir), [], 'no database was created in the uninitialised directory');
    } finally {
      await rm(parent, { recursive: true, force: true });
    }
  });
});
