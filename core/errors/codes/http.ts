import { defineErrors } from '../error-spec.js';

/** HTTPS client calls made by our own tools and agents (core/runtime/https-json.ts). */
export const httpErrors = defineErrors({
  HTTP_UNREACHABLE: { fault: 'local', status: 503, summary: 'The server could not be reached, the TLS handshake failed or no answer came in time' },
  HTTP_ANSWER_TOO_LARGE: { fault: 'remote', status: 502, summary: 'The answer is larger than the client accepts' },
  HTTP_ANSWER_INVALID: { fault: 'remote', status: 502, summary: 'The answer is not the JSON the client expected' },
  HTTP_REFUSED: { fault: 'remote', status: 400, summary: 'The server refused the request; details carry its status and error code' },
});
