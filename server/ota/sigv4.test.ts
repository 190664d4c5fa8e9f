import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { verifyPresignedUrl, type PresignedCheck } from './sigv4.js';

// URLs come from the real AWS presigner: the verifier is checked against the SDK, not against itself.
const credentials = { accessKeyId: 'SDCTESTKEY', secretAccessKey: 'sdc-test-secret-0123456789' };
const client = new S3Client({ region: 'us-east-1', endpoint: 'http://127.0.0.1:8443/v1/blobs', forcePathStyle: true, credentials, requestChecksumCalculation: 'WHEN_REQUIRED' });
const signedAt = new Date(Date.UTC(2026, 11, 2, 12, 0, 0));
const options = { credentials: [credentials], region: 'us-east-1' };

async function presign(method: 'GET' | 'PUT', key: string, expiresIn = 300): Promise<URL> {
  const command = method === 'GET' ? new GetObjectCommand({ Bucket: 'sdc', Key: key }) : new PutObjectCommand({ Bucket: 'sdc', Key: key });
  return new URL(await getSignedUrl(client, command, { expiresIn, signingDate: signedAt }));
}

function check(url: URL, method: string, nowMs = signedAt.getTime() + 1000): PresignedCheck {
  return { method, target: url.pathname + url.search, headers: { host: url.host }, nowMs };
}

test('a GET and a PUT URL from @aws-sdk/s3-request-presigner verify, keys with spaces, plus and unicode included', async () => {
  for (const key of ['plain/object.bin', 'a b/c+d.bin', 'ünï/cødé ~!*().txt']) {
    for (const method of ['GET', 'PUT'] as const) {
      const outcome = verifyPresignedUrl(check(await presign(method, key), method), options);
      assert.equal(outcome.ok, true, `${method} ${key}: ${JSON.stringify(outcome)}`);
      if (outcome.ok) assert.equal(outcome.path, `/v1/blobs/sdc/${key}`);
    }
  }
});

test('a URL is bound to its method, its object and its host', async () => {
  const url = await presign('GET', 'releases/a.bin');
  assert.deepEqual(pick(verifyPresignedUrl(check(url, 'PUT'), options)), 'SignatureDoesNotMatch');
  const other = new URL(url);
  other.pathname = '/v1/blobs/sdc/releases/b.bin';
  assert.deepEqual(pick(verifyPresignedUrl(check(other, 'GET'), options)), 'SignatureDoesNotMatch');
  assert.deepEqual(pick(verifyPresignedUrl({ ...check(url, 'GET'), headers: { host: 'evil.example:8443' } }, options)), 'SignatureDoesNotMatch');
});

test('a tampered URL is refused: signature, expiry, date, an added parameter', async () => {
  const url = await presign('GET', 'releases/a.bin');
  const tamper = (name: string, value: string) => { const copy = new URL(url); copy.searchParams.set(name, value); return copy; };
  const signature = url.searchParams.get('X-Amz-Signature')!;
  const flipped = (signature[0] === '0' ? '1' : '0') + signature.slice(1);
  assert.equal(pick(verifyPresignedUrl(check(tamper('X-Amz-Signature', flipped), 'GET'), options)), 'SignatureDoesNotMatch');
  assert.equal(pick(verifyPresignedUrl(check(tamper('X-Amz-Expires', '3000'), 'GET'), options)), 'SignatureDoesNotMatch');
  assert.equal(pick(verifyPresignedUrl(check(tamper('X-Amz-Date', '20261202T120500Z'), 'GET'), options)), 'SignatureDoesNotMatch');
  assert.equal(pick(verifyPresignedUrl(check(tamper('response-content-type', 'text/html'), 'GET'), options)), 'SignatureDoesNotMatch');
  assert.equal(pick(verifyPresignedUrl(check(tamper('X-Amz-Signature', 'zz'), 'GET'), options)), 'SignatureDoesNotMatch');
  const noSignature = new URL(url);
  noSignature.searchParams.delete('X-Amz-Signature');
  assert.equal(pick(verifyPresignedUrl(check(noSignature, 'GET'), options)), 'AuthorizationQueryParametersError');
  assert.equal(pick(verifyPresignedUrl(check(url, 'GET'), { ...options, credentials: [{ ...credentials, secretAccessKey: 'another' }] })), 'SignatureDoesNotMatch');
  assert.equal(pick(verifyPresignedUrl(check(url, 'GET'), { ...options, credentials: [{ accessKeyId: 'OTHER', secretAccessKey: 'x' }] })), 'InvalidAccessKeyId');
  assert.equal(pick(verifyPresignedUrl(check(url, 'GET'), { ...options, region: 'eu-west-1' })), 'AuthorizationQueryParametersError');
});

test('expiry: valid until the last millisecond, refused from X-Amz-Expires on; 60 s to 1 h only; not before X-Amz-Date', async () => {
  const url = await presign('GET', 'x', 300);
  assert.equal(verifyPresignedUrl(check(url, 'GET', signedAt.getTime() + 299_999), options).ok, true);
  const expired = verifyPresignedUrl(check(url, 'GET', signedAt.getTime() + 300_000), options);
  assert.deepEqual(expired, { ok: false, code: 'AccessDenied', message: 'Request has expired' });
  assert.equal(pick(verifyPresignedUrl(check(url, 'GET', signedAt.getTime() - 10 * 60_000), options)), 'AccessDenied');
  assert.equal(pick(verifyPresignedUrl(check(await presign('GET', 'x', 59), 'GET'), options)), 'AuthorizationQueryParametersError');
  assert.equal(pick(verifyPresignedUrl(check(await presign('GET', 'x', 3601), 'GET'), options)), 'AuthorizationQueryParametersError');
  assert.equal(verifyPresignedUrl(check(await presign('GET', 'x', 60), 'GET'), options).ok, true);
  assert.equal(verifyPresignedUrl(check(await presign('GET', 'x', 3600), 'GET'), options).ok, true);
});

function pick(outcome: ReturnType<typeof verifyPresignedUrl>): string {
  return outcome.ok ? 'ok' : outcome.code;
}
