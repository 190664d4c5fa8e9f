import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { SdcError, type ErrorCode } from '../../../core/errors/index.js';
import type { ErrorResponse } from './errors.js';

/**
 * Refusals that happen before a request reaches a route, in our error shape and with our codes:
 * fastify's router errors (a path parameter over maxParamLength, a URL that is not valid
 * percent-encoding) and Node's own parser errors (headers too large, malformed HTTP, timeouts),
 * which Node would answer with a bare status line and fastify's default would answer with its
 * own body. Neither echoes the path back: it is the client's own text and may be huge.
 */

/** fastify's `frameworkErrors` codes to ours; anything else from the router is API_INTERNAL. */
const codeOfFrameworkError: Readonly<Record<string, ErrorCode>> = {
  FST_ERR_MAX_PARAM_LENGTH: 'HTTP_URI_TOO_LONG',
  FST_ERR_BAD_URL: 'HTTP_BAD_REQUEST',
};

/** The SdcError for an error fastify's router raised before any route ran. */
export function sdcErrorOfFrameworkError(error: { code?: unknown }): SdcError {
  const code = typeof error.code === 'string' ? codeOfFrameworkError[error.code] : undefined;
  if (code === 'HTTP_URI_TOO_LONG') return new SdcError(code, 'a path parameter is longer than the server accepts');
  if (code === 'HTTP_BAD_REQUEST') return new SdcError(code, 'the URL is not valid percent-encoding');
  return new SdcError('API_INTERNAL', 'internal error');
}

/** Node's clientError codes to ours (after Node's own choice of status for each). */
function sdcErrorOfNodeClientError(error: { code?: unknown }): SdcError {
  switch (error.code) {
    case 'HPE_HEADER_OVERFLOW': return new SdcError('HTTP_HEADERS_TOO_LARGE', 'the request line and headers are larger than the server accepts');
    case 'ERR_HTTP_REQUEST_TIMEOUT': return new SdcError('HTTP_REQUEST_TIMEOUT', 'the request did not arrive in time');
    default: return new SdcError('HTTP_BAD_REQUEST', 'the request is not well-formed HTTP');
  }
}

/** The whole HTTP/1.1 answer for a refusal written straight to a socket, closing the connection. */
export function rawErrorResponse(error: SdcError, traceId: string): string {
  const body: ErrorResponse = { error: { code: error.code, message: error.message, trace_id: traceId } };
  const text = JSON.stringify(body);
  return `HTTP/1.1 ${error.status} ${STATUS_CODES[error.status] ?? 'Error'}\r\ncontent-type: application/json; charset=utf-8\r\n`
    + `content-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`;
}

/**
 * A listener for the server's `clientError` event: writes our error shape on the socket (when it
 * can still be written) and destroys it. A reset connection has nobody to answer.
 */
export function clientErrorListener(options: { logger: Logger; newTraceId: () => string }): (error: Error & { code?: unknown }, socket: Duplex) => void {
  return (error, socket) => {
    if (error.code === 'ECONNRESET' || socket.destroyed) return;
    const refusal = sdcErrorOfNodeClientError(error);
    const traceId = options.newTraceId();
    options.logger.info({ code: refusal.code, nodeCode: error.code, traceId }, 'request refused before routing');
    // As Node does: answer only if nothing of a response went out yet; the write of a few hundred
    // bytes is handed to the OS at once, and destroy then frees the socket whatever the peer does.
    if (socket.writable && ((socket as Partial<Socket>).bytesWritten ?? 0) === 0) socket.write(rawErrorResponse(refusal, traceId));
    socket.destroy();
  };
}

/** fastify's `frameworkErrors` option, answering through the app's own error path. */
export function frameworkErrorHandler(send: (request: FastifyRequest, reply: FastifyReply, error: unknown) => FastifyReply) {
  return (error: Error & { code?: unknown }, request: FastifyRequest, reply: FastifyReply): void => {
    send(request, reply, sdcErrorOfFrameworkError(error));
  };
}
