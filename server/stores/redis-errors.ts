import { SdcError } from '../../core/errors/index.js';

/** Maps an ioredis (or ioredis-mock) error to the store's codes. */
export function mapRedisError(error: unknown): SdcError {
  if (error instanceof SdcError) return error;
  const message = error instanceof Error ? error.message : String(error);
  const name = error instanceof Error ? error.name : '';
  // UNBLOCKED: the stream a blocked XREADGROUP waited on was deleted (FLUSHALL, FLUSHDB, DEL); its group went with it.
  if (message.startsWith('NOGROUP') || message.startsWith('UNBLOCKED')) return new SdcError('STORE_NO_GROUP', message, {}, { cause: error });
  if (message.startsWith('WRONGTYPE') || /not an integer|out of range/i.test(message)) {
    return new SdcError('STORE_CONFLICT', message, {}, { cause: error });
  }
  if (message.startsWith('OOM')) return new SdcError('STORE_LIMIT', message, {}, { cause: error });
  if (name === 'MaxRetriesPerRequestError' || /Connection is closed|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENOTFOUND|Stream isn't writeable|LOADING/.test(message)) {
    return new SdcError('STORE_UNAVAILABLE', message, {}, { cause: error });
  }
  return new SdcError('STORE_QUERY_FAILED', message, {}, { cause: error });
}
