import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Verification of AWS Signature Version 4 presigned URLs (query-string authentication), written
 * from the AWS specification so that the embedded blob store accepts exactly the URLs that
 * @aws-sdk/s3-request-presigner produces for S3: one presigner serves both adapters.
 *
 * What is checked, in order: the algorithm; the credential scope (known access key, region,
 * service `s3`, `aws4_request`, and a scope date equal to the day of X-Amz-Date); the expiry
 * (X-Amz-Expires within [expiresMinSeconds, expiresMaxSeconds], not past, X-Amz-Date not in the
 * future beyond the allowed skew); that `host` is among the signed headers; and the signature
 * over the canonical request, compared in constant time. The method and the path are part of the
 * canonical request, so a URL is bound to both: a GET URL does not authorise a PUT, and a URL for
 * one object does not open another.
 */
export interface SigV4Credentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
}

export interface PresignedCheck {
  readonly method: string;
  /** The request target as received: raw path and query, e.g. `/v1/blobs/sdc/a%20b?X-Amz-...`. */
  readonly target: string;
  /** Request headers with lower-case names (node's IncomingMessage.headers). */
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly nowMs: number;
}

export interface SigV4VerifierOptions {
  readonly credentials: readonly SigV4Credentials[];
  readonly region: string;
  /** The issue's bounds: 60 s to 1 h. */
  readonly expiresMinSeconds?: number;
  readonly expiresMaxSeconds?: number;
  /** How far in the future X-Amz-Date may be (clock skew between presigner and store). */
  readonly clockSkewMs?: number;
}

/** S3's own error codes, so that an S3 client reads the refusal as it would from AWS. */
export type SigV4Refusal = { readonly ok: false; readonly code: 'AccessDenied' | 'SignatureDoesNotMatch' | 'AuthorizationQueryParametersError' | 'InvalidAccessKeyId'; readonly message: string };
export type SigV4Outcome = { readonly ok: true; readonly path: string; readonly accessKeyId: string; readonly expiresAtMs: number } | SigV4Refusal;

const algorithm = 'AWS4-HMAC-SHA256';

