import { SdcError, type ErrorDetails } from '../../../core/errors/index.js';

const unavailableCodes = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND', 'EPIPE',
  'PROTOCOL_CONNECTION_LOST', 'PROTOCOL_SEQUENCE_TIMEOUT', 'ER_CON_COUNT_ERROR', 'ER_ACCESS_DENIED_ERROR',
  'ER_BAD_DB_ERROR', 'POOL_CLOSED', 'ER_SERVER_SHUTDOWN',
]);

/** Maps a mysql2 error to the store's codes by its driver code; the server message is kept, parameters never are. */
export function mapMysqlError(error: unknown): SdcError {
  if (error instanceof SdcError) return error;
  const code = (error as { code?: unknown }).code;
  const message = error instanceof Error ? error.message : String(error);
  const details: ErrorDetails = typeof code === 'string' ? { driverCode: code } : {};
  if (code === 'ER_DUP_ENTRY' || code === 'ER_DUP_KEY') return new SdcError('STORE_UNIQUE_VIOLATION', message, details, { cause: error });
  if (code === 'ER_LOCK_DEADLOCK' || code === 'ER_LOCK_WAIT_TIMEOUT') return new SdcError('STORE_CONFLICT', message, details, { cause: error });
  if (typeof code === 'string' && unavailableCodes.has(code)) return new SdcError('STORE_UNAVAILABLE', message, details, { cause: error });
  // mysql2's "Can't add new command when connection is in closed state": a connection already lost
  // (no driver code, `fatal` set). Gone like PROTOCOL_CONNECTION_LOST; the statement was never sent.
  if (code === undefined && (error as { fatal?: unknown }).fatal === true) return new SdcError('STORE_UNAVAILABLE', message, details, { cause: error });
  return new SdcError('STORE_QUERY_FAILED', message, details, { cause: error });
}
