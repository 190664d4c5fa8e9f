import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { SdcError } from '../../core/errors/index.js';
import type { Scheduler } from '../../core/ports/ports.js';
import { sealArtifact, sealedLength, sealRecordBytesDefault, type SealBinding } from '../../runtime/artifact-seal-node.js';

/**
 * The device's half of an encrypted upload (issue 10: screenshots and logs): the file is sealed
 * to the control plane's artifact key with the device id and command id bound in, streamed to a
 * presigned PUT URL (Content-Length declared up front, which S3 requires, so a file that grows
 * while being read is read only up to its size at the start), and hashed on the way out. The
 * command result carries the returned SHA-256 and length: the control plane opens only an
 * upload with exactly that digest.
 */
export interface EncryptedUploadOptions {
  readonly path: string;
  readonly putUrl: string;
  readonly recipientPublicKey: Uint8Array;
  readonly binding: SealBinding;
  readonly plaintextBytesMax: number;
  /** No response within this after the last byte sent, or the whole upload longer than `totalTimeoutMs`. */
  readonly totalTimeoutMs: number;
  readonly scheduler: Scheduler;
  readonly caPem?: string;
}

export interface EncryptedUploadResult {
  /** Of the sealed bytes as stored: what the command result reports. */
  readonly sha256: string;
  readonly length: number;
  readonly plaintextLength: number;
}

export async function uploadEncryptedFile(options: EncryptedUploadOptions): Promise<EncryptedUploadResult> {
  const { size } = await stat(options.path);
  if (size > options.plaintextBytesMax) throw new SdcError('OTA_UPLOAD_TOO_LARGE', `the file is ${size} bytes, more than ${options.plaintextBytesMax}`, { bytesMax: options.plaintextBytesMax });
  let url: URL;
  try {
    url = new URL(options.putUrl);
  } catch {
    throw new SdcError('OTA_UPLOAD_FAILED', 'the upload URL is not a URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new SdcError('OTA_UPLOAD_FAILED', `only http and https uploads, not ${url.protocol}`);
  const length = sealedLength(size, sealRecordBytesDefault);
  const plaintext = size === 0 ? [] : createReadStream(options.path, { start: 0, end: size - 1 });
  const sealed = sealArtifact(plaintext, options.recipientPublicKey, options.binding, { plaintextBytesMax: options.plaintextBytesMax });
  const hash = createHash('sha256');
  await new Promise<void>((resolve, reject) => {
    let settled = false;
    const finish = (error?: SdcError) => {
      if (settled) return;
      settled = true;
      options.scheduler.cancel(timer);
      if (error === undefined) resolve();
      else reject(error);
    };
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const request = send(url, { method: 'PUT', headers: { 'content-length': String(length), 'content-type': 'application/octet-stream' }, ...(options.caPem === undefined ? {} : { ca: options.caPem }) }, (response) => {
      const status = response.statusCode ?? 0;
      const chunks: Buffer[] = [];
      let kept = 0;
      response.on('data', (chunk: Buffer) => { if (kept < 4096) { chunks.push(chunk); kept += chunk.length; } });
      response.on('end', () => {
        if (status === 200) return finish();
        const code = /<Code>([^<]{1,64})<\/Code>/.exec(Buffer.concat(chunks).toString('utf8'))?.[1];
        finish(new SdcError('OTA_UPLOAD_FAILED', `the store answered HTTP ${status}${code === undefined ? '' : ` ${code}`}`, { status, ...(code === undefined ? {} : { storeCode: code }) }));
      });
      response.on('error', (error) => finish(new SdcError('OTA_UPLOAD_FAILED', error.message)));
    });
    const timer = options.scheduler.schedule(options.totalTimeoutMs, () => {
      request.destroy();
      finish(new SdcError('OTA_UPLOAD_FAILED', `the upload did not finish within ${options.totalTimeoutMs} ms`, { limitMs: options.totalTimeoutMs }));
    });
    request.on('error', (error) => finish(new SdcError('OTA_UPLOAD_FAILED', error.message)));
    void (async () => {
      try {
        for await (const chunk of sealed) {
          hash.update(chunk);
          if (!request.write(chunk)) await new Promise<void>((drained) => { request.once('drain', drained); request.once('close', drained); });
          if (request.destroyed) return;
        }
        request.end();
      } catch (error) {
        request.destroy();
        finish(error instanceof SdcError ? error : new SdcError('OTA_UPLOAD_FAILED', (error as Error).message));
      }
    })();
  });
  return { sha256: hash.digest('hex'), length, plaintextLength: size };
}
