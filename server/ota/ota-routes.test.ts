import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { parseMetadata } from '../../core/tuf/metadata.js';
import { storePairs, type Harness } from '../control-plane/test-support.js';
import type { RepositoryKeys } from './repository-init.js';
import { makeOtaHarness } from './test-support.js';

/**
 * The release routes end to end through the HTTP app: roles, the release states, every refusal
 * with its code, and publishing only with a threshold of release signers' signatures (made here
 * with the targets keys, as `sdc release sign` makes them). On sql.js, and on MySQL when
 * MYSQL_URL is set (storePairs).
 */

const artifact = new TextEncoder().encode('firmware 2.4.0 '.repeat(100));
const sha256 = createHash('sha256').update(artifact).digest('hex');
const createBody = {
  id: 'rel-2-4-0', version: '2.4.0', artifact_name: 'agent.bin', platforms: ['linux-x64'], min_agent_version: '1.0.0',
  reboot_required: true, health_check: { timeout_ms: 300_000, probes: ['agent_online'] },
};

for (const { sql, kv } of storePairs().pairs) {
  describe(`release routes (${sql.name})`, () => {
    let h: Harness;
    let keys: RepositoryKeys;
    let operator: string;
    let secondOperator: string;
    let viewer: string;

    before(async () => {
      const harness = await makeOtaHarness(sql, { artifactBytesMax: 4096, kv });
      h = harness;
      keys = harness.keys!;
      const nowMs = h.clock.nowMs();
      await h.cp.auth.users.add({ name: 'olga', role: 'operator', password: 'operator password', nowMs });
      await h.cp.auth.users.add({ name: 'vic', role: 'viewer', password: 'viewer password', nowMs });
      operator = (await h.cp.auth.login('olga', 'operator password')).token;
      await h.cp.auth.users.add({ name: 'sam', role: 'operator', password: 'operator password 2', nowMs });
      secondOperator = (await h.cp.auth.login('sam', 'operator password 2')).token;
      viewer = (await h.cp.auth.login('vic', 'viewer password')).token;
    });
    after(async () => { await h.close(); await sql.cleanup(); });

    const call = (method: 'GET' | 'POST' | 'PUT', url: string, token: string | undefined, body?: unknown, headers: Record<string, string> = {}) => h.cp.app.inject({
      method, url, headers: { ...(token === undefined ? {} : { authorization: `Bearer ${token}` }), ...headers },
      ...(body === undefined ? {} : body instanceof Uint8Array ? { payload: Buffer.from(body) } : { payload: body as object }),
    });
    const upload = (id: string, bytes: Uint8Array, digest: string) => call('PUT', `/v1/releases/${id}/artifact`, operator, bytes,
      { 'content-type': 'application/octet-stream', 'x-sdc-artifact-sha256': digest });
    const signWith = async (id: string, keyIndex: number, role: 'targets' | 'root' = 'targets', token = operator) => {
      const proposal = (await call('GET', `/v1/releases/${id}/targets-proposal`, token)).json() as { signed_canonical: string };
      const key = keys[role][keyIndex]!.key;
      return call('POST', `/v1/releases/${id}/signatures`, token, { keyid: key.keyid, sig: key.sign(new TextEncoder().encode(proposal.signed_canonical)) });
    };
    const codeOf = (response: { json(): unknown }) => (response.json() as { error: { code: string } }).error.code;

    it('a viewer reads releases but cannot create one', async () => {
      assert.equal((await call('GET', '/v1/releases', viewer)).statusCode, 200);
      const refused = await call('POST', '/v1/releases', viewer, createBody);
      assert.equal(refused.statusCode, 403);
      assert.equal(codeOf(refused), 'API_FORBIDDEN');
    });

    it('creates, uploads, collects a threshold of release-signer signatures and publishes; refusals carry their codes', async () => {
      const created = await call('POST', '/v1/releases', operator, createBody);
      assert.equal(created.statusCode, 201, created.body);
      assert.equal(created.json().state, 'draft');
      assert.equal(created.json().custom.sdc.release_counter, 1);
      assert.equal(codeOf(await call('POST', '/v1/releases', operator, createBody)), 'OTA_RELEASE_EXISTS');
      assert.equal(codeOf(await call('GET', `/v1/releases/${createBody.id}/targets-proposal`, operator)), 'OTA_RELEASE_STATE', 'nothing to sign before the upload is verified');

      const badDigest = await upload(createBody.id, artifact, 'f'.repeat(64));
      assert.equal(badDigest.statusCode, 400);
      assert.equal(codeOf(badDigest), 'OTA_UPLOAD_DIGEST_MISMATCH');
      assert.equal((await call('GET', `/v1/releases/${createBody.id}`, viewer)).json().state, 'uploading', 'a failed upload may be tried again');
      const tooLarge = await upload(createBody.id, new Uint8Array(5000), 'a'.repeat(64));
      assert.equal(tooLarge.statusCode, 413);
      assert.equal(codeOf(tooLarge), 'OTA_UPLOAD_TOO_LARGE');
      const uploaded = await upload(createBody.id, artifact, sha256);
      assert.equal(uploaded.statusCode, 200, uploaded.body);
      assert.deepEqual({ state: uploaded.json().state, length: uploaded.json().artifact.length, sha256: uploaded.json().artifact.sha256 }, { state: 'verified', length: artifact.length, sha256 });
      assert.equal(codeOf(await upload(createBody.id, artifact, sha256)), 'OTA_RELEASE_STATE');

      const early = await call('POST', `/v1/releases/${createBody.id}/publish`, operator);
      assert.equal(early.statusCode, 409);
      assert.equal(codeOf(early), 'OTA_RELEASE_UNDER_THRESHOLD');
      const proposal = (await call('GET', `/v1/releases/${createBody.id}/targets-proposal`, operator)).json();
      assert.equal(proposal.threshold, 2);
      assert.equal(proposal.targets_version, 2);
      assert.equal(codeOf(await signWith(createBody.id, 0, 'root')), 'OTA_RELEASE_SIGNATURE_INVALID', 'a root key is not a release signer');
      const forged = await call('POST', `/v1/releases/${createBody.id}/signatures`, operator, { keyid: keys.targets[1]!.key.keyid, sig: keys.targets[1]!.key.sign(new TextEncoder().encode('something else')) });
      assert.equal(codeOf(forged), 'OTA_RELEASE_SIGNATURE_INVALID', 'a signature over other bytes');
      assert.equal((await signWith(createBody.id, 0)).json().state, 'verified');
      assert.equal((await signWith(createBody.id, 0)).json().signatures.length, 1, 'one key counts once, however often it signs');
      assert.equal(codeOf(await call('POST', `/v1/releases/${createBody.id}/publish`, operator)), 'OTA_RELEASE_UNDER_THRESHOLD', 'one signer is not enough');
      const sameOperator = await signWith(createBody.id, 2);
      assert.equal(sameOperator.json().state, 'verified', 'two keys sent by one account are one person');
      const refused = await call('POST', `/v1/releases/${createBody.id}/publish`, operator);
      assert.equal(codeOf(refused), 'OTA_RELEASE_UNDER_THRESHOLD');
      assert.match(refused.json().error.message, /sent by 1 user/);
      const second = await signWith(createBody.id, 2, 'targets', secondOperator);
      assert.equal(second.json().state, 'signed');
      assert.deepEqual(second.json().signatures.map((signature: { signed_by: string }) => signature.signed_by).sort(), ['olga', 'sam']);

      const published = await call('POST', `/v1/releases/${createBody.id}/publish`, operator);
      assert.equal(published.statusCode, 200, published.body);
      assert.equal(published.json().state, 'published');

      // The repository now serves targets version 2 listing the release, under a new snapshot and timestamp.
      const timestamp = await call('GET', '/v1/tuf/metadata/timestamp.json', undefined);
      assert.equal(timestamp.statusCode, 200);
      const snapshotVersion = parseMetadata(timestamp.rawPayload, 'timestamp').signed.snapshotMeta.version;
      const snapshot = parseMetadata((await call('GET', `/v1/tuf/metadata/${snapshotVersion}.snapshot.json`, undefined)).rawPayload, 'snapshot');
      assert.equal(snapshot.signed.meta.get('targets.json')?.version, 2);
      const targets = parseMetadata((await call('GET', '/v1/tuf/metadata/2.targets.json', undefined)).rawPayload, 'targets');
      const target = targets.signed.targets.get('rel-2-4-0/agent.bin');
      assert.equal(target?.length, artifact.length);
      assert.deepEqual(target?.hashes[0], ['sha256', sha256]);
      const served = await call('GET', `/v1/tuf/targets/rel-2-4-0/${sha256}.agent.bin`, undefined);
      assert.equal(served.statusCode, 200);
      assert.deepEqual(new Uint8Array(served.rawPayload), artifact);
      assert.equal((await call('GET', `/v1/tuf/targets/rel-2-4-0/${'0'.repeat(64)}.agent.bin`, undefined)).statusCode, 404);
      assert.equal((await call('GET', '/v1/tuf/metadata/9.targets.json', undefined)).statusCode, 404, 'the client reads 404 as "no such version"');
      assert.equal(codeOf(await call('POST', `/v1/releases/${createBody.id}/publish`, operator)), 'OTA_RELEASE_STATE');
    });

    it('revokes: a revoked release is never served, uploaded or signed again, and the next targets leaves it out', async () => {
      const revoked = await call('POST', `/v1/releases/${createBody.id}/revoke`, operator, { reason: 'bricks 10 % of devices' });
      assert.equal(revoked.json().state, 'revoked');
      assert.equal((await call('GET', `/v1/tuf/targets/rel-2-4-0/${sha256}.agent.bin`, undefined)).statusCode, 404);
      assert.equal(codeOf(await call('POST', `/v1/releases/${createBody.id}/revoke`, operator, { reason: 'again' })), 'OTA_RELEASE_REVOKED');
      assert.equal(codeOf(await call('GET', `/v1/releases/${createBody.id}/targets-proposal`, operator)), 'OTA_RELEASE_REVOKED');

      const next = { ...createBody, id: 'rel-2-4-1', version: '2.4.1' };
      assert.equal((await call('POST', '/v1/releases', operator, next)).json().custom.sdc.release_counter, 2, 'counters only go up');
      await upload(next.id, artifact, sha256);
      const other = { ...createBody, id: 'rel-2-4-2', version: '2.4.2' };
      await call('POST', '/v1/releases', operator, other);
      await upload(other.id, artifact, sha256);
      const proposal = (await call('GET', `/v1/releases/${next.id}/targets-proposal`, operator)).json();
      assert.equal(proposal.targets_version, 3);
      assert.deepEqual(Object.keys(JSON.parse(proposal.signed_canonical).targets), ['rel-2-4-1/agent.bin'], 'the revoked release is left out');
      assert.equal(codeOf(await call('GET', `/v1/releases/${other.id}/targets-proposal`, operator)), 'OTA_TARGETS_PROPOSAL_OPEN', 'one targets version is signed at a time');
      await signWith(next.id, 1);
      await signWith(next.id, 2, 'targets', secondOperator);
      assert.equal((await call('POST', `/v1/releases/${next.id}/publish`, operator)).json().state, 'published');
      const otherProposal = (await call('GET', `/v1/releases/${other.id}/targets-proposal`, operator)).json();
      assert.equal(otherProposal.targets_version, 4);
      assert.deepEqual(Object.keys(JSON.parse(otherProposal.signed_canonical).targets).sort(), ['rel-2-4-1/agent.bin', 'rel-2-4-2/agent.bin']);
    });

    it('revoking a published release drops a signed proposal that lists it: publishing that is refused (OTA_TARGETS_STALE), and the next targets leaves it out', async () => {
      // rel-2-4-1 is published (targets version 3); rel-2-4-2's proposal (version 4) lists it and rel-2-4-2.
      const [first, second] = ['rel-2-4-1', 'rel-2-4-2'];
      const before = (await call('GET', `/v1/releases/${second}/targets-proposal`, operator)).json() as { signed_canonical: string; targets_version: number };
      await signWith(second, 1);
      assert.equal((await signWith(second, 2, 'targets', secondOperator)).json().state, 'signed');
      assert.equal((await call('POST', `/v1/releases/${first}/revoke`, operator, { reason: 'recalled' })).json().state, 'revoked');

      const dropped = (await call('GET', `/v1/releases/${second}`, viewer)).json();
      assert.deepEqual({ state: dropped.state, proposal: dropped.proposal_version, signatures: dropped.signatures.length }, { state: 'signed', proposal: null, signatures: 0 });
      const stale = await call('POST', `/v1/releases/${second}/publish`, operator);
      assert.equal(stale.statusCode, 409);
      assert.equal(codeOf(stale), 'OTA_TARGETS_STALE');

      const proposal = (await call('GET', `/v1/releases/${second}/targets-proposal`, operator)).json() as { signed_canonical: string; targets_version: number };
      assert.equal(proposal.targets_version, before.targets_version);
      assert.deepEqual(Object.keys(JSON.parse(proposal.signed_canonical).targets), [`${second}/agent.bin`], 'the revoked release is left out');
      assert.equal((await call('GET', `/v1/releases/${second}`, viewer)).json().state, 'verified', 'signing starts again');
      await signWith(second, 1);
      assert.equal((await signWith(second, 2, 'targets', secondOperator)).json().state, 'signed');

      // Defence in depth: a signed proposal that does not list exactly the published releases and
      // this one is never published, however it came to be stored (here the one built before the revocation).
      const [row] = await h.db.query<{ proposal_body: string }>('SELECT proposal_body FROM ota_releases WHERE id = ?', [second]);
      await h.db.execute('UPDATE ota_releases SET proposal_body = ? WHERE id = ?', [before.signed_canonical, second]);
      assert.equal(codeOf(await call('POST', `/v1/releases/${second}/publish`, operator)), 'OTA_TARGETS_STALE');
      await h.db.execute('UPDATE ota_releases SET proposal_body = ? WHERE id = ?', [row!.proposal_body, second]);

      assert.equal((await call('POST', `/v1/releases/${second}/publish`, operator)).json().state, 'published');
      const targets = parseMetadata((await call('GET', `/v1/tuf/metadata/${before.targets_version}.targets.json`, undefined)).rawPayload, 'targets');
      assert.deepEqual([...targets.signed.targets.keys()], [`${second}/agent.bin`]);
    });

    it('audits every release change', async () => {
      const kinds = (await h.db.query<{ kind: string }>("SELECT kind FROM audit_log WHERE subject LIKE 'release:%'")).map((row) => row.kind);
      for (const kind of ['ota.release.created', 'ota.release.uploaded', 'ota.release.upload_failed', 'ota.release.signature_added', 'ota.release.published', 'ota.release.revoked', 'ota.release.proposal_dropped']) {
        assert.ok(kinds.includes(kind), `${kind} in ${kinds.join(', ')}`);
      }
    });
  });
}

