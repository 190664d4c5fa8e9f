import { defineErrors } from '../error-spec.js';

/** HTTPS client calls made by our own tools and agents (runtime/https-json.ts). */
export const httpErrors = defineErrors({
  HTTP_UNREACHABLE: { fault: 'local', status: 503, summary: 'The server could not be reached, the TLS handshake failed or no answer came in time' },
  HTTP_ANSWER_TOO_LARGE: { fault: 'remote', status: 502, summary: 'The answer is larger than the client accepts' },
  HTTP_ANSWER_INVALID: { fault: 'remote', status: 502, summary: 'The answer is not the JSON the client expected' },
  HTTP_REFUSED: { fault: 'remote', status: 400, summary: 'The server refused the request; details carry its status and error code' },
  // Refusals our HTTP servers write before a request reaches a route (URL, headers, framing).
  HTTP_URI_TOO_LONG: { fault: 'remote', status: 414, summary: 'A path parameter or the request URL is longer than the server accepts' },
  HTTP_HEADERS_TOO_LARGE: { fault: 'remote', status: 431, summary: 'The request line and headers exceed the server\'s header size limit' },
  HTTP_BAD_REQUEST: { fault: 'remote', status: 400, summary: 'The request is not well-formed HTTP, or its URL is not valid percent-encoding' },
  HTTP_REQUEST_TIMEOUT: { fault: 'remote', status: 408, summary: 'The request headers or body did not arrive within the server\'s time limit' },
});
