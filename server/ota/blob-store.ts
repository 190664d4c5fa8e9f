import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, opendir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import type { Clock } from '../../core/ports/ports.js';
import { SdcError } from '../../core/errors/index.js';
import { s3ErrorXml, verifyPresignedUrl, type SigV4Credentials } from './sigv4.js';

/**
 * The blob store (issue 10, "Artifacts and downloads"): objects under keys, reached by devices
 * and operators through SigV4 presigned URLs. Two adapters behind one port: an embedded store in
 * the data directory that the control plane serves and that verifies the presigned URLs itself,
 * and S3 (any S3-compatible service). Both presign with @aws-sdk/s3-request-presigner, so one
 * presigner serves both; the embedded store is "an S3 endpoint" at `<public base>/v1/blobs`.
 */
export interface BlobInfo {
  readonly length: number;
  /** Quoted, as in the ETag header: what If-Range carries back. */
  readonly etag: string;
}

export type PresignMethod = 'GET' | 'PUT';

export interface BlobStore {
  readonly kind: 'embedded' | 's3';
  /**
   * Stores the whole stream under `key`; OTA_UPLOAD_TOO_LARGE (nothing kept) past `bytesMax`, and
   * OTA_UPLOAD_DIGEST_MISMATCH (nothing kept) when `lengthExact` is given and the stream is shorter.
   */
  put(key: string, body: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, options: PutOptions): Promise<BlobInfo & { sha256: string }>;
  head(key: string): Promise<BlobInfo | undefined>;
  /** The object's bytes for the control plane itself (devices and operators use presigned URLs). */
  read(key: string): Promise<AsyncIterable<Uint8Array> | undefined>;
  delete(key: string): Promise<void>;
  /**
   * A URL for one method on one object, valid `expiresInSeconds` (60..3600, else OTA_PRESIGN_INVALID).
   * `contentLength` (PUT only) is signed as the Content-Length header: the store refuses a body of
   * any other length (S3 and the embedded store alike: SignatureDoesNotMatch).
   */
  presign(method: PresignMethod, key: string, expiresInSeconds: number, options?: PresignOptions): Promise<string>;
}

export interface PutOptions {
  readonly bytesMax: number;
  /** The body must be exactly this long (a presigned PUT's signed Content-Length): a shorter one keeps nothing. */
  readonly lengthExact?: number;
}

function checkExactLength(length: number, options: PutOptions): void {
  if (options.lengthExact !== undefined && length !== options.lengthExact) {
    throw new SdcError('OTA_UPLOAD_DIGEST_MISMATCH', `the body is ${length} bytes, not the ${options.lengthExact} declared`, { length, declared: options.lengthExact });
  }
}

export interface PresignOptions {
  /** The exact body length of a presigned PUT, bound into the signature (1..2^53-1 bytes). */
  readonly contentLength?: number;
}

export const presignExpiryMinSeconds = 60;
export const presignExpiryMaxSeconds = 3600;
const keyPattern = /^[A-Za-z0-9][A-Za-z0-9._\-/]{0,511}$/;

function checkKey(key: string): void {
  if (!keyPattern.test(key) || key.includes('//') || key.split('/').some((segment) => segment === '.' || segment === '..')) {
    throw new SdcError('OTA_PRESIGN_INVALID', 'a blob key is 1-512 characters of A-Z a-z 0-9 . _ - /, without empty, . or .. segments');
  }
}

function checkExpiry(expiresInSeconds: number): void {
  if (!Number.isInteger(expiresInSeconds) || expiresInSeconds < presignExpiryMinSeconds || expiresInSeconds > presignExpiryMaxSeconds) {
    throw new SdcError('OTA_PRESIGN_INVALID', `a presigned URL lives ${presignExpiryMinSeconds} to ${presignExpiryMaxSeconds} seconds, not ${expiresInSeconds}`);
  }
}

export interface S3Endpoint {
  /** e.g. `http://127.0.0.1:4569` for a local S3, or `https://cp.example:8443/v1/blobs` for the embedded store. */
  readonly endpoint: string;
  readonly region: string;
  readonly bucket: string;
  readonly credentials: SigV4Credentials;
}