describe('a control plane without an image repository', () => {
  it('starts as before and answers the OTA routes with OTA_REPOSITORY_NOT_INITIALISED', async () => {
    const { makeHarness, sqlJsTarget } = await import('../control-plane/test-support.js');
    const h = await makeHarness(sqlJsTarget);
    try {
      assert.equal(h.cp.ota, undefined);
      const response = await h.cp.app.inject({ method: 'GET', url: '/v1/tuf/metadata/timestamp.json' });
      assert.equal(response.statusCode, 503);
      assert.equal(response.json().error.code, 'OTA_REPOSITORY_NOT_INITIALISED');
      // The Approvals inbox's rollouts: none wait on anyone (an empty list, not a refusal the console would log every 2 s).
      const { addAndLogIn, apiCaller, personMaker } = await import('../control-plane/test-support.js');
      const people: Parameters<typeof personMaker>[1] = [];
      const approver = personMaker('-no-repo', people)('ap', 'approver');
      const call = apiCaller(() => h);
      await addAndLogIn(h, call, people, 'correct horse battery staple');
      const awaiting = await call('GET', '/v1/approvals/rollouts', approver.token);
      assert.equal(awaiting.status, 200, awaiting.text);
      assert.deepEqual(awaiting.json(), { items: [] });
    } finally {
      await h.close();
    }
  });
});

