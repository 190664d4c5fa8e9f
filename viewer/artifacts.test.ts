import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ApiClient, ApiError, type Fetch } from './api.js';
import { artifactFileName, artifactListPath, artifactRow, formatBytes, type ArtifactRecord } from './artifacts.js';
import { parseRoute, routeHref } from './router.js';

// The artifacts view's logic without a browser (the component renders what artifactRow gives and
// downloads through ApiClient.getBytes): rows, file names, the list query, the route, and the
// binary download with its bound and its refusals.

const sha256 = 'ab'.repeat(32);
const record = (overrides: Partial<ArtifactRecord> = {}): ArtifactRecord => ({
  id: 'c_0123abcd', device_id: 'lab-01', kind: 'screenshot', state: 'succeeded', created_by: 'olga', created_at_ms: Date.UTC(2026, 11, 3, 10, 0, 0),
  sha256, length: 30_109, plaintext_length: 30_044, content_type: 'image/png', ...overrides,
});

function jwt(): string {
  const part = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${part({ alg: 'EdDSA' })}.${part({ sub: 'olga', exp: 2_000 })}.c2ln`;
}

async function loggedIn(answer: (path: string) => Response, onSessionEnd: (reason: string) => void = () => undefined): Promise<{ api: ApiClient; paths: string[] }> {
  const paths: string[] = [];
  const fetch: Fetch = async (path) => {
    paths.push(path);
    return path === '/v1/auth/login' ? new Response(JSON.stringify({ token: jwt(), role: 'operator' }), { status: 200 }) : answer(path);
  };
  const api = new ApiClient({ fetch, onSessionEnd });
  await api.login('olga', 'pw', 0);
  return { api, paths };
}

describe('artifacts view logic', () => {
  it('a row shows id, device, kind, state, size, the digest shortened (whole in the title), when and by whom; only an uploaded one downloads', () => {
    assert.deepEqual(artifactRow(record()), {
      id: 'c_0123abcd', deviceId: 'lab-01', kind: 'screenshot', state: 'succeeded', size: '29.3 KiB',
      digest: 'abababababab…', digestFull: sha256, created: '2026-12-03 10:00:00Z by olga', downloadable: true,
    });
    for (const pending of [record({ state: 'sent', sha256: null, length: null, plaintext_length: null }), record({ state: 'failed', sha256: null })]) {
      const row = artifactRow(pending);
      assert.deepEqual([row.size, row.digest, row.digestFull, row.downloadable], ['—', '—', '', false]);
    }
  });

  it('sizes in binary units; file names from device and id, unsafe characters replaced, extension from the content type', () => {
    assert.deepEqual([0, 999, 1024, 1536, 16 * 1024 * 1024, 3 * 1024 ** 3, -1, Number.NaN].map(formatBytes), ['0 B', '999 B', '1.0 KiB', '1.5 KiB', '16.0 MiB', '3.0 GiB', '—', '—']);
    assert.equal(artifactFileName(record()), 'lab-01-c_0123abcd.png');
    assert.equal(artifactFileName(record({ content_type: 'text/plain; charset=utf-8' })), 'lab-01-c_0123abcd.log');
    assert.equal(artifactFileName(record({ id: '../../etc/passwd', content_type: null })), 'lab-01-.._.._etc_passwd.bin');
    assert.equal(artifactFileName(record({ device_id: 'x'.repeat(100) })).length, 60 + 1 + 'c_0123abcd.png'.length);
  });

  it('the list query names a device only when it is a device id; the route round-trips', () => {
    assert.equal(artifactListPath(''), '/v1/artifacts?limit=200');
    assert.equal(artifactListPath(' lab-01 '), '/v1/artifacts?limit=200&device_id=lab-01');
    assert.equal(artifactListPath('Lab 01&x=1'), '/v1/artifacts?limit=200');
    assert.deepEqual(parseRoute('#/artifacts'), { view: 'artifacts' });
    assert.equal(routeHref({ view: 'artifacts' }), '#/artifacts');
  });

  it('getBytes: the bytes with the bearer token; an answer past the bound, a refusal, a session-ending refusal, each with its code', async () => {
    const bytes = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 1, 2, 3]);
    const { api, paths } = await loggedIn((path) => {
      if (path.endsWith('/big')) return new Response(new Uint8Array(100), { status: 200, headers: { 'content-length': '100' } });
      if (path.endsWith('/gone')) return new Response(JSON.stringify({ error: { code: 'ARTIFACT_KEY_UNKNOWN', message: 'no artifact key 0123', trace_id: 't9' } }), { status: 404 });
      return new Response(bytes, { status: 200, headers: { 'content-type': 'application/octet-stream', 'x-sdc-device-id': 'lab-01' } });
    });
    const got = await api.getBytes('/v1/artifacts/c_1', 64);
    assert.deepEqual(got.bytes, bytes);
    assert.equal(got.headers.get('x-sdc-device-id'), 'lab-01');
    await assert.rejects(api.getBytes('/v1/artifacts/big', 64), (error: unknown) => error instanceof ApiError && error.code === 'VIEWER_DOWNLOAD_TOO_LARGE');
    await assert.rejects(api.getBytes('/v1/artifacts/gone', 64), (error: unknown) => error instanceof ApiError && error.code === 'ARTIFACT_KEY_UNKNOWN' && error.status === 404 && error.traceId === 't9');
    assert.ok(api.session !== undefined, 'an ordinary refusal keeps the session');
    assert.deepEqual(paths, ['/v1/auth/login', '/v1/artifacts/c_1', '/v1/artifacts/big', '/v1/artifacts/gone']);

    let ended = '';
    const expiring = await loggedIn(() => new Response(JSON.stringify({ error: { code: 'JWT_EXPIRED', message: 'expired' } }), { status: 401 }), (reason) => { ended = reason; });
    await assert.rejects(expiring.api.getBytes('/v1/artifacts/c_1', 64), (error: unknown) => error instanceof ApiError && error.code === 'JWT_EXPIRED');
    assert.equal(expiring.api.session, undefined);
    assert.match(ended, /JWT_EXPIRED/);
  });
});
