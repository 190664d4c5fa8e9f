import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdir, stat, utimes, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { storePairs, type Harness } from '../control-plane/test-support.js';
import { s3, type BlobFixture } from './blob-store-test-support.js';
import type { OtaServices } from './ota-service.js';
import { embeddedTemporaryLimits } from './blob-store.js';
import { releaseLimits } from './releases.js';
import { makeOtaHarness } from './test-support.js';

/**
 * Presigned release uploads are bounded and swept (docs/ota.md, "Uploading a release by
 * presigned PUT"): a release holds at most uploadUrlsPerReleaseMax URLs for distinct declared
 * artifacts, all releases together uploadUrlsMax (OTA_UPLOAD_URLS_LIMIT); each pending object is
 * recorded in SQL (migration 027) and deleted once its URL has expired, whether the upload was
 * completed or abandoned, including an object a late PUT wrote again after completion. One
 * operator holds at most uploadUrlsPerActorMax of the total. A sweep pass skips a row asked for
 * again after it read it; on the embedded store a PUT whose body ends after its URL expired keeps
 * nothing. On the embedded store (through the control plane's HTTP app) and on S3 (s3rver), on
 * both store pairs.
 */
const urlSeconds = 300;
const pastExpiryMs = urlSeconds * 1000 + releaseLimits.uploadSweepGraceMs + 1;
const createBody = (id: string) => ({
  id, version: '3.1.0', artifact_name: 'agent.bin', platforms: ['linux-x64'], min_agent_version: '1.0.0',
  reboot_required: false, health_check: { timeout_ms: 60_000, probes: [] },
});
/** Distinct artifacts, so each asks for a URL of its own. */
const artifactOf = (n: number) => new TextEncoder().encode(`firmware build ${n} `.repeat(50 + n));
const declaredOf = (bytes: Uint8Array) => ({ sha256: createHash('sha256').update(bytes).digest('hex'), length: bytes.length });
const pendingKey = (id: string, declared: { sha256: string; length: number }) => `ota/release-uploads/${id}/${declared.sha256}-${declared.length}`;
type Json = Record<string, any>;

const stores = [
  ['embedded', async () => undefined],
  ['s3 (s3rver)', s3],
] as const;