describe('the targets file is bounded', () => {
  it('refuses a proposal over the limit (OTA_TARGETS_TOO_LARGE); revoking the published releases brings it under', async () => {
    const { sqlJsTarget } = await import('../control-plane/test-support.js');
    const { ReleaseService } = await import('./releases.js');
    const { MemoryArtifactStore } = await import('./artifact-store.js');
    const { createNodeTufCrypto } = await import('../../runtime/tuf-crypto-node.js');
    const { SdcError } = await import('../../core/errors/index.js');
    const h = await makeOtaHarness(sqlJsTarget);
    try {
      const crypto = createNodeTufCrypto();
      // About one target entry fits: the second release's proposal (two targets) is over.
      const releases = new ReleaseService({ context: h.cp.context, repository: h.ota.repository, artifacts: new MemoryArtifactStore(), crypto, targetsBytesMax: 1000 });
      const sign = async (id: string) => {
        const proposal = await releases.proposal(id);
        for (const [index, key] of h.keys!.targets.slice(0, 2).entries()) {
          await releases.addSignature(id, { keyid: key.key.keyid, sig: key.key.sign(new TextEncoder().encode(proposal.signed_canonical)) }, ['olga', 'sam'][index]!);
        }
      };
      const release = async (id: string) => {
        await releases.create({ ...createBody, id }, 'olga');
        await releases.upload(id, (async function* () { yield artifact; })(), { sha256 }, 'olga');
      };
      await release('one');
      assert.ok((await releases.proposal('one')).signed_canonical.length <= 1000, 'one target fits');
      await sign('one');
      await releases.publish('one', 'olga');
      await release('two');
      await assert.rejects(releases.proposal('two'), (error) => SdcError.is(error, 'OTA_TARGETS_TOO_LARGE'));
      await releases.revoke('one', 'olga', 'make room');
      assert.equal((await releases.proposal('two')).targets_version, 3);
    } finally {
      await h.close();
    }
  });
});