/**
 * The AWS SDK's S3 client and presigner, loaded when a store first needs them (a presign, an S3
 * call), not with this module: every process that loads the control plane loads this module,
 * and the SDK took about 0.3 s of CPU to load (client-s3 and the presigner, 5 December, on the
 * 2-core machine at load 20), paid by each test file and `sdc` command that never presigns.
 */
let awsSdk: Promise<{
  readonly s3: typeof import('@aws-sdk/client-s3');
  readonly getSignedUrl: typeof import('@aws-sdk/s3-request-presigner').getSignedUrl;
}> | undefined;

function loadAwsSdk(): NonNullable<typeof awsSdk> {
  awsSdk ??= Promise.all([import('@aws-sdk/client-s3'), import('@aws-sdk/s3-request-presigner')])
    .then(([s3, presigner]) => ({ s3, getSignedUrl: presigner.getSignedUrl }));
  return awsSdk;
}

async function s3Client(endpoint: S3Endpoint): Promise<S3Client> {
  const { s3: { S3Client } } = await loadAwsSdk();
  // The SDK warns once per process that its releases after January 2027 need node 22; this
  // project runs on node 20 with the SDK version it pins, and the warning landed in the middle of
  // `sdc serve` and `sdc demo` output. An operator who set the variable either way is respected.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  // Path style, so the bucket is in the path and any host works; checksums only where required,
  // since a presigned PUT must not carry a checksum of an empty body.
  return new S3Client({ region: endpoint.region, endpoint: endpoint.endpoint, forcePathStyle: true, credentials: endpoint.credentials, requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' });
}

/**
 * The one presigner: @aws-sdk/s3-request-presigner on a path-style client for either endpoint.
 * `clock` dates the signature: the embedded store signs and verifies on the same clock (the
 * control plane's); S3 uses the system clock, as its own does.
 */
export function createPresigner(endpoint: S3Endpoint, clock?: Clock): (method: PresignMethod, key: string, expiresInSeconds: number, options?: PresignOptions) => Promise<string> {
  let client: Promise<S3Client> | undefined;
  return async (method, key, expiresInSeconds, options = {}) => {
    checkKey(key);
    checkExpiry(expiresInSeconds);
    const { contentLength } = options;
    if (contentLength !== undefined && (method !== 'PUT' || !Number.isSafeInteger(contentLength) || contentLength < 1)) {
      throw new SdcError('OTA_PRESIGN_INVALID', 'a content length is bound into presigned PUTs only, and is a positive integer');
    }
    const { s3, getSignedUrl } = await loadAwsSdk();
    client ??= s3Client(endpoint);
    // ContentLength makes the presigner sign the content-length header (X-Amz-SignedHeaders=content-length;host).
    const command = method === 'GET' ? new s3.GetObjectCommand({ Bucket: endpoint.bucket, Key: key })
      : new s3.PutObjectCommand({ Bucket: endpoint.bucket, Key: key, ...(contentLength === undefined ? {} : { ContentLength: contentLength }) });
    return getSignedUrl(await client, command, { expiresIn: expiresInSeconds, ...(clock === undefined ? {} : { signingDate: new Date(clock.nowMs()) }) });
  };
}

async function collect(body: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, bytesMax: number): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  let length = 0;
  for await (const chunk of body) {
    length += chunk.length;
    if (length > bytesMax) throw new SdcError('OTA_UPLOAD_TOO_LARGE', `the object exceeds ${bytesMax} bytes`, { bytesMax });
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** S3 through @aws-sdk/client-s3: S3 itself checks the presigned URLs and answers Range/If-Range. */
export class S3BlobStore implements BlobStore {
  readonly kind = 's3' as const;
  /** Made at the first call (the SDK is loaded then, see loadAwsSdk). */
  #client: Promise<S3Client> | undefined;
  readonly #endpoint: S3Endpoint;
  readonly #presign: ReturnType<typeof createPresigner>;

  constructor(endpoint: S3Endpoint) {
    this.#endpoint = endpoint;
    this.#presign = createPresigner(endpoint);
  }

  /** The client and the SDK's commands. */
  async #sdk(): Promise<{ client: S3Client; s3: typeof import('@aws-sdk/client-s3') }> {
    const { s3 } = await loadAwsSdk();
    this.#client ??= s3Client(this.#endpoint);
    return { client: await this.#client, s3 };
  }

  async put(key: string, body: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, options: PutOptions): Promise<BlobInfo & { sha256: string }> {
    checkKey(key);
    // Buffered (bounded by bytesMax) because PutObject needs the length up front; large objects
    // go straight from the device to S3 by presigned PUT and never pass through here.
    const bytes = await collect(body, Math.min(options.bytesMax, options.lengthExact ?? Number.MAX_SAFE_INTEGER));
    checkExactLength(bytes.length, options);
    const { client, s3 } = await this.#sdk();
    const sent = await client.send(new s3.PutObjectCommand({ Bucket: this.#endpoint.bucket, Key: key, Body: bytes, ContentLength: bytes.length }));
    return { length: bytes.length, etag: sent.ETag ?? '', sha256: createHash('sha256').update(bytes).digest('hex') };
  }

  async head(key: string): Promise<BlobInfo | undefined> {
    checkKey(key);
    const { client, s3 } = await this.#sdk();
    try {
      const head = await client.send(new s3.HeadObjectCommand({ Bucket: this.#endpoint.bucket, Key: key }));
      return { length: head.ContentLength ?? 0, etag: head.ETag ?? '' };
    } catch (error) {
      if ((error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return undefined;
      throw error;
    }
  }

  async read(key: string): Promise<AsyncIterable<Uint8Array> | undefined> {
    checkKey(key);
    const { client, s3 } = await this.#sdk();
    try {
      const object = await client.send(new s3.GetObjectCommand({ Bucket: this.#endpoint.bucket, Key: key }));
      return object.Body as AsyncIterable<Uint8Array> | undefined;
    } catch (error) {
      if ((error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return undefined;
      throw error;
    }
  }

  async delete(key: string): Promise<void> {
    checkKey(key);
    const { client, s3 } = await this.#sdk();
    await client.send(new s3.DeleteObjectCommand({ Bucket: this.#endpoint.bucket, Key: key }));
  }

  presign(method: PresignMethod, key: string, expiresInSeconds: number, options?: PresignOptions): Promise<string> {
    return this.#presign(method, key, expiresInSeconds, options);
  }
}

export interface EmbeddedBlobStoreOptions {
  /** `<dataDir>/blobs`: objects and their metadata, 0700/0600. */
  readonly directory: string;
  /**
   * The public base under which the control plane serves this store, e.g. `https://cp:8443`: the
   * host devices and operators reach, which every presigned URL names (and signs). A function
   * when it is known only once the API listens (the default is derived from its address).
   */
  readonly publicBaseUrl: string | (() => string);
  readonly credentials: SigV4Credentials;
  readonly clock: Clock;
  /** The largest object a presigned PUT may write. */
  readonly putBytesMax: number;
  readonly region?: string;
  /** Temporary files looked at per removeStaleTemporaries pass (default embeddedTemporaryLimits.examinedPerPassMax). */
  readonly temporariesExaminedPerPassMax?: number;
}

/**
 * Temporary files of writes that never finished: a PUT the control plane stopped (or crashed)
 * during leaves `.put-<random>.tmp` (and, rarely, a `<object>.json.tmp`) in the data directory,
 * which holds the database too. A write in this process removes its own on any failure.
 */
export const embeddedTemporaryLimits = {
  /**
   * A temporary file not written for this long belongs to no running write: a PUT's body is bound
   * by Node's requestTimeout (300 s by default, left as is, docs/ota.md) and every chunk written
   * moves the file's mtime; twice that, for a slow disk or a sync. Judged on the store's clock.
   */
  staleAfterMs: 10 * 60_000,
  /** Temporary files looked at (a stat, perhaps an unlink) per pass; the next pass goes on from there. */
  examinedPerPassMax: 64,
} as const;

const temporaryName = /^(?:\.put-[0-9a-f]{16}\.tmp|[0-9a-f]{64}\.json\.tmp)$/;

interface ObjectMeta {
  readonly key: string;
  readonly length: number;
  readonly sha256: string;
}

export const embeddedBlobPathPrefix = '/v1/blobs';
export const embeddedBucket = 'sdc';

/**
 * Objects in the data directory, each as `<sha256 of key>.bin` with a `.json` beside it (key,
 * length, SHA-256; the ETag is the quoted SHA-256, so a changed object always has a new ETag).
 * `handle` serves presigned GET/HEAD/PUT on `/v1/blobs/sdc/<key>`: it verifies the URL itself
 * (sigv4.ts) and answers a single Range, If-Range and 416 as RFC 9110 says. A write goes to a
 * temporary file and is renamed when whole, so a reader never sees half an object.
 */
export class EmbeddedBlobStore implements BlobStore {
  readonly kind = 'embedded' as const;
  readonly #options: EmbeddedBlobStoreOptions;
  /** The presigner for the current public base (rebuilt only when the base changes). */
  #presigner: { base: string; presign: ReturnType<typeof createPresigner> } | undefined;
  readonly #region: string;
  /**
   * Names of the temporary files of this process's writes in progress, never removed as stale
   * however old, each with its number of writes (two writes of one key share its `.json.tmp`).
   */
  readonly #writing = new Map<string, number>();
  /** Where the next removeStaleTemporaries pass goes on: directory entries to pass over first. */
  #temporariesScanFrom = 0;

  constructor(options: EmbeddedBlobStoreOptions) {
    this.#options = options;
    this.#region = options.region ?? 'us-east-1';
  }

  /** Where presigned URLs point: `<public base>/v1/blobs` (the bucket follows in the path). */
  get endpoint(): S3Endpoint {
    const { publicBaseUrl } = this.#options;
    const base = (typeof publicBaseUrl === 'string' ? publicBaseUrl : publicBaseUrl()).replace(/\/+$/, '');
    return { endpoint: `${base}${embeddedBlobPathPrefix}`, region: this.#region, bucket: embeddedBucket, credentials: this.#options.credentials };
  }

  #file(key: string, extension: 'bin' | 'json'): string {
    return join(this.#options.directory, `${createHash('sha256').update(key, 'utf8').digest('hex')}.${extension}`);
  }

  put(key: string, body: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, options: PutOptions): Promise<BlobInfo & { sha256: string }> {
    return this.#write(key, body, options, undefined);
  }

  /**
   * `urlExpiresAtMs`: a presigned PUT's URL expiry. The URL is checked when the request starts, but
   * the body may arrive for minutes after (Node's requestTimeout, 300 s by default, is the only
   * bound): a write that ends at or after the expiry keeps nothing (OTA_UPLOAD_URL_EXPIRED), since
   * the release uploads sweep deletes a pending object only once, some minutes after its URL expired,
   * and an object renamed into place after that would never be deleted.
   */
  async #write(key: string, body: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, options: PutOptions, urlExpiresAtMs: number | undefined): Promise<BlobInfo & { sha256: string }> {
    checkKey(key);
    await mkdir(this.#options.directory, { recursive: true, mode: 0o700 });
    const temporaryBase = `.put-${randomBytes(8).toString('hex')}.tmp`;
    const metaTemporaryBase = `${createHash('sha256').update(key, 'utf8').digest('hex')}.json.tmp`;
    const temporary = join(this.#options.directory, temporaryBase);
    const names = [temporaryBase, metaTemporaryBase];
    for (const name of names) this.#writing.set(name, (this.#writing.get(name) ?? 0) + 1);
    try {
      return await this.#writeTo(temporary, key, body, options, urlExpiresAtMs);
    } finally {
      for (const name of names) {
        const writes = (this.#writing.get(name) ?? 1) - 1;
        if (writes === 0) this.#writing.delete(name);
        else this.#writing.set(name, writes);
      }
    }
  }

  async #writeTo(temporary: string, key: string, body: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, options: PutOptions, urlExpiresAtMs: number | undefined): Promise<BlobInfo & { sha256: string }> {
    const handle = await open(temporary, 'wx', 0o600);
    const hash = createHash('sha256');
    let length = 0;
    try {
      try {
        for await (const chunk of body) {
          length += chunk.length;
          if (length > options.bytesMax) throw new SdcError('OTA_UPLOAD_TOO_LARGE', `the object exceeds ${options.bytesMax} bytes`, { bytesMax: options.bytesMax });
          hash.update(chunk);
          await handle.write(chunk);
        }
        checkExactLength(length, options);
        await handle.sync();
      } finally {
        await handle.close();
      }
      // Checked last, after the sync, so that only a rename and a metadata write come after it.
      if (urlExpiresAtMs !== undefined && this.#options.clock.nowMs() >= urlExpiresAtMs) {
        throw new SdcError('OTA_UPLOAD_URL_EXPIRED', `the presigned URL expired at ${new Date(urlExpiresAtMs).toISOString()}, before the whole body had arrived: nothing was kept; ask for a new URL and PUT again`,
          { expiresAtMs: urlExpiresAtMs });
      }
      const meta: ObjectMeta = { key, length, sha256: hash.digest('hex') };
      // Metadata first, then the object: a crash between the two leaves the old object with
      // new metadata, which the length/ETag check on read reports rather than serves.
      await writeFile(`${this.#file(key, 'json')}.tmp`, JSON.stringify(meta), { mode: 0o600 });
      await rename(`${this.#file(key, 'json')}.tmp`, this.#file(key, 'json'));
      await rename(temporary, this.#file(key, 'bin'));
      return { length, etag: `"${meta.sha256}"`, sha256: meta.sha256 };
    } catch (error) {
      await unlink(temporary).catch(() => undefined);
      throw error;
    }
  }

  /**
   * Removes temporary files left by writes that never finished (embeddedTemporaryLimits): one not
   * modified for staleAfterMs on the store's clock and not of a write in progress here. Another
   * control plane sharing the directory is covered by the age alone (its writes move the mtime).
   * Looks at examinedPerPassMax temporary files at most; the next pass goes on after them, so
   * fresh files first in the directory never hide stale ones after them. Returns how many it removed.
   */
  async removeStaleTemporaries(): Promise<number> {
    const examinedMax = this.#options.temporariesExaminedPerPassMax ?? embeddedTemporaryLimits.examinedPerPassMax;
    const staleBeforeMs = this.#options.clock.nowMs() - embeddedTemporaryLimits.staleAfterMs;
    let directory;
    try {
      directory = await opendir(this.#options.directory, { bufferSize: 256 });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 0;
      throw error;
    }
    let index = 0;
    let examined = 0;
    let removed = 0;
    let stoppedAt: number | undefined;
    // The iterator closes the directory when the loop ends, by break or throw too.
    for await (const entry of directory) {
      index += 1;
      if (index <= this.#temporariesScanFrom || !temporaryName.test(entry.name) || this.#writing.has(entry.name)) continue;
      if (examined === examinedMax) {
        stoppedAt = index - 1;
        break;
      }
      examined += 1;
      if (await this.#removeIfStale(entry.name, staleBeforeMs)) removed += 1;
    }
    // Entries removed before the stop no longer come before it.
    this.#temporariesScanFrom = stoppedAt === undefined ? 0 : stoppedAt - removed;
    return removed;
  }

  async #removeIfStale(name: string, staleBeforeMs: number): Promise<boolean> {
    const path = join(this.#options.directory, name);
    try {
      const { mtimeMs } = await stat(path);
      if (mtimeMs > staleBeforeMs || this.#writing.has(name)) return false;
      await unlink(path);
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false; // renamed or removed meanwhile
      throw error;
    }
  }

  async #meta(key: string): Promise<ObjectMeta | undefined> {
    try {
      const meta = JSON.parse(await readFile(this.#file(key, 'json'), 'utf8')) as ObjectMeta;
      const { size } = await stat(this.#file(key, 'bin'));
      return meta.key === key && size === meta.length ? meta : undefined;
    } catch {
      return undefined;
    }
  }

  async head(key: string): Promise<BlobInfo | undefined> {
    checkKey(key);
    const meta = await this.#meta(key);
    return meta === undefined ? undefined : { length: meta.length, etag: `"${meta.sha256}"` };
  }

  async read(key: string): Promise<AsyncIterable<Uint8Array> | undefined> {
    checkKey(key);
    const meta = await this.#meta(key);
    return meta === undefined ? undefined : createReadStream(this.#file(key, 'bin'));
  }

  async delete(key: string): Promise<void> {
    checkKey(key);
    await unlink(this.#file(key, 'bin')).catch(() => undefined);
    await unlink(this.#file(key, 'json')).catch(() => undefined);
  }

  async presign(method: PresignMethod, key: string, expiresInSeconds: number, options?: PresignOptions): Promise<string> {
    const endpoint = this.endpoint; // throws (rejects) while no public base is known
    if (this.#presigner?.base !== endpoint.endpoint) this.#presigner = { base: endpoint.endpoint, presign: createPresigner(endpoint, this.#options.clock) };
    return this.#presigner.presign(method, key, expiresInSeconds, options);
  }

  /**
   * Serves one request if its path is under `/v1/blobs/`; returns false otherwise. Never throws:
   * every refusal is an S3-style XML error with S3's code and status.
   */
  async handle(request: IncomingMessage, response: ServerResponse): Promise<boolean> {
    const target = request.url ?? '/';
    if (!target.startsWith(`${embeddedBlobPathPrefix}/`)) return false;
    try {
      await this.#serve(request, response, target);
    } catch (error) {
      if (!response.headersSent) {
        const tooLarge = error instanceof SdcError && error.code === 'OTA_UPLOAD_TOO_LARGE';
        const incomplete = error instanceof SdcError && error.code === 'OTA_UPLOAD_DIGEST_MISMATCH';
        const expired = error instanceof SdcError && error.code === 'OTA_UPLOAD_URL_EXPIRED';
        if (expired) sendError(response, 403, 'AccessDenied', `Request has expired: ${error.message}`);
        else if (tooLarge) sendError(response, 400, 'EntityTooLarge', error.message);
        else if (incomplete) sendError(response, 400, 'IncompleteBody', error.message);
        else sendError(response, 500, 'InternalError', 'the object could not be read or written');
      } else {
        response.destroy();
      }
    }
    return true;
  }

  async #serve(request: IncomingMessage, response: ServerResponse, target: string): Promise<void> {
    const method = (request.method ?? 'GET').toUpperCase();
    if (method !== 'GET' && method !== 'HEAD' && method !== 'PUT') return sendError(response, 405, 'MethodNotAllowed', 'only GET, HEAD and PUT with a presigned URL');
    // A HEAD is allowed by a GET URL, as S3 does not (it signs HEAD separately) but curl -I expects.
    const outcome = verifyPresignedUrl({ method: method === 'HEAD' ? 'GET' : method, target, headers: request.headers, nowMs: this.#options.clock.nowMs() }, { credentials: [this.#options.credentials], region: this.#region });
    if (!outcome.ok) {
      request.resume();
      return sendError(response, outcome.code === 'AuthorizationQueryParametersError' ? 400 : 403, outcome.code, outcome.message);
    }
    const bucketPrefix = `${embeddedBlobPathPrefix}/${embeddedBucket}/`;
    const key = outcome.path.startsWith(bucketPrefix) ? outcome.path.slice(bucketPrefix.length) : '';
    try {
      checkKey(key);
    } catch {
      request.resume();
      return sendError(response, 400, 'InvalidArgument', 'not an object key of this store');
    }
    if (method === 'PUT') {
      const declared = Number(request.headers['content-length']);
      if (Number.isFinite(declared) && declared > this.#options.putBytesMax) {
        request.resume();
        return sendError(response, 400, 'EntityTooLarge', `the object exceeds ${this.#options.putBytesMax} bytes`);
      }
      // A body that ends before its Content-Length (the connection closed early) keeps nothing; a
      // longer one cannot be sent (the HTTP parser stops at Content-Length), and a Content-Length
      // other than a presigned PUT's signed one fails the signature above.
      const stored = await this.#write(key, request, { bytesMax: this.#options.putBytesMax, ...(Number.isSafeInteger(declared) ? { lengthExact: declared } : {}) }, outcome.expiresAtMs);
      response.writeHead(200, { etag: stored.etag, 'content-length': '0' }).end();
      return;
    }
    request.resume();
    const meta = await this.#meta(key);
    if (meta === undefined) return sendError(response, 404, 'NoSuchKey', 'The specified key does not exist.');
    const etag = `"${meta.sha256}"`;
    const ifRange = request.headers['if-range'];
    const range = chooseRange(request.headers.range, typeof ifRange === 'string' ? ifRange : undefined, etag, meta.length);
    const common = { etag, 'accept-ranges': 'bytes', 'content-type': 'application/octet-stream' };
    if (range === 'unsatisfiable') {
      response.writeHead(416, { ...common, 'content-range': `bytes */${meta.length}`, 'content-type': 'application/xml' });
      response.end(s3ErrorXml('InvalidRange', 'The requested range is not satisfiable'));
      return;
    }
    const [start, end] = range === 'whole' ? [0, meta.length - 1] : range;
    const headers = { ...common, 'content-length': String(Math.max(0, end - start + 1)), ...(range === 'whole' ? {} : { 'content-range': `bytes ${start}-${end}/${meta.length}` }) };
    response.writeHead(range === 'whole' ? 200 : 206, headers);
    if (method === 'HEAD' || meta.length === 0) {
      response.end();
      return;
    }
    const stream = createReadStream(this.#file(key, 'bin'), { start, end });
    stream.on('error', () => response.destroy());
    response.on('close', () => stream.destroy());
    stream.pipe(response);
  }
}

/**
 * RFC 9110 §14: one `bytes=` range (first-last, first-, -suffix) is answered 206; several ranges,
 * a malformed header or an If-Range that does not match the current ETag get the whole object
 * (200), which a resuming client must read as "start again"; a range wholly past the end is 416.
 */
export function chooseRange(rangeHeader: string | undefined, ifRange: string | undefined, etag: string, length: number): 'whole' | 'unsatisfiable' | [number, number] {
  if (rangeHeader === undefined) return 'whole';
  if (ifRange !== undefined && ifRange !== etag) return 'whole';
  const match = /^bytes=(\d*)-(\d*)$/.exec(rangeHeader.trim());
  if (match === null || (match[1] === '' && match[2] === '')) return 'whole';
  if (match[1] === '') {
    const suffix = Number(match[2]);
    if (suffix === 0) return 'unsatisfiable';
    return length === 0 ? 'unsatisfiable' : [Math.max(0, length - suffix), length - 1];
  }
  const first = Number(match[1]);
  const last = match[2] === '' ? length - 1 : Math.min(Number(match[2]), length - 1);
  if (match[2] !== '' && Number(match[2]) < first) return 'whole';
  if (first >= length) return 'unsatisfiable';
  return [first, last];
}

function sendError(response: ServerResponse, status: number, code: string, message: string): void {
  const body = s3ErrorXml(code, message);
  response.writeHead(status, { 'content-type': 'application/xml', 'content-length': String(Buffer.byteLength(body)) }).end(body);
}

/**
 * The embedded store's access key, made once per data directory (0600), like the other service
 * keys: `<dataDir>/blobs.key.json`. The access key id is public (it is in every URL); the secret
 * never leaves the control plane.
 */
export async function loadOrCreateBlobCredentials(dataDir: string): Promise<SigV4Credentials> {
  const path = join(dataDir, 'blobs.key.json');
  try {
    const parsed = JSON.parse(await readFile(path, 'utf8')) as SigV4Credentials;
    if (typeof parsed.accessKeyId === 'string' && typeof parsed.secretAccessKey === 'string' && parsed.secretAccessKey.length >= 32) return parsed;
    throw new SdcError('OTA_PRESIGN_INVALID', `${path} is not a blob store key`);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const credentials = { accessKeyId: `SDC${randomBytes(8).toString('hex').toUpperCase()}`, secretAccessKey: randomBytes(32).toString('base64url') };
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  await writeFile(path, JSON.stringify(credentials), { mode: 0o600, flag: 'wx' });
  return credentials;
}
