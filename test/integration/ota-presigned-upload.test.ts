// Release uploads by presigned PUT (docs/ota.md, "Uploading a release by presigned PUT"): the API
// hands an operator a presigned PUT straight to the blob store, with the declared length signed
// as Content-Length; the release leaves `uploading` only when artifact-upload-complete has read
// the stored object back and found the declared length and SHA-256. On the embedded store (served
// by the control plane's real HTTP app, which verifies the signature itself) and on S3 (s3rver).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { sqlJsTarget, type Harness } from '../../server/control-plane/test-support.js';
import { s3, type BlobFixture } from '../../server/ota/blob-store-test-support.js';
import { makeOtaHarness } from '../../server/ota/test-support.js';

const artifact = new TextEncoder().encode('firmware 3.1.0 '.repeat(300));
const sha256 = createHash('sha256').update(artifact).digest('hex');
const createBody = (id: string) => ({
  id, version: '3.1.0', artifact_name: 'agent.bin', platforms: ['linux-x64'], min_agent_version: '1.0.0',
  reboot_required: false, health_check: { timeout_ms: 60_000, probes: [] },
});
type Presigned = { method: 'PUT'; url: string; headers: { 'content-length': string }; expires_at_ms: number };

const stores = [
  ['embedded', async () => ({ fixture: undefined, h: await makeOtaHarness(sqlJsTarget, { artifactBytesMax: 64 * 1024 }) })],
  ['s3 (s3rver)', async () => {
    const fixture = await s3();
    return { fixture, h: await makeOtaHarness(sqlJsTarget, { artifactBytesMax: 64 * 1024, otaBlobs: { s3: fixture.endpoint } }) };
  }],
] as const;

for (const [name, open] of stores) {
  describe(`release upload by presigned PUT (${name})`, () => {
    let h: Harness;
    let fixture: BlobFixture | undefined;
    let operator: string;

    before(async () => {
      ({ h, fixture } = await open());
      await h.cp.listen({ host: '127.0.0.1', port: 0, tls: false });
      await h.cp.auth.users.add({ name: 'olga', role: 'operator', password: 'operator password', nowMs: h.clock.nowMs() });
      operator = (await h.cp.auth.login('olga', 'operator password')).token;
    });
    after(async () => { await h.close(); await fixture?.close(); await sqlJsTarget.cleanup(); });

    const call = (url: string, body: object) => h.cp.app.inject({ method: 'POST', url, headers: { authorization: `Bearer ${operator}` }, payload: body });
    const stateOf = async (id: string) => (h.cp.app.inject({ method: 'GET', url: `/v1/releases/${id}`, headers: { authorization: `Bearer ${operator}` } })).then((r) => r.json().state as string);
    const presign = async (id: string, declared: { sha256: string; length: number }) => {
      const answer = await call(`/v1/releases/${id}/artifact-upload-url`, { ...declared, expires_in_seconds: 300 });
      assert.equal(answer.statusCode, 200, answer.body);
      return answer.json() as Presigned;
    };

    it('the URL signs the declared length; the stored object is checked, and only then is the release verified', async () => {
      assert.equal((await call('/v1/releases', createBody('up-ok'))).statusCode, 201);
      const presigned = await presign('up-ok', { sha256, length: artifact.length });
      assert.match(new URL(presigned.url).searchParams.get('X-Amz-SignedHeaders') ?? '', /^content-length;host$/);
      assert.equal(presigned.headers['content-length'], String(artifact.length));
      assert.equal(await stateOf('up-ok'), 'uploading');
      const put = await fetch(presigned.url, { method: 'PUT', body: artifact, headers: presigned.headers });
      assert.equal(put.status, 200, await put.text());
      assert.equal(await stateOf('up-ok'), 'uploading', 'a PUT alone verifies nothing');
      const done = await call('/v1/releases/up-ok/artifact-upload-complete', { sha256, length: artifact.length });
      assert.equal(done.statusCode, 200, done.body);
      assert.deepEqual([done.json().state, done.json().artifact.sha256, done.json().artifact.length], ['verified', sha256, artifact.length]);
      const audit = await h.db.query<{ kind: string }>("SELECT kind FROM audit_log WHERE subject = 'release:up-ok' ORDER BY seq");
      assert.deepEqual(audit.map((row) => row.kind), ['ota.release.created', 'ota.release.upload_url_issued', 'ota.release.uploaded']);
    });

    it('bytes other than declared are refused: the store refuses another length, and a body with the wrong digest stays uploading', async () => {
      assert.equal((await call('/v1/releases', createBody('up-bad'))).statusCode, 201);
      const presigned = await presign('up-bad', { sha256, length: artifact.length });
      const shorter = artifact.subarray(1);
      const wrongLength = await fetch(presigned.url, { method: 'PUT', body: shorter, headers: { 'content-length': String(shorter.length) } });
      if (fixture?.lacks.signatureCheck === undefined) {
        assert.equal(wrongLength.status, 403);
        assert.match(await wrongLength.text(), /<Code>SignatureDoesNotMatch<\/Code>/);
      } else {
        // s3rver checks no signature (fixture.lacks.signatureCheck): it stores the short body, and completion finds the length wrong.
        assert.equal(wrongLength.status, 200);
        const refused = await call('/v1/releases/up-bad/artifact-upload-complete', { sha256, length: artifact.length });
        assert.equal(refused.json().error.code, 'OTA_UPLOAD_DIGEST_MISMATCH');
      }
      // Same length, other bytes: the signature holds, the digest does not.
      const tampered = Buffer.from(artifact);
      tampered[10] = tampered[10]! ^ 1;
      const put = await fetch((await presign('up-bad', { sha256, length: artifact.length })).url, { method: 'PUT', body: tampered, headers: presigned.headers });
      assert.equal(put.status, 200);
      const refused = await call('/v1/releases/up-bad/artifact-upload-complete', { sha256, length: artifact.length });
      assert.equal(refused.json().error.code, 'OTA_UPLOAD_DIGEST_MISMATCH');
      assert.equal(await stateOf('up-bad'), 'uploading');
      // The mismatching object was removed: completing again finds nothing.
      const again = await call('/v1/releases/up-bad/artifact-upload-complete', { sha256, length: artifact.length });
      assert.match(again.json().error.message, /nothing was uploaded/);
    });

    it('a declared length over the artifact limit gets no URL', async () => {
      assert.equal((await call('/v1/releases', createBody('up-big'))).statusCode, 201);
      const refused = await call('/v1/releases/up-big/artifact-upload-url', { sha256, length: 64 * 1024 + 1 });
      assert.equal(refused.json().error.code, 'OTA_UPLOAD_TOO_LARGE');
      assert.equal(await stateOf('up-big'), 'draft');
    });
  });
}