export function verifyPresignedUrl(check: PresignedCheck, options: SigV4VerifierOptions): SigV4Outcome {
  const expiresMin = options.expiresMinSeconds ?? 60;
  const expiresMax = options.expiresMaxSeconds ?? 3600;
  const skewMs = options.clockSkewMs ?? 5 * 60_000;
  const queryAt = check.target.indexOf('?');
  const rawPath = queryAt < 0 ? check.target : check.target.slice(0, queryAt);
  const rawQuery = queryAt < 0 ? '' : check.target.slice(queryAt + 1);
  const parameters = parseQuery(rawQuery);
  if (parameters === undefined) return refuse('AuthorizationQueryParametersError', 'the query string is malformed');
  const single = (name: string): string | undefined => {
    const values = parameters.filter(([key]) => key === name);
    return values.length === 1 ? values[0]![1] : undefined;
  };
  const signature = single('X-Amz-Signature');
  const credential = single('X-Amz-Credential');
  const amzDate = single('X-Amz-Date');
  const expires = single('X-Amz-Expires');
  const signedHeaders = single('X-Amz-SignedHeaders');
  if (single('X-Amz-Algorithm') !== algorithm || signature === undefined || credential === undefined || amzDate === undefined || expires === undefined || signedHeaders === undefined) {
    return refuse('AuthorizationQueryParametersError', 'query-string authentication requires X-Amz-Algorithm=AWS4-HMAC-SHA256, X-Amz-Credential, X-Amz-Date, X-Amz-Expires, X-Amz-SignedHeaders and X-Amz-Signature, each once');
  }
  const scope = credential.split('/');
  if (scope.length !== 5) return refuse('AuthorizationQueryParametersError', 'X-Amz-Credential must be <key>/<date>/<region>/<service>/aws4_request');
  const [accessKeyId, scopeDate, region, service, terminator] = scope as [string, string, string, string, string];
  const secret = options.credentials.find((entry) => entry.accessKeyId === accessKeyId);
  if (secret === undefined) return refuse('InvalidAccessKeyId', 'the access key id in X-Amz-Credential is not known here');
  if (region !== options.region || service !== 's3' || terminator !== 'aws4_request') return refuse('AuthorizationQueryParametersError', `the credential scope must name region ${options.region}, service s3 and aws4_request`);
  const signedAtMs = parseAmzDate(amzDate);
  if (signedAtMs === undefined || amzDate.slice(0, 8) !== scopeDate) return refuse('AuthorizationQueryParametersError', 'X-Amz-Date must be YYYYMMDDTHHMMSSZ on the credential scope\'s day');
  if (!/^[0-9]{1,7}$/.test(expires)) return refuse('AuthorizationQueryParametersError', 'X-Amz-Expires must be a whole number of seconds');
  const expiresSeconds = Number(expires);
  if (expiresSeconds < expiresMin || expiresSeconds > expiresMax) return refuse('AuthorizationQueryParametersError', `X-Amz-Expires must be between ${expiresMin} and ${expiresMax} seconds`);
  const expiresAtMs = signedAtMs + expiresSeconds * 1000;
  if (check.nowMs >= expiresAtMs) return refuse('AccessDenied', 'Request has expired');
  if (signedAtMs > check.nowMs + skewMs) return refuse('AccessDenied', 'Request is not valid yet (X-Amz-Date is in the future)');
  const headerNames = signedHeaders.split(';');
  if (!headerNames.includes('host') || headerNames.some((name) => name !== name.toLowerCase() || name.length === 0)) {
    return refuse('AuthorizationQueryParametersError', 'X-Amz-SignedHeaders must be lower-case names that include host');
  }
  const canonicalHeaders: string[] = [];
  for (const name of [...headerNames].sort()) {
    const value = check.headers[name];
    if (value === undefined) return refuse('SignatureDoesNotMatch', `the signed header ${name} is missing from the request`);
    const joined = Array.isArray(value) ? value.join(',') : value;
    canonicalHeaders.push(`${name}:${joined.trim().replace(/\s+/g, ' ')}\n`);
  }
  const canonicalQuery = parameters
    .filter(([key]) => key !== 'X-Amz-Signature')
    .map(([key, value]) => [encodeRfc3986(key), encodeRfc3986(value)] as const)
    .sort(([a, av], [b, bv]) => (a < b ? -1 : a > b ? 1 : av < bv ? -1 : av > bv ? 1 : 0))
    .map(([key, value]) => `${key}=${value}`)
    .join('&');
  const payloadHash = single('X-Amz-Content-Sha256') ?? 'UNSIGNED-PAYLOAD';
  // S3 signs the path as sent (no second encoding, no normalisation of dot segments).
  const canonicalRequest = [check.method.toUpperCase(), rawPath.length === 0 ? '/' : rawPath, canonicalQuery, canonicalHeaders.join(''), signedHeaders, payloadHash].join('\n');
  const stringToSign = [algorithm, amzDate, `${scopeDate}/${region}/${service}/aws4_request`, sha256Hex(canonicalRequest)].join('\n');
  const expected = hmac(signingKey(secret.secretAccessKey, scopeDate, region, service), stringToSign);
  const given = /^[0-9a-f]{64}$/.test(signature) ? Buffer.from(signature, 'hex') : Buffer.alloc(0);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    return refuse('SignatureDoesNotMatch', 'The request signature we calculated does not match the signature you provided');
  }
  let path: string;
  try {
    path = decodeURIComponent(rawPath);
  } catch {
    return refuse('AuthorizationQueryParametersError', 'the path is not valid percent-encoding');
  }
  return { ok: true, path, accessKeyId, expiresAtMs };
}

function refuse(code: SigV4Refusal['code'], message: string): SigV4Refusal {
  return { ok: false, code, message };
}

/** Name/value pairs, decoded; undefined for bad percent-encoding. `+` is a literal plus in SigV4, not a space. */
function parseQuery(raw: string): Array<[string, string]> | undefined {
  if (raw.length === 0) return [];
  const pairs: Array<[string, string]> = [];
  for (const part of raw.split('&')) {
    if (part.length === 0) continue;
    const equals = part.indexOf('=');
    try {
      pairs.push(equals < 0 ? [decodeURIComponent(part), ''] : [decodeURIComponent(part.slice(0, equals)), decodeURIComponent(part.slice(equals + 1))]);
    } catch {
      return undefined;
    }
  }
  return pairs;
}

function parseAmzDate(value: string): number | undefined {
  const match = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(value);
  if (match === null) return undefined;
  const [, y, mo, d, h, mi, s] = match.map(Number) as [number, number, number, number, number, number, number];
  const ms = Date.UTC(y, mo - 1, d, h, mi, s);
  return Number.isFinite(ms) ? ms : undefined;
}

/** SigV4's URI encoding: everything but A-Z a-z 0-9 - _ . ~ as %XX with upper-case hex. */
export function encodeRfc3986(value: string): string {
  return encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function sha256Hex(value: string): string {
  return createHash('sha256').update(value, 'utf8').digest('hex');
}

function hmac(key: Buffer | string, value: string): Buffer {
  return createHmac('sha256', key).update(value, 'utf8').digest();
}

function signingKey(secret: string, date: string, region: string, service: string): Buffer {
  return hmac(hmac(hmac(hmac(`AWS4${secret}`, date), region), service), 'aws4_request');
}

/** An S3-style XML error body (Code, Message), as S3 answers a refused request. */
export function s3ErrorXml(code: string, message: string, resource?: string): string {
  const escape = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${escape(code)}</Code><Message>${escape(message)}</Message>${resource === undefined ? '' : `<Resource>${escape(resource)}</Resource>`}</Error>`;
}
