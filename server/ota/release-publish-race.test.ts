import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { SdcError } from '../../core/errors/index.js';
import { parseMetadata } from '../../core/tuf/metadata.js';
import { createNodeTufCrypto } from '../../runtime/tuf-crypto-node.js';
import { storePairs } from '../control-plane/test-support.js';
import type { SqlDatabase, SqlTransaction } from '../stores/sql/sql-port.js';
import { MemoryArtifactStore } from './artifact-store.js';
import { ReleaseService } from './releases.js';
import { makeOtaHarness, publishTestRelease } from './test-support.js';

/**
 * Review h12 (A): publishing a signed release while a published release is revoked. On MySQL
 * (REPEATABLE READ, no locking reads) the publish transaction checked its proposal on a snapshot
 * taken before the revocation committed; the revocation then dropped that proposal, and the
 * publish's state change, which checked only `state = 'signed'`, still matched: a targets version
 * listing the revoked release was published after the revocation. The publish is paused right
 * after its reads (a db wrapper) while the revocation runs. On MySQL the revocation commits
 * meanwhile and the publish must be refused (OTA_TARGETS_STALE); on sql.js transactions run one
 * at a time, so the revocation waits and comes after the publish. Either way no targets version
 * published after the revocation lists the revoked release.
 */

const createInput = (id: string, version: string) => ({
  id, version, artifact_name: 'agent.bin', platforms: ['linux-x64'], min_agent_version: '0.1.0',
  reboot_required: true, health_check: { timeout_ms: 60_000, probes: ['kernel_status'] },
});

/** `db` whose transactions pause after the first statement matching `pauseAfter`, until `resume()`. */
function pausingDb(db: SqlDatabase, pauseAfter: RegExp) {
  let reached!: () => void;
  let resume!: () => void;
  const paused = new Promise<void>((resolve) => { reached = resolve; });
  const resumed = new Promise<void>((resolve) => { resume = resolve; });
  let done = false;
  const gate = async <T>(sql: string, result: Promise<T>): Promise<T> => {
    const value = await result;
    if (!done && pauseAfter.test(sql)) {
      done = true;
      reached();
      await resumed;
    }
    return value;
  };
  const wrapTx = (tx: SqlTransaction): SqlTransaction => new Proxy(tx, {
    get(target, key, receiver) {
      if (key === 'query') return (sql: string, params?: never) => gate(sql, target.query(sql, params));
      if (key === 'execute') return (sql: string, params?: never) => gate(sql, target.execute(sql, params));
      const value = Reflect.get(target, key, receiver) as unknown;
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
  const wrapped = new Proxy(db, {
    get(target, key, receiver) {
      if (key === 'transaction') return <T>(fn: (tx: SqlTransaction) => Promise<T>) => target.transaction((tx) => fn(wrapTx(tx)));
      const value = Reflect.get(target, key, receiver) as unknown;
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
  return { db: wrapped, paused, resume };
}

for (const { sql, kv } of storePairs().pairs) {
  describe(`publish racing a revocation (${sql.name})`, () => {
    it('a publish whose proposal a concurrent revocation dropped is refused; no targets after the revocation lists the revoked release', async () => {
      const h = await makeOtaHarness(sql, { kv });
      try {
        const keys = h.keys!;
        const artifacts = new MemoryArtifactStore();
        const crypto = createNodeTufCrypto();
        const releases = new ReleaseService({ context: h.cp.context, repository: h.ota.repository, artifacts, crypto });
        // The old release is published (targets version 2); the new one's proposal (version 3) lists both, and is signed.
        const old = await publishTestRelease({ ...h.ota, releases }, keys, { id: 'rel-old', version: '1.0.0', artifact: new TextEncoder().encode('old firmware') });
        assert.equal(old.state, 'published');
        const bytes = new TextEncoder().encode('new firmware');
        await releases.create(createInput('rel-new', '1.1.0'), 'olga');
        await releases.upload('rel-new', (async function* () { yield bytes; })(), { sha256: createHash('sha256').update(bytes).digest('hex') }, 'olga');
        const proposal = await releases.proposal('rel-new');
        assert.deepEqual(Object.keys(JSON.parse(proposal.signed_canonical).targets).sort(), ['rel-new/agent.bin', 'rel-old/agent.bin']);
        for (const [index, signer] of ['olga', 'sam'].entries()) {
          const key = keys.targets[index]!.key;
          await releases.addSignature('rel-new', { keyid: key.keyid, sig: key.sign(new TextEncoder().encode(proposal.signed_canonical)) }, signer);
        }
        assert.equal((await releases.get('rel-new')).state, 'signed');

        // Publish pauses after its last read (the published releases its proposal must list).
        const pausing = pausingDb(h.db, /FROM ota_releases WHERE state = 'published'/);
        const publisher = new ReleaseService({ context: { ...h.cp.context, db: pausing.db }, repository: h.ota.repository, artifacts, crypto });
        const publishing = publisher.publish('rel-new', 'olga').then(() => 'published' as const, (error: unknown) => error);
        await pausing.paused;
        const revoking = releases.revoke('rel-old', 'sam', 'recalled');
        if (h.db.dialect === 'mysql') await revoking; // commits while the publish is paused
        pausing.resume();
        const outcome = await publishing;
        await revoking;

        const audit = (await h.db.query<{ kind: string; subject: string }>(
          "SELECT kind, subject FROM audit_log WHERE kind IN ('ota.release.published', 'ota.release.revoked', 'ota.release.proposal_dropped') ORDER BY seq ASC"))
          .map((row) => `${row.kind} ${row.subject}`);
        const current = await h.ota.repository.current('targets');
        const listed = [...parseMetadata(new TextEncoder().encode(current!.body), 'targets').signed.targets.keys()].sort();
        if (h.db.dialect === 'mysql') {
          assert.ok(SdcError.is(outcome, 'OTA_TARGETS_STALE'), `refused with OTA_TARGETS_STALE, not ${String(outcome)}`);
          assert.equal((await releases.get('rel-new')).state, 'signed');
          assert.equal(current!.version, 2, 'no new targets version');
          assert.deepEqual(listed, ['rel-old/agent.bin']);
          assert.deepEqual(audit.filter((line) => !line.endsWith('rel-old') || !line.startsWith('ota.release.published')),
            ['ota.release.revoked release:rel-old', 'ota.release.proposal_dropped release:rel-new']);
          // Signed again from a new proposal, it publishes without the revoked release.
          const again = await releases.proposal('rel-new');
          for (const [index, signer] of ['olga', 'sam'].entries()) {
            const key = keys.targets[index]!.key;
            await releases.addSignature('rel-new', { keyid: key.keyid, sig: key.sign(new TextEncoder().encode(again.signed_canonical)) }, signer);
          }
          await releases.publish('rel-new', 'olga');
          const next = await h.ota.repository.current('targets');
          assert.deepEqual([...parseMetadata(new TextEncoder().encode(next!.body), 'targets').signed.targets.keys()], ['rel-new/agent.bin']);
        } else {
          // One transaction at a time: the publish came first, the revocation after it (and found no open proposal to drop).
          assert.equal(outcome, 'published');
          assert.deepEqual(audit, ['ota.release.published release:rel-old', 'ota.release.published release:rel-new', 'ota.release.revoked release:rel-old']);
          assert.equal(current!.version, 3);
        }
        assert.equal((await releases.get('rel-old')).state, 'revoked');
      } finally {
        await h.close();
      }
    });
  });
}
