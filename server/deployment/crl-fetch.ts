import { request } from 'node:https';
import { SdcError } from '../../core/errors/index.js';

/**
 * Above the largest CRL the control plane signs: at most 100,000 entries (TRUST_CRL_INCOMPLETE
 * past that), at most 56 DER bytes each (crlEntryDerBytesMax), so at most 7,588,928 characters of
 * PEM (crlPemCharsMax; 6,635,200 measured with our 16-octet serials, 7,583,676 with the largest,
 * 2026-12-06, morning): 8 MiB leaves 10 % over the largest. The transfer is cut here, so a wrong or
 * hostile server cannot fill the gateway's memory.
 */
export const crlFetchBytesMax = 8 * 1024 * 1024;

/**
 * For the whole fetch: connect, TLS, answer and body. Well under the 60 s reload interval (a
 * reload never overlaps the next one), and long enough for a full CRL on a slow link.
 */
export const crlFetchTimeoutMsDefault = 15_000;

export type CrlFetchFailureCode = 'TRUST_CRL_FETCH_FAILED' | 'TRUST_CRL_FETCH_TIMEOUT' | 'TRUST_CRL_FETCH_REFUSED' | 'TRUST_CRL_FETCH_TOO_LARGE';

export interface CrlFetchOptions {
  /** The control plane's `GET /v1/crl`, https only. */
  readonly url: URL;
  /** The only CA trusted for the control plane's certificate: the deployment's root (never the system store). */
  readonly caPem: string;
  readonly timeoutMs?: number;
  readonly bytesMax?: number;
}

/**
 * One GET of the CRL's text (PEM) from the control plane, TLS 1.3 verified against `caPem` only,
 * on a connection of its own (one request a minute needs no pool). Every failure is an SdcError
 * with a CrlFetchFailureCode; the caller verifies the text exactly as a CRL file (readVerifiedCrl),
 * since the CRL's own signature is what makes it trusted, the TLS only keeps a stranger from
 * answering for the control plane (and holding the gateway on an old CRL).
 */
export function fetchCrlText(options: CrlFetchOptions): Promise<string> {
  const { url, caPem } = options;
  const timeoutMs = options.timeoutMs ?? crlFetchTimeoutMsDefault;
  const bytesMax = options.bytesMax ?? crlFetchBytesMax;
  return new Promise((resolve, reject) => {
    // One deadline for the whole exchange: the socket's idle timeout alone would let a server that
    // trickles a byte at a time hold the reload for ever.
    const deadline = setTimeout(() => req.destroy(new SdcError('TRUST_CRL_FETCH_TIMEOUT', `no complete CRL from ${url.origin} within ${timeoutMs} ms`, { url: url.href })), timeoutMs);
    const settle = (error: unknown, text?: string) => {
      clearTimeout(deadline);
      if (text !== undefined) resolve(text);
      else reject(SdcError.is(error) ? error : new SdcError('TRUST_CRL_FETCH_FAILED', `CRL from ${url.origin}: ${(error as Error).message}`, { url: url.href }, { cause: error }));
    };
    const req = request(url, { method: 'GET', ca: caPem, minVersion: 'TLSv1.3', agent: false, headers: { accept: 'application/x-pem-file' } }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        req.destroy(new SdcError('TRUST_CRL_FETCH_REFUSED', `${url.href} answered ${res.statusCode ?? 0}`, { url: url.href, status: res.statusCode ?? 0 }));
        return;
      }
      const declared = Number(res.headers['content-length']);
      if (Number.isFinite(declared) && declared > bytesMax) {
        req.destroy(new SdcError('TRUST_CRL_FETCH_TOO_LARGE', `${url.href} declares ${declared} bytes, above ${bytesMax}`, { url: url.href, bytesMax }));
        return;
      }
      const chunks: Buffer[] = [];
      let bytes = 0;
      res.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        if (bytes > bytesMax) {
          req.destroy(new SdcError('TRUST_CRL_FETCH_TOO_LARGE', `the answer from ${url.href} exceeds ${bytesMax} bytes`, { url: url.href, bytesMax }));
          return;
        }
        chunks.push(chunk);
      });
      res.on('end', () => settle(undefined, Buffer.concat(chunks).toString('utf8')));
      res.on('error', (error) => settle(error));
    });
    req.on('error', (error) => settle(error));
    req.end();
  });
}
