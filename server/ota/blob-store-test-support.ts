import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, HeadBucketCommand, S3Client } from '@aws-sdk/client-s3';
import S3rver from 's3rver';
import { EmbeddedBlobStore, loadOrCreateBlobCredentials, S3BlobStore, type BlobStore, type S3Endpoint } from './blob-store.js';

/** The two blob store adapters on real sockets, for the contract suite and the upload e2e. */
export interface BlobFixture {
  readonly store: BlobStore;
  /** The S3 endpoint the store presigns for: the contract signs an expired URL with it. */
  readonly endpoint: S3Endpoint;
  /**
   * What the S3 service under test lacks (s3rver: no SigV4 signature check, no If-Range, and it
   * keeps a PUT body cut short of its Content-Length); real S3 and MinIO have all three.
   */
  readonly lacks: { readonly signatureCheck?: string; readonly ifRange?: string; readonly incompleteBodyCheck?: string };
  close(): Promise<void>;
}

export const bytesMax = 1 << 20;

export async function embedded(): Promise<BlobFixture> {
  const directory = await mkdtemp(join(tmpdir(), 'sdc-blobs-'));
  const credentials = await loadOrCreateBlobCredentials(directory);
  let store: EmbeddedBlobStore | undefined;
  const server: Server = createServer((request, response) => {
    void store!.handle(request, response).then((handled) => { if (!handled) response.writeHead(404).end(); });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  store = new EmbeddedBlobStore({ directory: join(directory, 'blobs'), publicBaseUrl: base, credentials, clock: { nowMs: () => Date.now() }, putBytesMax: bytesMax });
  return {
    store,
    endpoint: { endpoint: `${base}/v1/blobs`, region: 'us-east-1', bucket: 'sdc', credentials },
    lacks: {},
    async close() { server.closeAllConnections(); await new Promise((resolve) => server.close(resolve)); await rm(directory, { recursive: true, force: true }); },
  };
}

export async function s3(): Promise<BlobFixture> {
  const directory = await mkdtemp(join(tmpdir(), 'sdc-s3rver-'));
  const s3rver = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory, configureBuckets: [{ name: 'sdc', configs: [] }] });
  const { port } = await s3rver.run() as AddressInfo;
  // s3rver checks signatures with its fixed development key pair.
  const endpoint: S3Endpoint = { endpoint: `http://127.0.0.1:${port}`, region: 'us-east-1', bucket: 'sdc', credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } };
  const why = 's3rver 3.7 accepts any SigV4 signature and ignores If-Range (its source says "Signature version 4 calculation is unimplemented"); real S3 and MinIO do both';
  // Seen in test/integration/artifact-upload-length.test.ts: a PUT whose connection closed after half its Content-Length left the half as the object.
  const incomplete = 's3rver 3.7 stores whatever part of a PUT body arrived before the connection closed; S3 answers IncompleteBody and keeps nothing';
  return { store: new S3BlobStore(endpoint), endpoint, lacks: { signatureCheck: why, ifRange: why, incompleteBodyCheck: incomplete }, async close() { await s3rver.close(); await rm(directory, { recursive: true, force: true }); } };
}

/**
 * A real S3 service when `MINIO_URL` is set, as `http://ACCESS_KEY:SECRET_KEY@127.0.0.1:9000/BUCKET`
 * (MinIO, or any S3 endpoint; the bucket is created when missing). It checks SigV4 signatures,
 * If-Range and short bodies, so nothing is skipped on it. Undefined when the variable is not set.
 */
export function minioUrl(): URL | undefined {
  const text = process.env['MINIO_URL'];
  return text === undefined || text === '' ? undefined : new URL(text);
}

export const minioSkipReason = 'MINIO_URL is not set (http://ACCESS_KEY:SECRET_KEY@HOST:PORT/BUCKET of a MinIO or S3 endpoint): s3rver stands in for S3, without its signature and If-Range checks';

export async function minio(): Promise<BlobFixture> {
  const url = minioUrl();
  if (url === undefined) throw new Error(minioSkipReason);
  const bucket = url.pathname.replace(/^\/+|\/+$/g, '') || 'sdc-test';
  const endpoint: S3Endpoint = {
    endpoint: `${url.protocol}//${url.host}`, region: process.env['MINIO_REGION'] ?? 'us-east-1', bucket,
    credentials: { accessKeyId: decodeURIComponent(url.username), secretAccessKey: decodeURIComponent(url.password) },
  };
  const client = new S3Client({ region: endpoint.region, endpoint: endpoint.endpoint, forcePathStyle: true, credentials: endpoint.credentials });
  await client.send(new HeadBucketCommand({ Bucket: bucket })).catch(() => client.send(new CreateBucketCommand({ Bucket: bucket })));
  return { store: new S3BlobStore(endpoint), endpoint, lacks: {}, async close() { client.destroy(); } };
}

/**
 * The adapters every blob store suite runs on: the embedded store and s3rver always, and a real S3
 * service too when MINIO_URL is set (not run on this project's machine, which has no MinIO).
 */
export const blobFixtures: ReadonlyArray<readonly [string, () => Promise<BlobFixture>]> = [
  ['embedded', embedded], ['s3 (s3rver)', s3], ...(minioUrl() === undefined ? [] : [['s3 (MinIO, MINIO_URL)', minio] as const]),
];
