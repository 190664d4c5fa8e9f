import { defineErrors } from '../error-spec.js';

/**
 * The Toxiproxy-compatible fault proxy (chaos/proxy). Its HTTP API answers in Toxiproxy's wire
 * shape (`{"error": "...", "status": N}`, Toxiproxy's messages and statuses); these codes are what
 * the proxy logs beside each refusal, and each status is the one Toxiproxy gives for the case.
 */
export const chaosErrors = defineErrors({
  CHAOS_BAD_REQUEST_BODY: { fault: 'remote', status: 400, summary: 'The request body is not JSON, not the expected shape, or a field or toxic attribute is out of range' },
  CHAOS_MISSING_FIELD: { fault: 'remote', status: 400, summary: 'A required proxy field (name or upstream) is missing' },
  CHAOS_INVALID_STREAM: { fault: 'remote', status: 400, summary: 'A toxic stream is neither upstream nor downstream' },
  CHAOS_INVALID_TOXIC_TYPE: { fault: 'remote', status: 400, summary: 'The toxic type is not one the proxy implements' },
  CHAOS_PROXY_EXISTS: { fault: 'remote', status: 409, summary: 'A proxy with this name already exists' },
  CHAOS_TOXIC_EXISTS: { fault: 'remote', status: 409, summary: 'A toxic with this name already exists on the proxy' },
  CHAOS_LIMIT_REACHED: { fault: 'remote', status: 409, summary: 'The proxy server holds its maximum number of proxies, or the proxy its maximum number of toxics' },
  CHAOS_PROXY_NOT_FOUND: { fault: 'remote', status: 404, summary: 'No proxy has this name' },
  CHAOS_TOXIC_NOT_FOUND: { fault: 'remote', status: 404, summary: 'The proxy has no toxic with this name' },
  CHAOS_BAD_REQUEST_TARGET: { fault: 'remote', status: 400, summary: 'The request target is not a path the API can parse (e.g. //[)' },
  CHAOS_REQUEST_ABORTED: { fault: 'remote', status: 400, summary: 'Logged at info: the client closed the connection before its request body ended; nothing was changed and no answer could be sent' },
  CHAOS_ROUTE_NOT_FOUND: { fault: 'remote', status: 404, summary: 'No API endpoint has this path' },
  CHAOS_METHOD_NOT_ALLOWED: { fault: 'remote', status: 405, summary: 'The API endpoint does not take this HTTP method' },
  CHAOS_BODY_TOO_LARGE: { fault: 'remote', status: 413, summary: 'The request body is larger than the API accepts' },
  CHAOS_BROWSER_REFUSED: { fault: 'remote', status: 403, summary: 'A browser (User-Agent Mozilla/...) called the API; refused as Toxiproxy does, so a web page cannot drive it' },
  CHAOS_LISTEN_FAILED: { fault: 'local', status: 500, summary: 'The proxy could not listen on its address (taken, not local, or not permitted)' },
  CHAOS_LISTEN_NOT_LOOPBACK: { fault: 'remote', status: 403, summary: 'A proxy was asked to listen on an address that is not loopback (0.0.0.0, an interface, a host name) while the proxy server does not allow it (sdc chaos serve --allow-external-listen); nothing was opened' },
  CHAOS_UPSTREAM_UNREACHABLE: { fault: 'local', status: 502, summary: 'A proxied connection could not reach the upstream address; the client connection was closed' },
  CHAOS_CONNECTIONS_FULL: { fault: 'local', status: 503, summary: 'The proxy holds its maximum number of connections; a new client connection was closed' },
  CHAOS_INTERNAL: { fault: 'local', status: 500, summary: 'The proxy failed while handling an API request' },
  CHAOS_FAULT_FAILED: { fault: 'local', status: 500, summary: "sdc chaos run could not put its scenario's fault on, or heal it, through the proxy API" },
});
