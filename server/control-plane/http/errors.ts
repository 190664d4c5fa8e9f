import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { SdcError } from '../../../core/errors/index.js';

export interface ErrorResponse {
  readonly error: { readonly code: string; readonly message: string; readonly trace_id: string };
}

/** Any thrown value to the SdcError the client is told about. Never a stack; unknown errors become API_INTERNAL. */
export function toSdcError(error: unknown): SdcError {
  if (SdcError.is(error)) return error;
  const e = error as Partial<FastifyError> & { validation?: Array<{ instancePath?: string; message?: string }>; validationContext?: string };
  if (Array.isArray(e.validation)) {
    const first = e.validation[0];
    const path = `${e.validationContext ?? 'request'}${first?.instancePath ?? ''}`;
    return new SdcError('API_VALIDATION', `${path}: ${first?.message ?? 'invalid'}`, { path });
  }
  if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE' || e.statusCode === 413) return new SdcError('API_BODY_TOO_LARGE', 'request body is too large');
  if (e.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' || e.statusCode === 415) return new SdcError('API_UNSUPPORTED_MEDIA_TYPE', 'send application/json');
  if (typeof e.code === 'string' && e.code.startsWith('FST_ERR_CTP') && e.statusCode === 400) return new SdcError('API_BAD_JSON', 'request body is not valid JSON');
  if (error instanceof SyntaxError && e.statusCode === 400) return new SdcError('API_BAD_JSON', 'request body is not valid JSON');
  return new SdcError('API_INTERNAL', 'internal error');
}

/** `logged`: what the log line says besides the refusal, and the answer does not (the 404's path). */
export function sendError(request: FastifyRequest, reply: FastifyReply, error: unknown, logged?: Readonly<Record<string, unknown>>): FastifyReply {
  const mapped = toSdcError(error);
  const log = mapped.fault === 'local' ? request.log.error.bind(request.log) : request.log.info.bind(request.log);
  log({ ...logged, err: mapped.code === 'API_INTERNAL' ? error : undefined, code: mapped.code, traceId: request.id, detail: mapped.message }, 'request refused');
  const body: ErrorResponse = { error: { code: mapped.code, message: mapped.message, trace_id: String(request.id) } };
  // Rate limits and busy refusals say when to come back (RFC 9110 section 10.2.3, whole seconds).
  const retryAfterS = mapped.details['retryAfterS'];
  if (typeof retryAfterS === 'number' && Number.isSafeInteger(retryAfterS) && retryAfterS > 0) reply.header('retry-after', String(retryAfterS));
  return reply.status(mapped.status).header('content-type', 'application/json; charset=utf-8').send(body);
}
