/**
 * What the API's logs may say about a request's URL (security review 2026-12-05, finding 3).
 * A URL can carry a credential: the viewer's EventSource opens `/v1/live?ticket=` with a one-time
 * ticket (EventSource cannot set headers; live-tickets.ts), an old client may still send its JWT as
 * `?token=` (refused, API_LIVE_TOKEN_IN_URL, but the request line is logged first), and a
 * presigned blob URL carries its SigV4 signature and credential in the query. fastify's "incoming
 * request" line logs `req.url` as it came, so every such token reached the logs.
 *
 * The rule is an allowlist, not a list of secrets: a query parameter's value is logged only when
 * its name is one of `loggedQueryParameters` (paging, filters, ids: never secret); every other
 * value is replaced by `[redacted]`, whatever its name, so a parameter added later, or a
 * credential under a name nobody thought of, is hidden until someone lists it here. Names are
 * kept when they look like our parameter names (lower-case words; they say which route option was
 * used), else replaced too: a bare `?<token>` is a name. Names are compared after percent-decoding,
 * the way fastify's query parser decodes them, so `%74oken` is not a way around the rule. The path
 * is logged as it came (no route takes a credential in its path).
 */
export const loggedQueryParameters: ReadonlySet<string> = new Set([
  'limit', 'cursor', 'from_seq', 'head_seq', 'head_hash', 'device_id', 'state', 'tag', 'acknowledged', 'since_ms', 'from_ms', 'to_ms',
]);

export const redactedText = '[redacted]';

// A longer query is cut before it is examined: a log line stays bounded whatever the client sends.
const loggedQueryLengthMax = 2048;
// What a parameter name of ours looks like; anything else may be a value sent as a name.
const plainName = /^[a-z][a-z_]{0,31}$/;

function decodedName(raw: string): string | undefined {
  try {
    return decodeURIComponent(raw.replace(/\+/g, ' '));
  } catch {
    return undefined;
  }
}

/** The URL (path and query, as a request line carries it) with every value not known to be harmless replaced. */
export function redactedUrl(url: string): string {
  const queryAt = url.indexOf('?');
  if (queryAt < 0) return url;
  const path = url.slice(0, queryAt);
  const query = url.slice(queryAt + 1);
  const cut = query.length > loggedQueryLengthMax;
  const parts = (cut ? query.slice(0, loggedQueryLengthMax) : query).split('&').map((part) => {
    if (part === '') return part;
    const equalsAt = part.indexOf('=');
    const rawName = equalsAt < 0 ? part : part.slice(0, equalsAt);
    const name = decodedName(rawName);
    if (name === undefined || !plainName.test(name)) return redactedText;
    if (loggedQueryParameters.has(name)) return part;
    return equalsAt < 0 ? name : `${name}=${redactedText}`;
  });
  return `${path}?${parts.join('&')}${cut ? '...' : ''}`;
}

interface LoggableRequest {
  readonly method?: string;
  readonly url?: string;
  readonly host?: string;
  readonly ip?: string;
  readonly headers?: Record<string, unknown>;
  readonly socket?: { readonly remotePort?: number } | null;
}

/**
 * The pino serializer of `req` on the API's loggers (http/app.ts): fastify's own fields
 * (lib/logger-pino.js), with the URL redacted. Whoever logs `{ req }`, fastify's request lines
 * and its default error log included, goes through it.
 */
export function requestLogSerializer(req: LoggableRequest): Record<string, unknown> {
  return {
    method: req.method,
    url: typeof req.url === 'string' ? redactedUrl(req.url) : undefined,
    host: req.host,
    remoteAddress: req.ip,
    remotePort: req.socket?.remotePort,
  };
}