for (const [storeName, openFixture] of stores) {
  // Each store its own pair: a MySQL target is one database, and each harness needs its own.
  for (const pair of storePairs().pairs) {
    describe(`presigned release uploads are capped and swept (${storeName}, ${pair.name})`, () => {
      let h: Harness & { ota: OtaServices };
      let fixture: BlobFixture | undefined;
      let operator: string;

      before(async () => {
        fixture = await openFixture();
        h = await makeOtaHarness(pair.sql, { artifactBytesMax: 64 * 1024, kv: pair.kv, ...(fixture === undefined ? {} : { otaBlobs: { s3: fixture.endpoint } }) });
        await h.cp.listen({ host: '127.0.0.1', port: 0, tls: false });
        await h.cp.auth.users.add({ name: 'olga', role: 'operator', password: 'operator password', nowMs: h.clock.nowMs() });
        operator = (await h.cp.auth.login('olga', 'operator password')).token;
      });
      after(async () => {
        // A started control plane's consumers wait in reads on unref'd timers; keep the loop alive while stop() waits for them.
        const keepAlive = setInterval(() => undefined, 1_000);
        try {
          await h.close();
          await fixture?.close();
          await pair.sql.cleanup();
        } finally {
          clearInterval(keepAlive);
        }
      });

      /** Moves the clock past URL lifetimes, and logs in again: the operator's token does not live that long. */
      const advance = async (ms: number) => {
        h.clock.advance(ms);
        operator = (await h.cp.auth.login('olga', 'operator password')).token;
      };
      /** A token for another operator (made on first use), logged in now. */
      const operators = new Set<string>();
      const loginAs = async (name: string) => {
        if (!operators.has(name)) await h.cp.auth.users.add({ name, role: 'operator', password: 'operator password', nowMs: h.clock.nowMs() });
        operators.add(name);
        return (await h.cp.auth.login(name, 'operator password')).token;
      };
      const call = async (url: string, body: object, token = operator) => {
        const answer = await h.cp.app.inject({ method: 'POST', url, headers: { authorization: `Bearer ${token}` }, payload: body });
        return { status: answer.statusCode, json: answer.json() as Json, text: answer.body, retryAfter: answer.headers['retry-after'] };
      };
      const create = async (id: string) => assert.equal((await call('/v1/releases', createBody(id))).status, 201);
      const presign = (id: string, declared: { sha256: string; length: number }, token = operator) => call(`/v1/releases/${id}/artifact-upload-url`, { ...declared, expires_in_seconds: urlSeconds }, token);
      const put = async (url: string, bytes: ReturnType<typeof artifactOf>) => fetch(url, { method: 'PUT', body: bytes, headers: { 'content-length': String(bytes.length) } });
      const stored = async (key: string) => (await h.cp.blobStore.head(key)) !== undefined;
      const rows = async () => Number((await h.db.query<{ n: number }>('SELECT COUNT(*) AS n FROM ota_release_uploads'))[0]?.n);

      it('twenty presigns for distinct artifacts get at most the cap; after expiry the sweep deletes every object, and the places are free again', async () => {
        await create('cap-1');
        const granted: Array<{ key: string; url: string }> = [];
        const refused: Array<Awaited<ReturnType<typeof presign>>> = [];
        for (let n = 0; n < 20; n += 1) {
          const bytes = artifactOf(n);
          const answer = await presign('cap-1', declaredOf(bytes));
          if (answer.status !== 200) {
            refused.push(answer);
            continue;
          }
          assert.equal((await put(answer.json.url, bytes)).status, 200);
          granted.push({ key: pendingKey('cap-1', declaredOf(bytes)), url: answer.json.url });
        }
        assert.equal(granted.length, releaseLimits.uploadUrlsPerReleaseMax);
        assert.equal(refused.length, 20 - releaseLimits.uploadUrlsPerReleaseMax);
        for (const answer of refused) {
          assert.equal(answer.status, 429);
          assert.equal(answer.json.error.code, 'OTA_UPLOAD_URLS_LIMIT');
          assert.match(answer.json.error.message, /^release cap-1 holds 4 upload URLs, the most one release may hold \(4\)/);
          // The first place frees when its URL has expired and the grace has passed.
          assert.equal(answer.retryAfter, String(Math.ceil((pastExpiryMs - 1) / 1000)));
        }
        // Asking again for an artifact that holds a place takes no new one.
        assert.equal((await presign('cap-1', declaredOf(artifactOf(0)))).status, 200);
        for (const { key } of granted) assert.ok(await stored(key), key);

        await advance(pastExpiryMs - 2);
        assert.equal(await h.ota.releases.sweepExpiredUploads(), 0, 'nothing before the URLs (and the grace) have run out');
        await advance(1);
        assert.equal(await h.ota.releases.sweepExpiredUploads(), releaseLimits.uploadUrlsPerReleaseMax);
        for (const { key } of granted) assert.equal(await stored(key), false, key);
        assert.equal(await rows(), 0);
        if (fixture?.lacks.signatureCheck === undefined) {
          // The embedded store checks the URL on the control plane's clock: what was swept cannot come back.
          assert.equal((await put(granted[0]!.url, artifactOf(0))).status, 403);
        }
        assert.equal((await presign('cap-1', declaredOf(artifactOf(19)))).status, 200);
        await advance(pastExpiryMs);
        assert.equal(await h.ota.releases.sweepExpiredUploads(), 1);
      });

      it('a late PUT after completion writes the object again; the sweep deletes it once the URL has expired', async () => {
        await create('late-1');
        const bytes = artifactOf(100);
        const declared = declaredOf(bytes);
        const url = (await presign('late-1', declared)).json.url as string;
        assert.equal((await put(url, bytes)).status, 200);
        const done = await call('/v1/releases/late-1/artifact-upload-complete', declared);
        assert.equal(done.status, 200, done.text);
        assert.equal(done.json.state, 'verified');
        assert.equal(await stored(pendingKey('late-1', declared)), false, 'completion deletes the pending object');
        assert.equal((await put(url, bytes)).status, 200, 'the URL is still valid');
        assert.ok(await stored(pendingKey('late-1', declared)), 'and wrote it again');
        await advance(pastExpiryMs);
        assert.equal(await h.ota.releases.sweepExpiredUploads(), 1);
        assert.equal(await stored(pendingKey('late-1', declared)), false);
        assert.equal(await rows(), 0);
      });

      it('all releases together hold at most uploadUrlsMax URLs', async () => {
        const perRelease = releaseLimits.uploadUrlsPerReleaseMax;
        const releases = Math.ceil(releaseLimits.uploadUrlsMax / perRelease) + 1;
        const answers: Array<Awaited<ReturnType<typeof presign>>> = [];
        // One operator per release, each under the operator's cap.
        for (let r = 0; r < releases; r += 1) {
          await create(`all-${r}`);
          const token = await loginAs(`all-operator-${r}`);
          for (let n = 0; n < perRelease; n += 1) answers.push(await presign(`all-${r}`, declaredOf(artifactOf(200 + n)), token));
        }
        assert.equal(answers.filter((answer) => answer.status === 200).length, releaseLimits.uploadUrlsMax);
        const refused = answers.filter((answer) => answer.status !== 200);
        assert.ok(refused.length > 0);
        for (const answer of refused) {
          assert.equal(answer.status, 429);
          assert.equal(answer.json.error.code, 'OTA_UPLOAD_URLS_LIMIT');
          assert.match(answer.json.error.message, new RegExp(`^all releases together hold ${releaseLimits.uploadUrlsMax} upload URLs`));
        }
        // The next presign sweeps first: once the URLs have expired, places are free without waiting for the periodic pass.
        await advance(pastExpiryMs);
        assert.equal((await presign(`all-${releases - 1}`, declaredOf(artifactOf(300)), await loginAs(`all-operator-${releases - 1}`))).status, 200);
        assert.equal(await rows(), 1);
        await advance(pastExpiryMs);
        assert.equal(await h.ota.releases.sweepExpiredUploads(), 1);
      });

      it('one operator holds at most uploadUrlsPerActorMax URLs; another can still presign', async () => {
        const perRelease = releaseLimits.uploadUrlsPerReleaseMax;
        const releases = releaseLimits.uploadUrlsPerActorMax / perRelease;
        for (let r = 0; r <= releases; r += 1) await create(`actor-${r}`);
        for (let r = 0; r < releases; r += 1) {
          for (let n = 0; n < perRelease; n += 1) assert.equal((await presign(`actor-${r}`, declaredOf(artifactOf(600 + n)))).status, 200);
        }
        const refused = await presign(`actor-${releases}`, declaredOf(artifactOf(600)));
        assert.equal(refused.status, 429);
        assert.equal(refused.json.error.code, 'OTA_UPLOAD_URLS_LIMIT');
        assert.match(refused.json.error.message, new RegExp(`^olga holds ${releaseLimits.uploadUrlsPerActorMax} upload URLs, the most one operator may hold \\(${releaseLimits.uploadUrlsPerActorMax}\\)`));
        assert.equal(refused.retryAfter, String(Math.ceil((pastExpiryMs - 1) / 1000)));
        // Asking again for an artifact olga holds takes no new place.
        assert.equal((await presign('actor-0', declaredOf(artifactOf(600)))).status, 200);
        assert.equal((await presign(`actor-${releases}`, declaredOf(artifactOf(600)), await loginAs('oskar'))).status, 200);
        assert.equal(await rows(), releaseLimits.uploadUrlsPerActorMax + 1);
        await advance(pastExpiryMs);
        assert.equal(await h.ota.releases.sweepExpiredUploads(), releaseLimits.uploadUrlsPerActorMax + 1);
      });

      it('a sweep pass leaves a row asked for again after it read the row, and the fresh upload with it', async () => {
        await create('race-1');
        const bytes = artifactOf(700);
        const declared = declaredOf(bytes);
        assert.equal((await put((await presign('race-1', declared)).json.url, bytes)).status, 200);
        await advance(pastExpiryMs);
        // Between this pass's read of the due rows and its deletions, the same artifact is asked
        // for again (that presign's own sweep pass, a concurrent pass, removes the stale object and
        // row first) and PUT: the fresh object is what this pass would delete.
        const db = h.db as { query: typeof h.db.query };
        const query = db.query;
        let interleaved = false;
        db.query = async <T>(sql: string, params?: Parameters<typeof query>[1]) => {
          const answer = await query.call(h.db, sql, params) as T[];
          if (!interleaved && sql.startsWith('SELECT release_id, artifact_sha256, artifact_length, expires_at FROM ota_release_uploads WHERE expires_at <=')) {
            interleaved = true;
            const again = await presign('race-1', declared);
            assert.equal(again.status, 200, again.text);
            assert.equal((await put(again.json.url, bytes)).status, 200);
          }
          return answer;
        };
        try {
          await h.ota.releases.sweepExpiredUploads();
        } finally {
          db.query = query;
        }
        assert.ok(interleaved);
        assert.ok(await stored(pendingKey('race-1', declared)), 'the fresh upload is kept');
        assert.equal(await rows(), 1);
        const done = await call('/v1/releases/race-1/artifact-upload-complete', declared);
        assert.equal(done.status, 200, done.text);
        assert.equal(done.json.state, 'verified');
        await advance(pastExpiryMs);
        assert.equal(await h.ota.releases.sweepExpiredUploads(), 1);
        assert.equal(await rows(), 0);
      });

      if (storeName === 'embedded') {
        // Only the embedded store: s3rver checks no URLs (S3 checks expiry when a request starts;
        // docs/ota.md names the lifecycle rule that removes what a slow PUT leaves there).
        it('a PUT whose body ends after its URL expired (and after the sweep) keeps nothing', async () => {
          await create('slow-1');
          const bytes = artifactOf(800);
          const declared = declaredOf(bytes);
          const url = (await presign('slow-1', declared)).json.url as string;
          let finish: () => void = () => undefined;
          const answer = new Promise<{ status: number | undefined; body: string }>((resolve, reject) => {
            const sending = request(url, { method: 'PUT', headers: { 'content-length': String(bytes.length) } }, (response) => {
              let body = '';
              response.on('data', (chunk: Buffer) => { body += chunk.toString('utf8'); });
              response.on('end', () => resolve({ status: response.statusCode, body }));
            });
            sending.on('error', reject);
            sending.write(bytes.subarray(0, 100));
            finish = () => sending.end(bytes.subarray(100));
          });
          // The URL was checked (valid) once the store writes the first bytes to its temporary file.
          const blobs = join(h.dir, 'blobs');
          const started = async () => {
            for (const name of (await readdir(blobs)).filter((file) => file.startsWith('.put-'))) {
              if ((await stat(join(blobs, name)).catch(() => ({ size: 0 }))).size >= 100) return true;
            }
            return false;
          };
          for (let tries = 0; !(await started()); tries += 1) {
            assert.ok(tries < 6_000, 'the PUT never reached the store');
            await new Promise((resolve) => setTimeout(resolve, 10));
          }
          await advance(pastExpiryMs);
          assert.equal(await h.ota.releases.sweepExpiredUploads(), 1);
          finish();
          const refused = await answer;
          assert.equal(refused.status, 403);
          assert.match(refused.body, /<Code>AccessDenied<\/Code>/);
          assert.match(refused.body, /Request has expired: the presigned URL expired at .* nothing was kept/);
          assert.equal(await stored(pendingKey('slow-1', declared)), false);
          assert.equal(await rows(), 0);
          assert.deepEqual((await readdir(blobs)).filter((file) => file.startsWith('.put-')), [], 'no temporary file left');
        });
      }

      it('the control plane runs the sweep as one of its periodic passes', async () => {
        await create('start-1');
        const bytes = artifactOf(400);
        const answer = await presign('start-1', declaredOf(bytes));
        assert.equal((await put(answer.json.url, bytes)).status, 200);
        await advance(pastExpiryMs);
        // The temporary file of a PUT a stopped control plane was receiving, older than any PUT runs (embedded store only).
        const leftover = join(h.dir, 'blobs', '.put-0123456789abcdef.tmp');
        if (storeName === 'embedded') {
          await writeFile(leftover, 'half a body');
          const oldSeconds = (h.clock.nowMs() - embeddedTemporaryLimits.staleAfterMs - 1_000) / 1000;
          await utimes(leftover, oldSeconds, oldSeconds);
        }
        await h.cp.start(); // runs each OTA pass once at start, then on its interval
        assert.equal(await stored(pendingKey('start-1', declaredOf(bytes))), false);
        assert.equal(await rows(), 0);
        if (storeName === 'embedded') assert.deepEqual((await readdir(join(h.dir, 'blobs'))).filter((file) => file.startsWith('.put-')), [], 'the leftover temporary file removed');
      });
    });
  }
}