describe('repository alarms reach operators', () => {
  it('an expiring root and targets, and expired online roles, become alerts with audit entries', async () => {
    const { sqlJsTarget } = await import('../control-plane/test-support.js');
    const h = await makeOtaHarness(sqlJsTarget);
    try {
      const rootExpiresMs = (await h.ota.repository.current('root'))!.expiresAtMs;
      h.clock.advance(rootExpiresMs - 30 * 86_400_000 - h.clock.nowMs());
      await h.ota.repository.checkAlarms();
      const alerts = await h.db.query<{ kind: string; severity: string; message: string }>('SELECT kind, severity, message FROM alerts ORDER BY kind, message');
      assert.deepEqual(alerts.map((alert) => [alert.kind, alert.severity]), [
        ['tuf_resign_overdue', 'critical'], ['tuf_resign_overdue', 'critical'], ['tuf_role_expiring', 'warning'], ['tuf_role_expiring', 'warning'],
      ]);
      assert.match(alerts.find((alert) => alert.message.includes('root'))!.message, /TUF root version 1 expires in 30 day/);
      const audited = await h.db.query<{ n: number }>("SELECT COUNT(*) AS n FROM audit_log WHERE kind = 'alert.raised'");
      assert.equal(Number(audited[0]?.n), 4);
    } finally {
      await h.close();
    }
  });
});
