import { defineErrors } from '../error-spec.js';

/** The control plane's HTTP API (core/control-plane). */
export const apiErrors = defineErrors({
  API_VALIDATION: { fault: 'remote', status: 400, summary: 'Request does not match the route schema (body, query, params or headers)' },
  API_BAD_JSON: { fault: 'remote', status: 400, summary: 'Request body is not valid JSON' },
  API_UNSUPPORTED_MEDIA_TYPE: { fault: 'remote', status: 415, summary: 'Request body has a content type the route does not accept' },
  API_BODY_TOO_LARGE: { fault: 'remote', status: 413, summary: 'Request body exceeds the body size limit in bytes' },
  API_NOT_FOUND: { fault: 'remote', status: 404, summary: 'No such route or resource' },
  API_UNAUTHENTICATED: { fault: 'remote', status: 401, summary: 'No bearer token was presented' },
  API_FORBIDDEN: { fault: 'remote', status: 403, summary: 'The caller\'s role may not use this route' },
  API_LOGIN_FAILED: { fault: 'remote', status: 401, summary: 'Unknown user name or wrong password' },
  API_USER_EXISTS: { fault: 'remote', status: 409, summary: 'A user with this name already exists' },
  API_DEVICE_NOT_FOUND: { fault: 'remote', status: 404, summary: 'No device with this id' },
  API_DEVICE_NOT_ENROLLED: { fault: 'remote', status: 409, summary: 'The device has no certificate (not enrolled, or revoked)' },
  API_DEVICE_REVOKED: { fault: 'remote', status: 403, summary: 'The device is revoked' },
  API_CLIENT_CERT_REQUIRED: { fault: 'remote', status: 401, summary: 'The route needs the device certificate as the TLS client certificate, and none was presented' },
  API_CLIENT_CERT_DEVICE_MISMATCH: { fault: 'remote', status: 403, summary: 'The TLS client certificate names another device than the route' },
  API_CLIENT_CERT_UNKNOWN: { fault: 'remote', status: 401, summary: 'The TLS client certificate chains to our CA but is not on record as issued to the device' },
  API_ALERT_NOT_FOUND: { fault: 'remote', status: 404, summary: 'No alert with this id' },
  API_CURSOR_INVALID: { fault: 'remote', status: 400, summary: 'Pagination cursor is malformed' },
  API_TOO_MANY_CLIENTS: { fault: 'local', status: 503, summary: 'The live update stream has its maximum number of clients' },
  API_INTERNAL: { fault: 'local', status: 500, summary: 'Internal error; the trace id names it in the server log' },
});
